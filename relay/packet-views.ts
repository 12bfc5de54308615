// A frame of whole IPv4 packets given as one or more views (the socket reads it arrived
// in), walked packet by packet. A header that spans two views is read from a copy of its
// bytes; payloads are never copied, runs of packets are handed on as views.

import { checkPacket, readDst, readSrc } from './packet.js';

/** Largest IPv4 header (RFC 791 section 3.1: IHL is at most 15 words). */
const MAX_HEADER = 60;

export class PacketWalker {
  /** offset in the frame of the packet check() looks at */
  pos = 0;
  /** source and destination of the packet check() accepted */
  src = 0;
  dst = 0;
  private vi = 0;
  private vo = 0;
  private scratch: Uint8Array | null = null;
  /** where the last slice began: runs are sliced in frame order */
  private sliceVi = 0;
  private sliceStart = 0;

  constructor(
    private readonly views: readonly Uint8Array[],
    readonly length: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.length;
  }

  /**
   * Check the header at pos: its total length, or a negative MALFORMED_* code. Hosts skip
   * the header checksum (`verifyChecksum` false): the relay checked it.
   */
  check(verifyChecksum = true): number {
    const avail = this.length - this.pos;
    while (this.vo === this.views[this.vi].length) {
      this.vi++;
      this.vo = 0;
    }
    let bytes = this.views[this.vi];
    let at = this.vo;
    const want = Math.min(avail, MAX_HEADER);
    if (bytes.length - at < want) {
      const s = (this.scratch ??= new Uint8Array(MAX_HEADER));
      this.copyOut(this.vi, at, s, want);
      bytes = s;
      at = 0;
    }
    const len = checkPacket(bytes, at, avail, verifyChecksum);
    if (len > 0) {
      this.src = readSrc(bytes, at);
      this.dst = readDst(bytes, at);
    }
    return len;
  }

  /** Move past the packet check() accepted. */
  skip(len: number): void {
    this.pos += len;
    let left = len;
    while (left > 0) {
      const room = this.views[this.vi].length - this.vo;
      if (left < room) {
        this.vo += left;
        return;
      }
      left -= room;
      this.vi++;
      this.vo = 0;
    }
  }

  /** The frame's bytes [from, to) as views (no copy); the whole frame as given when it is one view. */
  slice(from: number, to: number): Uint8Array[] {
    if (from < this.sliceStart) {
      this.sliceVi = 0;
      this.sliceStart = 0;
    }
    let i = this.sliceVi;
    let start = this.sliceStart;
    while (start + this.views[i].length <= from) {
      start += this.views[i].length;
      i++;
    }
    this.sliceVi = i;
    this.sliceStart = start;
    const out: Uint8Array[] = [];
    let at = from;
    while (at < to) {
      const v = this.views[i];
      const a = at - start;
      const b = Math.min(v.length, to - start);
      if (b > a) out.push(a === 0 && b === v.length ? v : v.subarray(a, b));
      at = start + b;
      start += v.length;
      i++;
    }
    return out;
  }

  /** The frame's bytes [from, to) in one buffer: a view when they lie in one view, else a copy. */
  bytes(from: number, to: number): Uint8Array {
    const parts = this.slice(from, to);
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(to - from);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  private copyOut(vi: number, vo: number, into: Uint8Array, n: number): void {
    let o = 0;
    while (o < n) {
      const v = this.views[vi];
      const take = Math.min(v.length - vo, n - o);
      into.set(v.subarray(vo, vo + take), o);
      o += take;
      vi++;
      vo = 0;
    }
  }
}
