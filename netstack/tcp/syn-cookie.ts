// SYN cookies (RFC 4987 section 3.6): with the half-open queue full, a listener answers
// a SYN without keeping state, and the ISS it chooses carries what the connection needs
// when the ACK returns. The ISS: 5 bits of a 64 s counter, 3 bits of MSS index, 24 bits
// of a keyed hash of the four-tuple, the peer's ISN and the counter. Window scale and
// SACK ride in the low 6 bits of our TSval, as Linux does; a peer without timestamps
// gets neither.

import { randomBytes } from 'node:crypto';
import { SipHash } from './siphash.js';
import type { FourTuple } from './types.js';

// MSS values a cookie can name (Linux's table, plus the overlay's jumbo sizes).
const MSS_TABLE = [536, 1300, 1440, 1460, 4036, 8960, 16344, 65495];
// A cookie names the 64 s period it was made in, and is good in that one and the next.
const TICK_MS = 64_000;
const TS_OPTION_BITS = 6;
const TS_NO_WSCALE = 15;
const TS_SACK = 16;

export interface CookieTsOptions {
  /** The peer's window scale shift, or null if it sent none. */
  windowScale: number | null;
  sack: boolean;
}

export class SynCookies {
  private readonly sip: SipHash;
  private readonly buf = new Uint8Array(17);

  constructor(secret?: Uint8Array) {
    this.sip = new SipHash(secret ?? randomBytes(16));
  }

  /** The ISS for a SYN from `tuple` with ISN `irs`, naming the largest table MSS <= `peerMss`. */
  encode(tuple: FourTuple, irs: number, peerMss: number, now: number): number {
    const tick = Math.floor(now / TICK_MS) & 31;
    let index = 0;
    while (index + 1 < MSS_TABLE.length && MSS_TABLE[index + 1]! <= peerMss) index++;
    return ((tick << 27) | (index << 24) | (this.hash(tuple, irs, tick) & 0xffffff)) >>> 0;
  }

  /** The MSS a returning cookie (SEG.ACK - 1) names, or -1 if it is not ours or too old. */
  decode(tuple: FourTuple, irs: number, cookie: number, now: number): number {
    const tick = cookie >>> 27;
    const age = ((Math.floor(now / TICK_MS) & 31) - tick) & 31;
    if (age > 1) return -1;
    if (((this.hash(tuple, irs, tick) ^ cookie) & 0xffffff) !== 0) return -1;
    return MSS_TABLE[(cookie >>> 24) & 7]!;
  }

  /** Our SYN-ACK's TSval: at most `tsNow`, its low bits the options to remember. */
  static tsValue(tsNow: number, options: CookieTsOptions): number {
    const bits = (options.windowScale ?? TS_NO_WSCALE) | (options.sack ? TS_SACK : 0);
    let ts = ((tsNow & ~((1 << TS_OPTION_BITS) - 1)) | bits) >>> 0;
    // Never ahead of the clock the connection will use, or the peer's PAWS would drop it.
    if (((ts - tsNow) | 0) > 0) ts = (ts - (1 << TS_OPTION_BITS)) >>> 0;
    return ts;
  }

  /** The options remembered in the TSval the peer echoes. */
  static tsOptions(echo: number): CookieTsOptions {
    const ws = echo & 15;
    return { windowScale: ws === TS_NO_WSCALE ? null : ws, sack: (echo & TS_SACK) !== 0 };
  }

  private hash(tuple: FourTuple, irs: number, tick: number): number {
    const b = this.buf;
    put32(b, 0, tuple.localAddress);
    put32(b, 4, tuple.remoteAddress);
    b[8] = tuple.localPort >>> 8;
    b[9] = tuple.localPort;
    b[10] = tuple.remotePort >>> 8;
    b[11] = tuple.remotePort;
    put32(b, 12, irs);
    b[16] = tick;
    return this.sip.hash(b, 17);
  }
}

function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = v >>> 16;
  b[off + 2] = v >>> 8;
  b[off + 3] = v;
}
