import assert from 'node:assert/strict';
import { ACK, FIN, PSH, RST, TcpHarness, payloadOf } from '../../support/tcp-harness.js';

describe('tcp segment size bound to half the peer window (Linux tcp_bound_to_half_wnd)', () => {
  it('against a 64 KiB unscaled window at MSS 65495, sends two half-window segments, not one full one', () => {
    const h = new TcpHarness({ mss: 65495, timestamps: false, sack: false, windowScaling: false });
    const { iss, irs } = h.establishActive({ options: { mss: 65495 }, window: 0xffff, noDelay: true });
    assert.equal(h.conn.send(new Uint8Array(256 * 1024), h.now), 256 * 1024);
    h.expect({ flags: ACK, seq: iss + 1, len: 32767 });
    h.expect({ flags: ACK, seq: iss + 1 + 32767, len: 32767 });
    // One byte of window left: sender SWS avoidance (RFC 9293 section 3.8.6.2.1) holds the rest.
    h.expectNothing();
    // Two full segments are what a delayed-ACK receiver answers at once; the window reopens.
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 1 + 2 * 32767, window: 0xffff });
    h.expect({ len: 32767 });
    h.expect({ len: 32767 });
    h.expectNothing();
  });

  it('keeps full-MSS segments when the peer window is many segments wide', () => {
    const h = new TcpHarness({ mss: 1460, timestamps: false, sack: false });
    const { iss } = h.establishActive({ options: { mss: 1460 }, window: 0xffff, noDelay: true });
    h.conn.send(new Uint8Array(4 * 1460), h.now);
    for (let i = 0; i < 4; i++) h.expect({ seq: iss + 1 + i * 1460, len: 1460 });
  });
});

describe('tcp FIN-WAIT-2 timeout (Linux tcp_fin_timeout)', () => {
  function finWait2(timeout?: number): { h: TcpHarness; iss: number } {
    const h = new TcpHarness(timeout !== undefined ? { finWait2TimeoutMs: timeout } : {});
    const { iss, irs } = h.establishActive();
    h.conn.shutdown(h.now);
    h.expect({ flags: FIN | ACK, seq: iss + 1 });
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 2 });
    assert.equal(h.conn.state, 'FIN-WAIT-2');
    return { h, iss };
  }

  it('resets an orphaned connection that stays in FIN-WAIT-2 for 60 s', () => {
    const { h, iss } = finWait2();
    h.conn.orphan(h.now);
    assert.ok(h.conn.deadline <= h.now + 60_000);
    h.advance(59_999);
    assert.equal(h.conn.state, 'FIN-WAIT-2');
    h.expectNothing();
    h.advance(1);
    h.expect({ flags: RST, seq: iss + 2 });
    assert.equal(h.conn.state, 'CLOSED');
    assert.equal(h.events.closedError(), 'ETIMEDOUT');
  });

  it('counts from entering FIN-WAIT-2 when the connection was orphaned before, and is configurable', () => {
    const h = new TcpHarness({ finWait2TimeoutMs: 5000 });
    const { iss, irs } = h.establishActive();
    h.conn.shutdown(h.now);
    h.expect({ flags: FIN | ACK });
    h.conn.orphan(h.now);
    h.advance(100);
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 2 });
    assert.equal(h.conn.state, 'FIN-WAIT-2');
    h.advance(4999);
    assert.equal(h.conn.state, 'FIN-WAIT-2');
    h.advance(1);
    h.expect({ flags: RST });
    assert.equal(h.conn.state, 'CLOSED');
  });

  it('leaves a half-closed connection whose owner still holds it in FIN-WAIT-2', () => {
    const { h, iss } = finWait2();
    h.advance(10 * 60_000);
    assert.equal(h.conn.state, 'FIN-WAIT-2');
    h.expectNothing();
    // The peer may still send, and its FIN still leads to TIME-WAIT.
    h.send({ flags: FIN | ACK, seq: 5001, ack: iss + 2, data: 'late' });
    h.expect({ flags: ACK, ack: 5001 + 5 });
    assert.equal(h.conn.state, 'TIME-WAIT');
  });
});

describe('tcp send with end: data and FIN in one segment', () => {
  it('send(data, now, true) emits the data with FIN and enters FIN-WAIT-1', () => {
    const h = new TcpHarness({ mss: 1460 });
    const { iss } = h.establishActive();
    assert.equal(h.conn.send(new TextEncoder().encode('bye'), h.now, true), 3);
    h.expect({ flags: FIN | ACK | PSH, seq: iss + 1, data: 'bye' });
    h.expectNothing();
    assert.equal(h.conn.state, 'FIN-WAIT-1');
  });

  it('the last small segment with its FIN is not held by Nagle (as Linux)', () => {
    const h = new TcpHarness({ mss: 1460 });
    const { iss } = h.establishActive();
    h.conn.send(new TextEncoder().encode('a'), h.now);
    h.expect({ len: 1 });
    h.conn.send(new TextEncoder().encode('b'), h.now, true);
    h.expect({ flags: FIN | ACK | PSH, seq: iss + 2, data: 'b' });
    h.expectNothing();
  });

  it('does not queue the FIN when the send buffer takes only part of the data', () => {
    const h = new TcpHarness({ mss: 1000, sendBufferSize: 1500, timestamps: false });
    h.establishActive({ options: { mss: 1000 } });
    assert.equal(h.conn.send(new Uint8Array(2000), h.now, true), 1500);
    assert.equal(h.conn.state, 'ESTABLISHED');
    const sent = h.drain();
    // one full segment goes out; Nagle holds the 500-byte rest until it is acknowledged
    assert.equal(sent.reduce((n, s) => n + payloadOf(s).length, 0), 1000);
    for (const s of sent) assert.equal(s.flags & FIN, 0);
  });
});

describe('tcp sendSpace wake-up threshold', () => {
  it('wakes a blocked writer once 64 KiB are free, not on every ACK', () => {
    const h = new TcpHarness({ mss: 1460, timestamps: false, sack: false, sendBufferSize: 1 << 20 });
    const { iss, irs } = h.establishActive({ options: { mss: 1460, windowScale: 7 }, window: 0xffff, noDelay: true });
    assert.equal(h.conn.send(new Uint8Array(2 << 20), h.now), 1 << 20);
    let acked = 0;
    let wokeAt = -1;
    for (let round = 0; round < 100 && wokeAt < 0; round++) {
      const segs = h.drain();
      assert.ok(segs.length > 0, 'the sender keeps sending');
      // ACK the segments two at a time, as a delayed-ACK receiver would.
      for (let i = 1; i < segs.length && wokeAt < 0; i += 2) {
        acked = (segs[i].seq - iss - 1 + segs[i].payloadLength) >>> 0;
        h.send({ flags: ACK, seq: irs + 1, ack: iss + 1 + acked, window: 0xffff });
        if (h.events.types().includes('sendSpace')) wokeAt = acked;
      }
    }
    assert.ok(wokeAt >= 64 * 1024, `woke after ${wokeAt} bytes were acknowledged`);
    assert.ok(wokeAt < 64 * 1024 + 4 * 1460, `woke only after ${wokeAt} bytes were acknowledged`);
    assert.equal(h.events.types().filter((t) => t === 'sendSpace').length, 1);
  });
});
