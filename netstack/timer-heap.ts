// A min-heap of deadlines with lazy invalidation, behind the stack's single timer: a
// change costs O(log n) however many connections there are.

import { MinHeap } from './heap.js';

/** Something with a deadline (ms, Infinity for none) that runs its due work in poll(). */
export interface Timed {
  readonly deadline: number;
  poll(now: number): void;
}

interface Entry {
  at: number;
  item: Timed;
}

export class TimerHeap {
  private readonly heap = new MinHeap<Entry>((a, b) => a.at < b.at);
  /** For each item, the earliest deadline it has in the heap (entries for others are stale). */
  private readonly queued = new Map<Timed, number>();

  get size(): number {
    return this.queued.size;
  }

  /** The item's deadline may have changed. */
  update(item: Timed): void {
    const d = item.deadline;
    const q = this.queued.get(item);
    if (!(d < Infinity)) return;
    if (q !== undefined && q <= d) return;
    this.queued.set(item, d);
    this.heap.push({ at: d, item });
    if (this.heap.size > 64 && this.heap.size > 4 * this.queued.size) this.compact();
  }

  remove(item: Timed): void {
    this.queued.delete(item);
  }

  /** Earliest live deadline, or Infinity. */
  next(): number {
    this.dropStale();
    return this.heap.peek()?.at ?? Infinity;
  }

  /**
   * Poll every item whose deadline is <= now. Items still due after their poll are
   * returned (a misbehaving item must not spin the loop) and requeued.
   */
  runDue(now: number): number {
    let stuck = 0;
    const again: Timed[] = [];
    for (;;) {
      this.dropStale();
      const top = this.heap.peek();
      if (top === undefined || top.at > now) break;
      this.heap.pop();
      this.queued.delete(top.item);
      const d = top.item.deadline;
      if (d <= now) {
        top.item.poll(now);
        if (top.item.deadline <= now) {
          stuck++;
          again.push(top.item);
          continue;
        }
      }
      this.update(top.item);
    }
    for (const item of again) {
      this.queued.set(item, now + 1);
      this.heap.push({ at: now + 1, item });
    }
    return stuck;
  }

  clear(): void {
    this.heap.clear();
    this.queued.clear();
  }

  private dropStale(): void {
    for (let top = this.heap.peek(); top !== undefined && this.queued.get(top.item) !== top.at; top = this.heap.peek()) {
      this.heap.pop();
    }
  }

  private compact(): void {
    const seen = new Set<Timed>();
    this.heap.retain((e) => {
      if (this.queued.get(e.item) !== e.at || seen.has(e.item)) return false;
      seen.add(e.item);
      return true;
    });
  }
}
