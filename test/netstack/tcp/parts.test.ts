import assert from 'node:assert/strict';
import { NewReno } from '../../../netstack/tcp/congestion.js';
import { IsnGenerator } from '../../../netstack/tcp/isn.js';
import { Reassembler } from '../../../netstack/tcp/reassembly.js';
import { PrrRecovery, RenoRecovery } from '../../../netstack/tcp/recovery.js';
import { SackScoreboard } from '../../../netstack/tcp/sack.js';
import { SendBuffer } from '../../../netstack/tcp/send-buffer.js';
import { asSeq as q, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from '../../../netstack/tcp/seq.js';

describe('tcp parts', () => {
  it('sequence comparison wraps at 2^32', () => {
    assert.ok(seqLt(q(0xfffffff0), q(5)));
    assert.ok(seqGt(q(5), q(0xfffffff0)));
    assert.ok(seqLe(q(7), q(7)) && seqGe(q(7), q(7)));
    assert.equal(seqAdd(q(0xffffffff), 2), 1);
    assert.equal(seqDiff(q(1), q(0xffffffff)), 2);
    assert.equal(seqMax(q(0xfffffff0), q(3)), 3);
    assert.ok(!seqLt(q(3), q(0xfffffff0)));
    assert.equal(q(-1), 0xffffffff, 'asSeq reduces modulo 2^32');
  });

  it('ISNs depend on the tuple and advance with a 4 µs clock (RFC 6528)', () => {
    const g = new IsnGenerator(new Uint8Array(16).fill(1));
    const t = { localAddress: 1, localPort: 2, remoteAddress: 3, remotePort: 4 };
    const a = g.isn(t, 0);
    assert.equal(g.isn(t, 1), (a + 250) >>> 0);
    assert.notEqual(g.isn({ ...t, remotePort: 5 }, 0), a);
    assert.notEqual(new IsnGenerator(new Uint8Array(16).fill(2)).isn(t, 0), a);
  });

  it('SACK scoreboard merges, clips and forgets below SND.UNA', () => {
    const sb = new SackScoreboard(8);
    const una = q(0xfffffc00);
    const max = seqAdd(una, 10_000);
    assert.equal(sb.update([{ left: seqAdd(una, 1000), right: seqAdd(una, 2000) }], una, max), 1000);
    assert.equal(sb.update([{ left: seqAdd(una, 1500), right: seqAdd(una, 3000) }], una, max), 1000);
    assert.equal(sb.update([{ left: seqAdd(una, 5000), right: seqAdd(una, 20000) }], una, max), 5000);
    assert.deepEqual(sb.ranges(), [
      { left: seqAdd(una, 1000), right: seqAdd(una, 3000) },
      { left: seqAdd(una, 5000), right: max },
    ]);
    assert.equal(sb.sackedBytes, 7000);
    assert.equal(sb.unsackedIn(una, seqAdd(una, 6000)), 3000);
    assert.equal(sb.sackedEnd(seqAdd(una, 1200)), seqAdd(una, 3000));
    assert.equal(sb.nextSackedStart(seqAdd(una, 3000)), seqAdd(una, 5000));
    sb.ackTo(seqAdd(una, 2000));
    assert.equal(sb.sackedBytes, 6000);
    // A stale block below SND.UNA adds nothing.
    assert.equal(sb.update([{ left: una, right: seqAdd(una, 500) }], seqAdd(una, 2000), max), 0);
  });

  it('SACK scoreboard is bounded', () => {
    const sb = new SackScoreboard(2);
    for (let i = 0; i < 5; i++) sb.update([{ left: i * 100 + 10, right: i * 100 + 20 }], q(0), q(10_000));
    assert.equal(sb.ranges().length, 2);
  });

  it('reassembler trims overlaps, pops in order and stays bounded', () => {
    const r = new Reassembler(3, 1000);
    const base = q(0xfffffff0);
    const bytes = (from: number, n: number) => new Uint8Array(n).map((_, i) => (from + i) & 0xff);
    assert.ok(r.insert(seqAdd(base, 10), bytes(10, 10)));
    assert.ok(r.insert(seqAdd(base, 5), bytes(5, 20)));
    assert.equal(r.bytes, 20);
    assert.equal(r.count, 3);
    assert.equal(r.insert(seqAdd(base, 100), bytes(100, 5)), false);
    assert.equal(r.pop(base), null);
    const out: number[] = [];
    let next = seqAdd(base, 7);
    let c: Uint8Array | null;
    while ((c = r.pop(next)) !== null) {
      out.push(...c);
      next = seqAdd(next, c.length);
    }
    assert.deepEqual(out, [...bytes(7, 18)]);
    assert.equal(r.bytes, 0);
  });

  it('send buffer reads views and gather lists across chunks, and drops acknowledged bytes', () => {
    const b = new SendBuffer();
    const big = new Uint8Array(1000).map((_, i) => i & 0xff);
    b.push(big);
    b.push(new Uint8Array([1, 2, 3]));
    b.push(new Uint8Array([4, 5]));
    assert.equal(b.length, 1005);
    big.fill(0xee);
    const v = b.read(0, 1000);
    assert.ok(v instanceof Uint8Array && v.buffer !== big.buffer, 'the buffer owns a copy');
    assert.equal(v[999], 999 & 0xff);
    const g = b.read(998, 6);
    const flat = Array.isArray(g) ? g.flatMap((x) => [...x]) : [...g];
    assert.deepEqual(flat, [998 & 0xff, 999 & 0xff, 1, 2, 3, 4]);
    b.drop(999);
    const rest = b.read(0, 6);
    assert.deepEqual(Array.isArray(rest) ? rest.flatMap((x) => [...x]) : [...rest], [999 & 0xff, 1, 2, 3, 4, 5]);
    b.drop(6);
    assert.equal(b.length, 0);
  });

  it('NewReno: slow start, congestion avoidance, fast recovery and timeout', () => {
    const cc = new NewReno(1000, 10);
    assert.equal(cc.cwnd, 10_000);
    cc.onAck(1000);
    assert.equal(cc.cwnd, 11_000);
    cc.onLoss(10_000);
    assert.equal(cc.ssthresh, 5000);
    assert.equal(cc.cwnd, 5000);
    // Without SACK, the recovery inflates the window it sends with (RFC 5681 section 3.2).
    const recovery = new RenoRecovery();
    recovery.enter(cc.cwnd, 1000);
    assert.equal(recovery.window(), 8000);
    recovery.onDupAck();
    assert.equal(recovery.window(), 9000);
    recovery.onPartialAck(3000);
    assert.equal(recovery.window(), 7000, 'RFC 6582: deflate by the amount acked, add back one SMSS');
    // With SACK, PRR (RFC 6937): ssthresh/RecoverFS of what is delivered while pipe > ssthresh.
    const prr = new PrrRecovery();
    prr.enter(cc.cwnd, 1000, 10_000);
    prr.onSent(1000);
    prr.onAck(1000, 8000, 5000);
    assert.equal(prr.window(), 8000, 'ceil(1000 * 5000 / 10000) - 1000 < 0: nothing more');
    prr.onAck(3000, 6000, 5000);
    assert.equal(prr.window(), 6000 + 1000, 'ceil(4000 * 5000 / 10000) - 1000 = 1000');
    prr.onSent(1000);
    prr.onAck(1000, 3000, 5000);
    assert.equal(prr.window(), 3000 + 2000, 'below ssthresh: min(ssthresh - pipe, max(5000 - 2000, 1000) + MSS)');
    cc.onRecoveryEnd(3000);
    assert.equal(cc.cwnd, 4000);
    for (let i = 0; i < 4; i++) cc.onAck(1000);
    assert.equal(cc.cwnd, 5000);
    cc.onAck(1000);
    assert.equal(cc.cwnd, 5000, 'congestion avoidance grows one MSS per cwnd acked');
    for (let i = 0; i < 4; i++) cc.onAck(1000);
    assert.equal(cc.cwnd, 6000);
    cc.onTimeout(6000, true);
    assert.equal(cc.cwnd, 1000);
    assert.equal(cc.ssthresh, 3000);
  });
});
