import assert from 'node:assert/strict';
import { createLinkPair } from '../../../netstack/link/memory.js';
import { silentLogger } from '../../../netstack/log.js';
import { Stack } from '../../../netstack/stack.js';
import type { TcpConnectionEvents } from '../../../netstack/tcp/types.js';
import { VirtualClock } from '../../../netstack/time.js';
import { ACK, REMOTE_ADDR, RST, SYN, TcpHarness } from '../../support/tcp-harness.js';

const BACKLOG = 8;

describe('tcp SYN cookies (RFC 4987 section 3.6)', () => {
  function flooded(): TcpHarness {
    const h = new TcpHarness({ mss: 65495 });
    const listener = h.listen(BACKLOG);
    // A flood at 10x the backlog from spoofed ports that never answer.
    for (let i = 0; i < 10 * BACKLOG; i++) {
      const syn = h.seg({ flags: SYN, seq: 1000 * i, window: 65535, options: { mss: 1460 } });
      listener.input(syn, REMOTE_ADDR, 20_000 + i, h.now);
    }
    assert.equal(listener.halfOpenCount, BACKLOG);
    assert.equal(listener.counters.synCookiesSent, 9 * BACKLOG);
    assert.equal(h.drain().filter((s) => s.flags === (SYN | ACK)).length, 10 * BACKLOG, 'every SYN was answered');
    return h;
  }

  it('a real client still connects during the flood, with MSS, window scale, SACK and timestamps', () => {
    const h = flooded();
    const irs = 77_000;
    h.toListener({ flags: SYN, seq: irs, window: 65535, options: { mss: 1460, windowScale: 7, sackPermitted: true, timestamp: { value: 5000, echo: 0 } } });
    const synAck = h.expect({ flags: SYN | ACK, ack: irs + 1, sackPermitted: true, timestamp: { echo: 5000 } });
    assert.ok(synAck.options.windowScale !== undefined, 'window scale offered');
    assert.equal(h.listener!.halfOpenCount, BACKLOG, 'no state kept for it');
    const conn = h.toListener({
      flags: ACK,
      seq: irs + 1,
      ack: synAck.seq + 1,
      window: 1000,
      data: 'hello',
      options: { timestamp: { value: 5001, echo: synAck.options.timestamp!.value } },
    });
    assert.ok(conn !== null, 'the cookie was accepted');
    assert.equal(conn.state, 'ESTABLISHED');
    assert.equal(h.listener!.counters.synCookiesAccepted, 1);
    assert.equal(new TextDecoder().decode(h.events.receivedBytes()), 'hello');
    // The peer's window is scaled by 7 (1000 << 7 bytes), and segments are the cookie's
    // MSS (1460) less the timestamp option.
    conn.send(new Uint8Array(20_000), h.now);
    const out = h.drain().filter((s) => s.payloadLength > 0);
    assert.equal(out[0]!.payloadLength, 1460 - 12);
    assert.ok(out.length >= 10, `sent ${out.length} segments into a window of 128000 bytes`);
    assert.ok(out.every((s) => s.options.timestamp !== undefined), 'timestamps in use');
    assert.ok(conn.receiveWindow > 0xffff, 'our window is scaled too');
  });

  it('a forged or stale cookie gets a RST and no connection', () => {
    const h = flooded();
    const conn = h.toListener({ flags: ACK, seq: 5, ack: 0x12345678, window: 1000, options: { timestamp: { value: 1, echo: 2 } } });
    assert.equal(conn, null);
    h.expect({ flags: RST, seq: 0x12345678 });
    assert.equal(h.listener!.counters.synCookiesFailed, 1);
    // A genuine cookie, returned three minutes later (beyond two 64 s periods).
    h.toListener({ flags: SYN, seq: 900, window: 65535, options: { mss: 1460 } });
    const synAck = h.expect({ flags: SYN | ACK });
    h.now += 180_000;
    assert.equal(h.toListener({ flags: ACK, seq: 901, ack: synAck.seq + 1, window: 1000 }), null);
    assert.equal(h.listener!.counters.synCookiesAccepted, 0);
  });

  it('a peer without timestamps gets a cookie without window scale or SACK', () => {
    const h = flooded();
    h.toListener({ flags: SYN, seq: 300, window: 65535, options: { mss: 1460, windowScale: 7, sackPermitted: true } });
    const synAck = h.expect({ flags: SYN | ACK, ack: 301, windowScale: null, timestamp: false });
    assert.equal(synAck.options.sackPermitted, undefined);
    const conn = h.toListener({ flags: ACK, seq: 301, ack: synAck.seq + 1, window: 1000 });
    assert.equal(conn?.state, 'ESTABLISHED');
  });

  it('with synCookies off, SYNs beyond the queue are dropped', () => {
    const h = new TcpHarness({ synCookies: false });
    const listener = h.listen(BACKLOG);
    for (let i = 0; i < 2 * BACKLOG; i++) listener.input(h.seg({ flags: SYN, seq: i, window: 65535 }), REMOTE_ADDR, 30_000 + i, h.now);
    assert.equal(listener.counters.droppedQueueFull, BACKLOG);
    assert.equal(listener.counters.synCookiesSent, 0);
  });
});

describe('tcp SYN cookies and the connection table', () => {
  it('connections made from cookies count against maxTcpConnections like any other', () => {
    const clock = new VirtualClock(0);
    const [la, lb] = createLinkPair({ clock });
    const server = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, limits: { maxTcpConnections: 4 }, seed: 1 });
    const client = new Stack({ address: '10.77.0.3', clock, logger: silentLogger, seed: 2 });
    server.attach(la);
    client.attach(lb);
    const noop = (): TcpConnectionEvents => ({ established() {}, data() {}, fin() {}, sendSpace() {}, closed() {} });
    const listener = server.tcp.listen(80, { backlog: 2 }, (c) => (c.events = noop()));
    assert.notEqual(typeof listener, 'string');
    // 12 SYNs at once: 2 take the half-open queue, 10 get cookies; every ACK comes back
    for (let i = 0; i < 12; i++) assert.notEqual(typeof client.tcp.connect(server.localAddress, 80, noop()), 'string');
    clock.advanceBy(50);
    assert.ok(server.tableSizes().tcpConnections <= 4, `server holds ${server.tableSizes().tcpConnections} connections`);
    assert.ok((server.counters['tcp-table-full'] ?? 0) > 0, 'the ACKs beyond the table were dropped and counted');
    server.close();
    client.close();
  });
});
