// One connected host: its WebSocket, liveness, and the bounded send queue.

import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { encodeControl, type RelayToHostMessage } from './protocol.js';

export class RelaySession {
  lastPongAt: number;
  closed = false;
  /** The WebSocket's TCP socket, corked while one burst of frames is written to it. */
  private socket: Duplex | null = null;
  private corked = false;
  /** ws.bufferedAmount when the burst began: a burst's own frames are only held by the cork */
  private burstBase = 0;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket?.uncork();
  };

  constructor(
    readonly id: string,
    readonly host: string,
    readonly ws: WebSocket,
    /** bytes the WebSocket may have buffered before packets to this host are dropped */
    private readonly queueBytes: number,
    now: number,
    /** the nonce (`n`) of the token it joined with: which launch the session belongs to */
    readonly nonce: string = '',
  ) {
    this.lastPongAt = now;
  }

  /**
   * Batch the frames sent to this session in one synchronous burst (all those forwarded
   * from one read of a sender's socket) into one write: the socket stays corked until the
   * burst's microtask checkpoint, so latency is unchanged and the syscalls per frame drop.
   */
  batchWrites(socket: Duplex): void {
    this.socket = socket;
  }

  /** Send one frame of whole packets (a view; ws keeps a reference, never a copy). */
  sendPacket(bytes: Uint8Array): boolean {
    if (this.closed) return false;
    // A burst is bounded by one read of the sender's socket; the limit is about what the
    // destination has not taken yet, as when every frame was written at once.
    if ((this.corked ? this.burstBase : this.ws.bufferedAmount) + bytes.length > this.queueBytes) return false;
    if (!this.corked && this.socket !== null) {
      this.corked = true;
      this.burstBase = this.ws.bufferedAmount;
      this.socket.cork();
      queueMicrotask(this.uncork);
    }
    this.ws.send(bytes, { binary: true });
    return true;
  }

  sendControl(msg: RelayToHostMessage): void {
    if (this.closed) return;
    this.ws.send(encodeControl(msg));
  }

  /** Close politely; terminate() if the peer does not answer within ms. */
  close(code: number, reason: string, terminateAfterMs = 2000): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ws.close(code, reason.slice(0, 120));
    } catch {
      this.ws.terminate();
      return;
    }
    const t = setTimeout(() => this.ws.terminate(), terminateAfterMs);
    t.unref();
    this.ws.once('close', () => clearTimeout(t));
  }

  terminate(): void {
    this.closed = true;
    this.ws.terminate();
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
