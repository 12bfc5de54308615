// Drop and event counters by reason: global, and per host (HostEntry.drops).

import type { HostEntry } from './host.js';

export class Counters {
  private readonly global = new Map<string, number>();

  count(reason: string, entry: HostEntry | null, n = 1): void {
    this.global.set(reason, (this.global.get(reason) ?? 0) + n);
    if (entry !== null) entry.drops.set(reason, (entry.drops.get(reason) ?? 0) + n);
  }

  entries(): IterableIterator<[string, number]> {
    return this.global.entries();
  }
}
