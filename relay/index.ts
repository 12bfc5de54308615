// The imach relay: one HTTP port with the WebSocket join (/v1/join) and the admin API.
// This file composes the parts: the host table, the router (data path), the lifecycle
// (admission, starts and releases), the gateway, the relay ping, the pool of hosts joined
// by hand, the upgrade; it owns the sessions' wiring and the one timer (the ticker).

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { certSha256 } from '../transport/dial.js';
import type { WebSocketConnection } from '../transport/websocket.js';
import { formatAddress, parseAddress, parseNetwork, type Network } from './address.js';
import { AdminApi } from './admin.js';
import { loadOrCreateSecret, mintToken as mintWithSecret, newNonce } from './auth.js';
import { join } from 'node:path';
import { Counters } from './counters.js';
import { DynamicPool } from './dynamic-pool.js';
import { EventLog, type HostState, type RelayEvent } from './events.js';
import { CaptureHub, DEFAULT_CAPTURE_LIMITS } from './capture.js';
import { FlowTable, type FlowRecord } from './flows.js';
import { Gateway } from './gateway.js';
import { HostLogs, type LogLine } from './host-logs.js';
import { describeHost, type HostDetails } from './host-details.js';
import { Histogram, START_LATENCY_BUCKETS, renderMetrics } from './metrics.js';
import { HostEntry } from './host.js';
import { HostTable } from './host-table.js';
import { LifecycleController, formatDuration, refusalAnswer, type LifecycleLimits } from './lifecycle.js';
import { createLogger, type Logger } from './log.js';
import type { Manifest } from './manifest.js';
import { RelayPinger } from './ping.js';
import { Router } from './router.js';
import {
  DEFAULT_DOMAIN,
  DEFAULT_MTU,
  DEFAULT_NETWORK,
  DEFAULT_TOKEN_TTL_S,
  PING_INTERVAL_MS,
  PROTOCOL_VERSION,
  SECRET_ENV,
  SUBPROTOCOL,
  decodeControl,
  isProtocolError,
  maxFrameBytes,
} from './protocol.js';
import type { Provider } from './provider.js';
import { RelaySession, TokenBucket } from './session.js';
import { onUpgrade, singleLine, type UpgradeContext } from './upgrade.js';

export { loadOrCreateSecret, mintToken, verifyToken, isTokenError } from './auth.js';
export { parseManifest, loadManifest, isManifestError } from './manifest.js';
export type { Manifest, HostSpec, ManifestError } from './manifest.js';
export type { Provider, HostInstance, Launch } from './provider.js';
export type { RelayEvent, HostState } from './events.js';
export type { Logger } from './log.js';
export type { HostDetails } from './host-details.js';
export type { FlowRecord } from './flows.js';
export type { LogLine } from './host-logs.js';
export * from './protocol.js';

export interface RelayLimits extends LifecycleLimits {
  /** bytes a destination's WebSocket may buffer before packets to it are dropped ('queue-full') */
  queueBytes: number;
  /** packets and bytes held per host while it starts or reconnects ('held-overflow') */
  heldPackets: number;
  heldBytes: number;
  /** per-host ingress token bucket ('rate-limited') */
  rateBytesPerSec: number;
  rateBurstBytes: number;
  /** connected sessions at once */
  maxSessions: number;
  /**
   * hosts joined by hand (dynamic addresses) remembered at once; when full, the one gone
   * longest is forgotten to make room for a new name (one still connected or in its
   * reconnect window never is)
   */
  maxDynamicHosts: number;
  /** a host joined by hand that has been gone (cold) this long is forgotten: name and address are free again */
  dynamicForgetMs: number;
  /** entries kept in the event ring log */
  eventLogSize: number;
  /** WebSocket ping interval; two missed pongs close a session */
  pingIntervalMs: number;
  /** how often timers (start deadlines, idle windows, reconnect windows) are checked */
  tickMs: number;
  /** relay pings in flight at once */
  maxPendingPings: number;
  /** concurrent `events?follow=1` streams */
  maxEventFollowers: number;
}

export const DEFAULT_LIMITS: RelayLimits = {
  // measured (`npm run bench -- --only queue`): 1 MiB responses to 100 and 400 connections
  // through TUN dropped at 1 and 4 MiB, not at 8; 32 MiB dropped no less and only held more
  queueBytes: 8 * 1024 * 1024,
  heldPackets: 256,
  heldBytes: 4 * 1024 * 1024,
  rateBytesPerSec: 512 * 1024 * 1024,
  rateBurstBytes: 64 * 1024 * 1024,
  maxSessions: 4096,
  maxDynamicHosts: 4096,
  dynamicForgetMs: 10 * 60_000,
  eventLogSize: 1000,
  pingIntervalMs: PING_INTERVAL_MS,
  tickMs: 200,
  maxPendingPings: 256,
  maxEventFollowers: 32,
  drainGraceMs: 5000,
  reconnectHoldMs: 5000,
  startRetryBaseMs: 1000,
  startRetryMaxMs: 60_000,
  stopLingerMs: 2000,
  startGraceMs: 0,
};

export interface RelayOptions {
  manifest?: Manifest;
  /** default: the manifest's relay.listen, else 127.0.0.1:7000; port 0 picks a free port */
  listen?: { host: string; port: number };
  /** the network secret; default: loaded or created in stateDir, else IMACH_SECRET, else random */
  secret?: string;
  /** where the secret lives (default: `.imach/` beside the manifest; none without a manifest) */
  stateDir?: string;
  providers?: Record<string, Provider>;
  /** network when there is no manifest (default 10.77.0.0/16) */
  network?: string;
  mtu?: number;
  domain?: string;
  limits?: Partial<RelayLimits>;
  logger?: Logger;
  /**
   * The URL (ws:// or wss://, no path) hosts of providers other than `local` dial: a Lambda
   * host cannot reach a loopback listen address. Default: the manifest's relay.public, else `url`.
   */
  publicUrl?: string;
  /** Serve wss:// with this certificate and key (PEM); default: the manifest's relay.tls files. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface HostStatus {
  name: string;
  address: string;
  state: HostState;
  /** provider name, or 'manual' for hosts joined by hand */
  provider: string;
  declared: boolean;
  /** ISO time of the last state change */
  since: string;
  /** ms since the current session joined (0 without one) */
  uptimeMs: number;
  connections: number;
  listening: number;
  /** bytes the relay delivered to / received from the host */
  bytesIn: number;
  bytesOut: number;
  starts: number;
  lastReason: string;
  /** drops counted against this host, by reason */
  drops: Record<string, number>;
}

export interface Relay {
  readonly url: string;
  readonly httpUrl: string;
  /** SHA-256 fingerprint (hex) of the certificate of a wss:// relay; hosts it launches pin it */
  readonly certSha256: string | undefined;
  readonly network: string;
  readonly gateway: string;
  mintToken(host: string, ttlSeconds?: number): string;
  hosts(): HostStatus[];
  events(): RelayEvent[];
  onEvent(fn: (event: RelayEvent) => void): () => void;
  counters(): Record<string, number>;
  /** one host in detail (`imach describe`), or undefined for a name the relay does not know */
  describe(name: string): HostDetails | undefined;
  /** An output line of a host's instance (providers' output goes here); lines of unknown hosts are dropped. */
  hostOutput(host: string, stream: 'stdout' | 'stderr', line: string): void;
  /** a host's collected output since `since` (ms), oldest first; undefined for an unknown host */
  logs(host: string, since?: number): LogLine[] | undefined;
  /** every new output line, of all hosts */
  onLog(fn: (line: LogLine) => void): () => void;
  /** the TCP and UDP flows the relay sees, most recent first (all, or those of one host); undefined for an unknown host */
  flows(host?: string): FlowRecord[] | undefined;
  /** the Prometheus text exposition of the relay's metrics (`GET /metrics`) */
  metrics(): string;
  ping(target: string, timeoutMs?: number): Promise<{ address: string; rttMs: number }>;
  close(): Promise<void>;
}

/** how long close() waits for instances to stop */
const STOP_ALL_TIMEOUT_MS = 5000;

export class RelayServer implements Relay, UpgradeContext {
  readonly url: string;
  readonly httpUrl: string;
  readonly network: string;
  readonly gateway: string;
  readonly limits: RelayLimits;
  readonly eventLog: EventLog;
  private readonly net: Network;
  private readonly mtu: number;
  private readonly domain: string;
  readonly secret: string;
  private readonly log: Logger;
  readonly table: HostTable;
  private readonly counts = new Counters();
  readonly lifecycle: LifecycleController;
  private readonly router: Router;
  private readonly gw: Gateway;
  private readonly pinger: RelayPinger;
  private readonly pool: DynamicPool;
  /** the relay's clock (ms); the lifecycle reads only what it is given */
  private readonly clock: () => number = Date.now;
  sessionCount = 0;
  private ticker: NodeJS.Timeout | null = null;
  private lastPingRound = 0;
  closing = false;
  /** binary frames received from sessions, and sent to sessions that have closed since */
  private framesIn = 0;
  private framesOutClosed = 0;
  /** start latency per host name, observed on each join after a start */
  private readonly startLatency = new Map<string, Histogram>();
  /** each host's last failure: a failed start or an error it reported */
  private readonly lastErrors = new Map<string, { time: number; message: string }>();
  private readonly captures: CaptureHub;
  private readonly flowTable = new FlowTable();
  private readonly hostLogs = new HostLogs();
  /** SHA-256 fingerprint (hex) of the TLS certificate served, when the relay serves wss:// */
  readonly certSha256: string | undefined;
  /** what hosts of remote providers (Lambda) dial; undefined: `url` */
  readonly publicUrl: string | undefined;

  constructor(
    private readonly server: Server,
    address: { host: string; port: number },
    net: Network,
    options: RelayOptions,
    secret: string,
    tlsCert?: string | Buffer,
  ) {
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    this.certSha256 = tlsCert !== undefined ? certSha256(tlsCert) : undefined;
    this.url = `${tlsCert !== undefined ? 'wss' : 'ws'}://${host}:${address.port}`;
    this.httpUrl = `${tlsCert !== undefined ? 'https' : 'http'}://${host}:${address.port}`;
    this.publicUrl = options.publicUrl ?? options.manifest?.relay.public;
    this.net = net;
    this.network = net.cidr;
    this.gateway = formatAddress(net.gateway);
    this.mtu = Math.max(576, Math.min(options.mtu ?? DEFAULT_MTU, 65535));
    this.domain = options.domain ?? DEFAULT_DOMAIN;
    this.secret = secret;
    this.log = options.logger ?? createLogger('info');
    this.limits = { ...DEFAULT_LIMITS, ...options.manifest?.relay.limits, ...options.limits };
    this.eventLog = new EventLog(this.limits.eventLogSize);
    const now = this.clock();
    this.table = new HostTable(this.limits);
    for (const spec of options.manifest?.hosts ?? []) {
      const addr = parseAddress(spec.address)!;
      this.table.add(new HostEntry(spec.name, addr, spec.address, spec, this.newBucket(now), now));
    }
    this.router = new Router({
      table: this.table,
      counters: this.counts,
      gateway: net.gateway,
      admit: (e, p, t) => this.lifecycle.admit(e, p, t),
      signal: (e, reason, t) => void this.lifecycle.signal(e, reason, t),
      now: this.clock,
    });
    this.lifecycle = new LifecycleController(
      {
        providers: options.providers ?? {},
        mtu: this.mtu,
        limits: this.limits,
        logger: this.log,
        table: this.table,
        now: this.clock,
        relayUrl: (provider) => (provider === 'local' ? this.url : (this.publicUrl ?? this.url)),
        relayCertSha256: () => this.certSha256,
        mintLaunchToken: (h, t) => {
          const nonce = newNonce();
          return { token: mintWithSecret(this.secret, h, DEFAULT_TOKEN_TTL_S, t, nonce), nonce };
        },
        record: (e, type, reason, t) => this.record(e, type, reason, t),
        deliverHeld: (e, packets, t) => this.router.deliverHeld(e, packets, t),
        refuseHeld: (e, packets, reason) => {
          this.router.refuseHeld(e, packets, reason, (p) => refusalAnswer(e, p));
          if (reason === 'start-failed' || reason === 'host-down') this.pinger.failHost(e.address, `host ${e.name} unreachable: ${e.lastReason}`);
        },
      },
      now,
    );
    this.gw = new Gateway({
      gateway: net.gateway,
      domain: this.domain,
      lookup: (name) => this.table.byName(name)?.address ?? null,
      dnsSignal: (name, reason) => {
        const e = this.table.byName(name);
        if (e !== undefined && e.spec !== null && e.session === null) this.lifecycle.signal(e, reason, this.clock());
      },
      send: (p) => this.router.fromGateway(p),
      echoReply: (from, id, seq) => this.pinger.onEchoReply(from, id, seq),
      count: (reason) => this.count(reason, null),
    });
    this.router.attachGateway(this.gw);
    this.router.flows = this.flowTable;
    this.captures = new CaptureHub(DEFAULT_CAPTURE_LIMITS, (tap) => (this.router.tap = tap));
    this.pinger = new RelayPinger({
      table: this.table,
      gateway: net.gateway,
      domain: this.domain,
      maxPending: this.limits.maxPendingPings,
      unreachable: (e) => this.unreachableWhy(e, this.clock()),
      send: (p) => this.router.fromGateway(p),
      closing: () => this.closing,
    });
    this.pool = new DynamicPool({
      table: this.table,
      net,
      limits: this.limits,
      newBucket: (t) => this.newBucket(t),
      forgotten: (e, reason, t) => {
        this.lastErrors.delete(e.name);
        this.hostLogs.forget(e.name);
        this.startLatency.delete(e.name);
        this.pinger.failHost(e.address, `host ${e.name} unreachable: ${reason}`);
        this.log.info('host', { host: e.name, event: 'forgotten', reason, address: e.addressText });
        this.eventLog.push({ time: new Date(t).toISOString(), host: e.name, type: 'forgotten', reason, state: 'cold' });
      },
    });
    const admin = new AdminApi(this, this.secret, this.limits.maxEventFollowers);
    server.on('request', (req, res) => admin.handle(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(this, req, socket, head));
    this.ticker = setInterval(() => this.tick(), this.limits.tickMs);
  }

  private newBucket(now: number): TokenBucket {
    return new TokenBucket(this.limits.rateBytesPerSec, Math.max(this.limits.rateBurstBytes, this.mtu), now);
  }

  mintToken(host: string, ttlSeconds: number = DEFAULT_TOKEN_TTL_S): string {
    return mintWithSecret(this.secret, host, ttlSeconds);
  }

  // ---- counters and events ----

  count(reason: string, entry: HostEntry | null, n = 1): void {
    this.counts.count(reason, entry, n);
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    let pin = 0;
    let pout = 0;
    let bin = 0;
    let bout = 0;
    for (const [k, v] of this.counts.entries()) out[k] = v;
    for (const e of this.table.entries()) {
      pin += e.packetsIn;
      pout += e.packetsOut;
      bin += e.bytesIn;
      bout += e.bytesOut;
      for (const [k, v] of e.drops) out[`hosts.${e.name}.${k}`] = v;
    }
    out['packets-delivered'] = pin;
    out['packets-received'] = pout;
    out['bytes-delivered'] = bin;
    out['bytes-received'] = bout;
    out.sessions = this.sessionCount;
    let framesOut = this.framesOutClosed;
    for (const e of this.table.entries()) framesOut += e.session?.framesOut ?? 0;
    out['frames-in'] = this.framesIn;
    out['frames-out'] = framesOut;
    return out;
  }

  /** A lifecycle event (the host's state is already the new one). */
  private record(e: HostEntry, type: string, reason: string, now: number): void {
    const state: HostState = e.state;
    const event: RelayEvent = { time: new Date(now).toISOString(), host: e.name, type, reason, state };
    this.log.info('host', { host: e.name, event: type, reason, state });
    if (type === 'failed') this.lastErrors.set(e.name, { time: now, message: reason });
    if (type === 'joined' && e.startedAt > 0 && reason.startsWith('joined in ')) {
      let h = this.startLatency.get(e.name);
      if (h === undefined) this.startLatency.set(e.name, (h = new Histogram(START_LATENCY_BUCKETS)));
      h.observe(Math.max(0, now - e.startedAt) / 1000);
    }
    this.eventLog.push(event);
  }

  events(): RelayEvent[] {
    return this.eventLog.list();
  }

  onEvent(fn: (event: RelayEvent) => void): () => void {
    return this.eventLog.subscribe(fn);
  }

  describe(name: string): HostDetails | undefined {
    const e = this.table.byName(name);
    if (e === undefined) return undefined;
    return describeHost(e, this.eventLog.list(), this.lastErrors.get(name), this.clock());
  }

  metrics(): string {
    let framesOut = this.framesOutClosed;
    for (const e of this.table.entries()) framesOut += e.session?.framesOut ?? 0;
    return renderMetrics(
      [...this.table.entries()],
      this.startLatency,
      { sessions: this.sessionCount, framesIn: this.framesIn, framesOut, drops: this.counts.entries(), captureDropped: this.captures.dropped, captures: this.captures.running, flows: this.flowTable.size, flowsUntracked: this.flowTable.untracked },
      this.clock(),
    );
  }

  hostOutput(host: string, stream: 'stdout' | 'stderr', line: string): void {
    if (this.table.byName(host) === undefined) return;
    this.hostLogs.push(host, stream, line, this.clock());
  }

  logs(host: string, since = 0): LogLine[] | undefined {
    if (this.table.byName(host) === undefined) return undefined;
    return this.hostLogs.list(host, since);
  }

  onLog(fn: (line: LogLine) => void): () => void {
    return this.hostLogs.subscribe((l) => fn(l));
  }

  flows(host?: string): FlowRecord[] | undefined {
    if (host === undefined) return this.flowTable.list(this.clock());
    const e = this.table.byName(host) ?? this.table.byAddress(parseAddress(host) ?? -1);
    return e === undefined ? undefined : this.flowTable.list(this.clock(), e.address);
  }

  capture(res: ServerResponse, hosts: string[], count: number, durationMs: number): { status: number; error: string } | null {
    const addresses = new Set<number>();
    for (const name of hosts) {
      const e = this.table.byName(name) ?? this.table.byAddress(parseAddress(name) ?? -1);
      if (e === undefined) return { status: 404, error: `unknown host ${name.slice(0, 64)}` };
      addresses.add(e.address);
    }
    if (this.captures.full) return { status: 503, error: 'too many captures running' };
    res.writeHead(200, { 'Content-Type': 'application/vnd.tcpdump.pcap', 'Cache-Control': 'no-store' });
    res.flushHeaders();
    this.captures.start(res, addresses, count, durationMs);
    return null;
  }

  hosts(): HostStatus[] {
    const now = this.clock();
    return [...this.table.entries()].map((e) => {
      const drops: Record<string, number> = {};
      for (const [k, v] of e.drops) drops[k] = v;
      return {
        name: e.name,
        address: e.addressText,
        state: e.state,
        provider: e.spec?.provider ?? 'manual',
        declared: e.declared,
        since: new Date(e.since).toISOString(),
        uptimeMs: e.session !== null ? now - e.joinedAt : 0,
        connections: e.established,
        listening: e.listening,
        bytesIn: e.bytesIn,
        bytesOut: e.bytesOut,
        starts: e.starts,
        lastReason: e.lastReason,
        drops,
      };
    });
  }

  // ---- joining ----

  makeDynamicRoom(now: number): boolean {
    return this.pool.makeRoom(now);
  }

  createDynamic(name: string): HostEntry | string {
    return this.pool.create(name, this.clock());
  }

  onJoin(entry: HostEntry, ws: WebSocketConnection, nonce: string): void {
    const now = this.clock();
    const session = new RelaySession(randomBytes(8).toString('hex'), entry.name, ws, this.limits.queueBytes, now, nonce);
    const kind = entry.session !== null ? 'replaced' : entry.state === 'running' && entry.deadline > 0 ? 'reconnect' : 'new';
    const old = this.table.attach(entry, session);
    if (old !== null) old.close(4000, 'replaced by a new session');
    this.sessionCount++;
    ws.start({
      binary: (views, length) => {
        if (entry.session !== session) return;
        this.framesIn++;
        this.guard(entry, () => this.router.routeFrame(entry, views, length, this.clock()));
      },
      text: (text) => {
        if (entry.session === session) this.guard(entry, () => this.onControl(entry, text));
      },
      pong: () => {
        session.lastPongAt = this.clock();
      },
      close: (code, reason) => {
        this.sessionCount--;
        session.onClosed();
        this.framesOutClosed += session.framesOut;
        if (ws.counters.protocolErrors > 0) this.count('websocket-protocol-error', entry);
        if (!this.table.detach(entry, session)) return;
        const why = `session closed (${code}${reason.length > 0 ? ` ${singleLine(reason)}` : ''})`;
        this.lifecycle.onSessionClosed(entry, why, this.clock());
      },
    });
    session.sendControl({
      type: 'welcome',
      version: PROTOCOL_VERSION,
      host: entry.name,
      address: entry.addressText,
      network: this.network,
      prefixLength: this.net.prefixLength,
      mtu: this.mtu,
      gateway: this.gateway,
      dns: this.gateway,
      domain: this.domain,
      idleMs: entry.spec?.idleMs ?? null,
      session: session.id,
    });
    this.lifecycle.onJoin(entry, kind, nonce, now);
  }

  /** A bug must not take the relay down with every session on it. */
  private guard(entry: HostEntry, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.count('internal-error', entry);
      this.log.error('frame handling failed', { host: entry.name, error: e instanceof Error ? e.stack : String(e) });
    }
  }

  private onControl(entry: HostEntry, text: string): void {
    const msg = decodeControl(text);
    if (isProtocolError(msg)) {
      this.count('control-malformed', entry);
      return;
    }
    const now = this.clock();
    switch (msg.type) {
      case 'activity':
        this.lifecycle.onActivity(entry, msg.established, msg.listening, msg.idleMs, now);
        break;
      case 'released':
        this.lifecycle.onReleased(entry, msg.reason.slice(0, 200), msg.startFailed === true, now);
        break;
      case 'error':
        this.log.warn('host error', { host: entry.name, code: msg.code, message: msg.message });
        this.lastErrors.set(entry.name, { time: now, message: `${msg.code}: ${msg.message}`.slice(0, 500) });
        break;
      default:
        // unknown or relay-to-host types: ignored (forward compatible)
        break;
    }
  }

  /** A binary frame from a host in one buffer (tests and tools that hold a whole frame). */
  onFrame(src: HostEntry, frame: Uint8Array): void {
    this.router.routeFrame(src, [frame], frame.length, this.clock());
  }

  // ---- ping ----

  ping(target: string, timeoutMs = 30_000): Promise<{ address: string; rttMs: number }> {
    return this.pinger.ping(target, timeoutMs);
  }

  /** Why a ping cannot reach the host now: it has no session and the relay cannot hold for it. */
  private unreachableWhy(entry: HostEntry, now: number): string | null {
    if (entry.session !== null || this.lifecycle.canHold(entry, now)) return null;
    if (entry.spec === null) return `joined by hand and not connected (${entry.lastReason})`;
    if (entry.state === 'failed') return `${entry.lastReason}; next start attempt in ${formatDuration(Math.max(1, Math.ceil((entry.retryAt - now) / 1000)) * 1000)}`;
    return entry.lastReason;
  }

  // ---- the ticker: the relay's one timer ----

  private tick(): void {
    const now = this.clock();
    this.lifecycle.tick(this.table.entries(), now);
    this.pool.sweep(now);
    this.flowTable.sweep(now);
    if (now - this.lastPingRound >= this.limits.pingIntervalMs) {
      this.lastPingRound = now;
      for (const e of this.table.routed()) {
        const s = e.session;
        if (s === null) continue;
        if (now - s.lastPongAt > 2 * this.limits.pingIntervalMs + this.limits.tickMs) {
          this.count('session-timeout', e);
          s.terminate();
        } else {
          s.ping();
        }
      }
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    this.pinger.closeAll('relay closed');
    this.captures.closeAll();
    const closed: Promise<void>[] = [];
    for (const e of this.table.entries()) {
      const s = e.session;
      if (s !== null) {
        closed.push(s.whenClosed);
        s.close(1001, 'relay closing', 500);
      }
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.lifecycle.stopAll(this.table.entries()), new Promise((r) => (timer = setTimeout(r, STOP_ALL_TIMEOUT_MS)))]);
    clearTimeout(timer);
    await Promise.all(closed);
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Start a relay listening on options.listen (or the manifest's relay.listen). */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const netText = options.manifest?.network ?? options.network ?? DEFAULT_NETWORK;
  const net = parseNetwork(netText);
  if (typeof net === 'string') throw new Error(`network ${netText}: ${net}`);
  const listen = options.listen ?? options.manifest?.relay.listen ?? { host: '127.0.0.1', port: 7000 };
  const stateDir = options.stateDir ?? (options.manifest !== undefined ? join(options.manifest.baseDir, '.imach') : undefined);
  const secret = options.secret ?? (stateDir !== undefined ? await loadOrCreateSecret(stateDir) : (process.env[SECRET_ENV] ?? randomBytes(32).toString('base64url')));
  let tls = options.tls;
  const tlsFiles = options.manifest?.relay.tls;
  if (tls === undefined && tlsFiles !== undefined) {
    try {
      tls = { cert: readFileSync(tlsFiles.cert), key: readFileSync(tlsFiles.key) };
    } catch (e) {
      throw new Error(`relay.tls: cannot read ${tlsFiles.cert} or ${tlsFiles.key}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const server: Server = tls !== undefined ? createTlsServer({ cert: tls.cert, key: tls.key }) : createServer();
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr !== null ? { host: listen.host, port: addr.port } : listen;
  return new RelayServer(server, bound, net, options, secret, tls?.cert);
}

