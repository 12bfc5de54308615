// CUBIC congestion control (RFC 9438), behind the same interface as NewReno. Windows are
// bytes outside and segments inside the formulas, as the RFC writes them. Slow start
// is NewReno's (RFC 9406 HyStart++ is not implemented).

import { MAX_CWND, type CongestionControl } from './congestion.js';

// RFC 9438 section 5.1: C = 0.4.
const C = 0.4;
// RFC 9438 section 4.6: beta_cubic = 0.7.
const BETA = 0.7;
// RFC 9438 section 4.3: alpha_cubic = 3 (1 - beta) / (1 + beta), for the Reno-friendly estimate.
const ALPHA = (3 * (1 - BETA)) / (1 + BETA);

export class Cubic implements CongestionControl {
  cwnd: number;
  ssthresh = MAX_CWND;
  private mss: number;
  private readonly initialSegments: number;
  /** RFC 9438 W_max (segments): the window before the last reduction. */
  private wMax = 0;
  private priorWMax = 0;
  /** RFC 9438 K (s): when W_cubic reaches W_max again. */
  private k = 0;
  /** Start of the current congestion-avoidance epoch (ms), or -1. */
  private epochStart = -1;
  /** RFC 9438 W_est (segments): the window Reno would have (section 4.3). */
  private wEst = 0;
  /** Growth below one byte, carried to the next ACK. */
  private fraction = 0;

  constructor(mss: number, initialSegments: number) {
    this.mss = mss;
    this.initialSegments = initialSegments;
    this.cwnd = mss * initialSegments;
  }

  setMss(mss: number): void {
    this.mss = mss;
    // RFC 6928 section 2: initial window in segments of the negotiated MSS.
    this.cwnd = mss * this.initialSegments;
  }

  /** RFC 9438 section 4.2, eq. 1: W_cubic(t) in segments, t in seconds. */
  windowAt(t: number): number {
    const d = t - this.k;
    return C * d * d * d + this.wMax;
  }

  onAck(acked: number, now = 0, srttMs = 0): void {
    if (this.cwnd < this.ssthresh) {
      // RFC 9438 section 4.10: slow start as RFC 5681, here with RFC 3465's L = 2*SMSS.
      this.cwnd = Math.min(MAX_CWND, this.cwnd + Math.min(acked, 2 * this.mss));
      return;
    }
    const segs = this.cwnd / this.mss;
    if (this.epochStart < 0) {
      // RFC 9438 section 4.2, eq. 2: a new epoch starts at cwnd_epoch.
      this.epochStart = now;
      this.wEst = segs;
      if (this.wMax <= segs) {
        this.wMax = segs;
        this.k = 0;
      } else this.k = Math.cbrt((this.wMax - segs) / C);
    }
    const t = (now - this.epochStart) / 1000;
    const ackedSegs = acked / this.mss;
    // RFC 9438 section 4.3: the Reno-friendly estimate; alpha becomes 1 above W_max.
    this.wEst += ((this.wEst >= this.wMax ? 1 : ALPHA) * ackedSegs) / segs;
    let next: number;
    if (this.windowAt(t) < this.wEst) next = this.wEst;
    else {
      // RFC 9438 section 4.2: aim at W_cubic one RTT ahead, within [cwnd, 1.5 cwnd].
      let target = this.windowAt(t + (srttMs > 0 ? srttMs : 0) / 1000);
      if (target < segs) target = segs;
      else if (target > 1.5 * segs) target = 1.5 * segs;
      next = segs + ((target - segs) / segs) * ackedSegs;
    }
    const growth = next * this.mss - this.cwnd + this.fraction;
    if (growth <= 0) return;
    const whole = Math.floor(growth);
    this.fraction = growth - whole;
    this.cwnd = Math.min(MAX_CWND, this.cwnd + whole);
  }

  onLoss(flightSize: number): void {
    void flightSize;
    this.reduce();
    this.cwnd = this.ssthresh;
  }

  onRecoveryEnd(flightSize: number): void {
    // As NewReno (RFC 6582 section 3.2 step 4, option 1), so no burst leaves at recovery's end.
    this.cwnd = Math.min(this.ssthresh, Math.max(flightSize, this.mss) + this.mss);
    this.epochStart = -1;
  }

  onTimeout(flightSize: number, first: boolean): void {
    void flightSize;
    // RFC 9438 section 4.8: the reduction of a loss on the first timeout, then one segment.
    if (first) this.reduce();
    this.cwnd = this.mss;
    this.epochStart = -1;
  }

  undo(priorCwnd: number, priorSsthresh: number): void {
    if (priorCwnd > this.cwnd) this.cwnd = priorCwnd;
    if (priorSsthresh > this.ssthresh) this.ssthresh = priorSsthresh;
    this.wMax = this.priorWMax;
    this.epochStart = -1;
  }

  /** RFC 9438 sections 4.6 and 4.7: multiplicative decrease with fast convergence. */
  private reduce(): void {
    const segs = this.cwnd / this.mss;
    this.priorWMax = this.wMax;
    this.wMax = segs < this.wMax ? (segs * (1 + BETA)) / 2 : segs;
    this.ssthresh = Math.max(Math.floor(this.cwnd * BETA), 2 * this.mss);
    this.epochStart = -1;
    this.fraction = 0;
  }
}
