import assert from 'node:assert/strict';
import { MinHeap } from '../../netstack/heap.js';
import { mulberry32 } from '../../netstack/link/prng.js';

describe('MinHeap', () => {
  it('pops in order of `before`, ties in insertion order when the relation says so', () => {
    const rnd = mulberry32(3);
    const h = new MinHeap<{ at: number; seq: number }>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));
    const all: { at: number; seq: number }[] = [];
    for (let i = 0; i < 1000; i++) {
      const e = { at: Math.floor(rnd() * 50), seq: i };
      all.push(e);
      h.push(e);
    }
    const expected = [...all].sort((a, b) => a.at - b.at || a.seq - b.seq);
    const got: { at: number; seq: number }[] = [];
    for (let e = h.pop(); e !== undefined; e = h.pop()) got.push(e);
    assert.deepEqual(got, expected);
    assert.equal(h.size, 0);
    assert.equal(h.peek(), undefined);
  });

  it('retain keeps only the accepted items, still in order', () => {
    const h = new MinHeap<number>((a, b) => a < b);
    for (const n of [9, 3, 7, 1, 8, 2]) h.push(n);
    h.retain((n) => n % 2 === 1);
    assert.equal(h.size, 4);
    assert.deepEqual([h.pop(), h.pop(), h.pop(), h.pop(), h.pop()], [1, 3, 7, 9, undefined]);
  });
});
