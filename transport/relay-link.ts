// A Link to the relay over one WebSocket (relay protocol v1): batched binary frames of
// whole IPv4 packets, JSON control frames, ping/pong liveness, and reconnect with backoff.
// Host functions use it as their stack's Link (it has netstack's Link methods); `imach
// join` uses it for a TUN device.

import { CLOSE_NORMAL } from './frame.js';
import { dialWebSocket, isDialError, type DialError, type TlsTrust } from './dial.js';
import { PacketWalker, splitPackets } from './packet-walker.js';
import type { MaskMode, WebSocketConnection } from './websocket.js';
import {
  ERROR_HEADER,
  JOIN_PATH,
  MAX_CONTROL_CHARS,
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
} from '../relay/protocol.js';

export { splitPackets };

type Welcome = WelcomeMessage;

/** Handler of received IPv4 packets (netstack's PacketHandler). */
export type PacketHandler = (packet: Uint8Array) => void;

/** What the link logs through: netstack's and the relay's loggers both fit. */
export interface LinkLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const silentLogger: LinkLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface RelayLinkOptions {
  /** ws://host:port (JOIN_PATH is appended when there is no path) or the full join URL. */
  url: string;
  /** The join token, or a function giving a fresh one for every (re)connect. */
  token: string | (() => string | Promise<string>);
  /** default: silent */
  logger?: LinkLogger;
  /** How to trust a wss:// relay: system CAs (default), a given CA, or a pinned certificate. */
  tls?: TlsTrust;
  /**
   * Masking of frames to the relay; default: the zero key over TLS or to a loopback relay,
   * a random key per frame otherwise (relay/PROTOCOL.md).
   */
  mask?: MaskMode;
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
  /** binary frames received and sent */
  framesIn: number;
  framesOut: number;
  controlIn: number;
  controlOut: number;
  reconnects: number;
  drops: Record<DropReason, number>;
}

/** Why a connect attempt or the whole link failed. */
export interface RelayLinkError {
  kind: 'auth' | 'forbidden' | 'http' | 'network' | 'tls' | 'protocol' | 'timeout' | 'gaveUp' | 'closed' | 'replaced';
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

/** A frame that arrived between the welcome and attach(). */
type StashedFrame = { views: Uint8Array[]; length: number } | { text: string };

export class RelayLink {
  readonly options: Required<Omit<RelayLinkOptions, 'logger' | 'tls' | 'mask'>> & Pick<RelayLinkOptions, 'tls' | 'mask'>;
  private readonly log: LinkLogger;
  private ws: WebSocketConnection | null = null;
  private _welcome: Welcome | null = null;
  private _state: RelayLinkState = 'connecting';
  private receiveHandler: PacketHandler | null = null;
  private batchEndHandler: (() => void) | null = null;
  private early: Uint8Array[] = [];
  private earlyBytes = 0;
  private receivePaused = false;
  private stashed: StashedFrame[] = [];
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
  private unrefd = false;
  /** when checkLiveness last ran: a late run means a blocked event loop, not a dead relay */
  private lastCheckAt = 0;
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
    this.options = { ...DEFAULTS, ...stripUndefined(rest) } as RelayLink['options'];
    this.log = logger ?? silentLogger;
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
    link.attach(r.ws, r.welcome);
    return link;
  }

  get welcome(): Welcome {
    if (!this._welcome) throw new Error('RelayLink has no welcome yet');
    return this._welcome;
  }

  /**
   * Do not keep the process alive: the link's socket (and every socket a reconnect dials)
   * and its timers are unref'd, so a program whose own handles are gone can end.
   */
  unref(): void {
    this.unrefd = true;
    this.ws?.unref();
    this.reconnectTimer?.unref();
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
    if (this._state === 'open' && this.ws !== null && this.ws.bufferedAmount > this.options.maxBufferedBytes) {
      this.counters.drops.congested++;
      return false;
    }
    return true;
  }

  /** Send a control object now (dropped, returning false, while disconnected). */
  sendControl(msg: HostToRelayMessage): boolean {
    if (this._state !== 'open' || this.ws === null || this.ws.state !== 'open') return false;
    this.flush();
    this.ws.sendText(encodeControl(msg));
    this.counters.controlOut++;
    return true;
  }

  /** Flush what is queued, then close the socket; waits (bounded) for the close handshake. */
  async closeGracefully(timeoutMs = 1000): Promise<void> {
    if (this._state === 'closed') return;
    const ws = this.ws;
    if (ws !== null && ws.state === 'open') {
      this.flush();
      const closed = new Promise<void>((r) => (ws.handlers.close = () => r()));
      this.finish(null);
      ws.close(CLOSE_NORMAL, 'bye', timeoutMs);
      await closed;
    } else {
      this.close();
    }
  }

  close(): void {
    if (this._state === 'closed') return;
    const ws = this.ws;
    if (ws !== null && ws.state === 'open') this.flush(ws);
    this.finish(null);
    if (ws !== null) {
      if (ws.state === 'open') ws.close(CLOSE_NORMAL, 'bye', 1000);
      else ws.terminate();
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

  private flush(ws: WebSocketConnection | null = this.ws): void {
    if (ws === null || ws.state !== 'open' || this._state === 'reconnecting') return;
    const max = this.options.maxBatchBytes;
    // the connection writes the frames of one tick as one corked write
    while (this.queueHead < this.queue.length) {
      let n = 0;
      let bytes = 0;
      for (let i = this.queueHead; i < this.queue.length; i++) {
        const len = this.queue[i]!.length;
        if (n > 0 && (bytes + len > max || n >= this.options.maxBatchPackets)) break;
        n++;
        bytes += len;
      }
      // Large packets go out as a gather list (no copy unless the frame is masked); small
      // ones are joined first, which costs less than a socket write each.
      if (n === 1 || bytes >= n * GATHER_MIN_AVERAGE) ws.sendBinary(gatherViews(this.queue, this.queueHead, n), bytes);
      else ws.sendBinary([concat(this.queue, this.queueHead, n, bytes)], bytes);
      for (let i = 0; i < n; i++) this.queue[this.queueHead + i] = EMPTY;
      this.queueHead += n;
      this.queueBytes -= bytes;
      this.counters.framesOut++;
      this.counters.packetsOut += n;
      this.counters.bytesOut += bytes;
    }
    this.queue = [];
    this.queueHead = 0;
    this.queueBytes = 0;
  }

  private async dial(): Promise<{ ws: WebSocketConnection; welcome: Welcome } | RelayLinkError> {
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
    const started = Date.now();
    const ws = await dialWebSocket({
      url,
      protocol: SUBPROTOCOL,
      headers: { authorization: `Bearer ${token}` },
      timeoutMs: this.options.connectTimeoutMs,
      maxBinaryBytes: Math.max(maxFrameBytes(), this.options.maxBatchBytes),
      maxTextBytes: MAX_CONTROL_TEXT_BYTES,
      errorHeader: ERROR_HEADER,
      ...(this.options.tls !== undefined ? { tls: this.options.tls } : {}),
      ...(this.options.mask !== undefined ? { mask: this.options.mask } : {}),
    });
    if (isDialError(ws)) return fromDialError(ws, url);
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: { ws: WebSocketConnection; welcome: Welcome } | RelayLinkError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (isRelayLinkError(r)) {
          ws.handlers = {};
          ws.terminate();
        }
        resolve(r);
      };
      const timer = setTimeout(
        () => done({ kind: 'timeout', message: `no welcome from ${url} within ${this.options.connectTimeoutMs} ms` }),
        Math.max(0, this.options.connectTimeoutMs - (Date.now() - started)),
      );
      // Frames right behind the welcome (held packets) arrive before attach(): kept, bounded.
      const stash = (frame: StashedFrame, size: number): void => {
        if (this.stashed.length < this.options.maxQueuePackets && this.stashedBytes + size <= this.options.maxQueueBytes) {
          this.stashed.push(frame);
          this.stashedBytes += size;
        } else {
          this.counters.drops.queueFull++;
        }
      };
      ws.start({
        binary: (views, length) => {
          if (settled) return stash({ views, length }, length);
          done({ kind: 'protocol', message: 'binary frame before welcome' });
        },
        text: (text) => {
          if (settled) return stash({ text }, text.length);
          const m = decodeControl(text);
          if (isProtocolError(m)) return done({ kind: 'protocol', message: `bad welcome: ${m.message}` });
          if (m.type === 'error') return done({ kind: 'protocol', message: `relay error: ${m.code} ${m.message}` });
          if (m.type !== 'welcome') return done({ kind: 'protocol', message: `expected welcome, got ${m.type}` });
          done({ ws, welcome: m });
        },
        close: (code, reason) => {
          this.stashed = [];
          this.stashedBytes = 0;
          done({ kind: 'closed', message: `relay closed during join (${code} ${reason})` });
        },
      });
    });
  }

  private attach(ws: WebSocketConnection, welcome: Welcome): void {
    if (this._welcome && welcome.address !== this._welcome.address) {
      this.log.warn('address changed on reconnect', { was: this._welcome.address, now: welcome.address });
    }
    this._welcome = welcome;
    this.ws = ws;
    this.attempt = 0;
    this.lastHeard = Date.now();
    const heard = (): void => {
      this.lastHeard = Date.now();
    };
    ws.handlers = {
      binary: (views, length) => this.guard(() => this.onBinary(views, length)),
      text: (text) => this.guard(() => this.onText(text)),
      ping: heard,
      pong: heard,
      close: (code, reason) => this.onSocketClose(ws, code, reason),
    };
    if (ws.state === 'closed') return this.onSocketClose(ws, 1006, '');
    const stashed = this.stashed;
    this.stashed = [];
    this.stashedBytes = 0;
    for (const f of stashed) {
      if ('text' in f) this.onText(f.text);
      else this.onBinary(f.views, f.length);
    }
    this.lastCheckAt = Date.now();
    this.pingTimer = setInterval(() => this.checkLiveness(ws), this.options.pingIntervalMs);
    this.pingTimer.unref?.();
    if (this.unrefd) ws.unref();
    this.setState('open');
    this.flush();
  }

  /** A handler's bug must not escape into the socket's 'data' event. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log.error('receive handler threw', { err: e instanceof Error ? e.message : String(e) });
    }
  }

  private checkLiveness(ws: WebSocketConnection): void {
    if (ws !== this.ws) return;
    const now = Date.now();
    const late = now - this.lastCheckAt > 2 * this.options.pingIntervalMs;
    this.lastCheckAt = now;
    if (late) {
      // This process's event loop was blocked (an app's synchronous work): what the relay
      // sent meanwhile is still unread behind this timer, so silence says nothing yet.
      this.lastHeard = now;
    } else if (now - this.lastHeard > this.options.deadAfterMs) {
      this.log.warn('relay not answering, reconnecting', { silentMs: Date.now() - this.lastHeard });
      ws.terminate();
      return;
    }
    ws.ping();
  }

  /** A binary frame as views of the socket reads it came in. */
  private onBinary(views: Uint8Array[], length: number): void {
    this.lastHeard = Date.now();
    this.counters.framesIn++;
    if (views.length === 1) {
      const { packets, malformed } = splitPackets(views[0]!);
      return this.receivePackets(packets, malformed);
    }
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

  private onText(text: string): void {
    this.lastHeard = Date.now();
    const m = decodeControl(text);
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

  private onSocketClose(ws: WebSocketConnection, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.stopPing();
    this.ws = null;
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
    if (this.unrefd) this.reconnectTimer.unref();
  }

  private async reconnectOnce(): Promise<void> {
    if (this._state === 'closed') return;
    const r = await this.dial();
    if (this.isClosed()) {
      if (!isRelayLinkError(r)) {
        r.ws.handlers = {};
        r.ws.terminate();
      }
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
    this.attach(r.ws, r.welcome);
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
    if (ws !== null && ws.state !== 'open') ws.terminate();
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

/** The views of `n` queued packets, in order (a gathered one as its header and payload views). */
function gatherViews(list: QueuedPacket[], start: number, n: number): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (let i = start; i < start + n; i++) {
    const p = list[i]!;
    if (p instanceof Uint8Array) views.push(p);
    else views.push(p.header, ...p.payload);
  }
  return views;
}

/** Control messages are at most MAX_CONTROL_CHARS UTF-16 units: at most 3 UTF-8 bytes each. */
const MAX_CONTROL_TEXT_BYTES = MAX_CONTROL_CHARS * 3;

function fromDialError(e: DialError, url: string): RelayLinkError {
  if (e.kind === 'http') {
    const status = e.status ?? 0;
    const kind = status === 401 ? 'auth' : status === 403 ? 'forbidden' : 'http';
    return { kind, status, message: `relay refused join: ${e.reason ?? `HTTP ${status}`}` };
  }
  if (e.kind === 'network') return { kind: 'network', message: `cannot reach relay ${url}: ${e.message}` };
  return { kind: e.kind, message: e.message };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
