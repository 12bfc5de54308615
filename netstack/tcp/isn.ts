// Initial sequence numbers per RFC 6528 section 3: ISN = M + F(4-tuple, secret), where
// M is a 4-microsecond clock derived from the injected `now` and F a keyed hash
// (SipHash-2-4, as Linux's secure_tcp_seq).

import { randomBytes } from 'node:crypto';
import { SipHash } from './siphash.js';
import type { FourTuple } from './types.js';

function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

export class IsnGenerator {
  private readonly sip: SipHash;
  private readonly buf = new Uint8Array(12);

  constructor(secret?: Uint8Array) {
    this.sip = new SipHash(secret ?? randomBytes(16));
  }

  /** ISN for `tuple` at time `now` (ms). */
  isn(tuple: FourTuple, now: number): number {
    const h = this.hash(tuple);
    // RFC 6528 section 3: M ticks every 4 microseconds, i.e. 250 times per ms.
    return (h + Math.floor(now * 250)) >>> 0;
  }

  /**
   * Timestamp clock offset for a pair of addresses (as Linux's secure_tcp_ts_off): keyed,
   * so it reveals no uptime (RFC 7323 section 7.1), and the same for every connection
   * between the two hosts, so a new incarnation's TSval is newer than the old one's and
   * TIME-WAIT can give way to it (RFC 6191 section 2).
   */
  tsOffset(localAddress: number, remoteAddress: number): number {
    const b = this.buf;
    put32(b, 0, localAddress);
    put32(b, 4, remoteAddress);
    // A different length from the 4-tuple hash keeps the two functions apart.
    return this.sip.hash(b, 8);
  }

  /** F(4-tuple, secret) alone. */
  hash(tuple: FourTuple): number {
    const b = this.buf;
    put32(b, 0, tuple.localAddress);
    put32(b, 4, tuple.remoteAddress);
    b[8] = tuple.localPort >>> 8;
    b[9] = tuple.localPort;
    b[10] = tuple.remotePort >>> 8;
    b[11] = tuple.remotePort;
    return this.sip.hash(b, 12);
  }
}

/** Process-wide generator used when a connection or listener is given no secret. */
export const defaultIsnGenerator = new IsnGenerator();
