// The send half of a connection (gVisor's sender): the send sequence space, the bytes
// from SND.UNA on, and the state that decides how much may be in flight (congestion
// control, fast recovery, the SACK scoreboard). The connection drives it; the sender
// holds no I/O.

import type { CongestionControl } from './congestion.js';
import type { TcpConfig } from './config.js';
import type { FastRecovery } from './recovery.js';
import type { SackScoreboard } from './sack.js';
import type { SendBuffer } from './send-buffer.js';
import { seqDiff, seqLt, seqMax, seqMin, type Seq } from './seq.js';

// RFC 9293 section 3.7.1: default send MSS when the peer sends no MSS option.
const DEFAULT_PEER_MSS = 536;
// Smallest payload the half-window bound may leave (Linux: 68 bytes less the headers).
const MIN_SEGMENT_PAYLOAD = 48;
// RFC 2018 section 3: room for SACK blocks on our segments while we hold out-of-order data.
const SACK_OPTION_ROOM = 36;

/**
 * A loss episode that may yet prove spurious (RFC 3708's idea, as Linux's undo_retrans):
 * the window before the reduction, and the retransmissions of [from, to) not yet
 * reported as duplicates by a D-SACK. At zero, every one was spurious.
 */
export interface UndoRecord {
  readonly priorCwnd: number;
  readonly priorSsthresh: number;
  readonly from: Seq;
  readonly to: Seq;
  retransmits: number;
}

/** RFC 8985 section 7: the tail loss probe in flight (TLP.end_seq and what it was). */
export interface TailLossProbe {
  readonly start: Seq;
  readonly end: Seq;
  readonly retransmitted: boolean;
  /** Bytes outstanding when the probe went out, for the congestion response. */
  readonly flight: number;
}

export class TcpSender {
  // Send sequence space (RFC 9293 section 3.3.1). max: highest sequence sent + 1.
  readonly iss: Seq;
  una: Seq;
  nxt: Seq;
  max: Seq;
  wnd = 0;
  wl1 = 0 as Seq;
  wl2 = 0 as Seq;
  maxWnd = 0;
  wscale = 0;
  /** Payload bytes per full segment we send (peer MSS, minus timestamp option). */
  mss: number;
  buffer: SendBuffer | null = null;

  readonly cc: CongestionControl;
  /** Set while in fast recovery (RFC 6582 / RFC 6675), until SND.UNA reaches `recover`. */
  recovery: FastRecovery | null = null;
  recover: Seq;
  highRxt: Seq;
  dupAcks = 0;
  score: SackScoreboard | null = null;
  /** The tail loss probe in flight, until an ACK accounts for it. */
  tlp: TailLossProbe | null = null;
  /** The latest loss episode, until undone or replaced by the next one. */
  undo: UndoRecord | null = null;
  // Whether the congestion window is what limits sending (RFC 7661 section 4.3; as
  // Linux's tcp_cwnd_validate): the largest flight seen in the current window of data,
  // whether cwnd was full then, and where that window ends.
  flightHigh = 0;
  cwndFull = false;
  cwndUsageEnd: Seq;

  constructor(
    private readonly config: TcpConfig,
    iss: Seq,
    mss: number,
    cc: CongestionControl,
  ) {
    this.iss = iss;
    this.una = iss;
    this.nxt = iss;
    this.max = iss;
    this.recover = iss;
    this.highRxt = iss;
    this.cwndUsageEnd = iss;
    this.mss = mss;
    this.cc = cc;
  }

  /** A loss episode begins (fast retransmit or first timeout): remember what to undo. */
  startUndo(): void {
    this.undo = { priorCwnd: this.cc.cwnd, priorSsthresh: this.cc.ssthresh, from: this.una, to: this.max, retransmits: 0 };
  }

  /**
   * A D-SACK block (RFC 2883) reported [left, right) received twice. Returns true when
   * that was the last outstanding retransmission of the episode: all were spurious.
   */
  dsackReceived(left: Seq, right: Seq): boolean {
    const u = this.undo;
    if (u === null || u.retransmits === 0 || !seqLt(left, right)) return false;
    if (seqLt(left, u.from) || !seqLt(left, u.to)) return false;
    u.retransmits--;
    return u.retransmits === 0;
  }

  /** The window that limits sending: cwnd, or the recovery's window during fast recovery. */
  sendWindow(): number {
    return this.recovery === null ? this.cc.cwnd : this.recovery.window(this.cc.cwnd);
  }

  /**
   * RFC 3042 (limited transmit): on each of the first two duplicate ACKs outside recovery,
   * one new segment beyond cwnd, so that a small flight still gets the third duplicate ACK
   * that starts fast retransmit instead of waiting for a timeout.
   */
  limitedTransmitAllowance(): number {
    if (this.recovery !== null || this.dupAcks === 0 || this.dupAcks >= this.config.dupAckThreshold) return 0;
    return (this.dupAcks < 2 ? this.dupAcks : 2) * this.mss;
  }

  /** After sending: track the flight against cwnd for the current window of data. */
  noteCwndUsage(flight: number, mss: number): void {
    const full = flight + mss > this.sendWindow();
    if (!seqLt(this.una, this.cwndUsageEnd) || full || flight > this.flightHigh) {
      this.flightHigh = flight;
      this.cwndFull = full;
      this.cwndUsageEnd = this.nxt;
    }
  }

  /** Linux tcp_is_cwnd_limited: in slow start, cwnd may reach twice the largest flight. */
  cwndLimited(): boolean {
    const cwnd = this.sendWindow();
    if (cwnd < this.cc.ssthresh) return cwnd < 2 * this.flightHigh;
    return this.cwndFull;
  }

  /** Payload of a full segment; `sackRoom` while we send SACK blocks (we hold out-of-order data). */
  payloadMss(sackRoom: boolean): number {
    const mss = sackRoom ? this.mss - SACK_OPTION_ROOM : this.mss;
    // At most half the peer's largest window (Linux tcp_bound_to_half_wnd): one segment
    // filling the whole window would leave the peer's delayed-ACK timer to release it.
    const wnd = this.maxWnd;
    const cap = wnd > DEFAULT_PEER_MSS ? wnd >>> 1 : wnd;
    return cap > 0 && cap < mss ? Math.max(cap, MIN_SEGMENT_PAYLOAD) : mss;
  }

  /** RFC 6675 section 4 pipe, with every un-SACKed byte below the highest SACK counted lost. */
  pipe(score: SackScoreboard): number {
    const high = score.highest(this.una);
    return seqDiff(this.max, high) + score.unsackedIn(this.una, seqMin(this.highRxt, high));
  }

  /** The first un-SACKed, not yet retransmitted sequence below the highest SACK, or null. */
  nextHole(score: SackScoreboard): Seq | null {
    let start = seqMax(this.highRxt, this.una);
    const end = score.sackedEnd(start);
    if (end !== -1) start = end;
    return seqLt(start, score.highest(this.una)) ? start : null;
  }
}
