// Masking keys for client frames. RFC 6455 section 5.3: each frame's key is a fresh one from
// a strong source of entropy, so that an application choosing the payload cannot predict
// the bytes on the wire (what an HTTP intermediary between host and relay would see).

import { randomFillSync } from 'node:crypto';

/** Keys per refill: one randomFillSync call serves this many frames. */
const POOL_KEYS = 1024;

export class MaskPool {
  private readonly pool = new Uint8Array(POOL_KEYS * 4);
  private at = this.pool.length;

  /** The next 4-byte key: a view into the pool, valid until the next call. */
  next(): Uint8Array {
    if (this.at === this.pool.length) {
      randomFillSync(this.pool);
      this.at = 0;
    }
    const key = this.pool.subarray(this.at, this.at + 4);
    this.at += 4;
    return key;
  }
}
