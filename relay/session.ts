// One connected host: its WebSocket (transport's codec, server end), liveness, and the
// bounded send queue.

import type { WebSocketConnection } from '../transport/websocket.js';
import { encodeControl, type RelayToHostMessage } from './protocol.js';

export class RelaySession {
  lastPongAt: number;
  closed = false;
  /** binary frames written to this session */
  framesOut = 0;
  /** Resolves when the WebSocket's socket has closed. */
  readonly whenClosed: Promise<void>;
  private markClosed!: () => void;
  private inBurst = false;
  /** the connection's buffered bytes when the burst began: a burst's own frames are only held by the cork */
  private burstBase = 0;
  private readonly endBurst = (): void => {
    this.inBurst = false;
  };

  constructor(
    readonly id: string,
    readonly host: string,
    readonly connection: WebSocketConnection,
    /** bytes the WebSocket may have buffered before packets to this host are dropped */
    private readonly queueBytes: number,
    now: number,
    /** the nonce (`n`) of the token it joined with: which launch the session belongs to */
    readonly nonce: string = '',
  ) {
    this.lastPongAt = now;
    this.whenClosed = new Promise((r) => (this.markClosed = r));
  }

  /** The connection's socket has closed (the relay's close handler calls this). */
  onClosed(): void {
    this.closed = true;
    this.markClosed();
  }

  /**
   * Send one binary frame of whole packets: `views` back to back (`bytes` in all), written
   * as a header and the views (a gather write), never joined or copied. Frames sent in one
   * synchronous burst (all forwarded from one read of a sender's socket) go out in one
   * corked write. False when the session is closed or its queue full.
   */
  sendFrame(views: readonly Uint8Array[], bytes: number): boolean {
    if (this.closed) return false;
    if (!this.inBurst) {
      this.inBurst = true;
      this.burstBase = this.connection.bufferedAmount;
      queueMicrotask(this.endBurst);
    }
    // A burst is bounded by one read of the sender's socket; the limit is about what the
    // destination has not taken yet, as when every frame was written at once.
    if (this.burstBase + bytes > this.queueBytes) return false;
    if (!this.connection.sendBinary(views, bytes)) return false;
    this.framesOut++;
    return true;
  }

  sendControl(msg: RelayToHostMessage): void {
    if (this.closed) return;
    this.connection.sendText(encodeControl(msg));
  }

  /** A WebSocket ping (the relay's liveness check; the pong sets lastPongAt). */
  ping(): void {
    if (!this.closed) this.connection.ping();
  }

  /** Close politely; the socket is dropped if the peer does not answer within ms. */
  close(code: number, reason: string, terminateAfterMs = 2000): void {
    if (this.closed) return;
    this.closed = true;
    this.connection.close(code, reason.slice(0, 120), terminateAfterMs);
  }

  terminate(): void {
    this.closed = true;
    this.connection.terminate();
  }
}

/** Token bucket for a host's ingress bytes. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.ratePerSec) / 1000);
      this.at = now;
    }
  }

  take(bytes: number): boolean {
    if (this.tokens < bytes) return false;
    this.tokens -= bytes;
    return true;
  }
}
