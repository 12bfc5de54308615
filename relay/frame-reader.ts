// Takes a WebSocket's binary data frames off its socket without joining them: each one is
// handed on as the list of views of the socket reads it spans. The relay uses it on its
// sessions (server end: frames arrive masked) and hosts on their link (client end:
// frames arrive unmasked). Every other frame (text,
// ping, pong, close, fragments, anything odd) goes byte for byte to ws's own Receiver, so
// ws keeps doing the control protocol, the close handshake, size limits and errors.

import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * RFC 6455 section 5.2: the header of a final binary frame of `len` bytes. A client's
 * frames are masked (section 5.3); ours use an all-zero key, so that neither end has to
 * XOR the payload. A server's frames are not masked.
 */
export function binaryFrameHeader(len: number, zeroMask: boolean): Buffer {
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const h = Buffer.alloc(2 + ext + (zeroMask ? 4 : 0));
  const mask = zeroMask ? 0x80 : 0;
  h[0] = 0x80 | OPCODE_BINARY;
  if (ext === 0) h[1] = mask | len;
  else if (ext === 2) {
    h[1] = mask | 126;
    h.writeUInt16BE(len, 2);
  } else {
    h[1] = mask | 127;
    h.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    h.writeUInt32BE(len >>> 0, 6);
  }
  return h;
}

/** A binary data frame's payload (unmasked) as views of the socket's chunks, in order. */
export type FrameSink = (views: Uint8Array[], length: number) => void;

/**
 * What this relies on in ws 8's internals; attach() checks each piece and refuses (the
 * caller keeps ws's 'message' path) if one is not as expected.
 */
interface ReceiverInternals {
  write(chunk: Uint8Array): boolean;
  /** parser state: 0 (GET_INFO) between frames */
  _state: number;
  /** bytes handed to it and not yet parsed */
  _bufferedBytes: number;
  /** opcode of a fragmented message in progress, else 0 */
  _fragmented: number;
  /** set synchronously by createError, before the error is emitted */
  _errored: boolean;
  _maxPayload: number;
  _isServer: boolean;
  /** true: messages, pings and pongs are emitted inside write(), so order is kept */
  _allowSynchronousEvents: boolean;
}

interface WebSocketInternals {
  _socket: unknown;
  _receiver: unknown;
  _sender: unknown;
  _extensions: unknown;
}

const GET_INFO = 0;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;

const enum State {
  Header,
  /** a binary data frame's payload, taken by the fast path */
  Data,
  /** a frame handed byte for byte to ws's Receiver */
  Pass,
  /** after a close frame or a protocol error: ws discards the rest */
  Done,
}

export class FrameReader {
  /** binary frames delivered to the sink by the fast path */
  framesTaken = 0;
  /** frames handed to ws's Receiver */
  framesPassed = 0;
  private state = State.Header;
  // RFC 6455 section 5.2: at most 2 + 8 (length) + 4 (masking key) header bytes
  private readonly header = Buffer.alloc(14);
  private headerLen = 0;
  private headerNeed = 2;
  private remaining = 0;
  private frameLength = 0;
  private opcode = 0;
  private readonly key = new Uint8Array(4);
  private keyZero = true;
  private keyPos = 0;
  private views: Uint8Array[] = [];
  /** RFC 6455 section 5.1: a server's frames come masked, a client's unmasked */
  private readonly masked: boolean;
  private readonly onData = (chunk: Buffer): void => this.push(chunk);
  private readonly onClose = (): void => this.drainOnClose();

  private constructor(
    private readonly socket: Duplex,
    private readonly receiver: ReceiverInternals,
    private readonly maxPayload: number,
    private readonly sink: FrameSink,
    end: 'server' | 'client',
  ) {
    this.masked = end === 'server';
  }

  /**
   * Take over `socket`'s 'data' from ws (right after the upgrade, before any data is read).
   * Returns why not when ws's internals are not what this relies on; then nothing changed.
   * Sending frames directly on the socket is safe exactly when this succeeds (no
   * extensions, so ws's Sender never queues).
   */
  static attach(ws: WebSocket, socket: Duplex, maxPayload: number, sink: FrameSink, end: 'server' | 'client' = 'server'): FrameReader | string {
    const w = ws as unknown as WebSocketInternals;
    if (w._socket !== socket) return 'ws._socket is not the upgraded socket';
    const r = w._receiver as Partial<ReceiverInternals> | null;
    if (r === null || typeof r !== 'object' || typeof r.write !== 'function') return 'no ws._receiver';
    if (r._state !== GET_INFO || r._bufferedBytes !== 0 || r._fragmented !== 0 || r._errored !== false) return 'ws._receiver is not idle or has unknown fields';
    if (r._isServer !== (end === 'server') || r._allowSynchronousEvents !== true) return `ws._receiver is not a ${end} receiver with synchronous events`;
    if (r._maxPayload !== maxPayload) return `ws._receiver._maxPayload is ${String(r._maxPayload)}, expected ${maxPayload}`;
    const ext = w._extensions;
    if (ext === null || typeof ext !== 'object' || Object.keys(ext).length !== 0) return 'ws has extensions';
    const sender = w._sender as { _state?: unknown } | null;
    if (sender === null || typeof sender !== 'object' || sender._state !== 0) return 'ws._sender is not idle';
    if ((ws as WebSocket).readyState !== 1) return 'ws is not open';
    const data = socket.listeners('data');
    if (data.length !== 1 || (data[0] as { name?: string }).name !== 'socketOnData') return 'socket data listener is not ws socketOnData';
    const reader = new FrameReader(socket, r as ReceiverInternals, maxPayload, sink, end);
    socket.removeListener('data', data[0] as (chunk: Buffer) => void);
    socket.on('data', reader.onData);
    // before ws's own close listener, which hands what the socket still buffers to the Receiver
    socket.prependListener('close', reader.onClose);
    return reader;
  }

  /** One read of the socket. */
  push(chunk: Uint8Array): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      switch (this.state) {
        case State.Header: {
          const take = Math.min(this.headerNeed - this.headerLen, n - pos);
          this.header.set(chunk.subarray(pos, pos + take), this.headerLen);
          this.headerLen += take;
          pos += take;
          if (this.headerLen === this.headerNeed) this.headerStep();
          break;
        }
        case State.Data: {
          const take = Math.min(this.remaining, n - pos);
          const view = chunk.subarray(pos, pos + take);
          if (!this.keyZero) this.unmask(view);
          this.views.push(view);
          this.remaining -= take;
          pos += take;
          if (this.remaining === 0) this.deliver();
          break;
        }
        case State.Pass: {
          const take = Math.min(this.remaining, n - pos);
          this.pass(chunk.subarray(pos, pos + take));
          this.remaining -= take;
          pos += take;
          if (this.state === State.Pass && this.remaining === 0) this.passed();
          break;
        }
        case State.Done:
          return;
      }
    }
  }

  /** More header bytes arrived: grow the need as the header says, or act on a whole header. */
  private headerStep(): void {
    const h = this.header;
    if (this.headerNeed === 2) {
      const len7 = h[1] & 0x7f;
      this.headerNeed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (h[1] & 0x80 ? 4 : 0);
      if (this.headerNeed > 2) return;
    }
    const len7 = h[1] & 0x7f;
    const length = len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? h.readUInt32BE(2) * 2 ** 32 + h.readUInt32BE(6) : len7;
    this.frameLength = length;
    this.remaining = length;
    this.opcode = h[0] & 0x0f;
    const r = this.receiver;
    // RFC 6455 section 5.2: FIN, no RSV bits, binary; section 5.1: masked exactly when
    // the frame comes from a client
    const mine = h[0] === 0x80 + OPCODE_BINARY && ((h[1] & 0x80) !== 0) === this.masked && length <= this.maxPayload;
    if (mine && r._state === GET_INFO && r._bufferedBytes === 0 && r._fragmented === 0 && !r._errored) {
      if (this.masked) {
        const k = this.headerNeed - 4;
        this.key.set(h.subarray(k, k + 4));
        this.keyZero = (h[k] | h[k + 1] | h[k + 2] | h[k + 3]) === 0;
      } else this.keyZero = true;
      this.keyPos = 0;
      this.resetHeader();
      this.state = State.Data;
      if (length === 0) this.deliver();
      return;
    }
    const bytes = Buffer.from(h.subarray(0, this.headerNeed));
    this.resetHeader();
    this.state = State.Pass;
    this.framesPassed++;
    this.pass(bytes);
    if (this.state === State.Pass && this.remaining === 0) this.passed();
  }

  private resetHeader(): void {
    this.headerLen = 0;
    this.headerNeed = 2;
  }

  private unmask(view: Uint8Array): void {
    // RFC 6455 section 5.3: octet i is XORed with key octet i mod 4
    const key = this.key;
    let j = this.keyPos;
    for (let i = 0; i < view.length; i++) {
      view[i] ^= key[j];
      j = (j + 1) & 3;
    }
    this.keyPos = j;
  }

  private deliver(): void {
    const views = this.views;
    this.views = [];
    this.state = State.Header;
    this.framesTaken++;
    this.sink(views, this.frameLength);
  }

  private pass(bytes: Uint8Array): void {
    const r = this.receiver;
    // as ws's socketOnData: a full Receiver pauses the socket until its 'drain'
    if (!r.write(bytes)) this.socket.pause();
    if (r._errored) this.stop();
  }

  /** A passed frame is complete: after a close frame ws reads nothing more. */
  private passed(): void {
    if (this.opcode === OPCODE_CLOSE) this.stop();
    else this.state = State.Header;
  }

  private stop(): void {
    this.state = State.Done;
    this.views = [];
    this.socket.removeListener('data', this.onData);
  }

  private drainOnClose(): void {
    this.socket.removeListener('close', this.onClose);
    if (this.state !== State.Done && this.socket.readableLength > 0) {
      const rest = this.socket.read(this.socket.readableLength) as Buffer | null;
      if (rest !== null) this.push(rest);
    }
    this.stop();
  }
}
