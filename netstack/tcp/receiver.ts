// The receive half of a connection (gVisor's receiver): the receive sequence space, the
// window we advertise, the out-of-order assembler and the ACK we owe. The connection
// drives it; the receiver holds no I/O.

import type { SackBlock } from '../wire/tcp.js';
import type { TcpConfig } from './config.js';
import type { Reassembler } from './reassembly.js';
import { asSeq, seqAdd, seqDiff, seqGt } from './seq.js';

// RFC 9293 section 3.7.1: default MSS when the peer sends no MSS option.
const DEFAULT_PEER_MSS = 536;

/** The ACK the receiver owes. */
export const ACK_NONE = 0;
export const ACK_DELAYED = 1;
export const ACK_NOW = 2;
/** Owed for two full segments, but held to the end of the input batch (TcpEnv.deferAck). */
export const ACK_BATCH = 3;

export class TcpReceiver {
  // Receive sequence space. advRight: right edge of the window we last advertised.
  irs = asSeq(0);
  nxt = asSeq(0);
  advRight = asSeq(0);
  wscale = 0;
  /** Largest segment seen (Linux's rcv_mss), for "ACK every second full segment". */
  mss = DEFAULT_PEER_MSS;
  /** Delivered bytes the owner has not consumed yet. */
  unconsumed = 0;
  /** In-order bytes received since our last ACK. */
  unackedBytes = 0;
  /** ACK_NONE, ACK_DELAYED, ACK_NOW or ACK_BATCH. */
  ackState: number = ACK_NONE;
  lastAckSent = asSeq(0);
  asm: Reassembler | null = null;
  finPending = false;
  finSeq = asSeq(0);
  /** A duplicate segment's range, for the next ACK's first SACK block (D-SACK, RFC 2883). */
  dsack: SackBlock | null = null;

  constructor(private readonly config: TcpConfig) {}

  /** Bytes of the receive window currently advertised. */
  get window(): number {
    const w = seqDiff(this.advRight, this.nxt);
    return w > 0 ? w : 0;
  }

  /** We hold out-of-order data (and so send SACK blocks). */
  get holdsOutOfOrder(): boolean {
    return this.asm !== null && this.asm.count > 0;
  }

  /** Our next segment carries SACK blocks: out-of-order data held, or a D-SACK owed. */
  get sendsSackBlocks(): boolean {
    return this.dsack !== null || (this.asm !== null && this.asm.count > 0);
  }

  /** Receive buffer space, at most what the window field can express. */
  freeSpace(): number {
    const free = this.config.receiveBufferSize - this.unconsumed - (this.asm === null ? 0 : this.asm.bytes);
    const max = 0xffff << this.wscale;
    return free > max ? max : free > 0 ? free : 0;
  }

  /**
   * The 16-bit window field, advancing the advertised right edge only by useful amounts
   * (RFC 9293 section 3.8.6.2.2, receiver SWS avoidance) and never moving it left
   * (RFC 7323 section 2.4).
   */
  windowField(): number {
    const shift = this.wscale;
    const cur = this.window;
    const free = this.freeSpace();
    let wnd = cur;
    if (free > cur && free - cur >= Math.min(this.config.receiveBufferSize >> 1, this.config.mss)) wnd = free;
    let field = wnd >>> shift;
    if (field > 0xffff) field = 0xffff;
    const right = seqAdd(this.nxt, field << shift);
    if (seqGt(right, this.advRight)) this.advRight = right;
    return field;
  }
}
