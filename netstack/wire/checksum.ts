// The Internet checksum (RFC 1071): the 16-bit ones' complement of the ones' complement
// sum of the data taken as big-endian 16-bit words, an odd last byte padded with zero.

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
// Below this many bytes the plain byte loop beats creating a Uint32Array view.
const WIDE_THRESHOLD = 96;
// Words summed as doubles stay exact below 2^53: 2^20 words of at most 2^32 each.
const WIDE_CHUNK_WORDS = 1 << 20;

/** Fold an unfolded non-negative sum to 16 bits (end-around carry). */
export function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

function swap16(x: number): number {
  return ((x & 0xff) << 8) | (x >>> 8);
}

/** Byte-wise sum of data[start, end) with pairs aligned at `start`; unfolded. */
function sumNarrow(d: Uint8Array, start: number, end: number): number {
  let hi = 0;
  let lo = 0;
  let i = start;
  const last8 = end - 8;
  // hi and lo each grow by at most 4*255 per step: fold well before 2^31.
  let steps = 0;
  let total = 0;
  for (; i <= last8; i += 8) {
    hi += d[i] + d[i + 2] + d[i + 4] + d[i + 6];
    lo += d[i + 1] + d[i + 3] + d[i + 5] + d[i + 7];
    if (++steps === 0x40000) {
      total += hi * 256 + lo;
      hi = 0;
      lo = 0;
      steps = 0;
    }
  }
  for (; i + 1 < end; i += 2) {
    hi += d[i];
    lo += d[i + 1];
  }
  if (i < end) hi += d[i];
  return total + hi * 256 + lo;
}

/**
 * The ones' complement sum (folded to 16 bits, not complemented) of data[start, end),
 * plus `initial` (an unfolded or folded partial sum, e.g. a pseudo-header).
 */
export function onesComplementSum(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  const len = end - start;
  if (len < WIDE_THRESHOLD || !LITTLE_ENDIAN) return foldChecksum(initial + sumNarrow(data, start, end));
  const abs = data.byteOffset + start;
  const head = (4 - (abs & 3)) & 3;
  const words = (len - head) >>> 2;
  const midStart = start + head;
  const midEnd = midStart + words * 4;
  // Head bytes: position relative to start decides the lane (RFC 1071 section 2(B)).
  let edge = 0;
  for (let i = start; i < midStart; i++) edge += (i - start) & 1 ? data[i] : data[i] << 8;
  for (let i = midEnd; i < end; i++) edge += (i - start) & 1 ? data[i] : data[i] << 8;
  const u32 = new Uint32Array(data.buffer, abs + head, words);
  let mid = 0;
  for (let base = 0; base < words; base += WIDE_CHUNK_WORDS) {
    const stop = Math.min(words, base + WIDE_CHUNK_WORDS);
    let s = 0;
    let i = base;
    for (; i + 4 <= stop; i += 4) s += u32[i] + u32[i + 1] + u32[i + 2] + u32[i + 3];
    for (; i < stop; i++) s += u32[i];
    mid = foldChecksum(mid + foldChecksum(s));
  }
  // Little-endian words put even-offset bytes in the low lane: swap unless the middle
  // starts at an odd offset from `start`, where the lanes are already exchanged.
  if ((head & 1) === 0) mid = swap16(mid);
  return foldChecksum(initial + edge + mid);
}

/**
 * onesComplementSum over the concatenation of `parts` (a gather list) without joining
 * them; a part that starts at an odd position contributes its sum byte-swapped
 * (RFC 1071 section 2(B): byte order independence).
 */
export function gatherSum(parts: readonly Uint8Array[], initial = 0): number {
  let sum = initial;
  let odd = false;
  for (const part of parts) {
    const s = onesComplementSum(part);
    sum += odd ? swap16(s) : s;
    if ((part.length & 1) !== 0) odd = !odd;
  }
  return foldChecksum(sum);
}

/** RFC 1071 checksum of data[start, end) with an optional partial sum folded in. */
export function internetChecksum(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  return ~onesComplementSum(data, start, end, initial) & 0xffff;
}

/** Partial sum of the TCP/UDP pseudo-header (RFC 9293 section 3.1, RFC 768). */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}
