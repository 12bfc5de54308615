// Sender-side SACK scoreboard (RFC 2018 section 5, RFC 6675 section 3): the ranges above
// SND.UNA the receiver reported holding, kept sorted and disjoint. Allocated lazily by
// the connection on the first SACK block.

import type { SackBlock } from '../wire/tcp.js';
import { asSeq, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin, type Seq } from './seq.js';

export class SackScoreboard {
  /** Flat [left0, right0, left1, right1, ...], sorted, disjoint, non-adjacent. */
  private r: Seq[] = [];
  /** Bytes covered by the ranges. */
  sackedBytes = 0;

  constructor(private readonly maxBlocks: number) {}

  get empty(): boolean {
    return this.r.length === 0;
  }

  /** Right edge of the highest SACKed range, or `sndUna` when none. */
  highest(sndUna: Seq): Seq {
    const n = this.r.length;
    return n === 0 ? sndUna : this.r[n - 1]!;
  }

  /**
   * Merge the blocks of one ACK. Blocks outside (sndUna, sndMax] are clipped or
   * ignored (RFC 2018 section 4: D-SACK and stale blocks carry no new information).
   * Returns the number of newly SACKed bytes.
   */
  update(blocks: readonly SackBlock[], sndUna: Seq, sndMax: Seq): number {
    let added = 0;
    for (const b of blocks) {
      let left = asSeq(b.left);
      let right = asSeq(b.right);
      if (!seqLt(left, right)) continue;
      left = seqMax(left, sndUna);
      right = seqMin(right, sndMax);
      if (!seqLt(left, right)) continue;
      added += this.insert(left, right);
    }
    return added;
  }

  private insert(left: Seq, right: Seq): number {
    const r = this.r;
    // First range whose right edge reaches `left` (they may merge).
    let i = 0;
    while (i < r.length && seqLt(r[i + 1]!, left)) i += 2;
    let j = i;
    let covered = 0;
    let newLeft = left;
    let newRight = right;
    while (j < r.length && seqLe(r[j]!, right)) {
      const l = r[j]!;
      const rr = r[j + 1]!;
      const overlap = seqDiff(seqMin(rr, right), seqMax(l, left));
      if (overlap > 0) covered += overlap;
      newLeft = seqMin(newLeft, l);
      newRight = seqMax(newRight, rr);
      j += 2;
    }
    const added = seqDiff(right, left) - covered;
    if (j === i && r.length >= this.maxBlocks * 2) {
      // Full: keep the lowest ranges, which matter most for repair.
      if (i >= r.length) return 0;
      this.sackedBytes -= seqDiff(r[r.length - 1]!, r[r.length - 2]!);
      r.length -= 2;
    }
    r.splice(i, j - i, newLeft, newRight);
    this.sackedBytes += added;
    return added;
  }

  /** Forget everything below the new SND.UNA. */
  ackTo(sndUna: Seq): void {
    const r = this.r;
    let k = 0;
    while (k < r.length && seqLe(r[k + 1]!, sndUna)) {
      this.sackedBytes -= seqDiff(r[k + 1]!, r[k]!);
      k += 2;
    }
    if (k > 0) r.splice(0, k);
    if (r.length > 0 && seqLt(r[0]!, sndUna)) {
      this.sackedBytes -= seqDiff(sndUna, r[0]!);
      r[0] = sndUna;
    }
  }

  clear(): void {
    this.r.length = 0;
    this.sackedBytes = 0;
  }

  /** If `seq` lies in a SACKed range, that range's right edge; otherwise -1. */
  sackedEnd(seq: Seq): Seq | -1 {
    const r = this.r;
    for (let i = 0; i < r.length; i += 2) {
      if (seqLt(seq, r[i]!)) return -1;
      if (seqLt(seq, r[i + 1]!)) return r[i + 1]!;
    }
    return -1;
  }

  /** Left edge of the first SACKed range above `seq`, or -1. */
  nextSackedStart(seq: Seq): Seq | -1 {
    const r = this.r;
    for (let i = 0; i < r.length; i += 2) if (seqGt(r[i]!, seq)) return r[i]!;
    return -1;
  }

  /** Un-SACKed bytes in [from, to). */
  unsackedIn(from: Seq, to: Seq): number {
    if (!seqLt(from, to)) return 0;
    let bytes = seqDiff(to, from);
    const r = this.r;
    for (let i = 0; i < r.length; i += 2) {
      const l = seqMax(r[i]!, from);
      const rr = seqMin(r[i + 1]!, to);
      if (seqLt(l, rr)) bytes -= seqDiff(rr, l);
      if (seqGe(r[i]!, to)) break;
    }
    return bytes;
  }

  /** The SACKed ranges, lowest first (for tests and diagnostics). */
  ranges(): SackBlock[] {
    const out: SackBlock[] = [];
    for (let i = 0; i < this.r.length; i += 2) out.push({ left: this.r[i]!, right: this.r[i + 1]! });
    return out;
  }
}
