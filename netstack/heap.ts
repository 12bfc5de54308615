// A binary min-heap ordered by a `before` relation: the one heap behind the stack's timer
// (TimerHeap), the VirtualClock and the memory link's in-flight queue.

export class MinHeap<T> {
  private items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  /** The least item, or undefined when empty. */
  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const h = this.items;
    let i = h.length;
    h.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(item, h[p])) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = item;
  }

  pop(): T | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    const n = h.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && this.before(h[r], h[l]) ? r : l;
        if (!this.before(h[m], last)) break;
        h[i] = h[m];
        i = m;
      }
      h[i] = last;
    }
    return top;
  }

  /** Keep only the items `keep` accepts (used to drop lazily invalidated entries). */
  retain(keep: (item: T) => boolean): void {
    const live = this.items.filter(keep);
    this.items = [];
    for (const item of live) this.push(item);
  }

  clear(): void {
    this.items = [];
  }
}
