// A Node `net`-compatible facade over the stack's TcpHost: Socket is a real Duplex with
// backpressure in both directions, Server follows Node's listen/close/connection rules,
// and errors carry Node's code, errno, syscall, address and port.
//
// Connection events are never acted on inside the TCP layer's call stack: they are queued
// per socket and handled on the next tick, so application callbacks ('data', 'connect',
// 'drain') may call back into the connection safely, as they can with Node's sockets.

import { ProcessHold } from './keepalive.js';
import { EventEmitter } from 'node:events';
import { isIP as nodeIsIP, isIPv4 as nodeIsIPv4, isIPv6 as nodeIsIPv6 } from 'node:net';
import { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import type { Clock, TimerHandle } from '../time.js';
import type {
  TcpConnectionApi,
  TcpConnectionEvents,
  TcpErrorCode,
  TcpHost,
  TcpListenerHandle,
} from '../tcp/types.js';
import { ipv4ToString, parseIpv4Address } from '../wire/ipv4.js';
import {
  codedError,
  hostPortError,
  lookupCodeOf,
  lookupError,
  syscallError,
  uvHostPortError,
  type NetError,
} from './net-errors.js';

export type { NetError } from './net-errors.js';

/** What the facade needs from a stack. */
export interface NetStackLike {
  readonly tcp: TcpHost;
  /** Resolve a host name to a dotted-quad IPv4 address; rejects with code ENOTFOUND. */
  lookup(hostname: string): Promise<string>;
  /** This host's own address (dotted quad); 'localhost' and unspecified hosts mean it. */
  readonly address: string;
  /** Clock for socket idle timeouts; Node's (unref'd) timers when absent. */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export interface NetAddressInfo {
  address: string;
  family: string;
  port: number;
}

export interface NetSocketOptions {
  allowHalfOpen?: boolean;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
  highWaterMark?: number;
}

export interface NetConnectOptions {
  port: number | string;
  host?: string;
  localPort?: number;
  localAddress?: string;
  family?: number;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  timeout?: number;
  allowHalfOpen?: boolean;
}

export interface NetListenOptions {
  port?: number | string;
  host?: string;
  backlog?: number;
}

export interface NetServerOptions {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  highWaterMark?: number;
}

export type ConnectionListener = (socket: NetSocket) => void;
type WriteCallback = (error?: Error | null) => void;
type UserWriteCallback = (error: Error | null | undefined) => void;

export interface NetApi {
  createServer(connectionListener?: ConnectionListener): NetServer;
  createServer(options?: NetServerOptions, connectionListener?: ConnectionListener): NetServer;
  connect(options: NetConnectOptions & NetSocketOptions, connectListener?: () => void): NetSocket;
  connect(port: number | string, host?: string, connectListener?: () => void): NetSocket;
  connect(port: number | string, connectListener?: () => void): NetSocket;
  createConnection(options: NetConnectOptions & NetSocketOptions, connectListener?: () => void): NetSocket;
  createConnection(port: number | string, host?: string, connectListener?: () => void): NetSocket;
  createConnection(port: number | string, connectListener?: () => void): NetSocket;
  Socket: new (options?: NetSocketOptions) => NetSocket;
  Server: {
    new (connectionListener?: ConnectionListener): NetServer;
    new (options?: NetServerOptions, connectionListener?: ConnectionListener): NetServer;
  };
  isIP(input: string): number;
  isIPv4(input: string): boolean;
  isIPv6(input: string): boolean;
}

/** Shared by every socket and server of one NetApi. */
interface NetContext {
  readonly stack: NetStackLike;
  readonly Socket: new (options?: NetSocketOptions) => NetSocket;
}

// Queued connection events. Data chunks are queued as themselves, a closed event with an
// error as its code string, the rest as these numbers.
const EV_ESTABLISHED = 0;
const EV_FIN = 1;
const EV_SEND_SPACE = 2;
const EV_CLOSED = 3;
type InboxItem = Uint8Array | number | TcpErrorCode;

/** Routes one connection's events into its socket's queue. */
class SocketConnEvents implements TcpConnectionEvents {
  constructor(private readonly socket: NetSocket) {}
  established(): void {
    this.socket._post(EV_ESTABLISHED);
  }
  data(chunk: Uint8Array): void {
    this.socket._post(chunk);
  }
  fin(): void {
    this.socket._post(EV_FIN);
  }
  sendSpace(): void {
    this.socket._post(EV_SEND_SPACE);
  }
  closed(error: TcpErrorCode | null): void {
    this.socket._post(error === null ? EV_CLOSED : error);
  }
}

function noop(): void {}

/** Events of a connection nobody owns any more (after abort). */
const IGNORED_EVENTS: TcpConnectionEvents = {
  established: noop,
  data: noop,
  fin: noop,
  sendSpace: noop,
  closed: noop,
};

function abortConnection(conn: TcpConnectionApi, tcp: TcpHost): void {
  if (conn.state !== 'CLOSED') conn.abort(tcp.now());
}

/**
 * A destroyed socket whose FIN is queued: like a closed kernel socket, the connection
 * delivers what was written and resets if the peer sends more data; the connection
 * itself is reset if its close does not finish in time (TcpConnection.orphan, Linux's
 * tcp_fin_timeout).
 */
class OrphanedConnEvents implements TcpConnectionEvents {
  private reset = false;
  constructor(
    private readonly conn: TcpConnectionApi,
    private readonly tcp: TcpHost,
  ) {}
  established(): void {}
  data(): void {
    if (this.reset) return;
    this.reset = true;
    process.nextTick(abortConnection, this.conn, this.tcp);
  }
  fin(): void {}
  sendSpace(): void {}
  closed(): void {}
}

function drainInbox(socket: NetSocket): void {
  socket._drainInbox();
}

function emitSocketClose(socket: NetSocket, hadError: boolean): void {
  socket._hold.setActive(false);
  socket.emit('close', hadError);
}

function onNodeTimer(socket: NetSocket): void {
  socket._onTimer();
}

function connectTo(socket: NetSocket, ip: number, port: number, localPort: number): void {
  socket._connectTo(ip, port, localPort);
}

function failSoon(socket: NetSocket, err: Error): void {
  if (!socket.destroyed) socket.destroy(err);
}

const isBuffer = Buffer.isBuffer;

function toBuffer(chunk: Uint8Array): Buffer {
  return isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Writes up to this many bytes are copied into one buffer by _writev; larger ones go as they are. */
const WRITEV_COALESCE_BYTES = 64 * 1024;

/** Join runs of small writes into buffers of up to WRITEV_COALESCE_BYTES; large writes stay views. */
function coalesceWrites(chunks: ReadonlyArray<{ chunk: Buffer }>): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer[] = [];
  let runBytes = 0;
  const flush = (): void => {
    if (run.length === 1) out.push(run[0]!);
    else if (run.length > 1) out.push(Buffer.concat(run, runBytes));
    run = [];
    runBytes = 0;
  };
  for (const { chunk } of chunks) {
    if (chunk.byteLength >= WRITEV_COALESCE_BYTES) {
      flush();
      out.push(chunk);
      continue;
    }
    if (runBytes + chunk.byteLength > WRITEV_COALESCE_BYTES) flush();
    run.push(chunk);
    runBytes += chunk.byteLength;
  }
  flush();
  return out;
}

const LOOPBACK = '127.0.0.1';

/** 'localhost', 127.0.0.0/8 and ::1: inside a host, its own loopback (RFC 1122 section 3.2.1.3). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function validatePort(value: unknown, name = 'Port'): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw codedError(
      'ERR_SOCKET_BAD_PORT',
      `${name} should be >= 0 and < 65536. Received ${typeof value === 'string' ? `'${value}'` : String(value)}.`,
      'RangeError',
    );
  }
  return n;
}

export class NetSocket extends Duplex {
  /** Node-compatible: true while the connection is being set up. */
  connecting = false;
  /** @internal the server that accepted this socket, once counted there */
  _server: NetServer | null = null;
  /**
   * Node's name for the server that accepted this socket. Writable as on Node: node:http,
   * tls and http2 set it to their own server when a socket is handed to them.
   */
  server: object | null = null;

  private readonly _ctx: NetContext;
  /** @internal */
  readonly _hold = new ProcessHold();
  private _conn: TcpConnectionApi | null = null;
  private _connClosed = false;
  private _finReceived = false;
  private _shutdownSent = false;
  private _listener: NetServer | null = null;
  private _inbox: InboxItem[] | null = null;
  private _inboxScheduled = false;
  /** bytes pushed to the readable side and not yet credited back with conn.consume() */
  private _unconsumed = 0;
  private _bytesRead = 0;
  private _bytesDispatched = 0;
  /** the rest of the chunk _write is working on, and its callback */
  private _pendingChunk: Uint8Array | null = null;
  private _pendingCb: WriteCallback | null = null;
  private _inflightAccepted = 0;
  private _finalCb: WriteCallback | null = null;
  private _destroyCb: WriteCallback | null = null;
  private _timeoutMs = 0;
  private _timer: TimerHandle | ReturnType<typeof setTimeout> | null = null;
  private _lastActive = 0;
  private _timerFn: (() => void) | null = null;
  private _preConnect: { noDelay?: boolean; keepAlive?: boolean; keepAliveDelay?: number } | null = null;

  constructor(ctx: NetContext, options?: NetSocketOptions) {
    super({
      allowHalfOpen: options?.allowHalfOpen === true,
      emitClose: false,
      autoDestroy: true,
      readableHighWaterMark: options?.readableHighWaterMark,
      writableHighWaterMark: options?.writableHighWaterMark,
      highWaterMark: options?.highWaterMark,
    });
    this._ctx = ctx;
  }

  // ---- addresses and counters -------------------------------------------------------

  get remoteAddress(): string | undefined {
    const c = this._conn;
    return c === null || this.connecting ? undefined : ipv4ToString(c.tuple.remoteAddress);
  }
  get remotePort(): number | undefined {
    const c = this._conn;
    return c === null || this.connecting ? undefined : c.tuple.remotePort;
  }
  get remoteFamily(): string | undefined {
    return this._conn === null || this.connecting ? undefined : 'IPv4';
  }
  get localAddress(): string | undefined {
    const c = this._conn;
    return c === null || this.connecting ? undefined : ipv4ToString(c.tuple.localAddress);
  }
  get localPort(): number | undefined {
    const c = this._conn;
    return c === null || this.connecting ? undefined : c.tuple.localPort;
  }
  get localFamily(): string | undefined {
    return this._conn === null || this.connecting ? undefined : 'IPv4';
  }
  address(): NetAddressInfo | Record<string, never> {
    const c = this._conn;
    if (c === null || this.connecting) return {};
    return { address: ipv4ToString(c.tuple.localAddress), family: 'IPv4', port: c.tuple.localPort };
  }
  get bytesRead(): number {
    return this._bytesRead;
  }
  /** Bytes handed to TCP plus bytes still queued in this stream, like Node's. */
  get bytesWritten(): number {
    return this._bytesDispatched + this.writableLength - this._inflightAccepted;
  }
  get pending(): boolean {
    return this._conn === null || this.connecting;
  }
  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
  get timeout(): number | undefined {
    return this._timeoutMs === 0 ? undefined : this._timeoutMs;
  }
  // ---- options ----------------------------------------------------------------------

  setNoDelay(noDelay = true): this {
    const c = this._conn;
    if (c !== null && !this._connClosed) c.setNoDelay(noDelay, this._ctx.stack.tcp.now());
    else (this._preConnect ??= {}).noDelay = noDelay;
    return this;
  }

  setKeepAlive(enable = false, initialDelay = 0): this {
    const delay = Math.max(0, Math.floor(initialDelay));
    const c = this._conn;
    if (c !== null && !this._connClosed) c.setKeepAlive(enable, delay, this._ctx.stack.tcp.now());
    else {
      const p = (this._preConnect ??= {});
      p.keepAlive = enable;
      p.keepAliveDelay = delay;
    }
    return this;
  }

  /** Emit 'timeout' after `ms` without reads or writes; 0 disables. */
  setTimeout(ms: number, callback?: () => void): this {
    if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
      throw codedError('ERR_OUT_OF_RANGE', `The value of "msecs" is out of range. Received ${String(ms)}`, 'RangeError');
    }
    this._clearTimer();
    if (ms === 0) {
      this._timeoutMs = 0;
      if (callback !== undefined) this.removeListener('timeout', callback);
      return this;
    }
    this._timeoutMs = ms;
    if (callback !== undefined) this.once('timeout', callback);
    if (!this.destroyed) {
      this._lastActive = this._timeNow();
      this._armTimer(ms);
    }
    return this;
  }

  ref(): this {
    this._hold.setRef(true);
    return this;
  }
  unref(): this {
    this._hold.setRef(false);
    return this;
  }

  // ---- connect ----------------------------------------------------------------------

  connect(options: NetConnectOptions, connectListener?: () => void): this;
  connect(port: number | string, host?: string, connectListener?: () => void): this;
  connect(port: number | string, connectListener?: () => void): this;
  connect(...args: unknown[]): this {
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    const a0 = args[0];
    const opts: NetConnectOptions =
      a0 !== null && typeof a0 === 'object'
        ? (a0 as NetConnectOptions)
        : { port: a0 as number | string, host: typeof args[1] === 'string' ? args[1] : undefined };
    if (this.connecting) throw codedError('ERR_SOCKET_CONNECTING', 'Socket is already connecting');
    if (this._conn !== null || this.destroyed) throw codedError('ERR_SOCKET_CLOSED', 'Socket is closed');
    const port = validatePort(opts.port);
    const localPort = opts.localPort === undefined ? 0 : validatePort(opts.localPort, 'localPort');

    if (cb !== undefined) this.once('connect', cb);
    if (opts.timeout !== undefined && opts.timeout > 0) this.setTimeout(opts.timeout);
    if (opts.noDelay !== undefined) this.setNoDelay(opts.noDelay);
    if (opts.keepAlive === true) this.setKeepAlive(true, opts.keepAliveInitialDelay ?? 0);
    this.connecting = true;
    this._hold.setActive(true);

    const host = opts.host === undefined || opts.host === '' || isLoopbackHost(opts.host) ? this._ctx.stack.address : opts.host;
    const ip = parseIpv4Address(host);
    if (ip !== null) {
      process.nextTick(connectTo, this, ip, port, localPort);
    } else if (nodeIsIPv6(host)) {
      process.nextTick(failSoon, this, hostPortError('ENETUNREACH', 'connect', host, port));
    } else {
      this._lookupAndConnect(host, port, localPort);
    }
    return this;
  }

  private _lookupAndConnect(host: string, port: number, localPort: number): void {
    let pending: Promise<string>;
    try {
      pending = host === 'localhost' ? Promise.resolve(this._ctx.stack.address) : this._ctx.stack.lookup(host);
    } catch (reason) {
      pending = Promise.reject(reason);
    }
    pending.then(
      (address) => {
        if (!this.connecting || this.destroyed) return;
        const ip = typeof address === 'string' ? parseIpv4Address(address) : null;
        if (ip === null) {
          const err = lookupError('ENOTFOUND', host);
          this.emit('lookup', err, undefined, undefined, host);
          this.destroy(err);
          return;
        }
        this.emit('lookup', null, address, 4, host);
        this._connectTo(ip, port, localPort);
      },
      (reason: unknown) => {
        if (!this.connecting || this.destroyed) return;
        const err = lookupError(lookupCodeOf(reason), host);
        this.emit('lookup', err, undefined, undefined, host);
        this.destroy(err);
      },
    );
  }

  /** @internal */
  _connectTo(ip: number, port: number, localPort: number): void {
    if (!this.connecting || this.destroyed) return;
    const tcp = this._ctx.stack.tcp;
    const pre = this._preConnect;
    const result = tcp.connect(ip, port, new SocketConnEvents(this), {
      localPort: localPort === 0 ? undefined : localPort,
      noDelay: pre?.noDelay,
    });
    if (result === 'EADDRINUSE' || result === 'EADDRNOTAVAIL') {
      const err =
        localPort !== 0
          ? uvHostPortError(result, 'bind', this._ctx.stack.address, localPort)
          : hostPortError(result, 'connect', ipv4ToString(ip), port);
      this.destroy(err);
      return;
    }
    this._conn = result;
    if (pre !== null) {
      this._preConnect = null;
      if (pre.keepAlive !== undefined) result.setKeepAlive(pre.keepAlive, pre.keepAliveDelay ?? 0, tcp.now());
    }
  }

  /** @internal A server hands over a passive connection. */
  _attachAccepted(conn: TcpConnectionApi, listener: NetServer): void {
    this._conn = conn;
    this._listener = listener;
    this.connecting = true;
    this._hold.setActive(true);
    conn.events = new SocketConnEvents(this);
    if (conn.state !== 'SYN-RECEIVED' && conn.state !== 'LISTEN' && conn.state !== 'SYN-SENT') {
      this._post(EV_ESTABLISHED);
    }
  }

  // ---- connection events ------------------------------------------------------------

  /** @internal */
  _post(item: InboxItem): void {
    const q = (this._inbox ??= []);
    q.push(item);
    if (!this._inboxScheduled) {
      this._inboxScheduled = true;
      process.nextTick(drainInbox, this);
    }
  }

  /** @internal */
  _drainInbox(): void {
    const q = this._inbox;
    if (q === null) return;
    for (let i = 0; i < q.length; i++) {
      const item = q[i]!;
      if (typeof item === 'number') {
        if (item === EV_ESTABLISHED) this._onEstablished();
        else if (item === EV_FIN) this._onFin();
        else if (item === EV_SEND_SPACE) this._onSendSpace();
        else this._onClosed(null);
      } else if (typeof item === 'string') {
        this._onClosed(item);
      } else {
        this._onData(item);
      }
    }
    q.length = 0;
    this._inboxScheduled = false;
  }

  private _onEstablished(): void {
    if (!this.connecting || this.destroyed) return;
    this.connecting = false;
    const listener = this._listener;
    if (listener !== null) {
      this._listener = null;
      listener._accept(this);
      return;
    }
    const chunk = this._pendingChunk;
    if (chunk !== null) {
      const cb = this._pendingCb!;
      this._pendingChunk = null;
      this._pendingCb = null;
      this._touch();
      this._sendChunk(this._conn!, chunk, cb);
    }
    const finalCb = this._finalCb;
    if (finalCb !== null) {
      this._finalCb = null;
      this._final(finalCb);
    }
    this.emit('connect');
    this.emit('ready');
  }

  private _onData(chunk: Uint8Array): void {
    if (this.destroyed || this._finReceived) return;
    const n = chunk.byteLength;
    this._unconsumed += n;
    this._bytesRead += n;
    if (this._timeoutMs !== 0) this._touch();
    this.push(toBuffer(chunk));
  }

  private _onFin(): void {
    if (this._finReceived) return;
    this._finReceived = true;
    if (this.destroyed) return;
    this.push(null);
    // As Node does at EOF: with nothing buffered, 'end' comes even if nobody reads.
    this.read(0);
  }

  private _onSendSpace(): void {
    const chunk = this._pendingChunk;
    const conn = this._conn;
    if (chunk === null || conn === null || this.connecting || this._connClosed) return;
    const cb = this._pendingCb!;
    this._pendingChunk = null;
    this._pendingCb = null;
    this._sendChunk(conn, chunk, cb);
  }

  private _onClosed(code: TcpErrorCode | null): void {
    if (this._connClosed && this._destroyCb === null) return;
    this._connClosed = true;
    const destroyCb = this._destroyCb;
    if (destroyCb !== null) {
      this._destroyCb = null;
      destroyCb(null);
      process.nextTick(emitSocketClose, this, false);
      return;
    }
    if (this.destroyed) return;
    if (this._listener !== null) {
      // Never accepted: nobody has seen this socket, so nobody is told.
      this._listener = null;
      this.destroy();
      return;
    }
    if (code !== null) {
      this.destroy(this._connectionError(code));
      return;
    }
    // An orderly close leaves the stream to finish on its own (autoDestroy); anything
    // else that ends a connection without an error (stack shutdown) ends the socket too.
    if (this.connecting || !this._shutdownSent || !this._finReceived) this.destroy();
  }

  private _connectionError(code: TcpErrorCode): NetError {
    const c = this._conn;
    if (this.connecting && c !== null) {
      return hostPortError(code, 'connect', ipv4ToString(c.tuple.remoteAddress), c.tuple.remotePort);
    }
    return syscallError(code, code === 'EPIPE' ? 'write' : 'read');
  }

  // ---- stream implementation --------------------------------------------------------

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this._writeBuffer(chunk, callback);
  }

  private _writeBuffer(chunk: Buffer, callback: WriteCallback): void {
    if (this.connecting) {
      this._pendingChunk = chunk;
      this._pendingCb = callback;
      return;
    }
    const conn = this._conn;
    if (conn === null || this._connClosed) {
      callback(codedError('ERR_SOCKET_CLOSED', 'Socket is closed'));
      return;
    }
    if (this._timeoutMs !== 0) this._touch();
    this._sendChunk(conn, chunk, callback);
  }

  /**
   * Several buffered writes (node:http's cork/uncork: a response's header and body) go to
   * TCP as one send, so they leave in one segment as Linux's writev does, instead of a
   * small first segment whose successor Nagle holds until the peer's delayed ACK.
   */
  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: WriteCallback): void {
    const parts = coalesceWrites(chunks);
    if (parts.length === 1) {
      this._writeBuffer(parts[0]!, callback);
      return;
    }
    let next = 0;
    const writeNext = (err?: Error | null): void => {
      if (err !== undefined && err !== null) return callback(err);
      if (next === parts.length) return callback();
      this._writeBuffer(parts[next++]!, writeNext);
    };
    writeNext();
  }

  private _sendChunk(conn: TcpConnectionApi, chunk: Uint8Array, callback: WriteCallback): void {
    const n = conn.send(chunk, this._ctx.stack.tcp.now());
    this._bytesDispatched += n;
    if (n >= chunk.byteLength) {
      this._inflightAccepted = 0;
      callback();
      return;
    }
    this._inflightAccepted += n;
    this._pendingChunk = n === 0 ? chunk : chunk.subarray(n);
    this._pendingCb = callback;
  }

  override _final(callback: WriteCallback): void {
    if (this.connecting) {
      this._finalCb = callback;
      return;
    }
    const conn = this._conn;
    if (conn !== null && !this._connClosed && !this._shutdownSent) {
      this._shutdownSent = true;
      conn.shutdown(this._ctx.stack.tcp.now());
    }
    callback();
  }

  override _read(): void {
    this._credit();
  }

  override read(size?: number): Buffer | string | null {
    const chunk = super.read(size) as Buffer | string | null;
    if (this._unconsumed !== 0) this._credit();
    return chunk;
  }

  /**
   * Reopen the receive window by what left the readable buffer, once the buffer is below
   * its high-water mark: a reader that stops reading holds the window closed.
   */
  private _credit(): void {
    const conn = this._conn;
    if (conn === null || this._unconsumed === 0) return;
    const buffered = this.readableLength;
    if (buffered >= this.readableHighWaterMark) return;
    const consumed = this._unconsumed - buffered;
    if (consumed <= 0) return;
    this._unconsumed = buffered;
    if (!this._connClosed) conn.consume(consumed, this._ctx.stack.tcp.now());
  }

  override write(chunk: unknown, encoding?: BufferEncoding | UserWriteCallback, cb?: UserWriteCallback): boolean {
    // Like Node: once the peer's FIN ended this socket (allowHalfOpen false), writing is EPIPE.
    if (!this.allowHalfOpen && this.readableEnded && this.writableEnded && !this.destroyed) {
      const callback = typeof encoding === 'function' ? encoding : cb;
      const err = codedError('EPIPE', 'This socket has been ended by the other party');
      if (callback !== undefined) process.nextTick(callback, err);
      this.destroy(err);
      return false;
    }
    return typeof encoding === 'function'
      ? super.write(chunk, encoding)
      : super.write(chunk, encoding as BufferEncoding, cb);
  }

  override _destroy(error: Error | null, callback: WriteCallback): void {
    this._clearTimer();
    this._detachFromServer();
    const wasConnecting = this.connecting;
    this.connecting = false;
    this._finalCb = null;
    const pendingCb = this._pendingCb;
    this._pendingCb = null;
    this._pendingChunk = null;
    const conn = this._conn;
    if (conn !== null && !this._connClosed) {
      if (error === null && this._shutdownSent && this._finReceived) {
        // Both FINs exchanged: 'close' waits for the connection's closed event.
        this._destroyCb = callback;
        return;
      }
      // Like closing a kernel socket: RST when received data is left unread, otherwise
      // FIN after what was written (RFC 9293 section 3.10.4; RFC 2525 section 2.17).
      const tcp = this._ctx.stack.tcp;
      this._connClosed = true;
      if (wasConnecting || this.readableLength > 0 || this._inboxHasData()) {
        conn.events = IGNORED_EVENTS;
        abortConnection(conn, tcp);
      } else {
        conn.events = new OrphanedConnEvents(conn, tcp);
        if (!this._shutdownSent) {
          this._shutdownSent = true;
          conn.shutdown(tcp.now());
        }
        conn.orphan?.(tcp.now());
      }
    }
    if (pendingCb !== null) pendingCb(error ?? codedError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed'));
    callback(error);
    process.nextTick(emitSocketClose, this, error !== null);
  }

  private _inboxHasData(): boolean {
    const q = this._inbox;
    if (q === null) return false;
    for (const item of q) if (typeof item === 'object') return true;
    return false;
  }

  /** End the writable side, then destroy once it has finished (Node's destroySoon). */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Close with a RST, whatever the state (Node's resetAndDestroy). */
  resetAndDestroy(): this {
    const conn = this._conn;
    if (conn !== null && !this._connClosed) {
      this._connClosed = true;
      conn.events = IGNORED_EVENTS;
      abortConnection(conn, this._ctx.stack.tcp);
    }
    return this.destroy();
  }

  /** @internal */
  _detachFromServer(): void {
    const server = this._server;
    if (server !== null) {
      this._server = null;
      server._connectionClosed();
    }
  }

  // ---- idle timeout -----------------------------------------------------------------

  private _timeNow(): number {
    const clock = this._ctx.stack.clock;
    return clock !== undefined ? clock.now() : performance.now();
  }

  private _touch(): void {
    if (this._timeoutMs === 0) return;
    this._lastActive = this._timeNow();
    if (this._timer === null && !this.destroyed) this._armTimer(this._timeoutMs);
  }

  private _armTimer(delay: number): void {
    const clock = this._ctx.stack.clock;
    if (clock !== undefined) {
      const fn = (this._timerFn ??= () => this._onTimer());
      this._timer = clock.setTimer(clock.now() + delay, fn);
    } else {
      const t = setTimeout(onNodeTimer, delay, this);
      t.unref();
      this._timer = t;
    }
  }

  private _clearTimer(): void {
    const t = this._timer;
    if (t === null) return;
    this._timer = null;
    const clock = this._ctx.stack.clock;
    if (clock !== undefined) clock.clearTimer(t as TimerHandle);
    else clearTimeout(t as ReturnType<typeof setTimeout>);
  }

  /** @internal */
  _onTimer(): void {
    this._timer = null;
    if (this._timeoutMs === 0 || this.destroyed) return;
    const idle = this._timeNow() - this._lastActive;
    if (idle + 1 < this._timeoutMs) {
      this._armTimer(this._timeoutMs - idle);
      return;
    }
    this.emit('timeout');
  }
}

function emitServerClose(server: NetServer): void {
  server.emit('close');
}

function emitListening(server: NetServer): void {
  if (server.listening) server.emit('listening');
}

function emitServerError(server: NetServer, err: Error): void {
  server.emit('error', err);
}

function callGetConnections(cb: (err: Error | null, count: number) => void, count: number): void {
  cb(null, count);
}

export class NetServer extends EventEmitter {
  /** Above this many open connections, new ones are reset (undefined: no limit). */
  maxConnections: number | undefined = undefined;

  private readonly _ctx: NetContext;
  private readonly _options: NetServerOptions;
  /** @internal */
  readonly _hold = new ProcessHold();
  private _handle: TcpListenerHandle | null = null;
  private _boundAddress = '0.0.0.0';
  private _connections = 0;

  constructor(ctx: NetContext, options?: NetServerOptions | ConnectionListener, connectionListener?: ConnectionListener) {
    super();
    this._ctx = ctx;
    if (typeof options === 'function') {
      connectionListener = options;
      options = undefined;
    }
    this._options = options ?? {};
    if (connectionListener !== undefined) this.on('connection', connectionListener);
  }

  get listening(): boolean {
    return this._handle !== null;
  }

  listen(port?: number | string, host?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number | string, host?: string, listeningListener?: () => void): this;
  listen(port?: number | string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number | string, listeningListener?: () => void): this;
  listen(options: NetListenOptions, listeningListener?: () => void): this;
  listen(listeningListener?: () => void): this;
  listen(...args: unknown[]): this {
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    let opts: NetListenOptions;
    const a0 = args[0];
    if (a0 !== null && typeof a0 === 'object') {
      opts = a0 as NetListenOptions;
    } else {
      opts = { port: a0 as number | string | undefined };
      if (typeof args[1] === 'string') {
        opts.host = args[1];
        if (typeof args[2] === 'number') opts.backlog = args[2];
      } else if (typeof args[1] === 'number') {
        opts.backlog = args[1];
      }
    }
    if (this._handle !== null) {
      throw codedError('ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    }
    if (typeof opts.port === 'string' && !/^\s*\d+\s*$/.test(opts.port)) {
      throw codedError('ERR_INVALID_ARG_VALUE', `The argument 'options' is invalid (no pipes here). Received '${opts.port}'`, 'TypeError');
    }
    const port = opts.port === undefined || opts.port === null ? 0 : validatePort(opts.port, 'options.port');
    if (cb !== undefined) this.once('listening', cb);

    const stack = this._ctx.stack;
    const host = opts.host;
    let bound = '0.0.0.0';
    if (host !== undefined && host !== '' && host !== '0.0.0.0' && host !== '::') {
      if (isLoopbackHost(host)) bound = LOOPBACK;
      else if (host === stack.address) bound = stack.address;
      else if (parseIpv4Address(host) !== null || nodeIsIPv6(host)) {
        process.nextTick(emitServerError, this, uvHostPortError('EADDRNOTAVAIL', 'listen', host, port));
        return this;
      }
    }
    const handle = stack.tcp.listen(port, { backlog: opts.backlog, ownHostOnly: bound === LOOPBACK }, (conn) => this._onConnection(conn));
    if (handle === 'EADDRINUSE') {
      process.nextTick(emitServerError, this, uvHostPortError('EADDRINUSE', 'listen', bound, port));
      return this;
    }
    this._handle = handle;
    this._boundAddress = bound;
    this._hold.setActive(true);
    process.nextTick(emitListening, this);
    return this;
  }

  address(): NetAddressInfo | null {
    const h = this._handle;
    return h === null ? null : { address: this._boundAddress, family: 'IPv4', port: h.localPort };
  }

  /** Stop accepting; 'close' (and `callback`) once every accepted connection has closed. */
  close(callback?: (err?: Error) => void): this {
    if (typeof callback === 'function') {
      if (this._handle === null) {
        this.once('close', () => callback(codedError('ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
      } else {
        this.once('close', callback);
      }
    }
    const h = this._handle;
    if (h !== null) {
      this._handle = null;
      this._hold.setActive(false);
      h.close();
    }
    this._emitCloseIfDrained();
    return this;
  }

  getConnections(callback: (err: Error | null, count: number) => void): this {
    process.nextTick(callGetConnections, callback, this._connections);
    return this;
  }

  ref(): this {
    this._hold.setRef(true);
    return this;
  }
  unref(): this {
    this._hold.setRef(false);
    return this;
  }

  private _onConnection(conn: TcpConnectionApi): void {
    if (this._handle === null) {
      abortConnection(conn, this._ctx.stack.tcp);
      return;
    }
    const opts = this._options;
    const socket = new this._ctx.Socket({ allowHalfOpen: opts.allowHalfOpen === true, highWaterMark: opts.highWaterMark });
    socket._attachAccepted(conn, this);
  }

  /** @internal An accepted connection finished its handshake. */
  _accept(socket: NetSocket): void {
    const max = this.maxConnections;
    if (this._handle === null || (max !== undefined && this._connections >= max)) {
      const remoteAddress = socket.remoteAddress;
      const remotePort = socket.remotePort;
      socket.resetAndDestroy();
      if (this._handle !== null) {
        this._ctx.stack.logger?.debug('net: connection over maxConnections reset', { remoteAddress, remotePort, max });
        this.emit('drop', { remoteAddress, remotePort });
      }
      return;
    }
    this._connections++;
    socket._server = this;
    socket.server = this;
    const opts = this._options;
    if (opts.noDelay === true) socket.setNoDelay(true);
    if (opts.keepAlive === true) socket.setKeepAlive(true, opts.keepAliveInitialDelay ?? 0);
    if (opts.pauseOnConnect === true) socket.pause();
    this.emit('connection', socket);
  }

  /** @internal */
  _connectionClosed(): void {
    this._connections--;
    this._emitCloseIfDrained();
  }

  private _emitCloseIfDrained(): void {
    if (this._handle !== null || this._connections > 0) return;
    process.nextTick(emitServerClose, this);
  }
}

export function createNetApi(stack: NetStackLike): NetApi {
  const ctx: { stack: NetStackLike; Socket: new (options?: NetSocketOptions) => NetSocket } = {
    stack,
    Socket: NetSocket as unknown as new (options?: NetSocketOptions) => NetSocket,
  };
  class Socket extends NetSocket {
    constructor(options?: NetSocketOptions) {
      super(ctx, options);
    }
  }
  class Server extends NetServer {
    constructor(options?: NetServerOptions | ConnectionListener, connectionListener?: ConnectionListener) {
      super(ctx, options, connectionListener);
    }
  }
  ctx.Socket = Socket;

  function createConnection(...args: unknown[]): NetSocket {
    const a0 = args[0];
    const options = a0 !== null && typeof a0 === 'object' ? (a0 as NetConnectOptions & NetSocketOptions) : undefined;
    const socket = new Socket(options);
    return (socket.connect as (...a: unknown[]) => NetSocket)(...args);
  }

  return {
    createServer: (options?: NetServerOptions | ConnectionListener, connectionListener?: ConnectionListener) =>
      new Server(options, connectionListener),
    connect: createConnection as NetApi['connect'],
    createConnection: createConnection as NetApi['createConnection'],
    Socket,
    Server: Server as NetApi['Server'],
    isIP: nodeIsIP,
    isIPv4: nodeIsIPv4,
    isIPv6: nodeIsIPv6,
  };
}
