// A frame of whole IPv4 packets given as one or more views (the socket reads it arrived
// in), walked packet by packet. A header that spans two views is read from a copy of its
// bytes; payloads are never copied, runs of packets are handed on as views.


export const MALFORMED_SHORT = -1;
export const MALFORMED_VERSION = -2;
export const MALFORMED_IHL = -3;
export const MALFORMED_LENGTH = -4;
export const MALFORMED_CHECKSUM = -5;

/** Drop-counter reasons for the negative results of checkPacket, indexed by -result. */
export const MALFORMED_REASONS = ['', 'malformed-short', 'malformed-version', 'malformed-ihl', 'malformed-length', 'malformed-checksum'] as const;

/**
 * Check the IPv4 header (RFC 791 section 3.1) of the packet starting at `offset` in
 * `frame`: version, IHL, total length within `avail`, and the header checksum unless
 * `verifyChecksum` is false. Returns its total length (> 0) or a negative MALFORMED_* code.
 */
export function checkPacket(frame: Uint8Array, offset: number, avail: number = frame.length - offset, verifyChecksum = true): number {
  if (avail < 20) return MALFORMED_SHORT;
  const vihl = frame[offset];
  if (vihl >>> 4 !== 4) return MALFORMED_VERSION;
  const hl = (vihl & 0x0f) << 2;
  if (hl < 20) return MALFORMED_IHL;
  const total = (frame[offset + 2] << 8) | frame[offset + 3];
  if (total < hl || total > avail) return MALFORMED_LENGTH;
  if (!verifyChecksum) return total;
  // RFC 1071: the one's complement sum over a valid header is all ones.
  let sum = 0;
  for (let i = offset; i < offset + hl; i += 2) sum += (frame[i] << 8) | frame[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  if (sum !== 0xffff) return MALFORMED_CHECKSUM;
  return total;
}

export function readSrc(frame: Uint8Array, offset: number): number {
  return ((frame[offset + 12] << 24) | (frame[offset + 13] << 16) | (frame[offset + 14] << 8) | frame[offset + 15]) >>> 0;
}

export function readDst(frame: Uint8Array, offset: number): number {
  return ((frame[offset + 16] << 24) | (frame[offset + 17] << 16) | (frame[offset + 18] << 8) | frame[offset + 19]) >>> 0;
}

/**
 * Split a binary frame into IPv4 packets by their total-length fields, with checkPacket's
 * checks except the checksum (the relay checked that). `malformed`: the rest was dropped.
 */
export function splitPackets(frame: Uint8Array): { packets: Uint8Array[]; malformed: boolean } {
  const packets: Uint8Array[] = [];
  let off = 0;
  while (off < frame.length) {
    const total = checkPacket(frame, off, frame.length - off, false);
    if (total < 0) return { packets, malformed: true };
    packets.push(frame.subarray(off, off + total));
    off += total;
  }
  return { packets, malformed: false };
}

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
    private views: readonly Uint8Array[],
    public length: number,
  ) {}

  /** Walk another frame with this walker (one walker serves frame after frame, no allocation). */
  reset(views: readonly Uint8Array[], length: number): this {
    this.views = views;
    this.length = length;
    this.pos = 0;
    this.src = 0;
    this.dst = 0;
    this.vi = 0;
    this.vo = 0;
    this.sliceVi = 0;
    this.sliceStart = 0;
    return this;
  }

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

  /** The frame's bytes [from, to) as views (no copy); the views as given when that is the whole frame. */
  slice(from: number, to: number): readonly Uint8Array[] {
    if (from === 0 && to === this.length) return this.views;
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
