// A Link to the relay over one WebSocket (relay protocol v1): batched binary frames of
// whole IPv4 packets, JSON control frames, ping/pong liveness, and reconnect with backoff.
// Independent of the host runtime: `imach join` reuses it for a TUN device.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createRequire } from 'node:module';
import type { RawData } from 'ws';
import type { Link, PacketHandler } from '../netstack/link/link.js';
import { createLogger, type Logger } from './log.js';
import { FrameReader, binaryFrameHeader } from '../relay/frame-reader.js';
import { checkPacket } from '../relay/packet.js';
import { PacketWalker } from '../relay/packet-views.js';
import {
  JOIN_PATH,
  MAX_PACKETS_PER_FRAME,
  RECONNECT_MAX_MS,
  RECONNECT_MIN_MS,
  SUBPROTOCOL,
  decodeControl,
  encodeControl,
  isProtocolError,
  maxFrameBytes,
  type HostToRelayMessage,
  type RelayToHostMessage,
  type UnknownControlMessage,
  type WelcomeMessage,
} from './protocol.js';

// ws is CommonJS: require() loads it in about half the time of an ES import (no CJS export
// scan), which a cold host function's start waits for.
const { WebSocket } = createRequire(import.meta.url)('ws') as typeof import('ws');
type WebSocket = InstanceType<typeof WebSocket>;

type Welcome = WelcomeMessage;

export interface RelayLinkOptions {
  /** ws://host:port (JOIN_PATH is appended when there is no path) or the full join URL. */
  url: string;
  /** The join token, or a function giving a fresh one for every (re)connect. */
  token: string | (() => string | Promise<string>);
  logger?: Logger;
  /** Largest binary frame sent; packets queued in one tick share a frame up to this. */
  maxBatchBytes?: number;
  /** Most packets in one binary frame. */
  maxBatchPackets?: number;
  /** Packets held while disconnected (oldest dropped beyond this). */
  maxQueuePackets?: number;
  maxQueueBytes?: number;
  /** Packets are dropped while the socket's unsent bytes exceed this. */
  maxBufferedBytes?: number;
  connectTimeoutMs?: number;
  pingIntervalMs?: number;
  /** Without any frame or pong for this long, the peer is dead. */
  deadAfterMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Stop reconnecting after being disconnected this long. */
  giveUpAfterMs?: number;
}

const DEFAULTS = {
  maxBatchBytes: maxFrameBytes(),
  maxBatchPackets: MAX_PACKETS_PER_FRAME,
  maxQueuePackets: 4096,
  maxQueueBytes: 8 << 20,
  maxBufferedBytes: 16 << 20,
  connectTimeoutMs: 10_000,
  pingIntervalMs: 2_000,
  deadAfterMs: 6_000,
  backoffInitialMs: RECONNECT_MIN_MS,
  backoffMaxMs: RECONNECT_MAX_MS,
  giveUpAfterMs: 30_000,
};

export type RelayLinkState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export type DropReason =
  | 'malformed'
  | 'queueFull'
  | 'congested'
  | 'tooBig'
  | 'closed'
  | 'badControl'
  | 'noHandler';

export interface RelayLinkCounters {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  /** binary frames read off the socket by the link itself (FrameReader), not through ws */
  framesDirect: number;
  framesOut: number;
  controlIn: number;
  controlOut: number;
  reconnects: number;
  drops: Record<DropReason, number>;
}

/** Why a connect attempt or the whole link failed. */
export interface RelayLinkError {
  kind: 'auth' | 'forbidden' | 'http' | 'network' | 'protocol' | 'timeout' | 'gaveUp' | 'closed' | 'replaced';
  message: string;
  status?: number;
}

export function isRelayLinkError(v: unknown): v is RelayLinkError {
  return typeof v === 'object' && v !== null && 'kind' in v && 'message' in v;
}

/** Control messages from the relay after the welcome; unknown types arrive as `unknown`. */
export type ControlHandler = (msg: RelayToHostMessage | UnknownControlMessage) => void;

/** Build the join URL from a relay address. */
export function joinUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '' || u.pathname === '/') u.pathname = JOIN_PATH;
  return u.toString();
}

/**
 * Split a binary frame into IPv4 packets by their total-length fields, with the relay's
 * header checks except the checksum (the relay checked that).
 */
export function splitPackets(
  frame: Uint8Array,
): { packets: Uint8Array[]; malformed: boolean } {
  const packets: Uint8Array[] = [];
  let off = 0;
  while (off < frame.length) {
    const total = checkPacket(frame, off, frame.length - off, false);
    if (total < 0) return { packets, malformed: true };
    packets.push(frame.subarray(off, off + total));
    off += total;
  }
  return { packets, malformed: false };
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

export class RelayLink implements Link {
  readonly options: Required<Omit<RelayLinkOptions, 'logger'>>;
  private readonly log: Logger;
  private ws: WebSocket | null = null;
  /** The WebSocket's TCP socket: a frame of several packets is written as a gather list. */
  private socket: Duplex | null = null;
  private _welcome: Welcome | null = null;
  private _state: RelayLinkState = 'connecting';
  private receiveHandler: PacketHandler | null = null;
  private batchEndHandler: (() => void) | null = null;
  private early: Uint8Array[] = [];
  private earlyBytes = 0;
  private receivePaused = false;
  private stash: ((data: RawData, isBinary: boolean) => void) | null = null;
  private stashed: { data: RawData; isBinary: boolean }[] = [];
  private stashedBytes = 0;
  private controlHandlers: ControlHandler[] = [];
  private stateHandlers: ((s: RelayLinkState, err?: RelayLinkError) => void)[] = [];
  /** Packets waiting for the next flush (same tick) or for a reconnect. */
  private queue: QueuedPacket[] = [];
  private queueHead = 0;
  private queueBytes = 0;
  private flushScheduled = false;
  private pingTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private lastHeard = 0;
  private disconnectedAt = 0;
  private attempt = 0;
  private endResolve!: (e: RelayLinkError | null) => void;
  /** Resolves when the link is closed for good: null after close(), an error if it gave up. */
  readonly ended: Promise<RelayLinkError | null>;
  readonly counters: RelayLinkCounters = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    framesIn: 0,
    framesDirect: 0,
    framesOut: 0,
    controlIn: 0,
    controlOut: 0,
    reconnects: 0,
    drops: {
      malformed: 0,
      queueFull: 0,
      congested: 0,
      tooBig: 0,
      closed: 0,
      badControl: 0,
      noHandler: 0,
    },
  };

  private constructor(options: RelayLinkOptions) {
    const { logger, ...rest } = options;
    this.options = { ...DEFAULTS, ...stripUndefined(rest) } as Required<
      Omit<RelayLinkOptions, 'logger'>
    >;
    this.log = logger ?? createLogger({ fields: { component: 'relay-link' } });
    this.ended = new Promise((r) => (this.endResolve = r));
  }

  /** Connect and wait for the welcome. Errors are values (a refused token, no relay). */
  static async connect(options: RelayLinkOptions): Promise<RelayLink | RelayLinkError> {
    const link = new RelayLink(options);
    const r = await link.dial();
    if (isRelayLinkError(r)) {
      link.finish(r);
      return r;
    }
    link.attach(r.ws, r.welcome, r.socket);
    return link;
  }

  get welcome(): Welcome {
    if (!this._welcome) throw new Error('RelayLink has no welcome yet');
    return this._welcome;
  }

  get state(): RelayLinkState {
    return this._state;
  }

  get mtu(): number {
    return this._welcome?.mtu ?? 65535;
  }

  onReceive(handler: PacketHandler): void {
    this.receiveHandler = handler;
    this.deliverHeld();
  }

  /** Called after the packets of each binary frame (and of each release of held packets). */
  onBatchEnd(handler: () => void): void {
    this.batchEndHandler = handler;
  }

  /**
   * Hold received packets (bounded by maxQueuePackets, oldest kept) until resumeReceive():
   * a host holds what the relay flushed at join until its app had a chance to listen.
   */
  pauseReceive(): void {
    this.receivePaused = true;
  }

  resumeReceive(): void {
    this.receivePaused = false;
    this.deliverHeld();
  }

  private deliverHeld(): void {
    const h = this.receiveHandler;
    if (!h || this.receivePaused) return;
    const held = this.early;
    this.early = [];
    this.earlyBytes = 0;
    for (const p of held) h(p);
    if (held.length > 0) this.batchEndHandler?.();
  }

  /** Control messages other than the welcome (drain, error, and unknown types). */
  onControl(handler: ControlHandler): () => void {
    this.controlHandlers.push(handler);
    return () => {
      this.controlHandlers = this.controlHandlers.filter((h) => h !== handler);
    };
  }

  /** State changes; 'closed' carries the error when the link gave up. */
  onStateChange(handler: (s: RelayLinkState, err?: RelayLinkError) => void): void {
    this.stateHandlers.push(handler);
  }

  send(packet: Uint8Array): void {
    if (!this.admit(packet.length)) return;
    this.enqueue(packet);
    if (this._state === 'open') this.scheduleFlush();
  }

  /**
   * Send one packet given as `header` and `payload` views (Link.sendGather): queued and
   * batched like any packet, and written to the socket without joining its parts when
   * its frame is written as a gather list. The views are not copied: see Link.sendGather.
   */
  sendGather(header: Uint8Array, payload: readonly Uint8Array[], length: number): void {
    if (!this.admit(length)) return;
    this.enqueue(new GatheredPacket(header, payload, length));
    if (this._state === 'open') this.scheduleFlush();
  }

  /** Whether a packet of `length` bytes may be queued now; counts the drop if not. */
  private admit(length: number): boolean {
    if (this._state === 'closed') {
      this.counters.drops.closed++;
      return false;
    }
    if (length > this.options.maxBatchBytes || length > this.mtu) {
      this.counters.drops.tooBig++;
      return false;
    }
    if (this._state === 'open' && this.ws && this.ws.bufferedAmount > this.options.maxBufferedBytes) {
      this.counters.drops.congested++;
      return false;
    }
    return true;
  }

  /** Send a control object now (dropped, returning false, while disconnected). */
  sendControl(msg: HostToRelayMessage): boolean {
    if (this._state !== 'open' || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.flush();
    this.ws.send(encodeControl(msg));
    this.counters.controlOut++;
    return true;
  }

  /** Flush what is queued, then close the socket; waits (bounded) for the close handshake. */
  async closeGracefully(timeoutMs = 1000): Promise<void> {
    if (this._state === 'closed') return;
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      this.flush();
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      this.finish(null);
      ws.close(1000, 'bye');
      const t = setTimeout(() => ws.terminate(), timeoutMs);
      await closed;
      clearTimeout(t);
    } else {
      this.close();
    }
  }

  close(): void {
    if (this._state === 'closed') return;
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) this.flush(ws);
    this.finish(null);
    if (ws) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(1000, 'bye');
        const t = setTimeout(() => ws.terminate(), 1000);
        ws.once('close', () => clearTimeout(t));
      } else {
        ws.terminate();
      }
    }
  }

  // --- internals ---

  private enqueue(packet: QueuedPacket): void {
    const o = this.options;
    while (
      this.queue.length - this.queueHead >= o.maxQueuePackets ||
      (this.queueBytes + packet.length > o.maxQueueBytes && this.queue.length > this.queueHead)
    ) {
      const old = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = EMPTY;
      this.queueBytes -= old.length;
      this.counters.drops.queueFull++;
    }
    this.queue.push(packet);
    this.queueBytes += packet.length;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(ws: WebSocket | null = this.ws): void {
    if (!ws || ws.readyState !== WebSocket.OPEN || this._state === 'reconnecting') return;
    const max = this.options.maxBatchBytes;
    const socket = ws === this.ws ? this.socket : null;
    // one writev for all the frames of this flush
    socket?.cork();
    while (this.queueHead < this.queue.length) {
      let n = 0;
      let bytes = 0;
      for (let i = this.queueHead; i < this.queue.length; i++) {
        const len = this.queue[i]!.length;
        if (n > 0 && (bytes + len > max || n >= this.options.maxBatchPackets)) break;
        n++;
        bytes += len;
      }
      const first = this.queue[this.queueHead]!;
      // Frames go straight to the socket (ws's Sender would only add a copy of its checks);
      // small packets are joined first, which costs less than a write each.
      if (socket !== null && (n === 1 || bytes >= n * GATHER_MIN_AVERAGE)) writeGathered(socket, this.queue, this.queueHead, n, bytes);
      else if (socket !== null) writeGathered(socket, [concat(this.queue, this.queueHead, n, bytes)], 0, 1, bytes);
      else ws.send(n === 1 && first instanceof Uint8Array ? first : concat(this.queue, this.queueHead, n, bytes), { binary: true });
      for (let i = 0; i < n; i++) this.queue[this.queueHead + i] = EMPTY;
      this.queueHead += n;
      this.queueBytes -= bytes;
      this.counters.framesOut++;
      this.counters.packetsOut += n;
      this.counters.bytesOut += bytes;
    }
    socket?.uncork();
    this.queue = [];
    this.queueHead = 0;
    this.queueBytes = 0;
  }

  private async dial(): Promise<{ ws: WebSocket; welcome: Welcome; socket: Duplex | null } | RelayLinkError> {
    let token: string;
    try {
      token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
    } catch (e) {
      return { kind: 'auth', message: `no token: ${(e as Error).message}` };
    }
    let url: string;
    try {
      url = joinUrl(this.options.url);
    } catch {
      return { kind: 'network', message: `invalid relay URL ${this.options.url}` };
    }
    return new Promise((resolve) => {
      let settled = false;
      let socket: Duplex | null = null;
      const maxPayload = Math.max(maxFrameBytes(), this.options.maxBatchBytes) + 65536;
      const ws = new WebSocket(url, SUBPROTOCOL, {
        headers: { authorization: `Bearer ${token}` },
        perMessageDeflate: false,
        maxPayload,
        handshakeTimeout: this.options.connectTimeoutMs,
        // RFC 6455 section 5.3 masks client frames to protect browsers' intermediaries from
        // cache poisoning; this link only talks to our own relay, and a zero key lets both
        // ends skip the XOR pass over every payload byte (ws skips all-zero masks).
        generateMask: zeroMask,
      });
      const done = (r: { ws: WebSocket; welcome: Welcome; socket: Duplex | null } | RelayLinkError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.off('message', onMessage);
        // Frames right behind the welcome (held packets) can arrive before attach().
        if (!isRelayLinkError(r)) ws.on('message', stash);
        if (isRelayLinkError(r)) {
          ws.removeAllListeners();
          ws.on('error', () => {});
          ws.terminate();
        }
        resolve(r);
      };
      const timer = setTimeout(
        () => done({ kind: 'timeout', message: `no welcome from ${url} within ${this.options.connectTimeoutMs} ms` }),
        this.options.connectTimeoutMs,
      );
      ws.on('unexpected-response', (_req, res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const header = res.headers['x-imach-error'];
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 1024) body += c;
        });
        res.on('end', () => {
          const why = (typeof header === 'string' ? header : '') || body.trim() || `HTTP ${status}`;
          const kind = status === 401 ? 'auth' : status === 403 ? 'forbidden' : 'http';
          done({ kind, status, message: `relay refused join: ${why}` });
        });
        res.on('error', () => done({ kind: 'http', status, message: `relay refused join: HTTP ${status}` }));
      });
      // the response of an upgrade is parsed on the socket the WebSocket then uses
      ws.once('upgrade', (res: IncomingMessage) => (socket = res.socket));
      // Binary frames come off the socket as views of its reads (no joined copy of each
      // frame, as the relay does); ws keeps the welcome and every other frame. 'open' comes
      // before anything after the upgrade response has been read.
      ws.once('open', () => {
        if (socket === null) return;
        const reader = FrameReader.attach(ws, socket, maxPayload, (views) => onBinaryFrame(views), 'client');
        if (typeof reader === 'string') this.log.debug('binary frames go through ws', { reason: reader });
      });
      const onBinaryFrame = (views: Uint8Array[]) => {
        if (!settled) return done({ kind: 'protocol', message: 'binary frame before welcome' });
        this.counters.framesDirect++;
        if (this.ws === ws) this.onFrameViews(views);
        // between the welcome and attach(): kept with the frames ws delivers meanwhile
        else if (this.stash === stash) stash(views as Buffer[], true);
      };
      ws.on('error', (e: Error) => done({ kind: 'network', message: `cannot reach relay ${url}: ${e.message}` }));
      ws.on('close', (code, reason) =>
        done({ kind: 'closed', message: `relay closed during join (${code} ${reason.toString()})` }),
      );
      const onMessage = (data: RawData, isBinary: boolean) => {
        if (isBinary) return done({ kind: 'protocol', message: 'binary frame before welcome' });
        const m = decodeControl(rawToString(data));
        if (isProtocolError(m)) return done({ kind: 'protocol', message: `bad welcome: ${m.message}` });
        if (m.type === 'error') {
          return done({ kind: 'protocol', message: `relay error: ${m.code} ${m.message}` });
        }
        if (m.type !== 'welcome') return done({ kind: 'protocol', message: `expected welcome, got ${m.type}` });
        done({ ws, welcome: m, socket });
      };
      const stash = (data: RawData, isBinary: boolean) => {
        const size = rawLength(data);
        if (this.stashed.length < this.options.maxQueuePackets && this.stashedBytes + size <= this.options.maxQueueBytes) {
          this.stashed.push({ data, isBinary });
          this.stashedBytes += size;
        } else {
          this.counters.drops.queueFull++;
        }
      };
      this.stash = stash;
      ws.on('message', onMessage);
    });
  }

  private attach(ws: WebSocket, welcome: Welcome, socket: Duplex | null): void {
    if (this._welcome && welcome.address !== this._welcome.address) {
      this.log.warn('address changed on reconnect', { was: this._welcome.address, now: welcome.address });
    }
    this._welcome = welcome;
    this.ws = ws;
    this.socket = socket;
    this.attempt = 0;
    this.lastHeard = Date.now();
    ws.removeAllListeners('error');
    ws.removeAllListeners('close');
    ws.removeAllListeners('unexpected-response');
    if (this.stash) ws.off('message', this.stash);
    this.stash = null;
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    const stashed = this.stashed;
    this.stashed = [];
    this.stashedBytes = 0;
    for (const f of stashed) this.onFrame(f.data, f.isBinary);
    ws.on('pong', () => (this.lastHeard = Date.now()));
    ws.on('ping', () => (this.lastHeard = Date.now()));
    ws.on('error', (e) => this.log.debug('socket error', { err: e.message }));
    ws.on('close', (code, reason) => this.onSocketClose(ws, code, reason.toString()));
    this.pingTimer = setInterval(() => this.checkLiveness(ws), this.options.pingIntervalMs);
    this.pingTimer.unref?.();
    this.setState('open');
    this.flush();
  }

  private checkLiveness(ws: WebSocket): void {
    if (ws !== this.ws) return;
    if (Date.now() - this.lastHeard > this.options.deadAfterMs) {
      this.log.warn('relay not answering, reconnecting', { silentMs: Date.now() - this.lastHeard });
      ws.terminate();
      return;
    }
    if (ws.readyState === WebSocket.OPEN) ws.ping();
  }

  /** A binary frame as views of the socket reads it came in (FrameReader). */
  private onFrameViews(views: Uint8Array[]): void {
    if (views.length === 1) return this.onFrame(views[0] as Buffer, true);
    this.lastHeard = Date.now();
    this.counters.framesIn++;
    let length = 0;
    for (const v of views) length += v.length;
    const w = new PacketWalker(views, length);
    const packets: Uint8Array[] = [];
    let malformed = false;
    while (!w.done) {
      const off = w.pos;
      // the checks of splitPackets
      const len = w.check(false);
      if (len < 0) {
        malformed = true;
        break;
      }
      // a view when the packet lies in one read, else a copy of it
      const parts = w.slice(off, off + len);
      packets.push(parts.length === 1 ? parts[0]! : Buffer.concat(parts, len));
      w.skip(len);
    }
    this.receivePackets(packets, malformed);
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    this.lastHeard = Date.now();
    if (isBinary) {
      this.counters.framesIn++;
      const { packets, malformed } = splitPackets(rawToBytes(data));
      this.receivePackets(packets, malformed);
      return;
    }
    this.onControlFrame(data);
  }

  /** The packets of one binary frame, to the stack (or held until it listens). */
  private receivePackets(packets: readonly Uint8Array[], malformed: boolean): void {
    if (malformed) this.counters.drops.malformed++;
    const h = this.receiveHandler;
    let delivered = false;
    for (const p of packets) {
      this.counters.packetsIn++;
      this.counters.bytesIn += p.length;
      if (!h || this.receivePaused) {
        if (this.early.length < this.options.maxQueuePackets && this.earlyBytes + p.length <= this.options.maxQueueBytes) {
          this.early.push(p);
          this.earlyBytes += p.length;
        } else {
          this.counters.drops.noHandler++;
        }
        continue;
      }
      h(p);
      delivered = true;
    }
    if (delivered) this.batchEndHandler?.();
  }

  private onControlFrame(data: RawData): void {
    const m = decodeControl(rawToString(data));
    if (isProtocolError(m)) {
      this.counters.drops.badControl++;
      this.log.debug('bad control frame', { field: m.field, err: m.message });
      return;
    }
    this.counters.controlIn++;
    if (m.type === 'welcome') {
      this._welcome = m;
      return;
    }
    if (m.type === 'activity' || m.type === 'released') return;
    if (m.type === 'error') {
      this.log.warn('relay error', { code: m.code, message: m.message });
    }
    for (const h of [...this.controlHandlers]) {
      try {
        h(m);
      } catch (e) {
        this.log.error('control handler threw', { type: m.type, err: e as Error });
      }
    }
  }

  private onSocketClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.stopPing();
    this.ws = null;
    this.socket = null;
    if (this._state === 'closed') return;
    if (code === CLOSE_REPLACED) {
      // Another session joined as this host: reconnecting would only push it out again.
      this.finish({ kind: 'replaced', message: `relay closed the session: ${reason || 'replaced by a new session'}` });
      return;
    }
    this.log.warn('relay connection lost', { code, reason });
    this.disconnectedAt = Date.now();
    this.setState('reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this._state === 'closed') return;
    const elapsed = Date.now() - this.disconnectedAt;
    if (elapsed >= this.options.giveUpAfterMs) {
      this.finish({ kind: 'gaveUp', message: `relay unreachable for ${elapsed} ms` });
      return;
    }
    const base = Math.min(this.options.backoffMaxMs, this.options.backoffInitialMs * 2 ** this.attempt);
    // Jitter in [0.5, 1.0) of the base spreads reconnects after a relay restart.
    const delay = Math.min(base * (0.5 + Math.random() * 0.5), this.options.giveUpAfterMs - elapsed);
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.reconnectOnce();
    }, delay);
  }

  private async reconnectOnce(): Promise<void> {
    if (this._state === 'closed') return;
    const r = await this.dial();
    if (this.isClosed()) {
      if (!isRelayLinkError(r)) r.ws.terminate();
      return;
    }
    if (isRelayLinkError(r)) {
      this.log.debug('reconnect failed', { kind: r.kind, err: r.message, attempt: this.attempt });
      if (r.kind === 'forbidden' || (r.kind === 'auth' && typeof this.options.token === 'string')) {
        this.finish(r);
        return;
      }
      this.scheduleReconnect();
      return;
    }
    this.counters.reconnects++;
    this.log.info('reconnected to relay', { address: r.welcome.address, session: r.welcome.session });
    this.attach(r.ws, r.welcome, r.socket);
  }

  private isClosed(): boolean {
    return this._state === 'closed';
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private setState(s: RelayLinkState, err?: RelayLinkError): void {
    if (this._state === s) return;
    this._state = s;
    for (const h of [...this.stateHandlers]) h(s, err);
  }

  private finish(err: RelayLinkError | null): void {
    if (this._state === 'closed') return;
    this.stopPing();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const dropped = this.queue.length - this.queueHead;
    if (dropped > 0) this.counters.drops.closed += dropped;
    this.queue = [];
    this.queueHead = 0;
    this.queueBytes = 0;
    const ws = this.ws;
    this.ws = null;
    this.socket = null;
    if (ws && ws.readyState !== WebSocket.OPEN) ws.terminate();
    if (err) this.log.warn('relay link gave up', { kind: err.kind, err: err.message });
    this.setState('closed', err ?? undefined);
    this.endResolve(err);
  }
}

const EMPTY = new Uint8Array(0);

/** A packet queued as header and payload views (RelayLink.sendGather). */
class GatheredPacket {
  constructor(
    readonly header: Uint8Array,
    readonly payload: readonly Uint8Array[],
    /** bytes of the whole packet */
    readonly length: number,
  ) {}
}

type QueuedPacket = Uint8Array | GatheredPacket;
/**
 * Packets of at least this size on average are written as a gather list; smaller ones are
 * copied into one buffer, which costs less than a socket write per packet.
 */
const GATHER_MIN_AVERAGE = 8192;
/** WebSocket close code the relay uses when a new session for the same host replaces this one. */
export const CLOSE_REPLACED = 4000;

function concat(list: QueuedPacket[], start: number, n: number, bytes: number): Uint8Array {
  const out = Buffer.allocUnsafe(bytes);
  let off = 0;
  for (let i = start; i < start + n; i++) {
    const p = list[i]!;
    if (p instanceof Uint8Array) {
      out.set(p, off);
      off += p.length;
      continue;
    }
    out.set(p.header, off);
    off += p.header.length;
    for (const part of p.payload) {
      out.set(part, off);
      off += part.length;
    }
  }
  return out;
}

/**
 * Write one binary WebSocket frame holding `n` queued packets without joining them: the
 * header, then each packet (a gathered one as its header and payload views), on a corked
 * socket (one writev). ws writes synchronously to the same socket (no compression, no
 * Blobs), so frames stay in order with its own.
 */
function writeGathered(socket: Duplex, list: QueuedPacket[], start: number, n: number, bytes: number): void {
  socket.write(binaryFrameHeader(bytes, true));
  for (let i = start; i < start + n; i++) {
    const p = list[i]!;
    if (p instanceof Uint8Array) {
      socket.write(p);
      continue;
    }
    socket.write(p.header);
    for (const part of p.payload) socket.write(part);
  }
}

function rawToBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

function rawToString(data: RawData): string {
  return Buffer.from(rawToBytes(data)).toString('utf8');
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
