import assert from 'node:assert/strict';
import { ACK, RST, SYN, TcpHarness } from '../../support/tcp-harness.js';

const PLAIN = { timestamps: false, sack: false, windowScaling: false, mss: 1000 };

describe('tcp handshake and options', () => {
  it('active open sends a SYN with MSS, window scale, SACK-permitted and a timestamp', () => {
    const h = new TcpHarness({ mss: 1460 });
    const syn = h.connect();
    assert.equal(h.conn.state, 'SYN-SENT');
    // 1 MiB receive buffer needs shift 5 (RFC 7323 section 2.3).
    assert.equal(syn.window, 0xffff);
    assert.equal(syn.options.mss, 1460);
    assert.equal(syn.options.windowScale, 5);
    assert.equal(syn.options.sackPermitted, true);
    assert.equal(syn.options.timestamp?.echo, 0);
  });

  it('negotiates scaling, SACK and timestamps when the SYN-ACK carries them', () => {
    const h = new TcpHarness({ mss: 1460 });
    const syn = h.connect();
    h.send({ flags: SYN | ACK, seq: 100, ack: syn.seq + 1, window: 1000, options: { mss: 1400, windowScale: 7, sackPermitted: true, timestamp: { value: 555, echo: syn.options.timestamp!.value } } });
    const ack = h.expect({ flags: ACK, seq: syn.seq + 1, ack: 101, timestamp: { echo: 555 } });
    // The first ACK opens the full scaled window: 1 MiB >> 5.
    assert.equal(ack.window, (1 << 20) >> 5);
    assert.equal(h.conn.state, 'ESTABLISHED');
    assert.deepEqual(h.events.types(), ['established']);
    // The SYN-ACK's window is not scaled (RFC 7323 section 2.2): 1000 bytes, sent as two
    // segments of half the window each (the half-window bound).
    h.conn.send(new Uint8Array(5000), h.now);
    h.expect({ len: 500 });
    h.expect({ len: 500 });
    h.expectNothing();
    // Later windows are scaled by 7; the send MSS is 1400 minus the 12-byte timestamp option.
    h.send({ flags: ACK, seq: 101, ack: syn.seq + 1001, window: 1000, options: { timestamp: { value: 556, echo: 0 } } });
    const segs = h.drain();
    // Two full segments; Nagle holds the 1224-byte tail while data is unacknowledged.
    assert.deepEqual(segs.map((s) => s.payloadLength), [1388, 1388]);
    h.send({ flags: ACK, seq: 101, ack: syn.seq + 1001 + 2776, window: 1000, options: { timestamp: { value: 557, echo: 0 } } });
    h.expect({ len: 1224 });
  });

  it('drops every option the peer did not offer in its SYN-ACK', () => {
    const h = new TcpHarness({ mss: 1460 });
    const syn = h.connect();
    h.send({ flags: SYN | ACK, seq: 100, ack: syn.seq + 1, window: 2000, options: { mss: 536 } });
    const ack = h.expect({ flags: ACK, ack: 101, timestamp: false, sack: null });
    // No scaling: the 1 MiB buffer shows as 65535.
    assert.equal(ack.window, 0xffff);
    h.conn.send(new Uint8Array(3000), h.now);
    const segs = h.drain();
    // Unscaled peer window of 2000 bytes, MSS 536.
    assert.deepEqual(segs.map((s) => s.payloadLength), [536, 536, 536]);
    assert.ok(segs.every((s) => s.options.timestamp === undefined));
  });

  it('uses MSS 536 when the peer sends no MSS option (RFC 9293 section 3.7.1)', () => {
    const h = new TcpHarness(PLAIN);
    const syn = h.connect();
    h.send({ flags: SYN | ACK, seq: 100, ack: syn.seq + 1, window: 60000, options: {} });
    h.expect({ flags: ACK });
    h.conn.send(new Uint8Array(600), h.now);
    h.expect({ len: 536 });
  });

  it('passive open answers a SYN with options mirrored, and hands over the connection on the ACK', () => {
    const h = new TcpHarness({ mss: 1460 });
    const l = h.listen();
    const c = h.toListener({ flags: SYN, seq: 9000, window: 4000, options: { mss: 1200, windowScale: 2, sackPermitted: true, timestamp: { value: 77, echo: 0 } } });
    assert.ok(c);
    assert.equal(c.state, 'SYN-RECEIVED');
    const synAck = h.expect({ flags: SYN | ACK, ack: 9001, mss: 1460, windowScale: 5, sackPermitted: true, timestamp: { echo: 77 } });
    assert.equal(l.halfOpenCount, 1);
    assert.equal(h.events.conn, null);
    h.send({ flags: ACK, seq: 9001, ack: synAck.seq + 1, window: 4000, options: { timestamp: { value: 78, echo: synAck.options.timestamp!.value } } });
    h.expectNothing();
    assert.equal(c.state, 'ESTABLISHED');
    assert.equal(h.events.conn, c);
    assert.deepEqual(h.events.types(), ['established']);
    assert.equal(l.halfOpenCount, 0);
    assert.equal(l.counters.accepted, 1);
  });

  it('passive open without peer options answers with MSS only', () => {
    const h = new TcpHarness({ mss: 1460 });
    h.listen();
    h.toListener({ flags: SYN, seq: 1, options: { mss: 1000 } });
    h.expect({ flags: SYN | ACK, mss: 1460, windowScale: null, sackPermitted: false, timestamp: false });
  });

  it('data on the handshake-completing ACK reaches the accepted connection', () => {
    const h = new TcpHarness(PLAIN);
    h.listen();
    h.toListener({ flags: SYN, seq: 10, options: { mss: 1000 } });
    const synAck = h.expect({ flags: SYN | ACK });
    h.send({ flags: ACK, seq: 11, ack: synAck.seq + 1, data: 'hello' });
    assert.deepEqual(h.events.types(), ['established', 'data']);
    assert.equal(Buffer.from(h.events.receivedBytes()).toString(), 'hello');
  });

  it('simultaneous open goes SYN-SENT -> SYN-RECEIVED -> ESTABLISHED', () => {
    const h = new TcpHarness(PLAIN);
    const syn = h.connect();
    h.send({ flags: SYN, seq: 300, options: { mss: 1000 } });
    h.expect({ flags: SYN | ACK, seq: syn.seq, ack: 301 });
    assert.equal(h.conn.state, 'SYN-RECEIVED');
    // The peer's SYN-ACK repeats its SYN: not acceptable, answered with an ACK.
    h.send({ flags: SYN | ACK, seq: 300, ack: syn.seq + 1 });
    h.expect({ flags: ACK, seq: syn.seq + 1, ack: 301 });
    h.send({ flags: ACK, seq: 301, ack: syn.seq + 1 });
    assert.equal(h.conn.state, 'ESTABLISHED');
    assert.deepEqual(h.events.types(), ['established']);
  });

  it('retransmits a lost SYN-ACK when the SYN is repeated', () => {
    const h = new TcpHarness(PLAIN);
    h.listen();
    h.toListener({ flags: SYN, seq: 10 });
    const first = h.expect({ flags: SYN | ACK });
    h.send({ flags: SYN, seq: 10 });
    h.expect({ flags: SYN | ACK, seq: first.seq, ack: 11 });
  });

  it('listener: RST for an ACK, nothing for a RST, and a bounded half-open queue', () => {
    const h = new TcpHarness(PLAIN);
    const l = h.listen(2);
    assert.equal(h.toListener({ flags: ACK, seq: 5, ack: 12345 }), null);
    h.expect({ flags: RST, seq: 12345 });
    assert.equal(h.toListener({ flags: RST, seq: 5 }), null);
    h.expectNothing();
    assert.ok(h.listener!.input(h.seg({ flags: SYN, seq: 1 }), 1, 1001, 0));
    assert.ok(h.listener!.input(h.seg({ flags: SYN, seq: 1 }), 1, 1002, 0));
    assert.equal(h.listener!.input(h.seg({ flags: SYN, seq: 1 }), 1, 1003, 0), null);
    // The queue is full: the third SYN gets a SYN cookie instead (syn-cookie.test.ts), no state.
    assert.equal(l.counters.synCookiesSent, 1);
    assert.equal(l.counters.droppedQueueFull, 0);
    assert.equal(l.halfOpenCount, 2);
    l.close();
    assert.equal(l.halfOpenCount, 0);
    assert.equal(h.env.removedConns.length, 2);
  });

  it('a RST to a half-open passive connection removes it quietly', () => {
    const h = new TcpHarness(PLAIN);
    const l = h.listen();
    h.toListener({ flags: SYN, seq: 10 });
    h.expect({ flags: SYN | ACK });
    h.send({ flags: RST, seq: 11 });
    assert.equal(h.conn.state, 'CLOSED');
    assert.equal(l.halfOpenCount, 0);
    assert.equal(l.counters.halfOpenFailed, 1);
    assert.deepEqual(h.events.types(), []);
  });

  it('SYN-RECEIVED answers an unacceptable ACK with a RST', () => {
    const h = new TcpHarness(PLAIN);
    h.listen();
    h.toListener({ flags: SYN, seq: 10 });
    const synAck = h.expect({ flags: SYN | ACK });
    h.send({ flags: ACK, seq: 11, ack: synAck.seq + 50 });
    h.expect({ flags: RST, seq: synAck.seq + 50 });
    assert.equal(h.conn.state, 'SYN-RECEIVED');
  });

  it('RST with an acceptable ACK in SYN-SENT refuses the connection; a bad ACK gets a RST', () => {
    const h = new TcpHarness(PLAIN);
    const syn = h.connect();
    h.send({ flags: SYN | ACK, seq: 1, ack: syn.seq + 7 });
    h.expect({ flags: RST, seq: syn.seq + 7 });
    h.send({ flags: RST | ACK, seq: 0, ack: syn.seq + 5 });
    assert.equal(h.conn.state, 'SYN-SENT');
    h.send({ flags: RST | ACK, seq: 0, ack: syn.seq + 1 });
    assert.equal(h.conn.state, 'CLOSED');
    assert.equal(h.events.closedError(), 'ECONNREFUSED');
    assert.equal(h.env.removedConns.length, 1);
  });

  it('retransmits the SYN with exponential backoff, then fails with ETIMEDOUT', () => {
    const h = new TcpHarness({ ...PLAIN, synRetries: 3 });
    const syn = h.connect();
    const times: number[] = [];
    h.env.out.length = 0;
    for (let t = 0; t < 100_000 && h.conn.state !== 'CLOSED'; t += 100) {
      h.advanceTo(t);
      for (const s of h.drain()) {
        assert.equal(s.flags, SYN);
        assert.equal(s.seq, syn.seq);
        times.push(h.now);
      }
    }
    // RFC 6298 section 2.1 initial RTO 1 s, doubled each time (section 5.5).
    assert.deepEqual(times, [1000, 3000, 7000]);
    assert.equal(h.events.closedError(), 'ETIMEDOUT');
  });

  it('an ICMP error fails SYN-SENT at once and is only a soft error later', () => {
    const h = new TcpHarness(PLAIN);
    h.connect();
    h.conn.icmpError('EHOSTUNREACH', 0);
    assert.equal(h.events.closedError(), 'EHOSTUNREACH');

    const h2 = new TcpHarness({ ...PLAIN, maxRetries: 2 });
    h2.establishActive();
    h2.conn.icmpError('EHOSTUNREACH', 0);
    assert.equal(h2.conn.state, 'ESTABLISHED');
    h2.conn.send(new Uint8Array(10), 0);
    h2.advance(60_000);
    assert.equal(h2.events.closedError(), 'EHOSTUNREACH');
  });
});
