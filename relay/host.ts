// The relay's record of one host (declared in the manifest, or joined by hand).

import type { HostState } from './events.js';
import type { HostSpec } from './manifest.js';
import type { HostInstance } from './provider.js';
import type { RelaySession, TokenBucket } from './session.js';

/**
 * State, session and held packets are read-only here: only the HostTable changes them, so
 * that the routing table always follows them. The other fields are the lifecycle's (start,
 * release and launch bookkeeping) and the router's (traffic counters).
 */
export class HostEntry {
  readonly state: HostState = 'cold';
  /** when `state` last changed (ms, the relay's clock) */
  readonly since: number;
  readonly session: RelaySession | null = null;
  /** packets waiting for the host to join (copies) */
  readonly held: readonly Uint8Array[] = [];
  readonly heldBytes: number = 0;
  /** what the host's stack last reported */
  established = 0;
  listening = 0;
  reportedIdleMs = 0;
  activityAt = 0;
  /** last packet to or from the host seen by the relay (ms, Date.now) */
  lastTrafficAt = 0;
  bytesIn = 0;
  bytesOut = 0;
  packetsIn = 0;
  packetsOut = 0;
  starts = 0;
  lastReason = '';
  joinedAt = 0;
  startedAt = 0;
  instance: HostInstance | null = null;
  /** start deadline, reconnect window end or drain deadline, by state */
  deadline = 0;
  failures = 0;
  retryAt = 0;
  /** why the host is going away (drain reason or its `released` reason) */
  releaseReason: string | null = null;
  /** an allocation signal arrived while draining: start again once gone */
  restartReason: string | null = null;
  /** bumps on every start so that late callbacks of an old instance are ignored */
  generation = 0;
  /**
   * The token nonce of this relay's current launch of the host (null: none). A session that
   * joined with it belongs to `instance`; any other session does not (a host from before a
   * relay restart, or one joined by hand).
   */
  launchNonce: string | null = null;
  /** nonces of this relay's earlier launches (bounded): their late joins are refused */
  readonly retiredNonces: string[] = [];
  readonly drops = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly address: number,
    readonly addressText: string,
    readonly spec: HostSpec | null,
    readonly bucket: TokenBucket,
    now: number,
  ) {
    this.since = now;
  }

  get declared(): boolean {
    return this.spec !== null;
  }
}
