// Sequence-number arithmetic modulo 2^32 (RFC 9293 section 3.4). Every comparison of
// sequence or acknowledgment numbers goes through these helpers; raw `<` is a wrap bug.

/** a + n modulo 2^32. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** Signed distance a - b, in [-2^31, 2^31). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

export function seqMax(a: number, b: number): number {
  return seqGt(a, b) ? a : b;
}

export function seqMin(a: number, b: number): number {
  return seqLt(a, b) ? a : b;
}

/** lo <= x < hi, modulo 2^32. */
export function seqInRange(x: number, lo: number, hi: number): boolean {
  return seqGe(x, lo) && seqLt(x, hi);
}
