// Ephemeral port selection, RFC 6056 section 3.3.3 (algorithm 3, simple hash-based): each
// destination gets a keyed offset into the range and one shared counter walks from there.
// Successive connections to one destination take successive ports, so a port comes back
// only after the whole range has been used, long after its previous connection's
// TIME-WAIT would normally matter; other destinations see no pattern to predict.

import { randomBytes } from 'node:crypto';
import { SipHash } from './siphash.js';

export class EphemeralPorts {
  readonly first: number;
  readonly last: number;
  private readonly sip: SipHash;
  private readonly buf = new Uint8Array(10);
  private next: number;

  constructor(range: readonly [number, number], secret?: Uint8Array) {
    const [first, last] = range;
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last > 0xffff || first > last) {
      throw new RangeError(`ephemeral port range must be 1..65535 with first <= last, got ${first}-${last}`);
    }
    this.first = first;
    this.last = last;
    const key = secret ?? randomBytes(16);
    this.sip = new SipHash(key);
    this.next = key[0] | (key[1] << 8);
  }

  /** RFC 6056 section 3.3.3: F(local address, remote address, remote port, secret). */
  offset(localAddress: number, remoteAddress: number, remotePort: number): number {
    const b = this.buf;
    b[0] = localAddress >>> 24;
    b[1] = localAddress >>> 16;
    b[2] = localAddress >>> 8;
    b[3] = localAddress;
    b[4] = remoteAddress >>> 24;
    b[5] = remoteAddress >>> 16;
    b[6] = remoteAddress >>> 8;
    b[7] = remoteAddress;
    b[8] = remotePort >>> 8;
    b[9] = remotePort;
    return this.sip.hash(b);
  }

  /** A port for this destination that `inUse` does not reject, or 0 if the range is exhausted. */
  pick(localAddress: number, remoteAddress: number, remotePort: number, inUse: (port: number) => boolean): number {
    const span = this.last - this.first + 1;
    const offset = this.offset(localAddress, remoteAddress, remotePort) % span;
    for (let count = 0; count < span; count++) {
      const port = this.first + ((offset + this.next) % span);
      this.next = (this.next + 1) % span;
      if (!inUse(port)) return port;
    }
    return 0;
  }
}
