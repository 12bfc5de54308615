// The relay's table of hosts: by name, by address, and the routing table of the fast path.
// The only writer of a host's state, session and held packets, so that the route
// invariant lives in one place: a host is in `routes` exactly when it has a session and is
// not draining (a draining host's packets take the slow path, where new connections wait).

import type { HostState } from './events.js';
import type { HostEntry } from './host.js';
import type { RelaySession } from './session.js';

/** The fields of HostEntry that only this table writes. */
interface HostEntryFields {
  state: HostState;
  since: number;
  session: RelaySession | null;
  held: Uint8Array[];
  heldBytes: number;
}

function fields(e: HostEntry): HostEntryFields {
  return e as unknown as HostEntryFields;
}

export interface HeldLimits {
  readonly heldPackets: number;
  readonly heldBytes: number;
}

export class HostTable {
  private readonly names = new Map<string, HostEntry>();
  private readonly addresses = new Map<number, HostEntry>();
  /** destination address -> host with a session that is not draining (the fast path) */
  private readonly routes = new Map<number, HostEntry>();
  private dynamic = 0;

  constructor(private readonly heldLimits: HeldLimits) {}

  get size(): number {
    return this.names.size;
  }

  /** hosts joined by hand (not in the manifest) in the table */
  get dynamicCount(): number {
    return this.dynamic;
  }

  byName(name: string): HostEntry | undefined {
    return this.names.get(name);
  }

  byAddress(address: number): HostEntry | undefined {
    return this.addresses.get(address);
  }

  hasAddress(address: number): boolean {
    return this.addresses.has(address);
  }

  /** The connected, not draining host at `address` (the fast path's lookup). */
  route(address: number): HostEntry | undefined {
    return this.routes.get(address);
  }

  entries(): IterableIterator<HostEntry> {
    return this.names.values();
  }

  /** Hosts on the fast path (connected and not draining). */
  routed(): IterableIterator<HostEntry> {
    return this.routes.values();
  }

  add(e: HostEntry): void {
    this.names.set(e.name, e);
    this.addresses.set(e.address, e);
    if (e.spec === null) this.dynamic++;
    this.syncRoute(e);
  }

  remove(e: HostEntry): void {
    if (this.names.get(e.name) !== e) return;
    this.names.delete(e.name);
    this.addresses.delete(e.address);
    this.routes.delete(e.address);
    if (e.spec === null) this.dynamic--;
  }

  /** Change the host's state (and `since` if it differs). */
  setState(e: HostEntry, state: HostState, now: number): void {
    const f = fields(e);
    if (f.state !== state) f.since = now;
    f.state = state;
    this.syncRoute(e);
  }

  /** The host's session is now `session`; returns the one it replaces (null: none). */
  attach(e: HostEntry, session: RelaySession): RelaySession | null {
    const f = fields(e);
    const old = f.session;
    f.session = session;
    this.syncRoute(e);
    return old;
  }

  /** `session` closed: if it is still the host's, the host has none now. Returns whether it was. */
  detach(e: HostEntry, session: RelaySession): boolean {
    const f = fields(e);
    if (f.session !== session) return false;
    f.session = null;
    this.syncRoute(e);
    return true;
  }

  /** Keep a copy of `packet` (the frame it came in may be large) within the held bounds. */
  hold(e: HostEntry, packet: Uint8Array): boolean {
    const f = fields(e);
    if (f.held.length >= this.heldLimits.heldPackets || f.heldBytes + packet.length > this.heldLimits.heldBytes) return false;
    f.held.push(new Uint8Array(packet));
    f.heldBytes += packet.length;
    return true;
  }

  /** The held packets, oldest first; the host holds none afterwards. */
  takeHeld(e: HostEntry): Uint8Array[] {
    const f = fields(e);
    const held = f.held;
    f.held = [];
    f.heldBytes = 0;
    return held;
  }

  private syncRoute(e: HostEntry): void {
    if (this.addresses.get(e.address) !== e) return;
    if (e.session !== null && e.state !== 'draining') this.routes.set(e.address, e);
    else this.routes.delete(e.address);
  }
}
