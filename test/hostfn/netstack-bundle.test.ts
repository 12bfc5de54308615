import assert from 'node:assert/strict';
import { createNetstackBundle } from '../../hostfn/netstack-bundle.js';
import { Stack } from '../../netstack/stack.js';
import type { Link, PacketHandler } from '../../netstack/link/link.js';
import { tcpPacket } from '../support/relay-packets.js';
import { testWelcome } from '../support/welcome.js';

class FakeLink implements Link {
  readonly sent: Uint8Array[] = [];
  handler: PacketHandler | null = null;
  readonly mtu = 65535;
  send(packet: Uint8Array): void {
    this.sent.push(packet.slice());
  }
  onReceive(handler: PacketHandler): void {
    this.handler = handler;
  }
  close(): void {}
}

const welcome = testWelcome();

const SYN = 0x02;
const SYN_ACK = 0x12;

describe('hostfn: the default host stack', function () {
  it('does not verify checksums of packets from the relay link (TCP already protects them)', async function () {
    const link = new FakeLink();
    const bundle = createNetstackBundle(welcome, link);
    const server = bundle.stack.net.createServer(() => {});
    await new Promise<void>((r) => server.listen(80, () => r()));
    // tcpPacket leaves the TCP checksum zero: wrong for this segment.
    link.handler!(tcpPacket('10.77.0.20', '10.77.0.10', 40000, 80, SYN));
    const reply = link.sent.find((p) => p[9] === 6);
    assert.ok(reply, 'no TCP reply');
    assert.equal(reply[20 + 13], SYN_ACK);
    await new Promise<void>((r) => server.close(() => r()));
    bundle.stack.close();
  });

  it('a stack on any other link still drops the same segment and counts it', async function () {
    const link = new FakeLink();
    const stack = new Stack({ address: '10.77.0.10', prefixLength: 16, mtu: 65535, gateway: '10.77.0.1' });
    stack.attach(link);
    const server = stack.net.createServer(() => {});
    await new Promise<void>((r) => server.listen(80, () => r()));
    link.handler!(tcpPacket('10.77.0.20', '10.77.0.10', 40000, 80, SYN));
    assert.equal(link.sent.filter((p) => p[9] === 6).length, 0);
    assert.ok(stack.counters.dropped >= 1, JSON.stringify(stack.counters));
    await new Promise<void>((r) => server.close(() => r()));
    stack.close();
  });
});
