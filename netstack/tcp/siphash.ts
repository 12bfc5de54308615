// SipHash-2-4 (Aumasson and Bernstein, 2012), the keyed hash Linux uses for ISNs, port
// offsets and timestamp offsets. In 32-bit halves for JavaScript; allocation-free, and
// far cheaper per call than an HMAC object, which matters once per connection.

/** Keyed SipHash-2-4 over short messages; `hash` returns the low 32 bits of the 64-bit result. */
export class SipHash {
  private readonly k: Uint32Array;
  // State: v0..v3 as (hi, lo) pairs.
  private readonly v = new Uint32Array(8);

  /** `key`: 16 bytes. */
  constructor(key: Uint8Array) {
    if (key.length < 16) throw new RangeError('SipHash key must be 16 bytes');
    this.k = new Uint32Array(4);
    // k0 and k1 are little-endian 64-bit words: [k0.lo, k0.hi, k1.lo, k1.hi].
    for (let i = 0; i < 4; i++) this.k[i] = (key[4 * i] | (key[4 * i + 1] << 8) | (key[4 * i + 2] << 16) | (key[4 * i + 3] << 24)) >>> 0;
  }

  /** Both halves of the 64-bit result as [hi, lo]. */
  hash64(msg: Uint8Array, length = msg.length): [number, number] {
    const v = this.v;
    const k = this.k;
    // "somepseudorandomlygeneratedbytes"
    v[0] = k[1] ^ 0x736f6d65;
    v[1] = k[0] ^ 0x70736575;
    v[2] = k[3] ^ 0x646f7261;
    v[3] = k[2] ^ 0x6e646f6d;
    v[4] = k[1] ^ 0x6c796765;
    v[5] = k[0] ^ 0x6e657261;
    v[6] = k[3] ^ 0x74656462;
    v[7] = k[2] ^ 0x79746573;
    const full = length & ~7;
    for (let i = 0; i < full; i += 8) {
      const lo = (msg[i] | (msg[i + 1] << 8) | (msg[i + 2] << 16) | (msg[i + 3] << 24)) >>> 0;
      const hi = (msg[i + 4] | (msg[i + 5] << 8) | (msg[i + 6] << 16) | (msg[i + 7] << 24)) >>> 0;
      this.block(hi, lo);
    }
    let lo = 0;
    let hi = (length & 0xff) << 24;
    const rest = length - full;
    for (let j = 0; j < rest; j++) {
      const b = msg[full + j];
      if (j < 4) lo |= b << (8 * j);
      else hi |= b << (8 * (j - 4));
    }
    this.block(hi >>> 0, lo >>> 0);
    v[5] ^= 0xff;
    this.round();
    this.round();
    this.round();
    this.round();
    return [(v[0] ^ v[2] ^ v[4] ^ v[6]) >>> 0, (v[1] ^ v[3] ^ v[5] ^ v[7]) >>> 0];
  }

  hash(msg: Uint8Array, length = msg.length): number {
    return this.hash64(msg, length)[1];
  }

  private block(hi: number, lo: number): void {
    const v = this.v;
    v[6] ^= hi;
    v[7] ^= lo;
    this.round();
    this.round();
    v[0] ^= hi;
    v[1] ^= lo;
  }

  private round(): void {
    const v = this.v;
    let v0h = v[0], v0l = v[1], v1h = v[2], v1l = v[3], v2h = v[4], v2l = v[5], v3h = v[6], v3l = v[7];
    let lo: number, th: number, tl: number;
    // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
    lo = (v0l + v1l) >>> 0;
    v0h = (v0h + v1h + (lo < v0l ? 1 : 0)) >>> 0;
    v0l = lo;
    th = ((v1h << 13) | (v1l >>> 19)) >>> 0;
    tl = ((v1l << 13) | (v1h >>> 19)) >>> 0;
    v1h = th ^ v0h;
    v1l = tl ^ v0l;
    th = v0h;
    v0h = v0l;
    v0l = th;
    // v2 += v3; v3 <<<= 16; v3 ^= v2
    lo = (v2l + v3l) >>> 0;
    v2h = (v2h + v3h + (lo < v2l ? 1 : 0)) >>> 0;
    v2l = lo;
    th = ((v3h << 16) | (v3l >>> 16)) >>> 0;
    tl = ((v3l << 16) | (v3h >>> 16)) >>> 0;
    v3h = th ^ v2h;
    v3l = tl ^ v2l;
    // v0 += v3; v3 <<<= 21; v3 ^= v0
    lo = (v0l + v3l) >>> 0;
    v0h = (v0h + v3h + (lo < v0l ? 1 : 0)) >>> 0;
    v0l = lo;
    th = ((v3h << 21) | (v3l >>> 11)) >>> 0;
    tl = ((v3l << 21) | (v3h >>> 11)) >>> 0;
    v3h = th ^ v0h;
    v3l = tl ^ v0l;
    // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
    lo = (v2l + v1l) >>> 0;
    v2h = (v2h + v1h + (lo < v2l ? 1 : 0)) >>> 0;
    v2l = lo;
    th = ((v1h << 17) | (v1l >>> 15)) >>> 0;
    tl = ((v1l << 17) | (v1h >>> 15)) >>> 0;
    v1h = th ^ v2h;
    v1l = tl ^ v2l;
    th = v2h;
    v2h = v2l;
    v2l = th;
    v[0] = v0h;
    v[1] = v0l;
    v[2] = v1h;
    v[3] = v1l;
    v[4] = v2h;
    v[5] = v2l;
    v[6] = v3h;
    v[7] = v3l;
  }
}
