// `imach describe <host>`: what the relay knows about one host, in one answer
// (GET /api/hosts/<name>).

import type { HostState, RelayEvent } from './events.js';
import type { HostEntry } from './host.js';

export interface HostDetails {
  name: string;
  address: string;
  declared: boolean;
  /** the manifest's spec (null for a host joined by hand) */
  spec: { provider: string; run: string; idleMs: number | null; startTimeoutMs: number; env: string[] } | null;
  state: HostState;
  /** ISO time of the last state change */
  since: string;
  /** the last transition, `<type>: <reason>` */
  reason: string;
  /** the host's last failure (failed start, or an error it reported), or null */
  lastError: { time: string; message: string } | null;
  /** this host's recent lifecycle events, oldest first */
  history: RelayEvent[];
  counters: {
    starts: number;
    uptimeMs: number;
    connections: number;
    listening: number;
    bytesIn: number;
    bytesOut: number;
    packetsIn: number;
    packetsOut: number;
    heldPackets: number;
    drops: Record<string, number>;
  };
  /** failed starts in a row, and when the next may happen (null: not backing off) */
  backoff: { failures: number; retryAt: string | null; retryInMs: number };
}

/** Events kept per host in a description. */
export const DESCRIBE_HISTORY = 20;

export function describeHost(e: HostEntry, events: readonly RelayEvent[], lastError: { time: number; message: string } | undefined, now: number): HostDetails {
  const drops: Record<string, number> = {};
  for (const [k, v] of e.drops) drops[k] = v;
  const backingOff = e.state === 'failed' && e.retryAt > now;
  const spec = e.spec;
  return {
    name: e.name,
    address: e.addressText,
    declared: spec !== null,
    // env values may hold secrets: only their names are shown
    spec: spec === null ? null : { provider: spec.provider, run: spec.run, idleMs: spec.idleMs, startTimeoutMs: spec.startTimeoutMs, env: Object.keys(spec.env) },
    state: e.state,
    since: new Date(e.since).toISOString(),
    reason: e.lastReason,
    lastError: lastError === undefined ? null : { time: new Date(lastError.time).toISOString(), message: lastError.message },
    history: events.filter((ev) => ev.host === e.name).slice(-DESCRIBE_HISTORY),
    counters: {
      starts: e.starts,
      uptimeMs: e.session !== null ? now - e.joinedAt : 0,
      connections: e.established,
      listening: e.listening,
      bytesIn: e.bytesIn,
      bytesOut: e.bytesOut,
      packetsIn: e.packetsIn,
      packetsOut: e.packetsOut,
      heldPackets: e.held.length,
      drops,
    },
    backoff: { failures: e.failures, retryAt: backingOff ? new Date(e.retryAt).toISOString() : null, retryInMs: backingOff ? e.retryAt - now : 0 },
  };
}
