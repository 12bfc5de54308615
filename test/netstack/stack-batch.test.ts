// A link that reports the end of each input batch (Link.onBatchEnd): the stack answers
// the TCP segments of one batch with one ACK, and still verifies every checksum.

import assert from 'node:assert/strict';
import type { Link, PacketHandler } from '../../netstack/link/link.js';
import { silentLogger } from '../../netstack/log.js';
import { Stack } from '../../netstack/stack.js';
import { VirtualClock } from '../../netstack/time.js';
import type { TcpConnectionApi, TcpConnectionEvents } from '../../netstack/tcp/types.js';
import { ACK, isWireError, parseIpv4, parseTcp } from '../../netstack/wire/index.js';

/** Holds what the peer sent; deliver() hands it over as one batch, or one packet per batch. */
class BatchLink implements Link {
  peer: BatchLink | null = null;
  readonly inbox: Uint8Array[] = [];
  private handler: PacketHandler = () => {};
  private batchEnd: () => void = () => {};
  batchesEnded = 0;

  send(packet: Uint8Array): void {
    this.peer?.inbox.push(packet.slice());
  }
  onReceive(handler: PacketHandler): void {
    this.handler = handler;
  }
  onBatchEnd(handler: () => void): void {
    this.batchEnd = handler;
  }
  close(): void {}

  deliver(oneBatch: boolean): number {
    const packets = this.inbox.splice(0);
    for (const p of packets) {
      this.handler(p);
      if (!oneBatch) this.endBatch();
    }
    if (oneBatch && packets.length > 0) this.endBatch();
    return packets.length;
  }

  private endBatch(): void {
    this.batchesEnded++;
    this.batchEnd();
  }
}

interface Setup {
  a: Stack;
  b: Stack;
  la: BatchLink;
  lb: BatchLink;
  client: TcpConnectionApi;
  received: () => number;
  clock: VirtualClock;
}

function setup(): Setup {
  const clock = new VirtualClock(0);
  const la = new BatchLink();
  const lb = new BatchLink();
  la.peer = lb;
  lb.peer = la;
  const tcp = { timestamps: false, sack: false, windowScaling: true, mss: 1000, batchAckAfterBuffers: 0 };
  const a = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, seed: 1, tcp });
  const b = new Stack({ address: '10.77.0.3', clock, logger: silentLogger, seed: 2, tcp });
  a.attach(la);
  b.attach(lb);
  let bytes = 0;
  const sink: TcpConnectionEvents = {
    established: () => {},
    data: (c) => {
      bytes += c.length;
    },
    fin: () => {},
    sendSpace: () => {},
    closed: () => {},
  };
  const l = b.tcp.listen(80, {}, (c) => {
    c.events = sink;
  });
  assert.ok(typeof l !== 'string');
  const noop: TcpConnectionEvents = { established: () => {}, data: () => {}, fin: () => {}, sendSpace: () => {}, closed: () => {} };
  const client = a.tcp.connect(b.localAddress, 80, noop);
  assert.ok(typeof client !== 'string');
  for (let i = 0; i < 4; i++) {
    lb.deliver(true);
    la.deliver(true);
  }
  assert.equal(client.state, 'ESTABLISHED');
  return { a, b, la, lb, client, received: () => bytes, clock };
}

/** Acknowledgment numbers of the pure ACKs in `packets`, relative to `base`. */
function pureAcks(packets: Uint8Array[], base: number): number[] {
  const acks: number[] = [];
  for (const p of packets) {
    const ip = parseIpv4(p);
    assert.ok(!isWireError(ip));
    const seg = parseTcp(ip.payload, ip.src, ip.dst);
    assert.ok(!isWireError(seg));
    if (seg.flags === ACK && seg.payload.length === 0) acks.push((seg.ack - base) >>> 0);
  }
  return acks;
}

describe('stack input batches (Link.onBatchEnd)', () => {
  it('one ACK for the segments of one batch; one per two segments when each is its own batch', () => {
    for (const oneBatch of [true, false]) {
      const s = setup();
      const base = ((s.client as unknown as { initialSequence: number }).initialSequence + 1) >>> 0;
      assert.equal(s.client.send(new Uint8Array(8000), s.clock.now()), 8000);
      assert.equal(s.lb.inbox.length, 8, 'eight full segments in flight');
      s.lb.deliver(oneBatch);
      assert.equal(s.received(), 8000);
      const acks = pureAcks(s.la.inbox, base);
      if (oneBatch) assert.deepEqual(acks, [8000]);
      else assert.deepEqual(acks, [2000, 4000, 6000, 8000]);
      s.a.close();
      s.b.close();
    }
  });

  it('still drops a segment with a bad checksum inside a batch, and ACKs the rest', () => {
    const s = setup();
    const base = ((s.client as unknown as { initialSequence: number }).initialSequence + 1) >>> 0;
    s.client.send(new Uint8Array(4000), s.clock.now());
    assert.equal(s.lb.inbox.length, 4);
    const bad = s.lb.inbox[3]!;
    bad[bad.length - 1] ^= 0xff;
    s.lb.deliver(true);
    assert.equal(s.received(), 3000);
    assert.equal(s.b.counters['tcp-bad-checksum'], 1);
    assert.deepEqual(pureAcks(s.la.inbox, base), [3000]);
    s.a.close();
    s.b.close();
  });
});
