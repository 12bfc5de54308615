import assert from 'node:assert/strict';
import { ACK, TcpHarness } from '../../support/tcp-harness.js';

const SACK = { timestamps: false, sack: true, windowScaling: false, mss: 1000 };

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
