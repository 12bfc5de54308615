// Deterministic bulk data for the interop tests: AES-128-CTR over zeros, keyed by a seed,
// so a sender, a receiver and the test can each produce or check the same bytes without
// keeping 64 MiB in memory.

import { createCipheriv, createHash } from 'node:crypto';
import type { Writable } from 'node:stream';

const CHUNK = 64 * 1024;

/** The bytes of (bytes, seed), chunk by chunk. */
export function* dataChunks(bytes: number, seed: number): Generator<Buffer> {
  const key = createHash('sha256').update(`imach-interop-${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  let left = bytes;
  while (left > 0) {
    const n = Math.min(CHUNK, left);
    yield cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n));
    left -= n;
  }
}

export function expectedSha256(bytes: number, seed: number): string {
  const h = createHash('sha256');
  for (const c of dataChunks(bytes, seed)) h.update(c);
  return h.digest('hex');
}

/** Write (bytes, seed) to `out` with backpressure; resolves with the SHA-256 of what was written. */
export async function writeData(out: Writable, bytes: number, seed: number): Promise<string> {
  const h = createHash('sha256');
  for (const c of dataChunks(bytes, seed)) {
    h.update(c);
    if (!out.write(c)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          out.off('close', onClose);
          resolve();
        };
        const onClose = () => {
          out.off('drain', onDrain);
          reject(new Error('closed while writing'));
        };
        out.once('drain', onDrain);
        out.once('close', onClose);
      });
    }
  }
  return h.digest('hex');
}
