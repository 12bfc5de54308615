// Imaginary Machines lifecycle: allocation signals start declared hosts, idleness drains
// them. States: cold -> starting -> running -> draining -> cold, and failed (retried with
// backoff on the next signal).

import type { HostState } from './events.js';
import type { HostEntry } from './host.js';
import type { Logger } from './log.js';
import type { Launch } from './protocol.js';
import type { HostInstance, Provider } from './provider.js';

export interface LifecycleLimits {
  /** grace given to a draining host's open connections */
  drainGraceMs: number;
  /** how long packets for a running host whose session dropped are held for its reconnect */
  reconnectHoldMs: number;
  /** first retry delay after a failed start; doubles up to startRetryMaxMs */
  startRetryBaseMs: number;
  startRetryMaxMs: number;
  /** after the session of a released host closes, stop its instance if it has not ended */
  stopLingerMs: number;
  /**
   * After the relay starts, hold packets for cold hosts this long before starting them, so
   * that hosts still running from before a relay restart can reconnect first (0: off).
   * Packets that cannot start a host (see isAllocationSignal) are held for
   * max(startGraceMs, reconnectHoldMs) after the relay starts, whatever this is.
   */
  startGraceMs: number;
}

/** What the controller needs from the relay around it. */
export interface LifecycleEnv {
  readonly providers: Record<string, Provider>;
  readonly mtu: number;
  readonly limits: LifecycleLimits;
  readonly logger: Logger;
  relayUrl(): string;
  /** SHA-256 fingerprint of the relay's TLS certificate, pinned in launches (none without TLS) */
  relayCertSha256?(): string | undefined;
  /** a launch token for the host and its nonce (`n`) */
  mintLaunchToken(host: string): { token: string; nonce: string };
  /** record a transition: sets state, since, lastReason, pushes the event */
  transition(entry: HostEntry, state: HostState, type: string, reason: string): void;
  /** take the host off the fast path (its packets go through the lifecycle) */
  unroute(entry: HostEntry): void;
  /** deliver the held packets to the (now connected) host */
  flushHeld(entry: HostEntry): void;
  /** answer the held packets' senders with ICMP host unreachable; count them under reason */
  rejectHeld(entry: HostEntry, reason: string): void;
  /** a description of the first held allocation signal, for a restart's reason (null: none) */
  describeHeld(entry: HostEntry): string | null;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Nonces of earlier launches remembered per host, to refuse their late joins. */
const RETIRED_NONCES = 8;

export class LifecycleController {
  private closing = false;
  private readonly graceUntil: number;
  /** until then, packets that cannot start a host are held for cold hosts (see holdsStale) */
  private readonly rejoinUntil: number;
  private readonly lingering = new Set<HostInstance>();

  constructor(private readonly env: LifecycleEnv) {
    const now = Date.now();
    this.graceUntil = now + env.limits.startGraceMs;
    this.rejoinUntil = now + Math.max(env.limits.startGraceMs, env.limits.reconnectHoldMs);
  }

  /**
   * An allocation signal for a declared host without a session (its packet, if any, is
   * already held). Returns false if the host cannot take packets now (failed, in backoff).
   */
  signal(entry: HostEntry, reason: string, now: number): boolean {
    if (entry.spec === null || this.closing) return false;
    switch (entry.state) {
      case 'cold':
        if (now < this.graceUntil) entry.restartReason ??= reason;
        else this.start(entry, reason, now);
        return true;
      case 'failed':
        if (now < entry.retryAt) return false;
        this.start(entry, reason, now);
        return true;
      case 'draining':
        entry.restartReason ??= reason;
        return true;
      default:
        return true;
    }
  }

  /** Whether a packet for this host (no session) should be held rather than refused. */
  canHold(entry: HostEntry, now: number): boolean {
    if (this.closing) return false;
    if (entry.spec === null) return entry.state === 'running';
    return entry.state !== 'failed' || now >= entry.retryAt;
  }

  /**
   * Whether a packet that cannot start a host (a TCP segment other than a SYN, an ICMP error
   * or reply) should be held for this declared host without a session: while an instance
   * starts or reconnects, and while the host is cold just after the relay started (an
   * instance from before a relay restart may still reconnect and own that connection).
   * Otherwise nothing could use it; the caller drops it and answers as a router would.
   */
  holdsStale(entry: HostEntry, now: number): boolean {
    if (this.closing) return false;
    switch (entry.state) {
      case 'starting':
      case 'running':
        return true;
      case 'cold':
        return now < this.rejoinUntil;
      default:
        return false;
    }
  }

  /** Whether `nonce` is from a launch of this relay that has been superseded or ended. */
  isRetired(entry: HostEntry, nonce: string): boolean {
    return entry.retiredNonces.includes(nonce);
  }

  /** The current launch is over: a late join with its token must not come back as the host. */
  private retireLaunch(entry: HostEntry): void {
    if (entry.launchNonce === null) return;
    entry.retiredNonces.push(entry.launchNonce);
    if (entry.retiredNonces.length > RETIRED_NONCES) entry.retiredNonces.shift();
    entry.launchNonce = null;
  }

  private start(entry: HostEntry, reason: string, now: number): void {
    const spec = entry.spec!;
    this.retireLaunch(entry);
    const gen = ++entry.generation;
    entry.starts++;
    entry.startedAt = now;
    entry.deadline = now + spec.startTimeoutMs;
    entry.releaseReason = null;
    entry.restartReason = null;
    entry.established = 0;
    entry.listening = 0;
    this.env.transition(entry, 'starting', 'started', reason);
    const provider = this.env.providers[spec.provider];
    if (provider === undefined) {
      this.fail(entry, `no provider '${spec.provider}' configured`, now);
      return;
    }
    const { token, nonce } = this.env.mintLaunchToken(entry.name);
    entry.launchNonce = nonce;
    const launch: Launch = {
      host: entry.name,
      relay: this.env.relayUrl(),
      token,
      run: spec.run,
      env: { ...spec.env },
      idleMs: spec.idleMs,
      mtu: this.env.mtu,
    };
    const pin = this.env.relayCertSha256?.();
    if (pin !== undefined) launch.relayCertSha256 = pin;
    let started: Promise<HostInstance>;
    try {
      started = provider.start(launch);
    } catch (e) {
      started = Promise.reject(e);
    }
    started.then(
      (instance) => {
        if (gen !== entry.generation || this.closing) {
          void instance.stop().catch(() => {});
          return;
        }
        entry.instance = instance;
        instance.exited.then(
          (r) => this.onExit(entry, gen, nonce, r.code, r.reason),
          () => this.onExit(entry, gen, nonce, null, 'unknown'),
        );
      },
      (e: unknown) => {
        if (gen !== entry.generation || entry.state !== 'starting') return;
        this.fail(entry, `provider ${provider.name}: ${e instanceof Error ? e.message : String(e)}`, Date.now());
      },
    );
  }

  private fail(entry: HostEntry, reason: string, now: number): void {
    entry.generation++;
    this.retireLaunch(entry);
    entry.failures++;
    const backoff = Math.min(this.env.limits.startRetryMaxMs, this.env.limits.startRetryBaseMs * 2 ** Math.min(20, entry.failures - 1));
    entry.retryAt = now + backoff;
    this.env.transition(entry, 'failed', 'failed', reason);
    this.env.rejectHeld(entry, 'start-failed');
    this.stopInstance(entry, 0);
    if (entry.session !== null) entry.session.close(1011, 'start failed');
  }

  private onExit(entry: HostEntry, gen: number, nonce: string, code: number | null, why: string): void {
    if (gen !== entry.generation) return;
    entry.instance = null;
    const how = code !== null ? `exited with code ${code}` : `exited (${why})`;
    const now = Date.now();
    if (entry.state === 'starting') {
      this.fail(entry, `${how} before joining`, now);
      return;
    }
    if (entry.session !== null && entry.session.nonce !== nonce) {
      // the session is not this instance's (a host from before a relay restart, or one
      // joined by hand): it lives on
      if (entry.launchNonce === nonce) this.retireLaunch(entry);
      return;
    }
    if (entry.session !== null) {
      // the process is gone; its socket will close on its own, make sure it does
      entry.releaseReason ??= how;
      if (entry.state === 'running') this.toDraining(entry, now);
      entry.session.close(1000, 'instance exited');
      return;
    }
    if (entry.state === 'running' || entry.state === 'draining') this.goCold(entry, entry.releaseReason ?? how, now);
  }

  /**
   * A session opened for the host with a token whose nonce is `nonce`: `kind` says whether
   * it replaced or restored one.
   */
  onJoin(entry: HostEntry, kind: 'new' | 'replaced' | 'reconnect', nonce: string, now: number): void {
    entry.joinedAt = now;
    entry.lastTrafficAt = now;
    entry.activityAt = 0;
    if (entry.launchNonce !== null && nonce !== entry.launchNonce) {
      // A host this relay did not start (it ran before a relay restart, or joined by hand)
      // holds the connections that matter: it is the host now; the instance this relay
      // started is stopped, and its exit ends nothing.
      const was = entry.state;
      entry.generation++;
      this.retireLaunch(entry);
      this.stopInstance(entry, 0);
      entry.failures = 0;
      entry.restartReason = null;
      entry.releaseReason = null;
      this.env.transition(entry, 'running', 'joined', `joined without a start; stopped the instance that was ${was}`);
    } else if (kind !== 'new') {
      this.env.transition(entry, entry.state, 'reconnected', kind === 'replaced' ? 'a new session replaced the old one' : 'session restored');
    } else if (entry.state === 'starting') {
      entry.failures = 0;
      this.env.transition(entry, 'running', 'joined', `joined in ${Math.max(0, Math.round(now - entry.startedAt))}ms`);
    } else if (entry.state !== 'running' && entry.state !== 'draining') {
      entry.failures = 0;
      entry.generation++;
      entry.restartReason = null;
      this.env.transition(entry, 'running', 'joined', entry.spec === null ? 'joined by hand' : 'joined without a start');
    }
    if (entry.state === 'running') entry.deadline = 0;
    this.env.flushHeld(entry);
  }

  onSessionClosed(entry: HostEntry, why: string, now: number): void {
    if (entry.state === 'draining') {
      this.goCold(entry, entry.releaseReason ?? why, now);
    } else if (entry.state === 'running') {
      if (this.closing) return;
      entry.deadline = now + this.env.limits.reconnectHoldMs;
      this.env.transition(entry, 'running', 'disconnected', why);
    }
  }

  onActivity(entry: HostEntry, established: number, listening: number, idleMs: number, now: number): void {
    entry.established = established;
    entry.listening = listening;
    entry.reportedIdleMs = idleMs;
    entry.activityAt = now;
  }

  /** The host said it is ending on its own. */
  onReleased(entry: HostEntry, reason: string, now: number): void {
    entry.releaseReason = reason;
    if (entry.state === 'running') this.toDraining(entry, now);
    entry.session?.close(1000, 'released');
  }

  tick(entries: Iterable<HostEntry>, now: number): void {
    if (this.closing) return;
    for (const e of entries) {
      switch (e.state) {
        case 'starting':
          if (now >= e.deadline) this.fail(e, `did not join within ${formatDuration(e.spec!.startTimeoutMs)}`, now);
          break;
        case 'running':
          if (e.session === null) {
            if (e.deadline > 0 && now >= e.deadline) {
              if (e.spec === null) {
                this.env.transition(e, 'cold', 'released', 'session lost');
                this.env.rejectHeld(e, 'host-down');
              } else {
                this.goCold(e, 'session lost', now);
              }
            }
          } else if (e.spec !== null && e.spec.idleMs !== null) {
            const hostLast = e.activityAt > 0 ? e.activityAt - e.reportedIdleMs : 0;
            const idleFor = now - Math.max(e.lastTrafficAt, hostLast, e.joinedAt);
            if (e.established === 0 && idleFor >= e.spec.idleMs) this.drain(e, `idle ${formatDuration(e.spec.idleMs)}`, now);
          }
          break;
        case 'cold':
          if (e.restartReason !== null && e.spec !== null && now >= this.graceUntil) this.start(e, e.restartReason, now);
          else if (e.restartReason === null && e.held.length > 0 && now >= this.rejoinUntil) this.env.rejectHeld(e, 'stale-packet');
          break;
        case 'draining':
          if (now >= e.deadline) {
            if (e.session !== null) e.session.close(1000, 'drain deadline', 500);
            else this.goCold(e, e.releaseReason ?? 'drain deadline', now);
          }
          break;
        default:
          break;
      }
    }
  }

  drain(entry: HostEntry, reason: string, now: number): void {
    const graceMs = this.env.limits.drainGraceMs;
    entry.releaseReason = reason;
    entry.deadline = now + graceMs + this.env.limits.stopLingerMs;
    entry.session?.sendControl({ type: 'drain', reason, graceMs });
    this.env.transition(entry, 'draining', 'drain', reason);
  }

  /** Draining without a drain message or event: the host is ending on its own. */
  private toDraining(entry: HostEntry, now: number): void {
    entry.state = 'draining';
    entry.since = now;
    entry.deadline = now + this.env.limits.stopLingerMs;
    this.env.unroute(entry);
  }

  private goCold(entry: HostEntry, reason: string, now: number): void {
    entry.releaseReason = null;
    entry.deadline = 0;
    entry.established = 0;
    entry.listening = 0;
    this.retireLaunch(entry);
    this.env.transition(entry, 'cold', 'released', reason);
    this.stopInstance(entry, this.env.limits.stopLingerMs);
    const restart = entry.restartReason ?? this.env.describeHeld(entry);
    entry.restartReason = null;
    if (restart !== null && !this.closing) this.start(entry, restart, now);
    // held segments of the connections of the instance that went away: none can start one
    else if (entry.held.length > 0 && !this.holdsStale(entry, now)) this.env.rejectHeld(entry, 'stale-packet');
  }

  private stopInstance(entry: HostEntry, afterMs: number): void {
    const instance = entry.instance;
    if (instance === null) return;
    entry.instance = null;
    // kept until it has ended, so that a relay shutdown meanwhile still stops it
    this.lingering.add(instance);
    let exited = false;
    void instance.exited.then(() => {
      exited = true;
      this.lingering.delete(instance);
    });
    const stop = (): void => {
      if (exited) return;
      void instance.stop().then(
        () => this.lingering.delete(instance),
        (e: unknown) => this.env.logger.warn('stop failed', { host: entry.name, error: String(e) }),
      );
    };
    if (afterMs <= 0) stop();
    else setTimeout(stop, afterMs).unref();
  }

  /** Stop every instance (relay shutdown). */
  async stopAll(entries: Iterable<HostEntry>, timeoutMs = 5000): Promise<void> {
    this.closing = true;
    const waits: Promise<unknown>[] = [...this.lingering].map((i) => i.stop().catch(() => {}));
    this.lingering.clear();
    for (const e of entries) {
      e.generation++;
      const inst = e.instance;
      e.instance = null;
      if (inst !== null) waits.push(inst.stop().catch(() => {}));
    }
    if (waits.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(waits), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}
