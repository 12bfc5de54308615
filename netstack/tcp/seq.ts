// Sequence-number arithmetic modulo 2^32 (RFC 9293 section 3.4). Every comparison of
// sequence or acknowledgment numbers goes through these helpers; raw `<` is a wrap bug.
// `Seq` is a branded number: a byte count or a length is not a sequence number until it
// goes through `asSeq` (at the wire boundary) or `seqAdd`.

declare const seqBrand: unique symbol;

/** A sequence or acknowledgment number, 0..2^32-1. */
export type Seq = number & { readonly [seqBrand]: true };

/** A number read from the wire (or a test) as a sequence number, reduced modulo 2^32. */
export function asSeq(n: number): Seq {
  return (n >>> 0) as Seq;
}

/** a + n modulo 2^32. */
export function seqAdd(a: Seq, n: number): Seq {
  return ((a + n) >>> 0) as Seq;
}

/** Signed distance a - b, in [-2^31, 2^31). */
export function seqDiff(a: Seq, b: Seq): number {
  return (a - b) | 0;
}

export function seqLt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) >= 0;
}

export function seqMax(a: Seq, b: Seq): Seq {
  return seqGt(a, b) ? a : b;
}

export function seqMin(a: Seq, b: Seq): Seq {
  return seqLt(a, b) ? a : b;
}

/** lo <= x < hi, modulo 2^32. */
export function seqInRange(x: Seq, lo: Seq, hi: Seq): boolean {
  return seqGe(x, lo) && seqLt(x, hi);
}

/** Timestamp values (RFC 7323 section 5.3) wrap like sequence numbers: a < b modulo 2^32. */
export function tsLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}
