// Fast recovery, as gVisor splits it: the congestion controller sets cwnd and ssthresh
// when a loss is detected; the recovery decides which window limits sending until the
// ACK that covers `recover`. Without SACK that is RFC 6582's inflated window; with SACK
// it is Proportional Rate Reduction (RFC 6937) against the RFC 6675 pipe.

import { MAX_CWND } from './congestion.js';

export interface FastRecovery {
  /**
   * Recovery begins; `cwnd` is the controller's window after its loss response,
   * `flightSize` the bytes outstanding when the loss was detected.
   */
  enter(cwnd: number, mss: number, flightSize: number): void;
  /**
   * Every ACK during recovery (after enter() for the first): `delivered` bytes newly
   * acknowledged or SACKed, the pipe after it, and the controller's ssthresh.
   */
  onAck(delivered: number, pipe: number, ssthresh: number): void;
  /** Bytes (new or retransmitted) sent during recovery. */
  onSent(bytes: number): void;
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

  onAck(): void {}
  onSent(): void {}

  window(): number {
    return this.inflated;
  }
}

/**
 * With SACK: RFC 6937 Proportional Rate Reduction. While the pipe exceeds ssthresh, the
 * sender sends ssthresh/RecoverFS bytes per byte delivered, so the window falls to
 * ssthresh smoothly instead of pausing for half an RTT and then bursting; below it,
 * the slow-start reduction bound (PRR-SSRB) lets it climb back by at most one MSS more
 * than was delivered. The quota is a window: the connection sends while pipe < window.
 */
export class PrrRecovery implements FastRecovery {
  private mss = 0;
  /** RFC 6937 RecoverFS: the flight when recovery began. */
  private recoverFs = 1;
  private prrDelivered = 0;
  private prrOut = 0;
  private allowed = 0;

  enter(cwnd: number, mss: number, flightSize: number): void {
    this.mss = mss;
    this.recoverFs = flightSize > 0 ? flightSize : 1;
    this.prrDelivered = 0;
    this.prrOut = 0;
    this.allowed = cwnd;
  }

  onAck(delivered: number, pipe: number, ssthresh: number): void {
    if (delivered > 0) this.prrDelivered += delivered;
    let sndcnt: number;
    if (pipe > ssthresh) {
      // RFC 6937 section 3: proportional rate reduction.
      sndcnt = Math.ceil((this.prrDelivered * ssthresh) / this.recoverFs) - this.prrOut;
    } else {
      // RFC 6937 section 3: slow start reduction bound.
      const limit = Math.max(this.prrDelivered - this.prrOut, delivered) + this.mss;
      sndcnt = Math.min(ssthresh - pipe, limit);
    }
    this.allowed = pipe + (sndcnt > 0 ? sndcnt : 0);
  }

  onSent(bytes: number): void {
    this.prrOut += bytes;
  }

  // Duplicate and partial ACKs are ACKs: onAck() accounts for them.
  onDupAck(): void {}
  onPartialAck(): void {}

  window(): number {
    return this.allowed;
  }
}
