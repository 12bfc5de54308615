// One WebSocket after the HTTP 101: owns the socket, reads frames with FrameParser and
// writes them itself (gather writes, one corked write per synchronous burst), answers
// pings, and runs the close handshake (RFC 6455 section 7).

import type { Duplex } from 'node:stream';
import { FrameParser } from './frame-parser.js';
import {
  CLOSE_ABNORMAL,
  CLOSE_NO_STATUS,
  CLOSE_NORMAL,
  MAX_CONTROL_PAYLOAD,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  frameHeader,
  frameHeaderLength,
  isSendableCloseCode,
  writeFrameHeader,
  xorMask,
} from './frame.js';
import { MaskPool } from './mask-pool.js';

export type WebSocketRole = 'server' | 'client';

/**
 * How a client masks its frames. 'random': a fresh key per frame (RFC 6455 section 5.3).
 * 'zero': the all-zero key, so that neither end XORs; only where no intermediary can
 * read the bytes (TLS, or a loopback peer): see PROTOCOL.md.
 */
export type MaskMode = 'random' | 'zero';

export interface WebSocketOptions {
  role: WebSocketRole;
  /** The client's masking (ignored by a server, whose frames are never masked). */
  mask?: MaskMode;
  maxBinaryBytes: number;
  maxTextBytes: number;
  /** The subprotocol agreed in the handshake ('' for none). */
  protocol?: string;
  /** After sending a close frame, end the socket if the peer has not closed within this. */
  closeTimeoutMs?: number;
}

export interface WebSocketHandlers {
  /** A binary message as views of the socket reads (unmasked in place; see FrameParser). */
  binary?(views: Uint8Array[], length: number): void;
  text?(text: string): void;
  ping?(payload: Uint8Array): void;
  pong?(payload: Uint8Array): void;
  /**
   * Once, when the socket has closed: the code of the peer's close frame (the code we
   * sent when we failed the connection; 1005 for a close frame without one; 1006 when the
   * connection ended without a close frame) and its reason.
   */
  close?(code: number, reason: string): void;
}

export type WebSocketState = 'open' | 'closing' | 'closed';

export interface WebSocketCounters {
  framesIn: number;
  framesOut: number;
  /** connections failed by the parser, by close code */
  protocolErrors: number;
}

const pool = new MaskPool();
const ZERO_KEY = new Uint8Array(4);
const DEFAULT_CLOSE_TIMEOUT_MS = 2000;
/**
 * Unmasked frames with payloads up to this many bytes are copied, header and payload, into
 * one buffer per burst (one socket write for many small frames: a write and an iovec per
 * view cost more than copying them); larger payloads are written as the views they are.
 */
const COALESCE_MAX_PAYLOAD = 1024;
/** Size of a burst's coalescing buffer (a fresh one when full: written buffers are never reused). */
const COALESCE_BUFFER_BYTES = 16 * 1024;

export class WebSocketConnection {
  /** Replaceable at any time; see start(). */
  handlers: WebSocketHandlers = {};
  readonly protocol: string;
  readonly role: WebSocketRole;
  readonly counters: WebSocketCounters = { framesIn: 0, framesOut: 0, protocolErrors: 0 };
  private _state: WebSocketState = 'open';
  private readonly parser: FrameParser;
  private readonly maskMode: MaskMode | null;
  private closeSent = false;
  private closeCode = CLOSE_ABNORMAL;
  private closeReason = '';
  private closeTimer: NodeJS.Timeout | null = null;
  private corked = false;
  private readonly closeTimeoutMs: number;
  private started = false;
  private head: Uint8Array | undefined;
  /** small frames of the burst in progress: pendingBuf[0, pendingLen), not yet written */
  private pendingBuf: Buffer | null = null;
  private pendingStart = 0;
  private pendingLen = 0;
  private readonly uncork = (): void => {
    this.flushPending();
    this.corked = false;
    this.socket.uncork();
  };

  constructor(
    private readonly socket: Duplex,
    options: WebSocketOptions,
    /** bytes read past the HTTP head (Node's 'upgrade' event's `head`) */
    head?: Uint8Array,
  ) {
    this.role = options.role;
    this.protocol = options.protocol ?? '';
    this.maskMode = options.role === 'client' ? (options.mask ?? 'random') : null;
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.parser = new FrameParser(
      {
        binary: (views, length) => {
          this.counters.framesIn++;
          this.handlers.binary?.(views, length);
        },
        text: (text) => {
          this.counters.framesIn++;
          this.handlers.text?.(text);
        },
        ping: (payload) => {
          // RFC 6455 section 5.5.2: answer with a pong of the same payload
          if (this._state === 'open') this.writeFrame(OPCODE_PONG, payload);
          this.handlers.ping?.(payload);
        },
        pong: (payload) => this.handlers.pong?.(payload),
        close: (code, reason) => this.onPeerClose(code, reason),
        fail: (code, reason) => {
          this.counters.protocolErrors++;
          this.failConnection(code, reason);
        },
      },
      { role: options.role, maxBinaryBytes: options.maxBinaryBytes, maxTextBytes: options.maxTextBytes },
    );
    const s = socket as Duplex & { setNoDelay?: (on: boolean) => void; setTimeout?: (ms: number) => void };
    s.setNoDelay?.(true);
    s.setTimeout?.(0);
    socket.on('end', () => {
      if (!socket.writableEnded) {
        this.flushPending();
        socket.end();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onSocketClosed());
    this.head = head;
  }

  /**
   * Set the handlers and start reading: nothing is read off the socket before, so no
   * frame (even one that came with the 101) can arrive before there is someone to take it.
   */
  start(handlers: WebSocketHandlers): void {
    this.handlers = handlers;
    if (this.started) return;
    this.started = true;
    const head = this.head;
    this.head = undefined;
    if (head !== undefined && head.length > 0) this.parser.push(head);
    this.socket.on('data', (chunk: Buffer) => this.parser.push(chunk));
    this.socket.resume();
  }

  /** Let the process exit while only this connection is open (Node's socket.unref). */
  unref(): void {
    (this.socket as Duplex & { unref?: () => void }).unref?.();
  }

  get state(): WebSocketState {
    return this._state;
  }

  /** Bytes written and not yet taken by the kernel: the connection's send queue. */
  get bufferedAmount(): number {
    return this.socket.writableLength + this.pendingLen - this.pendingStart;
  }

  /** Whether frames are masked with a random key (a client not allowed the zero key). */
  get masksRandomly(): boolean {
    return this.maskMode === 'random';
  }

  /**
   * Send one binary message of `views` back to back (`length` bytes in all). Unmasked (a
   * server, or a client with the zero key): the header and the views are written as they
   * are, a gather write, so the views must stay unchanged until written. Masked: copied
   * into one masked buffer, never XORed in place. False once closing.
   */
  sendBinary(views: readonly Uint8Array[], length: number): boolean {
    if (this._state !== 'open') return false;
    this.burst();
    this.counters.framesOut++;
    if (this.maskMode === 'random') {
      this.flushPending();
      const key = pool.next();
      const hl = frameHeaderLength(length, true);
      const out = Buffer.allocUnsafe(hl + length);
      writeFrameHeader(out, OPCODE_BINARY, length, key);
      let at = hl;
      let k = 0;
      for (const v of views) {
        k = xorMask(v, out.subarray(at, at + v.length), key, k);
        at += v.length;
      }
      this.socket.write(out);
      return true;
    }
    const key = this.maskMode === 'zero' ? ZERO_KEY : null;
    if (length <= COALESCE_MAX_PAYLOAD) {
      const out = this.reserve(frameHeaderLength(length, key !== null) + length);
      let at = this.pendingLen + writeFrameHeader(out.subarray(this.pendingLen), OPCODE_BINARY, length, key);
      for (const v of views) {
        out.set(v, at);
        at += v.length;
      }
      this.pendingLen = at;
      return true;
    }
    this.flushPending();
    this.socket.write(frameHeader(OPCODE_BINARY, length, key));
    for (const v of views) this.socket.write(v);
    return true;
  }

  sendText(text: string): boolean {
    if (this._state !== 'open') return false;
    this.counters.framesOut++;
    this.writeFrame(OPCODE_TEXT, Buffer.from(text, 'utf8'));
    return true;
  }

  /** RFC 6455 section 5.5.2: a ping (payload at most 125 bytes). */
  ping(payload: Uint8Array = new Uint8Array(0)): boolean {
    if (this._state !== 'open' || payload.length > MAX_CONTROL_PAYLOAD) return false;
    this.writeFrame(OPCODE_PING, payload);
    return true;
  }

  /**
   * Start the close handshake (RFC 6455 section 7.1.2): send a close frame, then wait for
   * the peer's; the socket is ended after closeTimeoutMs (or `timeoutMs`) regardless.
   */
  close(code: number = CLOSE_NORMAL, reason = '', timeoutMs = this.closeTimeoutMs): void {
    if (this._state !== 'open') return;
    this._state = 'closing';
    this.sendClose(isSendableCloseCode(code) ? code : CLOSE_NORMAL, reason);
    this.armCloseTimer(timeoutMs);
  }

  /** Drop the TCP connection now, without a close handshake. */
  terminate(): void {
    if (this._state !== 'closed') this._state = 'closing';
    this.parser.stop();
    this.socket.destroy();
  }

  private onPeerClose(code: number, reason: string): void {
    this.closeCode = code;
    this.closeReason = reason;
    // RFC 6455 section 5.5.1: echo the peer's code
    if (!this.closeSent) this.sendClose(code === CLOSE_NO_STATUS ? -1 : code, reason);
    this._state = 'closing';
    // RFC 6455 section 7.1.1: the server closes the TCP connection first; a client waits.
    // Either way the socket is dropped if the peer has not closed its end in time.
    if (this.role === 'server') this.socket.end();
    this.armCloseTimer(this.closeTimeoutMs);
  }

  /** RFC 6455 section 7.1.7: fail the connection: send the code, then end the socket. */
  private failConnection(code: number, reason: string): void {
    if (!this.closeSent) {
      this.closeCode = code;
      this.closeReason = reason;
      this.sendClose(code, reason);
    }
    this._state = 'closing';
    this.socket.end();
    this.armCloseTimer(this.closeTimeoutMs);
  }

  /** `code` -1: a close frame without a body. */
  private sendClose(code: number, reason: string): void {
    this.closeSent = true;
    let body: Uint8Array = new Uint8Array(0);
    if (code > 0) {
      // the reason is cut to fit the 125 bytes of a control frame, at a character boundary
      let r = Buffer.from(reason, 'utf8');
      if (r.length > MAX_CONTROL_PAYLOAD - 2) r = Buffer.from(r.subarray(0, MAX_CONTROL_PAYLOAD - 2).toString('utf8').replace(/\uFFFD+$/, ''), 'utf8');
      const b = Buffer.allocUnsafe(2 + r.length);
      b.writeUInt16BE(code, 0);
      r.copy(b, 2);
      body = b;
    }
    this.writeFrame(OPCODE_CLOSE, body);
  }

  private armCloseTimer(ms: number): void {
    if (this.closeTimer !== null || this._state === 'closed') return;
    this.closeTimer = setTimeout(() => this.socket.destroy(), ms);
    this.closeTimer.unref();
  }

  private onSocketClosed(): void {
    if (this._state === 'closed') return;
    this._state = 'closed';
    this.parser.stop();
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.handlers.close?.(this.closeCode, this.closeReason);
  }

  /** Cork the socket until this tick's microtasks have run: the burst's frames go out in one write. */
  private burst(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    queueMicrotask(this.uncork);
  }

  /** The coalescing buffer with room for `bytes` more at pendingLen (the burst's frames so far written out when full). */
  private reserve(bytes: number): Buffer {
    const buf = this.pendingBuf;
    if (buf !== null && this.pendingLen + bytes <= buf.length) return buf;
    this.flushPending();
    const fresh = Buffer.allocUnsafeSlow(Math.max(COALESCE_BUFFER_BYTES, bytes));
    this.pendingBuf = fresh;
    this.pendingStart = 0;
    this.pendingLen = 0;
    return fresh;
  }

  /** Write the burst's coalesced frames (before any other write, to keep frame order). */
  private flushPending(): void {
    if (this.pendingLen === this.pendingStart) return;
    const buf = this.pendingBuf!;
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.write(buf.subarray(this.pendingStart, this.pendingLen));
    // the written bytes belong to the socket now; the rest of the buffer is still ours
    this.pendingStart = this.pendingLen;
  }

  /** One small frame (text or control), masked as the role requires: header and payload in one buffer. */
  private writeFrame(opcode: number, payload: Uint8Array): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.burst();
    this.flushPending();
    const key = this.maskMode === 'random' ? pool.next() : this.maskMode === 'zero' ? ZERO_KEY : null;
    const hl = frameHeaderLength(payload.length, key !== null);
    const out = Buffer.allocUnsafe(hl + payload.length);
    writeFrameHeader(out, opcode, payload.length, key);
    if (key !== null && key !== ZERO_KEY) xorMask(payload, out.subarray(hl), key, 0);
    else out.set(payload, hl);
    this.socket.write(out);
  }
}
