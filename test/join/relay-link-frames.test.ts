import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { RelayLink, isRelayLinkError, splitPackets } from '../../transport/relay-link.js';
import { silentLogger } from '../../hostfn/log.js';
import { testWelcome } from '../support/welcome.js';

/** An IPv4-shaped packet of `total` bytes whose payload bytes are all `fill`. */
function ipv4(total: number, fill: number): Uint8Array {
  const p = new Uint8Array(total).fill(fill);
  p[0] = 0x45;
  p[2] = total >> 8;
  p[3] = total & 0xff;
  return p;
}

const WELCOME = testWelcome({ host: 'h', address: '10.77.0.5', session: 's1' });

// Frames of several packets are written as a header plus the packets (no joined copy):
// a real ws server must decode each length form (7-bit, 16-bit, 64-bit) and keep the order
// with the control frames ws itself writes.
describe('join/relay-link gathered frames', () => {
  let wss: WebSocketServer;
  let link: RelayLink | null = null;
  const messages: { binary: boolean; data: Buffer }[] = [];

  beforeEach(async () => {
    messages.length = 0;
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 4 << 20 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (data, binary) => messages.push({ binary, data: data as Buffer }));
      ws.send(JSON.stringify(WELCOME));
    });
  });

  afterEach(async () => {
    link?.close();
    link = null;
    await new Promise<void>((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => r());
    });
  });

  async function until(cond: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(cond(), `only ${messages.length} messages arrived`);
  }

  it('sends gathered frames of each length form intact and in order with control frames', async () => {
    const l = await RelayLink.connect({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, token: 't', logger: silentLogger });
    if (isRelayLinkError(l)) throw new Error(l.message);
    link = l;
    const bursts = [
      [ipv4(10_000, 1), ipv4(20_000, 2)], // gathered, 16-bit length
      [ipv4(65_535, 3), ipv4(65_535, 4), ipv4(52, 5)], // gathered, 64-bit length
      [ipv4(40, 6), ipv4(60, 7), ipv4(1500, 8)], // small packets: copied into one buffer
    ];
    for (const b of bursts) {
      for (const p of b) l.send(p);
      await new Promise((r) => setImmediate(r));
    }
    // a control frame written by ws itself between two of ours keeps its place
    l.send(ipv4(30_000, 9));
    assert.equal(l.sendControl({ type: 'released', reason: 'test' }), true);
    l.send(ipv4(30_000, 10));
    l.send(ipv4(30_000, 11));
    await until(() => messages.length >= 6);
    assert.equal(messages.length, 6);
    const expected = [...bursts, [ipv4(30_000, 9)], null, [ipv4(30_000, 10), ipv4(30_000, 11)]];
    expected.forEach((want, i) => {
      const m = messages[i]!;
      if (want === null) {
        assert.equal(m.binary, false);
        assert.equal(JSON.parse(m.data.toString()).type, 'released');
        return;
      }
      assert.equal(m.binary, true);
      const got = splitPackets(m.data);
      assert.equal(got.malformed, false);
      assert.deepEqual(new Uint8Array(m.data), new Uint8Array(Buffer.concat(want)), `frame ${i}`);
    });
    assert.equal(l.counters.framesOut, 5);
    assert.equal(l.counters.packetsOut, 11);
  });
});
