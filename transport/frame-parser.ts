// Takes WebSocket frames off a byte stream (RFC 6455 section 5). Data messages are handed
// on as views of the reads they arrived in, unmasked in place: no reassembly copy, also
// across fragments. Every violation ends parsing with a close code, never a throw.

import { isUtf8 } from 'node:buffer';
import {
  CLOSE_INVALID_DATA,
  CLOSE_NO_STATUS,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_TOO_BIG,
  MAX_CONTROL_PAYLOAD,
  MAX_HEADER_BYTES,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_CONTINUATION,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  isSendableCloseCode,
  xorMask,
} from './frame.js';

export interface FrameHandlers {
  /** A whole binary message: its payload as views of the socket reads, in order. */
  binary(views: Uint8Array[], length: number): void;
  /** A whole text message, valid UTF-8. */
  text(text: string): void;
  ping(payload: Uint8Array): void;
  pong(payload: Uint8Array): void;
  /** The peer's close frame: its code (1005 when it had none) and reason. Parsing stops. */
  close(code: number, reason: string): void;
  /** The peer broke the protocol: close with `code`. Parsing stops. */
  fail(code: number, reason: string): void;
}

export interface FrameParserOptions {
  /** 'server' reads a client's frames (masked), 'client' a server's (unmasked): RFC 6455 section 5.1. */
  role: 'server' | 'client';
  /** Largest binary message, all fragments together (larger: 1009). */
  maxBinaryBytes: number;
  /** Largest text message, all fragments together (larger: 1009). */
  maxTextBytes: number;
}

const enum State {
  Header,
  Payload,
  Done,
}

export class FrameParser {
  private state = State.Header;
  private readonly header = new Uint8Array(MAX_HEADER_BYTES);
  private headerLen = 0;
  private headerNeed = 2;
  private opcode = 0;
  private fin = false;
  private remaining = 0;
  private readonly key = new Uint8Array(4);
  private keyZero = true;
  private keyPos = 0;
  /** opcode of the fragmented message in progress, or -1 */
  private messageOpcode = -1;
  private messageViews: Uint8Array[] = [];
  private messageLength = 0;
  private readonly control = new Uint8Array(MAX_CONTROL_PAYLOAD);
  private controlLen = 0;
  private readonly masked: boolean;

  constructor(
    private readonly handlers: FrameHandlers,
    private readonly options: FrameParserOptions,
  ) {
    this.masked = options.role === 'server';
  }

  /** False once a close frame or a violation has ended parsing. */
  get active(): boolean {
    return this.state !== State.Done;
  }

  /** Stop parsing (the connection is going away): what is buffered is let go. */
  stop(): void {
    this.state = State.Done;
    this.messageViews = [];
  }

  /** One read of the socket. The parser may unmask its bytes in place and keep views of it. */
  push(chunk: Uint8Array): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n && this.state !== State.Done) {
      if (this.state === State.Header) {
        const take = Math.min(this.headerNeed - this.headerLen, n - pos);
        this.header.set(chunk.subarray(pos, pos + take), this.headerLen);
        this.headerLen += take;
        pos += take;
        if (this.headerLen === this.headerNeed) this.onHeaderBytes();
      } else {
        const take = Math.min(this.remaining, n - pos);
        this.onPayload(chunk.subarray(pos, pos + take));
        pos += take;
      }
    }
  }

  private onHeaderBytes(): void {
    const h = this.header;
    if (this.headerNeed === 2) {
      const len7 = h[1] & 0x7f;
      this.headerNeed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (h[1] & 0x80 ? 4 : 0);
      if (this.headerNeed > 2) return;
    }
    this.headerLen = 0;
    this.headerNeed = 2;
    const fin = (h[0] & 0x80) !== 0;
    const opcode = h[0] & 0x0f;
    // RFC 6455 section 5.2: RSV1-3 must be 0 unless an extension says otherwise (none is negotiated)
    if ((h[0] & 0x70) !== 0) return this.fail(CLOSE_PROTOCOL_ERROR, 'reserved bits set');
    const masked = (h[1] & 0x80) !== 0;
    // RFC 6455 section 5.1: a server closes on an unmasked frame, a client on a masked one
    if (masked !== this.masked) return this.fail(CLOSE_PROTOCOL_ERROR, this.masked ? 'unmasked frame from a client' : 'masked frame from a server');
    const len7 = h[1] & 0x7f;
    let length = len7;
    if (len7 === 126) length = (h[2] << 8) | h[3];
    else if (len7 === 127) {
      // RFC 6455 section 5.2: the most significant bit of a 64-bit length must be 0
      if (h[2] & 0x80) return this.fail(CLOSE_PROTOCOL_ERROR, 'frame length has its top bit set');
      length = (h[2] * 2 ** 24 + (h[3] << 16) + (h[4] << 8) + h[5]) * 2 ** 32 + (((h[6] << 24) | (h[7] << 16) | (h[8] << 8) | h[9]) >>> 0);
    }
    if (opcode >= 0x8) {
      if (opcode !== OPCODE_CLOSE && opcode !== OPCODE_PING && opcode !== OPCODE_PONG) return this.fail(CLOSE_PROTOCOL_ERROR, `unknown opcode ${opcode}`);
      // RFC 6455 section 5.5: control frames are final and short
      if (!fin) return this.fail(CLOSE_PROTOCOL_ERROR, 'fragmented control frame');
      if (length > MAX_CONTROL_PAYLOAD) return this.fail(CLOSE_PROTOCOL_ERROR, 'control frame longer than 125 bytes');
      this.controlLen = 0;
    } else {
      if (opcode !== OPCODE_CONTINUATION && opcode !== OPCODE_TEXT && opcode !== OPCODE_BINARY) return this.fail(CLOSE_PROTOCOL_ERROR, `unknown opcode ${opcode}`);
      // RFC 6455 section 5.4: a continuation only inside a fragmented message, a new message only outside one
      if (opcode === OPCODE_CONTINUATION && this.messageOpcode < 0) return this.fail(CLOSE_PROTOCOL_ERROR, 'continuation frame without a message');
      if (opcode !== OPCODE_CONTINUATION && this.messageOpcode >= 0) return this.fail(CLOSE_PROTOCOL_ERROR, 'new message inside a fragmented one');
      const messageOpcode = opcode === OPCODE_CONTINUATION ? this.messageOpcode : opcode;
      const max = messageOpcode === OPCODE_BINARY ? this.options.maxBinaryBytes : this.options.maxTextBytes;
      if (this.messageLength + length > max) return this.fail(CLOSE_TOO_BIG, `message longer than ${max} bytes`);
      this.messageOpcode = messageOpcode;
    }
    this.opcode = opcode;
    this.fin = fin;
    this.remaining = length;
    if (masked) {
      const k = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
      this.key.set(h.subarray(k, k + 4));
      this.keyZero = (h[k] | h[k + 1] | h[k + 2] | h[k + 3]) === 0;
    } else this.keyZero = true;
    this.keyPos = 0;
    this.state = State.Payload;
    if (length === 0) this.onFrameEnd();
  }

  private onPayload(view: Uint8Array): void {
    if (!this.keyZero) this.keyPos = xorMask(view, view, this.key, this.keyPos);
    this.remaining -= view.length;
    if (this.opcode >= 0x8) {
      this.control.set(view, this.controlLen);
      this.controlLen += view.length;
    } else {
      this.messageViews.push(view);
      this.messageLength += view.length;
    }
    if (this.remaining === 0) this.onFrameEnd();
  }

  private onFrameEnd(): void {
    this.state = State.Header;
    const opcode = this.opcode;
    if (opcode >= 0x8) return this.onControlFrame(opcode, this.control.slice(0, this.controlLen));
    if (!this.fin) return;
    const views = this.messageViews;
    const length = this.messageLength;
    const messageOpcode = this.messageOpcode;
    this.messageViews = [];
    this.messageLength = 0;
    this.messageOpcode = -1;
    if (messageOpcode === OPCODE_BINARY) return this.handlers.binary(views, length);
    const bytes = views.length === 1 ? views[0] : Buffer.concat(views, length);
    // RFC 6455 section 8.1: text must be valid UTF-8, else fail with 1007
    if (!isUtf8(bytes)) return this.fail(CLOSE_INVALID_DATA, 'text message is not valid UTF-8');
    this.handlers.text(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'));
  }

  private onControlFrame(opcode: number, payload: Uint8Array): void {
    if (opcode === OPCODE_PING) return this.handlers.ping(payload);
    if (opcode === OPCODE_PONG) return this.handlers.pong(payload);
    // RFC 6455 section 5.5.1: a close frame's body is empty or a 2-byte code and a UTF-8 reason
    if (payload.length === 0) {
      this.stop();
      return this.handlers.close(CLOSE_NO_STATUS, '');
    }
    if (payload.length === 1) return this.fail(CLOSE_PROTOCOL_ERROR, 'close frame with a 1-byte body');
    const code = (payload[0] << 8) | payload[1];
    if (!isSendableCloseCode(code)) return this.fail(CLOSE_PROTOCOL_ERROR, `invalid close code ${code}`);
    const reason = payload.subarray(2);
    if (!isUtf8(reason)) return this.fail(CLOSE_INVALID_DATA, 'close reason is not valid UTF-8');
    this.stop();
    this.handlers.close(code, Buffer.from(reason).toString('utf8'));
  }

  private fail(code: number, reason: string): void {
    this.stop();
    this.handlers.fail(code, reason);
  }
}
