// Congestion control behind a small interface, so that NewReno and e.g. CUBIC are
// interchangeable. The connection decides *when* (duplicate ACKs, SACK loss detection,
// timeouts); the controller decides *how much* may be in flight.

export interface CongestionControl {
  /** Congestion window in bytes (inflated during non-SACK fast recovery). */
  readonly cwnd: number;
  readonly ssthresh: number;
  /** New data acknowledged outside recovery. */
  onAck(ackedBytes: number): void;
  /** Loss detected by duplicate ACKs or SACK: enter fast recovery. */
  onFastRetransmit(flightSize: number, inflate: boolean): void;
  /** A further duplicate ACK during non-SACK fast recovery. */
  onDupAck(): void;
  /** A partial ACK during recovery (RFC 6582 section 3.2 step 5). */
  onPartialAck(ackedBytes: number, inflate: boolean): void;
  /** The ACK that ends recovery (RFC 6582 section 3.2 step 4). */
  onRecoveryEnd(flightSize: number): void;
  /** Retransmission timeout; `first` is false for repeated timeouts of the same data. */
  onTimeout(flightSize: number, first: boolean): void;
  /** The sender MSS changed (after the handshake). */
  setMss(mss: number): void;
}

const MAX_CWND = 1 << 30;

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

  onFastRetransmit(flightSize: number, inflate: boolean): void {
    // RFC 5681 section 3.2 step 2 (eq. 4) and step 3.
    this.ssthresh = Math.max(flightSize / 2, 2 * this.mss);
    this.cwnd = inflate ? this.ssthresh + 3 * this.mss : this.ssthresh;
    this.caAcked = 0;
  }

  onDupAck(): void {
    // RFC 5681 section 3.2 step 4: inflate by one segment per duplicate ACK.
    this.cwnd = Math.min(MAX_CWND, this.cwnd + this.mss);
  }

  onPartialAck(acked: number, inflate: boolean): void {
    if (!inflate) return;
    // RFC 6582 section 3.2 step 5: deflate by the amount acked, add back one SMSS.
    this.cwnd = Math.max(this.mss, this.cwnd - acked + (acked >= this.mss ? this.mss : 0));
  }

  onRecoveryEnd(flightSize: number): void {
    // RFC 6582 section 3.2 step 4, option 1: min(ssthresh, max(FlightSize, SMSS) + SMSS).
    this.cwnd = Math.min(this.ssthresh, Math.max(flightSize, this.mss) + this.mss);
    this.caAcked = 0;
  }

  onTimeout(flightSize: number, first: boolean): void {
    // RFC 5681 section 3.1 (eq. 4): ssthresh only on the first timeout; loss window 1 segment.
    if (first) this.ssthresh = Math.max(flightSize / 2, 2 * this.mss);
    this.cwnd = this.mss;
    this.caAcked = 0;
  }
}
