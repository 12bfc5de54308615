import assert from 'node:assert/strict';
import { SipHash } from '../../../netstack/tcp/siphash.js';

describe('tcp SipHash-2-4', () => {
  const key = Uint8Array.from({ length: 16 }, (_, i) => i);

  it('matches the reference vectors (key 00..0f)', () => {
    const h = new SipHash(key);
    // The paper's appendix example: message 00..0e.
    assert.deepEqual(h.hash64(Uint8Array.from({ length: 15 }, (_, i) => i)), [0xa129ca61, 0x49be45e5]);
    // First entry of the reference implementation's vector table: the empty message.
    assert.deepEqual(h.hash64(new Uint8Array(0)), [0x726fdb47, 0xdd0e0e31]);
  });

  it('depends on the key and on every byte of the message, including its length', () => {
    const h = new SipHash(key);
    const m = new Uint8Array(12);
    const base = h.hash(m);
    for (let i = 0; i < 12; i++) {
      const x = m.slice();
      x[i] ^= 1;
      assert.notEqual(h.hash(x), base, `byte ${i}`);
    }
    assert.notEqual(h.hash(m, 8), h.hash(m, 12));
    assert.notEqual(new SipHash(key.map((b) => b ^ 0x80)).hash(m), base);
  });
});
