// Congestion control behind a small interface, so that NewReno and e.g. CUBIC are
// interchangeable. The connection decides *when* (duplicate ACKs, SACK loss detection,
// timeouts); the controller decides *how much* may be in flight; the recovery
// (recovery.ts) decides how that window is spent while holes are repaired.

export interface CongestionControl {
  /** Congestion window in bytes. */
  readonly cwnd: number;
  readonly ssthresh: number;
  /** New data acknowledged outside recovery, at `now` (ms), with the smoothed RTT (ms, -1 if none). */
  onAck(ackedBytes: number, now: number, srttMs: number): void;
  /** Loss detected by duplicate ACKs or SACK: recovery begins with this cwnd. */
  onLoss(flightSize: number): void;
  /** The ACK that ends recovery (RFC 6582 section 3.2 step 4). */
  onRecoveryEnd(flightSize: number): void;
  /** Retransmission timeout; `first` is false for repeated timeouts of the same data. */
  onTimeout(flightSize: number, first: boolean): void;
  /**
   * Every retransmission of a loss episode proved spurious (D-SACK): take back the
   * reduction, to at least the window and threshold from before it.
   */
  undo(priorCwnd: number, priorSsthresh: number): void;
  /** The sender MSS changed (after the handshake). */
  setMss(mss: number): void;
}

export const MAX_CWND = 1 << 30;

/** NewReno: RFC 5681 (slow start, congestion avoidance) and RFC 6582 (fast recovery). */
export class NewReno implements CongestionControl {
  cwnd: number;
  ssthresh = MAX_CWND;
  private mss: number;
  private readonly initialSegments: number;
  /** Bytes acked since cwnd last grew in congestion avoidance (RFC 5681 section 3.1, eq. 3 alternative). */
  private caAcked = 0;

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

  onAck(acked: number): void {
    if (this.cwnd < this.ssthresh) {
      // RFC 3465 section 2.2: appropriate byte counting with L = 2*SMSS.
      this.cwnd = Math.min(MAX_CWND, this.cwnd + Math.min(acked, 2 * this.mss));
      return;
    }
    this.caAcked += acked;
    if (this.caAcked >= this.cwnd) {
      this.caAcked -= this.cwnd;
      this.cwnd = Math.min(MAX_CWND, this.cwnd + this.mss);
    }
  }

  onLoss(flightSize: number): void {
    // RFC 5681 section 3.2 step 2 (eq. 4); the window inflation of step 3 is the
    // recovery's business (recovery.ts), not the controller's.
    this.ssthresh = Math.max(flightSize / 2, 2 * this.mss);
    this.cwnd = this.ssthresh;
    this.caAcked = 0;
  }

  onRecoveryEnd(flightSize: number): void {
    // RFC 6582 section 3.2 step 4, option 1: min(ssthresh, max(FlightSize, SMSS) + SMSS).
    this.cwnd = Math.min(this.ssthresh, Math.max(flightSize, this.mss) + this.mss);
    this.caAcked = 0;
  }

  undo(priorCwnd: number, priorSsthresh: number): void {
    if (priorCwnd > this.cwnd) this.cwnd = priorCwnd;
    if (priorSsthresh > this.ssthresh) this.ssthresh = priorSsthresh;
    this.caAcked = 0;
  }

  onTimeout(flightSize: number, first: boolean): void {
    // RFC 5681 section 3.1 (eq. 4): ssthresh only on the first timeout; loss window 1 segment.
    if (first) this.ssthresh = Math.max(flightSize / 2, 2 * this.mss);
    this.cwnd = this.mss;
    this.caAcked = 0;
  }
}
