// Fast recovery, as gVisor splits it: the congestion controller sets cwnd and ssthresh
// when a loss is detected; the recovery decides which window limits sending until the
// ACK that covers `recover`. Without SACK that is RFC 6582's inflated window; with SACK
// it is cwnd itself, against the RFC 6675 pipe the connection computes.

import { MAX_CWND } from './congestion.js';

export interface FastRecovery {
  /** Recovery begins; `cwnd` is the controller's window after its loss response. */
  enter(cwnd: number, mss: number): void;
  /** A further duplicate ACK during recovery. */
  onDupAck(): void;
  /** A partial ACK (RFC 6582 section 3.2 step 5) of `ackedBytes`. */
  onPartialAck(ackedBytes: number): void;
  /** The window that limits sending during recovery, given the controller's cwnd. */
  window(cwnd: number): number;
}

/** NewReno without SACK: RFC 5681 section 3.2 steps 3-4 and RFC 6582 section 3.2 step 5. */
export class RenoRecovery implements FastRecovery {
  private inflated = 0;
  private mss = 0;

  enter(cwnd: number, mss: number): void {
    this.mss = mss;
    // RFC 5681 section 3.2 step 3: three segments have left the network.
    this.inflated = cwnd + 3 * mss;
  }

  onDupAck(): void {
    // RFC 5681 section 3.2 step 4: inflate by one segment per duplicate ACK.
    this.inflated = Math.min(MAX_CWND, this.inflated + this.mss);
  }

  onPartialAck(acked: number): void {
    // RFC 6582 section 3.2 step 5: deflate by the amount acked, add back one SMSS.
    this.inflated = Math.max(this.mss, this.inflated - acked + (acked >= this.mss ? this.mss : 0));
  }

  window(): number {
    return this.inflated;
  }
}

/** With SACK (RFC 6675): cwnd is spent against the pipe, without inflation. */
export class SackRecovery implements FastRecovery {
  enter(): void {}
  onDupAck(): void {}
  onPartialAck(): void {}
  window(cwnd: number): number {
    return cwnd;
  }
}
