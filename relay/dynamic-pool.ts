// Hosts joined by hand (`imach host`, `imach join`): addresses from the upper half of the
// network, bounded in number; one gone longer than dynamicForgetMs, or gone longest when
// the pool is full, is forgotten. One still connected or in its reconnect window never is.

import { formatAddress, isHostAddress, type Network } from './address.js';
import { HostEntry } from './host.js';
import type { HostTable } from './host-table.js';
import type { TokenBucket } from './session.js';

export interface DynamicPoolEnv {
  readonly table: HostTable;
  readonly net: Network;
  readonly limits: { readonly maxDynamicHosts: number; readonly dynamicForgetMs: number };
  newBucket(now: number): TokenBucket;
  /** the host has been taken out of the table: tell whoever waits for it */
  forgotten(entry: HostEntry, reason: string, now: number): void;
}

export class DynamicPool {
  private nextAddress: number;
  private readonly low: number;

  constructor(private readonly env: DynamicPoolEnv) {
    this.low = env.net.base + Math.floor(env.net.size / 2) + 1;
    this.nextAddress = this.low;
  }

  /** Whether a new hand-joined host fits, forgetting the one gone longest if the pool is full. */
  makeRoom(now: number): boolean {
    if (this.env.table.dynamicCount < this.env.limits.maxDynamicHosts) return true;
    let oldest: HostEntry | null = null;
    for (const e of this.env.table.entries()) {
      if (isGone(e) && (oldest === null || e.since < oldest.since)) oldest = e;
    }
    if (oldest === null) return false;
    this.forget(oldest, `the pool of hand-joined hosts is full; gone for ${Math.round(Math.max(0, now - oldest.since) / 1000)}s`, now);
    return true;
  }

  /** A new entry for `name` (not in the table) with a free address, or why there is none. */
  create(name: string, now: number): HostEntry | string {
    const { table, net } = this.env;
    if (table.dynamicCount >= this.env.limits.maxDynamicHosts) return 'dynamic address pool is full';
    // searched round from the last address given out, so that forgotten hosts' addresses are used again
    const span = net.broadcast - this.low;
    let addr = -1;
    for (let i = 0; i < span; i++) {
      const a = this.low + ((this.nextAddress - this.low + i) % span);
      if (!table.hasAddress(a) && isHostAddress(net, a)) {
        addr = a;
        break;
      }
    }
    if (addr < 0) return 'dynamic address pool is full';
    this.nextAddress = addr + 1;
    const e = new HostEntry(name, addr, formatAddress(addr), null, this.env.newBucket(now), now);
    table.add(e);
    return e;
  }

  /** Forget the hosts gone longer than dynamicForgetMs (the relay's tick). */
  sweep(now: number): void {
    if (this.env.table.dynamicCount === 0) return;
    for (const e of [...this.env.table.entries()]) {
      if (isGone(e) && now - e.since >= this.env.limits.dynamicForgetMs) this.forget(e, `gone for ${Math.round((now - e.since) / 1000)}s`, now);
    }
  }

  private forget(e: HostEntry, reason: string, now: number): void {
    this.env.table.remove(e);
    this.env.forgotten(e, reason, now);
  }
}

/** A host joined by hand that has left for good (its reconnect window is over). */
function isGone(e: HostEntry): boolean {
  return e.spec === null && e.session === null && e.state === 'cold' && e.held.length === 0;
}
