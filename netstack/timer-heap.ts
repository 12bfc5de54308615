// A min-heap of deadlines with lazy invalidation, behind the stack's single timer: a
// change costs O(log n) however many connections there are.

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
  private heap: Entry[] = [];
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
    this.push({ at: d, item });
    if (this.heap.length > 64 && this.heap.length > 4 * this.queued.size) this.compact();
  }

  remove(item: Timed): void {
    this.queued.delete(item);
  }

  /** Earliest live deadline, or Infinity. */
  next(): number {
    this.dropStale();
    return this.heap.length > 0 ? this.heap[0].at : Infinity;
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
      const top = this.heap[0];
      if (top === undefined || top.at > now) break;
      this.pop();
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
      this.push({ at: now + 1, item });
    }
    return stuck;
  }

  clear(): void {
    this.heap = [];
    this.queued.clear();
  }

  private dropStale(): void {
    const h = this.heap;
    while (h.length > 0 && this.queued.get(h[0].item) !== h[0].at) this.pop();
  }

  private compact(): void {
    const live = this.heap.filter((e) => this.queued.get(e.item) === e.at);
    const seen = new Set<Timed>();
    this.heap = [];
    for (const e of live) {
      if (seen.has(e.item)) continue;
      seen.add(e.item);
      this.push(e);
    }
  }

  private push(e: Entry): void {
    const h = this.heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at <= e.at) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = e;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    const n = h.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && h[r].at < h[l].at ? r : l;
      if (h[m].at >= last.at) break;
      h[i] = h[m];
      i = m;
    }
    h[i] = last;
  }
}
