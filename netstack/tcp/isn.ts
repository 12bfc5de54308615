// Initial sequence numbers per RFC 6528 section 3: ISN = M + F(4-tuple, secret), where
// M is a 4-microsecond clock derived from the injected `now` and F a keyed hash.

import { createHmac, randomBytes } from 'node:crypto';
import type { FourTuple } from './types.js';

export class IsnGenerator {
  private readonly secret: Uint8Array;
  private readonly buf = Buffer.alloc(12);

  constructor(secret?: Uint8Array) {
    this.secret = secret ?? randomBytes(16);
  }

  /** ISN for `tuple` at time `now` (ms). */
  isn(tuple: FourTuple, now: number): number {
    const h = this.hash(tuple);
    // RFC 6528 section 3: M ticks every 4 microseconds, i.e. 250 times per ms.
    return (h + Math.floor(now * 250)) >>> 0;
  }

  /** F(4-tuple, secret) alone, e.g. for a per-connection timestamp offset. */
  hash(tuple: FourTuple): number {
    const b = this.buf;
    b.writeUInt32BE(tuple.localAddress >>> 0, 0);
    b.writeUInt32BE(tuple.remoteAddress >>> 0, 4);
    b.writeUInt16BE(tuple.localPort & 0xffff, 8);
    b.writeUInt16BE(tuple.remotePort & 0xffff, 10);
    return createHmac('sha256', this.secret).update(b).digest().readUInt32BE(0);
  }
}

/** Process-wide generator used when a connection or listener is given no secret. */
export const defaultIsnGenerator = new IsnGenerator();
