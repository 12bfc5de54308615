import assert from 'node:assert/strict';
import { Cubic } from '../../../netstack/tcp/cubic.js';

const MSS = 1000;

/** ACK a whole window every RTT from `from` to `to` (ms); returns cwnd (segments) at the end. */
function runRtts(cc: Cubic, from: number, to: number, rtt: number): number {
  for (let t = from; t < to; t += rtt) {
    const segs = Math.floor(cc.cwnd / MSS);
    for (let i = 0; i < segs; i++) cc.onAck(MSS, t, rtt);
  }
  return cc.cwnd / MSS;
}

describe('CUBIC (RFC 9438)', () => {
  it('multiplicative decrease by beta = 0.7 and K = cbrt(W_max (1 - beta) / C)', () => {
    const cc = new Cubic(MSS, 100);
    cc.onLoss(100 * MSS);
    assert.equal(cc.ssthresh, 70 * MSS);
    assert.equal(cc.cwnd, 70 * MSS);
    cc.onAck(MSS, 0, 100);
    const k = Math.cbrt((100 * 0.3) / 0.4);
    assert.ok(Math.abs(cc.windowAt(0) - 70) < 1e-9, 'W_cubic(0) = cwnd_epoch');
    assert.ok(Math.abs(cc.windowAt(k) - 100) < 1e-9, 'W_cubic(K) = W_max');
    assert.ok(Math.abs(cc.windowAt(2 * k) - 130) < 1e-9, 'W_cubic(2K) = W_max + C K^3');
  });

  it('grows concave up to W_max at t = K, flat around it, then convex', () => {
    const cc = new Cubic(MSS, 100);
    cc.onLoss(100 * MSS);
    const rtt = 100;
    const k = Math.cbrt(75) * 1000;
    const atHalfK = runRtts(cc, 0, k / 2, rtt);
    const atK = runRtts(cc, k / 2, k, rtt);
    const at2K = runRtts(cc, k, 2 * k, rtt);
    // W_cubic(K/2) = 100 - 0.4 (K/2)^3 = 96.25; the window aims one RTT ahead.
    assert.ok(atHalfK > 94 && atHalfK < 99, `cwnd at K/2 is ${atHalfK} segments`);
    assert.ok(atK > 99 && atK < 102, `cwnd at K is ${atK} segments (W_max = 100)`);
    assert.ok(atK - atHalfK < atHalfK - 70, 'concave: slower near W_max than after the cut');
    assert.ok(at2K > 125 && at2K < 135, `cwnd at 2K is ${at2K} segments (W_cubic = 130)`);
  });

  it('Reno-friendly region: at a short RTT the window grows at least as Reno with alpha_cubic would', () => {
    const cc = new Cubic(MSS, 100);
    cc.onLoss(100 * MSS);
    // 1 ms RTT: 100 RTTs take 0.1 s, where W_cubic has moved from 70 to about 72.6.
    const w = runRtts(cc, 0, 100, 1);
    const alpha = (3 * 0.3) / 1.7;
    // W_est grows by alpha segments per window acknowledged up to W_max = 100, then by
    // one (RFC 9438 section 4.3): 30 / alpha RTTs to reach 100, then 1 per RTT.
    const expected = 100 + (100 - 30 / alpha);
    assert.ok(Math.abs(w - expected) < 3, `cwnd ${w} follows W_est (${expected})`);
    assert.ok(cc.windowAt(0.1) < 73 && w > cc.windowAt(0.1) + 40);
  });

  it('fast convergence: a loss below W_max lowers W_max to cwnd (1 + beta) / 2', () => {
    const cc = new Cubic(MSS, 100);
    cc.onLoss(100 * MSS);
    cc.onAck(MSS, 0, 100);
    cc.onLoss(70 * MSS);
    // cwnd 70 < W_max 100: W_max = 70 * 1.7 / 2 = 59.5, cwnd = 49 (cwnd had grown by
    // a fraction of a segment, hence the tolerance).
    assert.ok(Math.abs(cc.cwnd / MSS - 49) < 0.05, `cwnd ${cc.cwnd / MSS}`);
    cc.onAck(MSS, 0, 100);
    assert.ok(Math.abs(cc.windowAt(0) - 49) < 0.05, `W_cubic(0) = cwnd_epoch, is ${cc.windowAt(0)}`);
    const wMax = cc.windowAt(Math.cbrt((59.5 - 49) / 0.4));
    assert.ok(Math.abs(wMax - 59.5) < 0.1, `W_cubic(K) = W_max = ${wMax}, expected 59.5`);
  });

  it('a timeout leaves one segment and slow start up to ssthresh; undo restores the window', () => {
    const cc = new Cubic(MSS, 100);
    cc.onTimeout(100 * MSS, true);
    assert.equal(cc.cwnd, MSS);
    assert.equal(cc.ssthresh, 70 * MSS);
    cc.onAck(MSS, 0, 100);
    assert.equal(cc.cwnd, 2 * MSS, 'slow start');
    cc.undo(100 * MSS, 1 << 30);
    assert.equal(cc.cwnd, 100 * MSS);
  });
});
