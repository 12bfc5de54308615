// Receiver-side out-of-order assembler: holds segments above RCV.NXT as the views they
// arrived in, sorted and non-overlapping, bounded in pieces and bytes. Allocated lazily.

import type { SackBlock } from '../wire/tcp.js';
import { asSeq, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, type Seq } from './seq.js';

interface Piece {
  seq: Seq;
  data: Uint8Array;
}

export class Reassembler {
  private readonly pieces: Piece[] = [];
  /** Bytes held. */
  bytes = 0;
  /** Left edges of the most recently received segments, newest first (RFC 2018 section 4). */
  private recent: Seq[] = [];

  constructor(
    private readonly maxPieces: number,
    private readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.pieces.length;
  }

  /**
   * Store [seq, seq+len) minus what is already held. Returns false when the data had to
   * be dropped because a bound was reached.
   */
  insert(seq: Seq, data: Uint8Array): boolean {
    const p = this.pieces;
    const end = seqAdd(seq, data.length);
    let i = 0;
    while (i < p.length && seqLe(seqAdd(p[i]!.seq, p[i]!.data.length), seq)) i++;
    let cur = seq;
    let ok = true;
    while (seqLt(cur, end)) {
      const next = i < p.length ? p[i]! : null;
      if (next !== null && seqLe(next.seq, cur)) {
        cur = seqAdd(next.seq, next.data.length);
        i++;
        continue;
      }
      const stop = next !== null && seqLt(next.seq, end) ? next.seq : end;
      const len = seqDiff(stop, cur);
      if (p.length >= this.maxPieces || this.bytes + len > this.maxBytes) {
        ok = false;
        break;
      }
      const off = seqDiff(cur, seq);
      p.splice(i, 0, { seq: cur, data: off === 0 && len === data.length ? data : data.subarray(off, off + len) });
      this.bytes += len;
      i++;
      cur = stop;
    }
    const r = this.recent;
    const at = r.indexOf(seq);
    if (at >= 0) r.splice(at, 1);
    r.unshift(seq);
    if (r.length > 4) r.length = 4;
    return ok;
  }

  /**
   * The next piece if it starts at or before `rcvNxt` (trimmed to start there), removed
   * from the assembler; null if there is a hole at `rcvNxt`.
   */
  pop(rcvNxt: Seq): Uint8Array | null {
    const p = this.pieces;
    while (p.length > 0) {
      const first = p[0]!;
      if (seqGt(first.seq, rcvNxt)) return null;
      p.shift();
      this.bytes -= first.data.length;
      const skip = seqDiff(rcvNxt, first.seq);
      if (skip >= first.data.length) continue;
      return skip === 0 ? first.data : first.data.subarray(skip);
    }
    return null;
  }

  /** Contiguous ranges held, lowest first. */
  ranges(): SackBlock[] {
    const out: SackBlock[] = [];
    for (const piece of this.pieces) {
      const right = seqAdd(piece.seq, piece.data.length);
      const last = out.length > 0 ? out[out.length - 1]! : null;
      if (last !== null && last.right === piece.seq) last.right = right;
      else out.push({ left: piece.seq, right });
    }
    return out;
  }

  /**
   * SACK blocks for an ACK (RFC 2018 section 4): the block holding the most recently
   * received segment first, then other recent ones, then the rest, at most `max`.
   */
  sackBlocks(max: number): SackBlock[] {
    const all = this.ranges();
    const out: SackBlock[] = [];
    for (const seq of this.recent) {
      if (out.length >= max) break;
      for (const b of all) {
        if (seqGe(seq, asSeq(b.left)) && seqLt(seq, asSeq(b.right))) {
          if (!out.includes(b)) out.push(b);
          break;
        }
      }
    }
    for (let k = all.length - 1; k >= 0 && out.length < max; k--) {
      if (!out.includes(all[k]!)) out.push(all[k]!);
    }
    return out;
  }

  /** Drop pieces wholly below `rcvNxt` (after in-order data overtook them). */
  dropBelow(rcvNxt: Seq): void {
    const p = this.pieces;
    while (p.length > 0 && seqLe(seqAdd(p[0]!.seq, p[0]!.data.length), rcvNxt)) {
      this.bytes -= p[0]!.data.length;
      p.shift();
    }
  }

  clear(): void {
    this.pieces.length = 0;
    this.bytes = 0;
    this.recent.length = 0;
  }
}
