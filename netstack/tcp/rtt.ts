// Retransmission timeout per RFC 6298.

export class RttEstimator {
  /** Smoothed RTT in ms; -1 until the first sample. */
  srtt = -1;
  rttvar = 0;
  /** Base RTO (ms) before exponential backoff. */
  rto: number;

  constructor(
    initialRto: number,
    private readonly minRto: number,
    private readonly maxRto: number,
  ) {
    this.rto = initialRto;
  }

  /** RFC 6298 section 2.2 (first sample) and 2.3 (later samples). */
  sample(rtt: number): void {
    if (!(rtt >= 0)) return;
    if (this.srtt < 0) {
      this.srtt = rtt;
      this.rttvar = rtt / 2;
    } else {
      // RFC 6298 section 2.3: alpha = 1/8, beta = 1/4.
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - rtt);
      this.srtt = 0.875 * this.srtt + 0.125 * rtt;
    }
    // RFC 6298 section 2.3: RTO = SRTT + max(G, K*RTTVAR), with G = 1 ms here.
    const rto = this.srtt + Math.max(1, 4 * this.rttvar);
    this.rto = Math.min(this.maxRto, Math.max(this.minRto, rto));
  }

  /** RTO after `backoff` timeouts (RFC 6298 section 5.5), capped at the maximum. */
  current(backoff: number): number {
    return Math.min(this.maxRto, this.rto * 2 ** backoff);
  }
}
