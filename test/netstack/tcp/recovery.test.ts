import assert from 'node:assert/strict';
import { ACK, TcpHarness } from '../../support/tcp-harness.js';

// NewReno's ssthresh (FlightSize / 2) makes the expected figures round.
const SACK = { timestamps: false, sack: true, windowScaling: false, mss: 1000, congestionControl: 'newreno' as const };

describe('tcp loss recovery, segment by segment', () => {
  it('PRR: while pipe > ssthresh, one new segment per two segments delivered (RFC 6937 section 3)', () => {
    const h = new TcpHarness({ ...SACK, initialCwndSegments: 20 });
    const { iss, irs } = h.establishActive({ options: { mss: 1000, sackPermitted: true } });
    const s = iss + 1;
    // The peer's window is 60000 from here on, so the ACKs below are duplicates.
    h.send({ flags: ACK, seq: irs + 1, ack: s, window: 60000 });
    h.conn.send(new Uint8Array(60_000), h.now);
    assert.equal(h.drain().length, 20);
    // Segment 0 is lost; each ACK SACKs one more of the segments after it.
    const sackUpTo = (end: number): void =>
      void h.send({ flags: ACK, seq: irs + 1, ack: s, window: 60000, options: { sack: [{ left: s + 1000, right: s + end }] } });
    sackUpTo(2000);
    sackUpTo(3000);
    // RFC 3042: two duplicate ACKs send two new segments (20 and 21).
    assert.deepEqual(h.drain().map((x) => (x.seq - s) >>> 0), [20_000, 21_000]);
    sackUpTo(4000);
    // 3000 bytes SACKed: fast retransmit; RecoverFS = 22000, ssthresh = 11000.
    h.expect({ seq: s, len: 1000 });
    h.expectNothing();
    assert.equal(h.conn.stats.fastRetransmits, 1);
    const perAck: number[] = [];
    const sent: number[] = [];
    for (let n = 1; n <= 12; n++) {
      sackUpTo(4000 + n * 1000);
      const out = h.drain();
      perAck.push(out.length);
      sent.push(...out.map((x) => (x.seq - s) >>> 0));
    }
    // prr_delivered = 1000 (n + 1), prr_out = 1000 (1 + sent): sndcnt reaches a full
    // segment on every second ACK (plain RFC 6675 would send nothing until pipe < cwnd).
    assert.deepEqual(perAck, [0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
    assert.deepEqual(sent, [22_000, 23_000, 24_000, 25_000, 26_000], 'new data, in order, no retransmission');
    // Once pipe falls to ssthresh, PRR-SSRB lets the window grow back towards ssthresh.
    for (let n = 13; n <= 18; n++) sackUpTo(4000 + n * 1000);
    h.drain();
    h.send({ flags: ACK, seq: irs + 1, ack: s + 27_000, window: 60000 });
    assert.equal(h.conn.stats.timeouts, 0);
    assert.ok(h.conn.cwnd <= 11_000, `cwnd ${h.conn.cwnd} after recovery is at most ssthresh`);
  });
});

describe('tcp D-SACK undo (RFC 2883, RFC 3708)', () => {
  function reorderedFlight(): { h: TcpHarness; s: number; irs: number } {
    const h = new TcpHarness({ ...SACK });
    const { iss, irs } = h.establishActive({ options: { mss: 1000, sackPermitted: true } });
    const s = iss + 1;
    h.send({ flags: ACK, seq: irs + 1, ack: s, window: 60000 });
    h.conn.send(new Uint8Array(10_000), h.now);
    assert.equal(h.drain().length, 10);
    // Segment 0 is only delayed: three ACKs SACK segments 1-3 and start a fast retransmit.
    for (const end of [2000, 3000, 4000]) {
      h.send({ flags: ACK, seq: irs + 1, ack: s, window: 60000, options: { sack: [{ left: s + 1000, right: s + end }] } });
    }
    const out = h.drain();
    assert.equal(out[0]!.seq, s, 'fast retransmit of segment 0');
    assert.equal(h.conn.stats.fastRetransmits, 1);
    return { h, s, irs };
  }

  it('a D-SACK for the only retransmission restores cwnd and ssthresh', () => {
    const { h, s, irs } = reorderedFlight();
    const reduced = h.conn.cwnd;
    assert.ok(reduced < 10_000, `cwnd ${reduced} was reduced`);
    // The delayed original arrives: everything is acknowledged, recovery ends.
    h.send({ flags: ACK, seq: irs + 1, ack: s + h.conn.bytesSent, window: 60000 });
    assert.ok(h.conn.cwnd <= 5000 + 1000, `cwnd ${h.conn.cwnd} after recovery`);
    // Then the retransmission arrives too, and the peer reports it as a duplicate.
    const ack = s + h.conn.bytesSent;
    h.send({ flags: ACK, seq: irs + 1, ack, window: 60000, options: { sack: [{ left: s, right: s + 1000 }] } });
    assert.equal(h.conn.stats.spuriousUndos, 1);
    assert.ok(h.conn.cwnd >= 10_000, `cwnd ${h.conn.cwnd} is back to its value before the loss`);
    // A second D-SACK for the same range changes nothing.
    h.send({ flags: ACK, seq: irs + 1, ack, window: 60000, options: { sack: [{ left: s, right: s + 1000 }] } });
    assert.equal(h.conn.stats.spuriousUndos, 1);
  });

  it('no undo while a retransmission of the episode is not reported as a duplicate', () => {
    const { h, s, irs } = reorderedFlight();
    // A D-SACK outside the episode (below where it began) does not count.
    h.send({ flags: ACK, seq: irs + 1, ack: s, window: 60000, options: { sack: [{ left: s - 100, right: s - 50 }, { left: s + 1000, right: s + 4000 }] } });
    h.send({ flags: ACK, seq: irs + 1, ack: s + h.conn.bytesSent, window: 60000 });
    assert.equal(h.conn.stats.spuriousUndos, 0);
    assert.ok(h.conn.cwnd <= 6000, `cwnd ${h.conn.cwnd} stays reduced`);
  });
});

describe('tcp segment size with SACK blocks', () => {
  it('a data segment that carries a D-SACK block still fits the MSS', () => {
    const h = new TcpHarness({ timestamps: true, sack: true, windowScaling: false, mss: 1000 });
    const { iss, irs } = h.establishActive({ options: { mss: 1000, sackPermitted: true, timestamp: { value: 1, echo: 0 } } });
    const ts = { value: 2, echo: 0 };
    const r = irs + 1;
    h.send({ flags: ACK, seq: r, ack: iss + 1, window: 60000, options: { timestamp: ts } });
    h.conn.send(new Uint8Array(30_000), h.now);
    const first = h.drain();
    const mss = first[0]!.payloadLength;
    assert.equal(mss, 1000 - 12, 'full segments carry the timestamp option');
    h.send({ flags: ACK | 0x08, seq: r, ack: iss + 1, window: 60000, data: new Uint8Array(100), options: { timestamp: ts } });
    h.drain();
    // The peer resends that segment with 100 more bytes (half duplicate) and ACKs two
    // segments: cwnd opens, and the first new segment carries the D-SACK block.
    h.send({ flags: ACK | 0x08, seq: r, ack: iss + 1 + 2 * mss, window: 60000, data: new Uint8Array(200), options: { timestamp: ts } });
    const out = h.drain();
    const withSack = out.filter((x) => x.options.sack !== undefined && x.payloadLength > 0);
    assert.ok(withSack.length > 0, 'the D-SACK rode on a data segment');
    for (const x of out) {
      const sackBytes = x.options.sack === undefined ? 0 : 2 + 8 * x.options.sack.length + 2;
      assert.ok(12 + sackBytes + x.payloadLength <= 1000, `payload ${x.payloadLength} with ${x.options.sack?.length ?? 0} SACK blocks exceeds the MSS`);
    }
  });
});

describe('tcp tail loss probe (RFC 8985 section 7)', () => {
  function lostTail(overrides = {}): { h: TcpHarness; s: number; irs: number } {
    const h = new TcpHarness({ ...SACK, ...overrides });
    const { iss, irs } = h.establishActive({ options: { mss: 1000, sackPermitted: true } });
    const s = iss + 1;
    h.advanceTo(1000);
    // One segment first (its PTO includes the 200 ms delayed-ACK allowance), timed: 20 ms.
    h.conn.send(new Uint8Array(1000), h.now);
    assert.equal(h.drain().length, 1);
    h.advanceTo(1020);
    h.send({ flags: ACK, seq: irs + 1, ack: s + 1000, window: 60000 });
    // RTO is the 200 ms minimum. The two segments of the tail are lost.
    h.conn.send(new Uint8Array(2000), h.now);
    assert.equal(h.drain().length, 2);
    return { h, s, irs };
  }

  it('probes with the last segment within 2 SRTT + 2 ms, and its SACK starts recovery at once', () => {
    const { h, s, irs } = lostTail();
    let probe = null;
    while (probe === null && h.now < 1020 + 200) {
      h.advance(1);
      probe = h.drain()[0] ?? null;
    }
    assert.ok(probe !== null, 'a probe before the RTO');
    assert.equal(probe.seq, (s + 2000) >>> 0, 'the last segment again (no new data to send)');
    assert.equal(probe.payloadLength, 1000);
    // SRTT is at most 20 ms (an earlier sample of 0 ms from the handshake lowers it).
    assert.ok(h.now > 1020 && h.now <= 1020 + 2 * 20 + 2, `probe at ${h.now}`);
    assert.equal(h.conn.stats.tailLossProbes, 1);
    // The probe arrives: SACK of [2000, 3000) above the hole at 1000.
    h.send({ flags: ACK, seq: irs + 1, ack: s + 1000, window: 60000, options: { sack: [{ left: s + 2000, right: s + 3000 }] } });
    h.expect({ seq: s + 1000, len: 1000 });
    assert.equal(h.conn.stats.fastRetransmits, 1);
    h.send({ flags: ACK, seq: irs + 1, ack: s + 3000, window: 60000 });
    h.advanceTo(3000);
    h.expectNothing();
    assert.equal(h.conn.stats.timeouts, 0, 'repaired without a retransmission timeout');
  });

  it('without tail loss probes the same tail waits for the RTO', () => {
    const { h, s } = lostTail({ tailLossProbes: false });
    h.advanceTo(1020 + 199);
    h.expectNothing();
    h.advanceTo(1020 + 200);
    h.expect({ seq: s + 1000, len: 1000 });
    assert.equal(h.conn.stats.timeouts, 1);
    assert.equal(h.conn.stats.tailLossProbes, 0);
  });
});
