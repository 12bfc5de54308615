import assert from 'node:assert/strict';
import { ACK, FIN, PSH, TcpHarness } from '../../support/tcp-harness.js';

// NewReno's numbers (ssthresh = FlightSize / 2): CUBIC, the default, has its own tests.
const PLAIN = { timestamps: false, sack: false, windowScaling: false, mss: 1000, congestionControl: 'newreno' as const };

function setup(overrides = {}): { h: TcpHarness; iss: number; irs: number } {
  const h = new TcpHarness({ ...PLAIN, ...overrides });
  const { iss, irs } = h.establishActive({ options: { mss: 1000, ...('sack' in overrides && overrides.sack ? { sackPermitted: true } : {}) } });
  return { h, iss, irs };
}

describe('tcp retransmission and congestion control', () => {
  it('retransmits on RTO with exponential backoff and fails with ETIMEDOUT after the retry limit', () => {
    const { h, iss } = setup({ maxRetries: 3 });
    h.conn.send(new Uint8Array(100), h.now);
    h.expect({ seq: iss + 1, len: 100 });
    const times: number[] = [];
    for (let t = 0; t < 60_000 && h.conn.state !== 'CLOSED'; t += 10) {
      h.advanceTo(t);
      for (const s of h.drain()) {
        assert.equal(s.seq, iss + 1);
        assert.equal(s.payloadLength, 100);
        times.push(h.now);
      }
    }
    // RTT sample of ~0 from the handshake gives the 200 ms minimum RTO, doubled each time.
    assert.deepEqual(times, [200, 600, 1400]);
    assert.equal(h.events.closedError(), 'ETIMEDOUT');
    assert.equal(h.conn.stats.timeouts, 3);
  });

  it('after an RTO goes back to one segment and slow start', () => {
    const { h, iss, irs } = setup();
    h.conn.send(new Uint8Array(5000), h.now);
    assert.equal(h.drain().length, 5);
    h.advance(200);
    h.expect({ seq: iss + 1, len: 1000 });
    h.expectNothing();
    assert.equal(h.conn.cwnd, 1000);
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 1001 });
    // Slow start: cwnd 2 segments, go-back-N resends the next two.
    h.expect({ seq: iss + 1001, len: 1000 });
    h.expect({ seq: iss + 2001, len: 1000 });
    h.expectNothing();
  });

  it('fast retransmit on the third duplicate ACK, NewReno partial ACKs, and recovery exit', () => {
    const { h, iss, irs } = setup();
    h.conn.send(new Uint8Array(10_000), h.now);
    assert.equal(h.drain().length, 10);
    const ack = (n: number): void => void h.send({ flags: ACK, seq: irs + 1, ack: iss + 1 + n, window: 60000 });
    ack(1000);
    // Segments 2 and 4 were lost; 3, 5.. arrive and produce duplicate ACKs.
    h.drain();
    ack(1000);
    ack(1000);
    h.expectNothing();
    ack(1000);
    h.expect({ seq: iss + 1001, len: 1000 });
    assert.equal(h.conn.stats.fastRetransmits, 1);
    // RFC 5681: ssthresh = flight/2 = 4500, cwnd = ssthresh + 3 segments.
    assert.equal(h.conn.cwnd, 7500);
    // Partial ACK up to the second hole: retransmit it at once (RFC 6582).
    ack(3000);
    h.expect({ seq: iss + 3001, len: 1000 });
    // Full ACK of everything sent before recovery ends it.
    h.drain();
    ack(10_000);
    assert.ok(h.conn.cwnd <= 4500 + 1000, `cwnd ${h.conn.cwnd}`);
    assert.equal(h.conn.stats.timeouts, 0);
  });

  it('SACK: repairs only the holes the receiver reported (RFC 6675)', () => {
    const h = new TcpHarness({ ...PLAIN, sack: true });
    const { iss, irs } = h.establishActive({ options: { mss: 1000, sackPermitted: true } });
    h.conn.send(new Uint8Array(8000), h.now);
    assert.equal(h.drain().length, 8);
    const s = iss + 1;
    // Segments 0, 2 and 5 lost: the receiver holds [1000,2000), [3000,5000), [6000,8000).
    const sackAck = (blocks: [number, number][]): void =>
      void h.send({ flags: ACK, seq: irs + 1, ack: s, window: 60000, options: { sack: blocks.map(([l, r]) => ({ left: s + l, right: s + r })) } });
    const repaired: number[] = [];
    const collect = (): void => void repaired.push(...h.drain().map((x) => (x.seq - s) >>> 0));
    sackAck([[1000, 2000]]);
    collect();
    assert.equal(repaired.length, 0);
    // 3000 bytes SACKed above SND.UNA: more than (DupThresh-1)*SMSS, so SND.UNA is lost (RFC 6675 section 4).
    sackAck([[3000, 5000], [1000, 2000]]);
    collect();
    sackAck([[6000, 8000], [3000, 5000], [1000, 2000]]);
    collect();
    assert.equal(repaired[0], 0);
    h.send({ flags: ACK, seq: irs + 1, ack: s + 2000, window: 60000, options: { sack: [{ left: s + 6000, right: s + 8000 }, { left: s + 3000, right: s + 5000 }] } });
    collect();
    assert.ok(repaired.includes(2000) && repaired.includes(5000), `repairs ${repaired}`);
    for (const off of repaired) assert.ok([0, 2000, 5000].includes(off), `retransmitted ${off}, which was SACKed`);
    assert.ok(h.conn.stats.sackRepaired >= 2);
    assert.equal(h.conn.stats.timeouts, 0);
    h.send({ flags: ACK, seq: irs + 1, ack: s + 8000, window: 60000 });
    assert.equal(h.conn.sendBuffered, 0);
  });

  it('receiver generates SACK blocks for out-of-order data, most recent first (RFC 2018)', () => {
    const h = new TcpHarness({ ...PLAIN, sack: true });
    const { iss, irs } = h.establishActive({ options: { mss: 1000, sackPermitted: true } });
    const r = irs + 1;
    h.send({ flags: ACK, seq: r + 100, ack: iss + 1, data: new Uint8Array(100) });
    h.expect({ flags: ACK, ack: r, sack: [{ left: r + 100, right: r + 200 }] });
    h.send({ flags: ACK, seq: r + 300, ack: iss + 1, data: new Uint8Array(100) });
    h.expect({ flags: ACK, ack: r, sack: [{ left: r + 300, right: r + 400 }, { left: r + 100, right: r + 200 }] });
    h.send({ flags: ACK, seq: r + 200, ack: iss + 1, data: new Uint8Array(100) });
    h.expect({ flags: ACK, ack: r, sack: [{ left: r + 100, right: r + 400 }] });
    assert.equal(h.events.receivedBytes().length, 0);
    // Filling the hole delivers everything and ACKs at once, without SACK blocks.
    h.send({ flags: ACK, seq: r, ack: iss + 1, data: new Uint8Array(100) });
    h.expect({ flags: ACK, ack: r + 400, sack: null });
    assert.equal(h.events.receivedBytes().length, 400);
  });

  it('receiver reports a duplicate segment once, in the first SACK block (D-SACK, RFC 2883)', () => {
    const h = new TcpHarness({ ...PLAIN, sack: true });
    const { iss, irs } = h.establishActive({ options: { mss: 1000, sackPermitted: true } });
    const r = irs + 1;
    h.send({ flags: ACK | PSH, seq: r, ack: iss + 1, data: new Uint8Array(100) });
    h.drain();
    // the same segment again: its range, below the cumulative ACK, leads the SACK option
    h.send({ flags: ACK | PSH, seq: r, ack: iss + 1, data: new Uint8Array(100) });
    h.expect({ flags: ACK, ack: r + 100, sack: [{ left: r, right: r + 100 }] });
    // with out-of-order data held, the D-SACK block comes first, then the usual blocks
    h.send({ flags: ACK, seq: r + 300, ack: iss + 1, data: new Uint8Array(100) });
    h.expect({ flags: ACK, ack: r + 100, sack: [{ left: r + 300, right: r + 400 }] });
    h.send({ flags: ACK, seq: r + 50, ack: iss + 1, data: new Uint8Array(100) });
    h.expect({ flags: ACK, ack: r + 150, sack: [{ left: r + 50, right: r + 100 }, { left: r + 300, right: r + 400 }] });
    // reported once: the next ACK has only the out-of-order block
    h.send({ flags: ACK, seq: r + 150, ack: iss + 1, data: new Uint8Array(50) });
    h.expect({ flags: ACK, ack: r + 200, sack: [{ left: r + 300, right: r + 400 }] });
    assert.equal(h.events.receivedBytes().length, 200);
  });

  it('without SACK, a duplicate segment is ACKed without options', () => {
    const h = new TcpHarness({ ...PLAIN });
    const { iss, irs } = h.establishActive({ options: { mss: 1000 } });
    const r = irs + 1;
    h.send({ flags: ACK | PSH, seq: r, ack: iss + 1, data: new Uint8Array(100) });
    h.drain();
    h.send({ flags: ACK | PSH, seq: r, ack: iss + 1, data: new Uint8Array(100) });
    h.expect({ flags: ACK, ack: r + 100, sack: null });
  });

  it('reassembles overlapping and duplicated out-of-order segments, FIN included', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    const r = irs + 1;
    const text = 'abcdefghijklmnopqrstuvwxyz';
    const part = (a: number, b: number) => new TextEncoder().encode(text.slice(a, b));
    h.send({ flags: ACK | FIN, seq: r + 20, ack: iss + 1, data: part(20, 26) });
    h.send({ flags: ACK, seq: r + 5, ack: iss + 1, data: part(5, 15) });
    h.send({ flags: ACK, seq: r + 10, ack: iss + 1, data: part(10, 22) });
    h.send({ flags: ACK, seq: r + 5, ack: iss + 1, data: part(5, 15) });
    h.drain();
    h.send({ flags: ACK, seq: r, ack: iss + 1, data: part(0, 8) });
    h.expect({ flags: ACK, ack: r + 27 });
    assert.equal(Buffer.from(h.events.receivedBytes()).toString(), text);
    assert.equal(h.conn.state, 'CLOSE-WAIT');
    assert.ok(h.events.types().includes('fin'));
  });

  it('RTT samples set the RTO (RFC 6298) and Karn ignores retransmitted segments', () => {
    const { h, iss, irs } = setup();
    let una = iss + 1;
    const roundTrip = (ms: number): void => {
      h.conn.send(new Uint8Array(100), h.now);
      h.drain();
      h.advance(ms);
      una += 100;
      h.send({ flags: ACK, seq: irs + 1, ack: una });
    };
    roundTrip(150);
    roundTrip(150);
    // Samples 0, 150, 150: SRTT 35.2, RTTVAR 60.9, RTO = SRTT + 4*RTTVAR = 278.8.
    const rto = h.conn.rto;
    assert.ok(Math.abs(rto - 278.9) < 0.5, `rto ${rto}`);
    h.conn.send(new Uint8Array(100), h.now);
    h.drain();
    h.advance(300);
    h.expect({ seq: una, len: 100 });
    h.advance(1);
    h.send({ flags: ACK, seq: irs + 1, ack: una + 100 });
    assert.equal(h.conn.rto, rto);
  });

  it('with timestamps, RTT comes from TSecr', () => {
    const h = new TcpHarness({ ...PLAIN, timestamps: true });
    const syn = h.connect();
    h.send({ flags: 0x12, seq: 1, ack: syn.seq + 1, options: { mss: 1000, timestamp: { value: 1, echo: syn.options.timestamp!.value } } });
    h.drain();
    let una = syn.seq + 1;
    for (let i = 0; i < 2; i++) {
      h.conn.send(new Uint8Array(10), h.now);
      const d = h.drain()[0]!;
      h.advance(150);
      una += 10;
      // The ACK echoes the data segment's TSval: RTT 150 ms.
      h.send({ flags: ACK, seq: 2, ack: una, options: { timestamp: { value: 2 + i, echo: d.options.timestamp!.value } } });
    }
    // Samples 0, 150, 150 ms: RTO = SRTT + 4*RTTVAR = 278.9 ms.
    assert.ok(Math.abs(h.conn.rto - 278.9) < 0.5, `rto ${h.conn.rto}`);
  });
  it('limited transmit: one new segment on each of the first two duplicate ACKs (RFC 3042)', () => {
    const { h, iss, irs } = setup();
    const cwnd = h.conn.cwnd;
    h.conn.send(new Uint8Array(cwnd + 5000), h.now);
    assert.equal(h.drain().length, cwnd / 1000);
    const dup = (): void => void h.send({ flags: ACK, seq: irs + 1, ack: iss + 1 });
    dup();
    h.expect({ seq: iss + 1 + cwnd, len: 1000 });
    h.expectNothing();
    dup();
    h.expect({ seq: iss + 1 + cwnd + 1000, len: 1000 });
    h.expectNothing();
    assert.equal(h.conn.cwnd, cwnd, 'cwnd itself is unchanged');
    dup();
    // the third starts fast retransmit of the first segment
    h.expect({ seq: iss + 1, len: 1000 });
    assert.equal(h.conn.stats.fastRetransmits, 1);
  });

  describe('congestion window validation (RFC 7661)', () => {
    it('does not grow cwnd while the application sends less than it allows', () => {
      const { h, iss, irs } = setup();
      const initial = h.conn.cwnd;
      let una = iss + 1;
      for (let i = 0; i < 200; i++) {
        h.conn.send(new Uint8Array(1000), h.now);
        assert.equal(h.drain().length, 1);
        una += 1000;
        h.send({ flags: ACK, seq: irs + 1, ack: una, window: 60000 });
      }
      // Before, every ACK of slow start added a segment: 10 + 200 segments.
      assert.equal(h.conn.cwnd, initial);
    });

    it('stops growing cwnd at twice the flight the receive window allows', () => {
      const { h, iss, irs } = setup();
      let una = iss + 1;
      h.conn.send(new Uint8Array(400_000), h.now);
      for (let i = 0; i < 60; i++) {
        const segs = h.drain();
        assert.ok(segs.length > 0, `round ${i}: nothing sent`);
        for (const s of segs) {
          una = (s.seq + s.payloadLength) >>> 0;
          h.send({ flags: ACK, seq: irs + 1, ack: una, window: 4000 });
        }
      }
      // The largest flight was the initial window (10 segments, before the window shrank).
      assert.ok(h.conn.cwnd <= 2 * 10 * 1000, `cwnd ${h.conn.cwnd}`);
    });

    it('still grows cwnd in slow start while it is what limits sending', () => {
      const { h, irs } = setup();
      const initial = h.conn.cwnd;
      h.conn.send(new Uint8Array(100_000), h.now);
      const first = h.drain();
      assert.equal(first.length, initial / 1000);
      for (const s of first) h.send({ flags: ACK, seq: irs + 1, ack: (s.seq + s.payloadLength) >>> 0, window: 60000 });
      assert.equal(h.conn.cwnd, initial + first.length * 1000);
    });
  });
});
