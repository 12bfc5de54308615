// The imach relay: one HTTP port with the WebSocket join (/v1/join) and the admin API;
// sessions, routing by destination address, the gateway, and the lifecycle of hosts.

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { buildIcmpEchoRequest, ICMP_UNREACH_HOST } from '../netstack/wire/icmp.js';
import { formatAddress, isHostAddress, parseAddress, parseNetwork, type Network } from './address.js';
import { AdminApi } from './admin.js';
import { isTokenError, loadOrCreateSecret, mintToken as mintWithSecret, newNonce, verifyToken } from './auth.js';
import { join } from 'node:path';
import { EventLog, type HostState, type RelayEvent } from './events.js';
import { Gateway } from './gateway.js';
import { HostEntry } from './host.js';
import { LifecycleController, formatDuration, type LifecycleLimits } from './lifecycle.js';
import { createLogger, type Logger } from './log.js';
import { isDnsLabel, type Manifest } from './manifest.js';
import { FrameReader } from './frame-reader.js';
import { MALFORMED_REASONS, describePacket, isAllocationSignal, isTcpSynOnly, readDst } from './packet.js';
import { PacketWalker } from './packet-views.js';
import {
  ADMIN_HOST,
  DEFAULT_DOMAIN,
  DEFAULT_MTU,
  DEFAULT_NETWORK,
  DEFAULT_TOKEN_TTL_S,
  ERROR_HEADER,
  JOIN_PATH,
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
  readonly network: string;
  readonly gateway: string;
  mintToken(host: string, ttlSeconds?: number): string;
  hosts(): HostStatus[];
  events(): RelayEvent[];
  onEvent(fn: (event: RelayEvent) => void): () => void;
  counters(): Record<string, number>;
  ping(target: string, timeoutMs?: number): Promise<{ address: string; rttMs: number }>;
  close(): Promise<void>;
}

/** One relay ping: echo requests go out every PING_RESEND_MS until a reply or the timeout. */
interface PendingPing {
  address: number;
  name: string;
  /** sequence number -> when that request went out */
  sent: Map<number, number>;
  resolve: (v: { address: string; rttMs: number }) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  resend: NodeJS.Timeout;
}

const PING_RESEND_MS = 1000;
/** hosts batch up to 16 packets of their MTU; accept a full-size batch whatever ours is */
const MAX_FRAME_BYTES = maxFrameBytes(DEFAULT_MTU);
const PING_PAYLOAD = new TextEncoder().encode('imach relay ping');

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
  readonly byName = new Map<string, HostEntry>();
  private readonly byAddress = new Map<number, HostEntry>();
  /** the routing table: destination address -> connected session's host */
  private readonly routes = new Map<number, HostEntry>();
  private readonly globalCounters = new Map<string, number>();
  readonly lifecycle: LifecycleController;
  private readonly gw: Gateway;
  readonly wss: WebSocketServer;
  /** by sequence number of each request in flight */
  private readonly pings = new Map<number, PendingPing>();
  private readonly pingsInFlight = new Set<PendingPing>();
  private nextPingSeq = 1;
  private readonly pingId = randomBytes(2).readUInt16BE(0);
  private nextDynamic: number;
  private dynamicCount = 0;
  sessionCount = 0;
  private ticker: NodeJS.Timeout | null = null;
  private lastPingRound = 0;
  closing = false;
  /** binary frames taken off sockets by FrameReader / delivered by ws 'message' events */
  private framesDirect = 0;
  private framesMessage = 0;
  private fastPathRefusal: string | null = null;

  constructor(
    private readonly server: Server,
    address: { host: string; port: number },
    net: Network,
    options: RelayOptions,
    secret: string,
  ) {
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    this.url = `ws://${host}:${address.port}`;
    this.httpUrl = `http://${host}:${address.port}`;
    this.net = net;
    this.network = net.cidr;
    this.gateway = formatAddress(net.gateway);
    this.mtu = Math.max(576, Math.min(options.mtu ?? DEFAULT_MTU, 65535));
    this.domain = options.domain ?? DEFAULT_DOMAIN;
    this.secret = secret;
    this.log = options.logger ?? createLogger('info');
    this.limits = { ...DEFAULT_LIMITS, ...options.manifest?.relay.limits, ...options.limits };
    this.eventLog = new EventLog(this.limits.eventLogSize);
    // hosts joined by hand take addresses from the upper half of the network
    this.nextDynamic = net.base + Math.floor(net.size / 2) + 1;
    const now = Date.now();
    for (const spec of options.manifest?.hosts ?? []) {
      const addr = parseAddress(spec.address)!;
      this.addEntry(new HostEntry(spec.name, addr, spec.address, spec, this.newBucket(now), now));
    }
    const providers = options.providers ?? {};
    this.lifecycle = new LifecycleController({
      providers,
      mtu: this.mtu,
      limits: this.limits,
      logger: this.log,
      relayUrl: () => this.url,
      mintLaunchToken: (h) => {
        const nonce = newNonce();
        return { token: mintWithSecret(this.secret, h, DEFAULT_TOKEN_TTL_S, Date.now(), nonce), nonce };
      },
      transition: (e, state, type, reason) => this.transition(e, state, type, reason),
      flushHeld: (e) => this.flushHeld(e),
      unroute: (e) => this.routes.delete(e.address),
      rejectHeld: (e, reason) => this.rejectHeld(e, reason),
      describeHeld: (e) => {
        const p = e.held.find((x) => isAllocationSignal(x));
        return p !== undefined ? describePacket(p) : null;
      },
    });
    this.gw = new Gateway({
      gateway: net.gateway,
      domain: this.domain,
      lookup: (name) => this.byName.get(name)?.address ?? null,
      dnsSignal: (name, reason) => {
        const e = this.byName.get(name);
        if (e !== undefined && e.spec !== null && e.session === null) this.lifecycle.signal(e, reason, Date.now());
      },
      send: (p) => this.fromGateway(p),
      echoReply: (from, id, seq) => this.onEchoReply(from, id, seq),
      count: (reason) => this.count(reason, null),
    });
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_BYTES,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    const admin = new AdminApi(this, this.secret, this.limits.maxEventFollowers);
    server.on('request', (req, res) => admin.handle(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(this, req, socket, head));
    this.ticker = setInterval(() => this.tick(), this.limits.tickMs);
  }

  private newBucket(now: number): TokenBucket {
    return new TokenBucket(this.limits.rateBytesPerSec, Math.max(this.limits.rateBurstBytes, this.mtu), now);
  }

  private addEntry(e: HostEntry): void {
    this.byName.set(e.name, e);
    this.byAddress.set(e.address, e);
  }

  mintToken(host: string, ttlSeconds: number = DEFAULT_TOKEN_TTL_S): string {
    return mintWithSecret(this.secret, host, ttlSeconds);
  }

  // ---- counters and events ----

  count(reason: string, entry: HostEntry | null, n = 1): void {
    this.globalCounters.set(reason, (this.globalCounters.get(reason) ?? 0) + n);
    if (entry !== null) entry.drops.set(reason, (entry.drops.get(reason) ?? 0) + n);
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    let pin = 0;
    let pout = 0;
    let bin = 0;
    let bout = 0;
    for (const [k, v] of this.globalCounters) out[k] = v;
    for (const e of this.byName.values()) {
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
    // binary frames the relay took off sockets itself (FrameReader) and through ws messages
    out['frames-direct'] = this.framesDirect;
    out['frames-message'] = this.framesMessage;
    return out;
  }

  private transition(e: HostEntry, state: HostState, type: string, reason: string): void {
    const now = Date.now();
    if (e.state !== state) e.since = now;
    e.state = state;
    // a draining host's packets take the slow path, where new connections are held
    if (state === 'draining') this.routes.delete(e.address);
    e.lastReason = `${type}: ${reason}`;
    const event: RelayEvent = { time: new Date(now).toISOString(), host: e.name, type, reason, state };
    this.log.info('host', { host: e.name, event: type, reason, state });
    this.eventLog.push(event);
  }

  events(): RelayEvent[] {
    return this.eventLog.list();
  }

  onEvent(fn: (event: RelayEvent) => void): () => void {
    return this.eventLog.subscribe(fn);
  }

  hosts(): HostStatus[] {
    const now = Date.now();
    return [...this.byName.values()].map((e) => {
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

  /** Whether a new hand-joined host fits, forgetting the one gone longest if the pool is full. */
  makeDynamicRoom(now: number): boolean {
    if (this.dynamicCount < this.limits.maxDynamicHosts) return true;
    let oldest: HostEntry | null = null;
    for (const e of this.byName.values()) {
      if (this.isGoneDynamic(e) && (oldest === null || e.since < oldest.since)) oldest = e;
    }
    if (oldest === null) return false;
    this.forgetDynamic(oldest, `the pool of hand-joined hosts is full; gone for ${Math.round(Math.max(0, now - oldest.since) / 1000)}s`);
    return true;
  }

  /** A host joined by hand that has left for good (its reconnect window is over). */
  private isGoneDynamic(e: HostEntry): boolean {
    return e.spec === null && e.session === null && e.state === 'cold' && e.held.length === 0;
  }

  private forgetDynamic(e: HostEntry, reason: string): void {
    this.byName.delete(e.name);
    this.byAddress.delete(e.address);
    this.routes.delete(e.address);
    this.dynamicCount--;
    for (const p of this.pingsInFlight) {
      if (p.address === e.address) this.endPing(p, new Error(`host ${e.name} unreachable: ${reason}`));
    }
    const now = Date.now();
    this.log.info('host', { host: e.name, event: 'forgotten', reason, address: e.addressText });
    this.eventLog.push({ time: new Date(now).toISOString(), host: e.name, type: 'forgotten', reason, state: 'cold' });
  }

  createDynamic(name: string): HostEntry | string {
    if (this.dynamicCount >= this.limits.maxDynamicHosts) return 'dynamic address pool is full';
    // the upper half of the network, searched round from the last address given out, so
    // that the addresses of forgotten hosts are used again
    const lo = this.net.base + Math.floor(this.net.size / 2) + 1;
    const span = this.net.broadcast - lo;
    let addr = -1;
    for (let i = 0; i < span; i++) {
      const a = lo + ((this.nextDynamic - lo + i) % span);
      if (!this.byAddress.has(a) && isHostAddress(this.net, a)) {
        addr = a;
        break;
      }
    }
    if (addr < 0) return 'dynamic address pool is full';
    this.nextDynamic = addr + 1;
    this.dynamicCount++;
    const now = Date.now();
    const e = new HostEntry(name, addr, formatAddress(addr), null, this.newBucket(now), now);
    this.addEntry(e);
    return e;
  }

  onJoin(entry: HostEntry, ws: WebSocket, nonce: string, socket: Duplex): void {
    const now = Date.now();
    const session = new RelaySession(randomBytes(8).toString('hex'), entry.name, ws, this.limits.queueBytes, now, nonce);
    const reader = FrameReader.attach(ws, socket, MAX_FRAME_BYTES, (views, length) => {
      if (entry.session !== session) return;
      this.framesDirect++;
      this.guard(entry, () => this.routeFrame(entry, views, length));
    });
    if (typeof reader === 'string' && this.fastPathRefusal === null) {
      this.fastPathRefusal = reader;
      this.log.warn('frame fast path not used, frames go through ws messages', { reason: reader });
    }
    session.batchWrites(socket, typeof reader !== 'string');
    const old = entry.session;
    const kind = old !== null ? 'replaced' : entry.state === 'running' && entry.deadline > 0 ? 'reconnect' : 'new';
    if (old !== null) old.close(4000, 'replaced by a new session');
    entry.session = session;
    this.sessionCount++;
    ws.on('pong', () => {
      session.lastPongAt = Date.now();
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (entry.session !== session) return;
      const buf = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? Buffer.from(data) : data;
      if (isBinary) this.framesMessage++;
      this.guard(entry, () => (isBinary ? this.onFrame(entry, buf) : this.onControl(entry, buf.toString())));
    });
    ws.on('error', (err) => this.log.debug('session error', { host: entry.name, session: session.id, error: err.message }));
    ws.on('close', (code: number, reason: Buffer) => {
      this.sessionCount--;
      session.closed = true;
      if (entry.session !== session) return;
      entry.session = null;
      this.routes.delete(entry.address);
      const why = `session closed (${code}${reason.length > 0 ? ` ${singleLine(reason.toString())}` : ''})`;
      this.lifecycle.onSessionClosed(entry, why, Date.now());
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
    if (entry.session === session && entry.state !== 'draining') this.routes.set(entry.address, entry);
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
    const now = Date.now();
    switch (msg.type) {
      case 'activity':
        this.lifecycle.onActivity(entry, msg.established, msg.listening, msg.idleMs, now);
        break;
      case 'released':
        this.lifecycle.onReleased(entry, msg.reason.slice(0, 200), now);
        break;
      case 'error':
        this.log.warn('host error', { host: entry.name, code: msg.code, message: msg.message });
        break;
      default:
        // unknown or relay-to-host types: ignored (forward compatible)
        break;
    }
  }

  // ---- the data path ----

  /**
   * A binary frame from a host: whole IPv4 packets back to back. Consecutive packets for
   * the same connected destination go out as one frame (the whole frame, untouched, when
   * all go to one place).
   */
  onFrame(src: HostEntry, frame: Uint8Array): void {
    this.routeFrame(src, [frame], frame.length);
  }

  /** A binary frame given as views of the reads it came in (`length` bytes in all). */
  private routeFrame(src: HostEntry, views: readonly Uint8Array[], length: number): void {
    const now = Date.now();
    src.bucket.refill(now);
    src.lastTrafficAt = now;
    const w = new PacketWalker(views, length);
    let runStart = 0;
    let runDest: HostEntry | null = null;
    let runPackets = 0;
    while (!w.done) {
      const off = w.pos;
      const len = w.check();
      if (len < 0) {
        this.count(MALFORMED_REASONS[-len], src);
        break;
      }
      src.packetsOut++;
      src.bytesOut += len;
      let forwarded = false;
      if (w.src !== src.address) {
        this.count('spoofed-source', src);
      } else if (!src.bucket.take(len)) {
        this.count('rate-limited', src);
      } else {
        const dst = w.dst;
        const dest = this.routes.get(dst);
        if (dest !== undefined) {
          if (runDest !== dest) {
            if (runDest !== null) this.sendRun(runDest, w.slice(runStart, off), off - runStart, now, runPackets);
            runDest = dest;
            runStart = off;
            runPackets = 0;
          }
          runPackets++;
          forwarded = true;
        } else {
          if (runDest !== null) this.sendRun(runDest, w.slice(runStart, off), off - runStart, now, runPackets);
          runDest = null;
          this.slowPath(src, w.bytes(off, off + len), dst, now);
        }
      }
      if (!forwarded && runDest !== null) {
        this.sendRun(runDest, w.slice(runStart, off), off - runStart, now, runPackets);
        runDest = null;
      }
      w.skip(len);
    }
    if (runDest !== null) this.sendRun(runDest, w.slice(runStart, w.pos), w.pos - runStart, now, runPackets);
  }

  private sendRun(dest: HostEntry, views: readonly Uint8Array[], bytes: number, now: number, packets = 1): void {
    if (bytes === 0) return;
    const s = dest.session;
    if (s === null || !s.sendFrame(views, bytes)) {
      this.count('queue-full', dest, packets);
      return;
    }
    dest.bytesIn += bytes;
    dest.packetsIn += packets;
    dest.lastTrafficAt = now;
  }

  /** One packet in one buffer (gateway answers, held packets, a packet the slow path keeps). */
  private sendOne(dest: HostEntry, packet: Uint8Array, now: number): void {
    this.sendRun(dest, [packet], packet.length, now);
  }

  /** A packet whose destination has no session: the gateway, a host to start, or nowhere. */
  private slowPath(src: HostEntry | null, packet: Uint8Array, dst: number, now: number): void {
    if (dst === this.net.gateway) {
      this.gw.handle(packet);
      return;
    }
    const entry = this.byAddress.get(dst);
    if (entry === undefined) {
      this.count('no-route', src);
      this.unreachable(packet);
      return;
    }
    this.holdOrStart(entry, packet, now);
  }

  private holdOrStart(entry: HostEntry, packet: Uint8Array, now: number): void {
    if (entry.session !== null) {
      if (entry.state !== 'draining' || !isTcpSynOnly(packet)) {
        this.sendOne(entry, packet, now);
        return;
      }
      // a new connection to a draining host waits for its next start
      if (this.hold(entry, packet)) this.lifecycle.signal(entry, describePacket(packet), now);
      return;
    }
    if (!this.lifecycle.canHold(entry, now)) {
      this.count(entry.spec === null ? 'host-down' : 'start-failed', entry);
      this.unreachable(packet);
      return;
    }
    const signal = isAllocationSignal(packet);
    if (entry.spec !== null && !signal && !this.lifecycle.holdsStale(entry, now)) {
      // no instance has the connection it belongs to, and a fresh one would only answer
      // RST: not a reason to start one. A router with no host for it says unreachable.
      this.count('stale-packet', entry);
      this.unreachable(packet);
      return;
    }
    this.hold(entry, packet);
    if (signal && entry.spec !== null && entry.state !== 'starting' && entry.state !== 'running') {
      this.lifecycle.signal(entry, describePacket(packet), now);
    }
  }

  /** Keep a copy (the frame it came in may be large) within the host's held bounds. */
  private hold(entry: HostEntry, packet: Uint8Array): boolean {
    if (entry.held.length >= this.limits.heldPackets || entry.heldBytes + packet.length > this.limits.heldBytes) {
      this.count('held-overflow', entry);
      return false;
    }
    entry.held.push(new Uint8Array(packet));
    entry.heldBytes += packet.length;
    return true;
  }

  private flushHeld(entry: HostEntry): void {
    const held = entry.held;
    entry.held = [];
    entry.heldBytes = 0;
    const now = Date.now();
    for (const p of held) this.sendOne(entry, p, now);
  }

  private rejectHeld(entry: HostEntry, reason: string): void {
    const held = entry.held;
    entry.held = [];
    entry.heldBytes = 0;
    if (held.length > 0) this.count(reason, entry, held.length);
    for (const p of held) this.unreachable(p);
    if (reason === 'start-failed' || reason === 'host-down') {
      for (const p of this.pingsInFlight) {
        if (p.address === entry.address) this.endPing(p, new Error(`host ${entry.name} unreachable: ${entry.lastReason}`));
      }
    }
  }

  /** ICMP host unreachable from the gateway to the packet's sender. */
  private unreachable(packet: Uint8Array): void {
    const reply = this.gw.unreachable(packet, ICMP_UNREACH_HOST);
    if (reply !== null) this.fromGateway(reply);
  }

  /** A packet the gateway originates: to a connected host now, or through the lifecycle. */
  private fromGateway(packet: Uint8Array): void {
    const dst = readDst(packet, 0);
    if (dst === this.net.gateway) return;
    const entry = this.byAddress.get(dst);
    if (entry === undefined) return;
    const now = Date.now();
    if (entry.session !== null) this.sendOne(entry, packet, now);
    else if (packet[9] === 1 && packet[20] === 8) this.holdOrStart(entry, packet, now);
    // other gateway answers (DNS, unreachable) to a host without a session are dropped
  }

  // ---- ping ----

  ping(target: string, timeoutMs = 30_000): Promise<{ address: string; rttMs: number }> {
    const byAddr = parseAddress(target);
    const entry = byAddr !== null ? this.byAddress.get(byAddr) : this.byName.get(target.endsWith(`.${this.domain}`) ? target.slice(0, -this.domain.length - 1) : target);
    if (entry === undefined) return Promise.reject(new Error(`unknown host: ${target}`));
    if (this.pingsInFlight.size >= this.limits.maxPendingPings) return Promise.reject(new Error('too many pings in flight'));
    if (this.closing) return Promise.reject(new Error('relay is closing'));
    return new Promise((resolve, reject) => {
      const p: PendingPing = {
        address: entry.address,
        name: entry.name,
        sent: new Map(),
        resolve,
        reject,
        timer: setTimeout(() => this.endPing(p, new Error(`ping ${target}: no reply within ${timeoutMs}ms`)), timeoutMs),
        // a request may be lost (e.g. while the host starts): send another each second
        resend: setInterval(() => this.sendPing(p), PING_RESEND_MS),
      };
      this.pingsInFlight.add(p);
      this.sendPing(p);
    });
  }

  private sendPing(p: PendingPing): void {
    // a host the relay can neither reach nor start: say so now rather than at the timeout
    const entry = this.byAddress.get(p.address);
    const now = Date.now();
    if (entry === undefined) return this.endPing(p, new Error(`host ${p.name} unreachable: forgotten by the relay`));
    if (entry.session === null && !this.lifecycle.canHold(entry, now)) {
      const why =
        entry.spec === null
          ? `joined by hand and not connected (${entry.lastReason})`
          : entry.state === 'failed'
            ? `${entry.lastReason}; next start attempt in ${formatDuration(Math.max(1, Math.ceil((entry.retryAt - now) / 1000)) * 1000)}`
            : entry.lastReason;
      return this.endPing(p, new Error(`host ${entry.name} unreachable: ${why}`));
    }
    const seq = this.nextPingSeq;
    this.nextPingSeq = (this.nextPingSeq % 0xffff) + 1;
    p.sent.set(seq, performance.now());
    this.pings.set(seq, p);
    const req = buildIcmpEchoRequest({ src: this.net.gateway, dst: p.address, identifier: this.pingId, sequence: seq, payload: PING_PAYLOAD });
    this.fromGateway(req);
  }

  private endPing(p: PendingPing, error: Error | null, rttMs = 0): void {
    if (!this.pingsInFlight.delete(p)) return;
    clearTimeout(p.timer);
    clearInterval(p.resend);
    for (const seq of p.sent.keys()) this.pings.delete(seq);
    if (error !== null) p.reject(error);
    else p.resolve({ address: formatAddress(p.address), rttMs });
  }

  private onEchoReply(from: number, id: number, seq: number): void {
    if (id !== this.pingId) return;
    const p = this.pings.get(seq);
    const sentAt = p?.sent.get(seq);
    if (p === undefined || sentAt === undefined || p.address !== from) return;
    this.endPing(p, null, performance.now() - sentAt);
  }

  // ---- timers ----

  private tick(): void {
    const now = Date.now();
    this.lifecycle.tick(this.byName.values(), now);
    if (this.dynamicCount > 0) {
      for (const e of this.byName.values()) {
        if (this.isGoneDynamic(e) && now - e.since >= this.limits.dynamicForgetMs) this.forgetDynamic(e, `gone for ${Math.round((now - e.since) / 1000)}s`);
      }
    }
    if (now - this.lastPingRound >= this.limits.pingIntervalMs) {
      this.lastPingRound = now;
      for (const e of this.routes.values()) {
        const s = e.session;
        if (s === null) continue;
        if (now - s.lastPongAt > 2 * this.limits.pingIntervalMs + this.limits.tickMs) {
          this.count('session-timeout', e);
          s.terminate();
        } else {
          s.ws.ping();
        }
      }
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    for (const p of [...this.pingsInFlight]) this.endPing(p, new Error('relay closed'));
    const closed: Promise<void>[] = [];
    for (const e of this.byName.values()) {
      const s = e.session;
      if (s !== null) {
        closed.push(new Promise((r) => s.ws.once('close', () => r())));
        s.close(1001, 'relay closing', 500);
      }
    }
    await this.lifecycle.stopAll(this.byName.values());
    await Promise.all(closed);
    this.wss.close();
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
  const server = createServer();
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
  return new RelayServer(server, bound, net, options, secret);
}

