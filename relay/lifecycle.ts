// Imaginary Machines lifecycle: allocation signals start declared hosts, idleness drains
// them. States: cold -> starting -> running -> draining -> cold, and failed (retried with
// backoff on the next signal). Admission (what happens to a packet for a host that is not
// on the fast path) is decided here, by admit(). Time is passed in: the controller reads
// no clock and starts no timer; the relay calls tick(now) (deadlines, lingering stops).

import { PROTO_ICMP, PROTO_TCP } from '../netstack/wire/ipv4.js';
import { RST } from '../netstack/wire/tcp.js';
import type { HostState } from './events.js';
import type { HostEntry } from './host.js';
import type { HostTable } from './host-table.js';
import type { Logger } from './log.js';
import { describePacket, isAllocationSignal, isIcmpError, isTcpSynOnly } from './packet.js';
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
  /** the one writer of host state, session and held packets */
  readonly table: HostTable;
  /** the relay's clock (ms), read only in provider callbacks, which come without a time */
  now(): number;
  /** the URL a host started by `provider` dials (a remote provider's may differ from the listen address) */
  relayUrl(provider: string): string;
  /** SHA-256 fingerprint of the relay's TLS certificate, pinned in launches (none without TLS) */
  relayCertSha256?(): string | undefined;
  /** a launch token for the host and its nonce (`n`) */
  mintLaunchToken(host: string, now: number): { token: string; nonce: string };
  /** record an event (the host's state is already the new one) */
  record(entry: HostEntry, type: string, reason: string, now: number): void;
  /** deliver the held packets (taken from the table) to the now connected host */
  deliverHeld(entry: HostEntry, packets: Uint8Array[], now: number): void;
  /** refuse the held packets (taken from the table): count them under reason, answer each as refusalAnswer says */
  refuseHeld(entry: HostEntry, packets: Uint8Array[], reason: Refusal, now: number): void;
}

/** Why a packet for a host without a session is not held: drop counter names. */
export type Refusal = 'start-failed' | 'host-down' | 'stale-packet';

/** How the relay answers a refused packet's sender. */
export type RefusalAnswer =
  /** ICMP host unreachable from the gateway, as a router with no host for it would */
  | 'icmp-unreachable'
  /** a TCP RST from the host's address (RFC 9293 section 3.10.7.1), as a rebooted machine would */
  | 'rst'
  /** nothing (an RST, an ICMP error) */
  | 'none';

/** What admit() decided for a packet. */
export type Admission =
  | { readonly action: 'deliver' }
  | { readonly action: 'hold' }
  /** hold it and start the host (a draining host: once it has gone) */
  | { readonly action: 'hold-and-start'; readonly reason: string }
  | { readonly action: 'refuse'; readonly reason: Refusal; readonly answer: RefusalAnswer };

const DELIVER: Admission = { action: 'deliver' };
const HOLD: Admission = { action: 'hold' };

/**
 * How to answer a refused packet for `entry`. A declared host with no instance that could
 * own a TCP connection is gone like a rebooted machine: a segment of that connection (not
 * a SYN, not a RST) gets a RST, so the peer fails at once. A host joined by hand may come
 * back with its connections (a laptop's kernel keeps them), so it gets ICMP unreachable.
 */
export function refusalAnswer(entry: HostEntry, packet: Uint8Array): RefusalAnswer {
  const proto = packet[9];
  if (proto === PROTO_ICMP && isIcmpError(packet)) return 'none';
  if (proto !== PROTO_TCP) return 'icmp-unreachable';
  const hl = (packet[0] & 0x0f) << 2;
  if (packet.length < hl + 14) return 'none';
  if ((packet[hl + 13] & RST) !== 0) return 'none';
  if (entry.spec === null || isTcpSynOnly(packet)) return 'icmp-unreachable';
  return 'rst';
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Nonces of earlier launches remembered per host, to refuse their late joins. */
const RETIRED_NONCES = 8;

/** An instance being stopped, kept until it has ended so that a relay shutdown still stops it. */
interface Lingering {
  readonly host: string;
  /** when to stop it if it has not ended on its own */
  readonly stopAt: number;
  stopping: boolean;
}

export class LifecycleController {
  private closing = false;
  private readonly graceUntil: number;
  /** until then, packets that cannot start a host are held for cold hosts (see holdsStale) */
  private readonly rejoinUntil: number;
  private readonly lingering = new Map<HostInstance, Lingering>();
  private readonly table: HostTable;

  /** `now`: when the relay started. */
  constructor(
    private readonly env: LifecycleEnv,
    now: number,
  ) {
    this.table = env.table;
    this.graceUntil = now + env.limits.startGraceMs;
    this.rejoinUntil = now + Math.max(env.limits.startGraceMs, env.limits.reconnectHoldMs);
  }

  /**
   * What to do with a packet for `entry` that did not take the fast path (the host has no
   * session, or is draining). The caller carries it out: deliver, hold (bounded), hold and
   * call signal(), or refuse (count the reason, answer as told).
   */
  admit(entry: HostEntry, packet: Uint8Array, now: number): Admission {
    if (entry.session !== null) {
      // a new connection to a draining host waits for its next start; the rest still reaches it
      if (entry.state !== 'draining' || !isTcpSynOnly(packet)) return DELIVER;
      return { action: 'hold-and-start', reason: describePacket(packet) };
    }
    if (!this.canHold(entry, now)) return this.refuse(entry, packet, entry.spec === null ? 'host-down' : 'start-failed');
    const signal = isAllocationSignal(packet);
    // no instance has the connection it belongs to, and a fresh one would only answer RST
    if (entry.spec !== null && !signal && !this.holdsStale(entry, now)) return this.refuse(entry, packet, 'stale-packet');
    if (signal && entry.spec !== null && entry.state !== 'starting' && entry.state !== 'running') {
      return { action: 'hold-and-start', reason: describePacket(packet) };
    }
    return HOLD;
  }

  private refuse(entry: HostEntry, packet: Uint8Array, reason: Refusal): Admission {
    return { action: 'refuse', reason, answer: refusalAnswer(entry, packet) };
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

  /** Whether a packet for this host (no session) may be held rather than refused. */
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

  private transition(entry: HostEntry, state: HostState, type: string, reason: string, now: number): void {
    this.table.setState(entry, state, now);
    entry.lastReason = `${type}: ${reason}`;
    this.env.record(entry, type, reason, now);
  }

  private rejectHeld(entry: HostEntry, reason: Refusal, now: number): void {
    this.env.refuseHeld(entry, this.table.takeHeld(entry), reason, now);
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
    this.transition(entry, 'starting', 'started', reason, now);
    const provider = this.env.providers[spec.provider];
    if (provider === undefined) {
      this.fail(entry, `no provider '${spec.provider}' configured`, now);
      return;
    }
    const { token, nonce } = this.env.mintLaunchToken(entry.name, now);
    entry.launchNonce = nonce;
    const launch: Launch = {
      host: entry.name,
      relay: this.env.relayUrl(spec.provider),
      token,
      run: spec.run,
      env: { ...spec.env },
      idleMs: spec.idleMs,
      mtu: this.env.mtu,
    };
    if (spec.program !== undefined) launch.program = { ...spec.program, argv: [...spec.program.argv] };
    const pin = this.env.relayCertSha256?.();
    if (pin !== undefined) launch.relayCertSha256 = pin;
    if (spec.perf === true) launch.perf = true;
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
        this.fail(entry, `provider ${provider.name}: ${e instanceof Error ? e.message : String(e)}`, this.env.now());
      },
    );
  }

  /** A failed start: `failed` until the backoff (doubling with each failure in a row) is over. */
  private fail(entry: HostEntry, reason: string, now: number): void {
    entry.generation++;
    this.retireLaunch(entry);
    entry.failures++;
    const backoff = Math.min(this.env.limits.startRetryMaxMs, this.env.limits.startRetryBaseMs * 2 ** Math.min(20, entry.failures - 1));
    entry.retryAt = now + backoff;
    entry.restartReason = null;
    this.transition(entry, 'failed', 'failed', reason, now);
    this.rejectHeld(entry, 'start-failed', now);
    this.stopInstance(entry, now, 0);
    if (entry.session !== null) entry.session.close(1011, 'start failed');
  }

  private onExit(entry: HostEntry, gen: number, nonce: string, code: number | null, why: string): void {
    if (gen !== entry.generation) return;
    entry.instance = null;
    const how = code !== null ? `exited with code ${code}` : `exited (${why})`;
    const now = this.env.now();
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
   * A session opened for the host with a token whose nonce is `nonce` (the table has it as
   * the host's session already): `kind` says whether it replaced or restored one.
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
      this.stopInstance(entry, now, 0);
      entry.failures = 0;
      entry.restartReason = null;
      entry.releaseReason = null;
      this.transition(entry, 'running', 'joined', `joined without a start; stopped the instance that was ${was}`, now);
    } else if (kind !== 'new') {
      this.transition(entry, entry.state, 'reconnected', kind === 'replaced' ? 'a new session replaced the old one' : 'session restored', now);
    } else if (entry.state === 'starting') {
      // failures are forgiven once the host has carried a connection (onActivity) or ended
      // normally (goCold): an app that fails right after joining keeps backing off
      this.transition(entry, 'running', 'joined', `joined in ${Math.max(0, Math.round(now - entry.startedAt))}ms`, now);
    } else if (entry.state !== 'running' && entry.state !== 'draining') {
      entry.failures = 0;
      entry.generation++;
      entry.restartReason = null;
      this.transition(entry, 'running', 'joined', entry.spec === null ? 'joined by hand' : 'joined without a start', now);
    }
    if (entry.state === 'running') entry.deadline = 0;
    const held = this.table.takeHeld(entry);
    if (held.length > 0) this.env.deliverHeld(entry, held, now);
  }

  /** The host's session closed (the table has no session for it any more). */
  onSessionClosed(entry: HostEntry, why: string, now: number): void {
    if (entry.state === 'draining') {
      this.goCold(entry, entry.releaseReason ?? why, now);
    } else if (entry.state === 'running') {
      if (this.closing) return;
      entry.deadline = now + this.env.limits.reconnectHoldMs;
      this.transition(entry, 'running', 'disconnected', why, now);
    }
  }

  onActivity(entry: HostEntry, established: number, listening: number, idleMs: number, now: number): void {
    entry.established = established;
    entry.listening = listening;
    entry.reportedIdleMs = idleMs;
    entry.activityAt = now;
    if (established > 0) entry.failures = 0;
  }

  /**
   * The host said it is ending on its own. `startFailed`: its app failed at start, before
   * any traffic (it threw, or its promise rejected): a failed start, with backoff, as if it
   * had not loaded at all; otherwise the SYN retransmissions it leaves would restart it at once.
   */
  onReleased(entry: HostEntry, reason: string, startFailed: boolean, now: number): void {
    if (startFailed && entry.spec !== null && entry.state === 'running') {
      this.fail(entry, `app failed at start: ${reason}`, now);
      return;
    }
    entry.releaseReason = reason;
    if (entry.state === 'running') this.toDraining(entry, now);
    entry.session?.close(1000, 'released');
  }

  tick(entries: Iterable<HostEntry>, now: number): void {
    for (const [instance, l] of this.lingering) {
      if (!l.stopping && now >= l.stopAt) this.stopLingering(instance, l);
    }
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
                this.transition(e, 'cold', 'released', 'session lost', now);
                this.rejectHeld(e, 'host-down', now);
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
          else if (e.restartReason === null && e.held.length > 0 && now >= this.rejoinUntil) this.rejectHeld(e, 'stale-packet', now);
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
    this.transition(entry, 'draining', 'drain', reason, now);
  }

  /** Draining without a drain message or event: the host is ending on its own. */
  private toDraining(entry: HostEntry, now: number): void {
    entry.deadline = now + this.env.limits.stopLingerMs;
    this.table.setState(entry, 'draining', now);
  }

  private goCold(entry: HostEntry, reason: string, now: number): void {
    entry.releaseReason = null;
    entry.deadline = 0;
    entry.established = 0;
    entry.listening = 0;
    entry.failures = 0;
    this.retireLaunch(entry);
    this.transition(entry, 'cold', 'released', reason, now);
    this.stopInstance(entry, now, this.env.limits.stopLingerMs);
    const restart = entry.restartReason ?? this.heldSignal(entry);
    entry.restartReason = null;
    if (restart !== null && !this.closing) this.start(entry, restart, now);
    // held segments of the connections of the instance that went away: none can start one
    else if (entry.held.length > 0 && !this.holdsStale(entry, now)) this.rejectHeld(entry, 'stale-packet', now);
  }

  /** A description of the first held allocation signal, for a restart's reason (null: none). */
  private heldSignal(entry: HostEntry): string | null {
    const p = entry.held.find((x) => isAllocationSignal(x));
    return p !== undefined ? describePacket(p) : null;
  }

  /** Stop the host's instance `afterMs` from now (by tick) unless it ends on its own first. */
  private stopInstance(entry: HostEntry, now: number, afterMs: number): void {
    const instance = entry.instance;
    if (instance === null) return;
    entry.instance = null;
    const l: Lingering = { host: entry.name, stopAt: now + afterMs, stopping: false };
    this.lingering.set(instance, l);
    void instance.exited.then(() => this.lingering.delete(instance));
    if (afterMs <= 0) this.stopLingering(instance, l);
  }

  private stopLingering(instance: HostInstance, l: Lingering): void {
    l.stopping = true;
    void instance.stop().then(
      () => this.lingering.delete(instance),
      (e: unknown) => this.env.logger.warn('stop failed', { host: l.host, error: String(e) }),
    );
  }

  /** Instances being stopped that have not ended yet. */
  get lingeringCount(): number {
    return this.lingering.size;
  }

  /** Stop every instance (relay shutdown); resolves when all stops have settled (the caller bounds the wait). */
  stopAll(entries: Iterable<HostEntry>): Promise<void> {
    this.closing = true;
    const waits: Promise<unknown>[] = [...this.lingering.keys()].map((i) => i.stop().catch(() => {}));
    this.lingering.clear();
    for (const e of entries) {
      e.generation++;
      const inst = e.instance;
      e.instance = null;
      if (inst !== null) waits.push(inst.stop().catch(() => {}));
    }
    return Promise.all(waits).then(() => {});
  }
}
