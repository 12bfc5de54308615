import assert from 'node:assert/strict';
import { ACK, FIN, PSH, SYN, TcpHarness } from '../../support/tcp-harness.js';

const PLAIN = { timestamps: false, sack: false, windowScaling: false, mss: 1000 };

describe('tcp windows, delayed ACKs, Nagle, probes and timestamps', () => {
  it('scales the peer window by its shift and ours by our shift (RFC 7323 section 2)', () => {
    const h = new TcpHarness({ ...PLAIN, windowScaling: true, receiveBufferSize: 256 * 1024 });
    const syn = h.connect();
    // 256 KiB >> 2 is 65536, one too many for 16 bits: shift 3.
    assert.equal(syn.options.windowScale, 3);
    h.send({ flags: SYN | ACK, seq: 1, ack: syn.seq + 1, window: 65535, options: { mss: 1000, windowScale: 3 } });
    const ack = h.expect({ flags: ACK });
    assert.equal(ack.window, (256 * 1024) >> 3);
    // Peer window 500 << 3 = 4000 bytes.
    h.send({ flags: ACK, seq: 2, ack: syn.seq + 1, window: 500 });
    h.conn.send(new Uint8Array(10_000), h.now);
    assert.deepEqual(h.drain().map((s) => s.payloadLength), [1000, 1000, 1000, 1000]);
  });

  it('an application that stops reading closes the window; consume() sends a window update', () => {
    const h = new TcpHarness({ ...PLAIN, receiveBufferSize: 4000 });
    const { iss, irs } = h.establishActive();
    h.events.autoConsume = false;
    const r = irs + 1;
    const windows: number[] = [];
    for (let i = 0; i < 4; i++) {
      h.send({ flags: ACK, seq: r + i * 1000, ack: iss + 1, data: new Uint8Array(1000) });
      windows.push(...h.drain().map((s) => s.window));
    }
    // ACK every second full segment; the window shrinks to zero.
    assert.deepEqual(windows, [2000, 0]);
    // Data beyond a zero window is not accepted.
    h.send({ flags: ACK, seq: r + 4000, ack: iss + 1, data: new Uint8Array(10) });
    h.expect({ flags: ACK, ack: r + 4000, window: 0 });
    assert.equal(h.events.receivedBytes().length, 4000);
    // Receiver SWS avoidance: no update for less than min(buffer/2, MSS).
    h.conn.consume(500, h.now);
    h.expectNothing();
    h.conn.consume(3500, h.now);
    h.expect({ flags: ACK, ack: r + 4000, window: 4000 });
  });

  it('zero-window probing with backoff until the window opens (RFC 9293 section 3.8.6.1)', () => {
    const { h, iss, irs } = (() => {
      const h = new TcpHarness(PLAIN);
      const ids = h.establishActive({ window: 0 });
      return { h, ...ids };
    })();
    h.conn.send(new Uint8Array(500), h.now);
    h.expectNothing();
    const probes: number[] = [];
    for (let t = 0; t < 3000; t += 10) {
      h.advanceTo(t);
      for (const s of h.drain()) {
        assert.equal(s.seq, (iss + 1 - 1) >>> 0);
        assert.equal(s.payloadLength, 0);
        probes.push(h.now);
        h.send({ flags: ACK, seq: irs + 1, ack: iss + 1, window: 0 });
      }
    }
    assert.ok(probes.length >= 3, `probes at ${probes}`);
    assert.ok(probes[2]! - probes[1]! > probes[1]! - probes[0]!, `backoff ${probes}`);
    assert.equal(h.conn.state, 'ESTABLISHED');
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 1, window: 1000 });
    h.expect({ seq: iss + 1, len: 500 });
  });

  it('delayed ACK: one segment waits for the timer, the second full segment is ACKed at once', () => {
    const h = new TcpHarness({ ...PLAIN, delayedAckMs: 40 });
    const { iss, irs } = h.establishActive();
    const r = irs + 1;
    h.send({ flags: ACK, seq: r, ack: iss + 1, data: new Uint8Array(536) });
    h.expectNothing();
    h.send({ flags: ACK, seq: r + 536, ack: iss + 1, data: new Uint8Array(536) });
    h.expect({ flags: ACK, ack: r + 1072 });
    h.send({ flags: ACK | PSH, seq: r + 1072, ack: iss + 1, data: new Uint8Array(10) });
    h.expectNothing();
    h.advance(39);
    h.expectNothing();
    h.advance(1);
    h.expect({ flags: ACK, ack: r + 1082 });
  });

  it('an ACK owed is carried by outgoing data instead of a separate segment', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 1, data: 'ping' });
    h.expectNothing();
    h.conn.send(new TextEncoder().encode('pong'), h.now);
    h.expect({ flags: ACK, ack: irs + 5, data: 'pong' });
    h.advance(100);
    h.expectNothing();
  });

  it('Nagle holds small segments while data is unacknowledged; setNoDelay releases them', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.conn.send(new Uint8Array(1), h.now);
    h.expect({ len: 1 });
    h.conn.send(new Uint8Array(1), h.now);
    h.conn.send(new Uint8Array(1), h.now);
    h.expectNothing();
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 2 });
    h.expect({ seq: iss + 2, len: 2 });
    h.conn.send(new Uint8Array(1), h.now);
    h.expectNothing();
    h.conn.setNoDelay(true, h.now);
    h.expect({ seq: iss + 4, len: 1 });
    h.conn.send(new Uint8Array(1), h.now);
    h.expect({ seq: iss + 5, len: 1 });
  });

  it('sender SWS avoidance: no tiny segment into a small window while data waits', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive({ window: 10_000 });
    h.conn.send(new Uint8Array(12_000), h.now);
    assert.equal(h.drain().length, 10);
    // The peer opens the window by only 100 bytes: less than half its largest window.
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 101, window: 10_000 });
    h.expectNothing();
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 10_001, window: 10_000 });
    assert.equal(h.drain().length, 2);
  });

  it('keepalive probes an idle peer and fails with ETIMEDOUT after the probe count', () => {
    const h = new TcpHarness({ ...PLAIN, keepAliveIntervalMs: 1000, keepAliveProbes: 3 });
    const { iss, irs } = h.establishActive();
    h.conn.setKeepAlive(true, 5000, h.now);
    h.advance(4999);
    h.expectNothing();
    h.advance(1);
    h.expect({ flags: ACK, seq: iss, len: 0 });
    // An answer resets the idle timer.
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 1 });
    h.advance(4999);
    h.expectNothing();
    h.advance(1);
    h.expect({ flags: ACK, seq: iss });
    h.advance(1000);
    h.expect({ flags: ACK, seq: iss });
    h.advance(1000);
    h.expect({ flags: ACK, seq: iss });
    h.advance(1000);
    assert.equal(h.events.closedError(), 'ETIMEDOUT');
  });

  it('PAWS drops a segment with an old timestamp and ACKs it (RFC 7323 section 5)', () => {
    const h = new TcpHarness({ ...PLAIN, timestamps: true });
    const syn = h.connect();
    h.send({ flags: SYN | ACK, seq: 1, ack: syn.seq + 1, options: { mss: 1000, timestamp: { value: 1000, echo: 0 } } });
    h.drain();
    h.send({ flags: ACK, seq: 2, ack: syn.seq + 1, data: 'new', options: { timestamp: { value: 1001, echo: 0 } } });
    h.advance(100);
    h.drain();
    h.send({ flags: ACK, seq: 5, ack: syn.seq + 1, data: 'old', options: { timestamp: { value: 900, echo: 0 } } });
    h.expect({ flags: ACK, ack: 5, timestamp: { echo: 1001 } });
    assert.equal(Buffer.from(h.events.receivedBytes()).toString(), 'new');
    assert.equal(h.conn.stats.pawsDrops, 1);
    // TS.Recent follows in-order segments, with wrap-around comparison.
    h.send({ flags: ACK, seq: 5, ack: syn.seq + 1, data: 'ok', options: { timestamp: { value: 1002, echo: 0 } } });
    assert.equal(Buffer.from(h.events.receivedBytes()).toString(), 'newok');
  });

  it('transfers data across the 2^32 sequence wrap in both directions', () => {
    const h = new TcpHarness({ ...PLAIN, isn: () => 0xffffff00 });
    const { iss, irs } = h.establishActive({ peerIss: 0xfffffe00 });
    assert.equal(iss, 0xffffff00);
    const payload = new Uint8Array(3000).map((_, i) => i & 0xff);
    h.conn.send(payload, h.now);
    const segs = h.drain();
    assert.deepEqual(segs.map((s) => s.seq), [0xffffff01, (0xffffff01 + 1000) >>> 0, (0xffffff01 + 2000) >>> 0]);
    h.send({ flags: ACK, seq: irs + 1, ack: (iss + 3001) >>> 0 });
    assert.equal(h.conn.sendBuffered, 0);
    let seq = (irs + 1) >>> 0;
    for (let i = 0; i < 3; i++) {
      h.send({ flags: ACK, seq, ack: (iss + 3001) >>> 0, data: payload.subarray(i * 1000, i * 1000 + 1000) });
      seq = (seq + 1000) >>> 0;
    }
    h.send({ flags: ACK | FIN, seq, ack: (iss + 3001) >>> 0 });
    h.drain();
    assert.deepEqual(Buffer.from(h.events.receivedBytes()), Buffer.from(payload));
    assert.equal(h.conn.state, 'CLOSE-WAIT');
  });

  it('send() accepts what fits, and sendSpace fires once ACKs free the buffer', () => {
    const h = new TcpHarness({ ...PLAIN, sendBufferSize: 3000 });
    const { iss, irs } = h.establishActive();
    assert.equal(h.conn.send(new Uint8Array(5000), h.now), 3000);
    assert.equal(h.conn.sendSpace, 0);
    assert.equal(h.conn.sendBuffered, 3000);
    h.drain();
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 2001 });
    assert.deepEqual(h.events.types(), ['established', 'sendSpace']);
    assert.equal(h.conn.sendSpace, 2000);
    assert.equal(h.conn.bytesSent, 3000);
  });

  it('tells the stack when its deadline changes', () => {
    const h = new TcpHarness(PLAIN);
    h.connect();
    assert.equal(h.conn.deadline, 1000);
    assert.ok(h.env.deadlineChanges >= 1);
    const before = h.env.deadlineChanges;
    h.conn.setKeepAlive(true, 100, h.now);
    assert.equal(h.conn.deadline, 100);
    assert.equal(h.env.deadlineChanges, before + 1);
  });
});
