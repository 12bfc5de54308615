// A listening port (RFC 9293 section 3.10.7.2, LISTEN): turns SYNs into connections in
// SYN-RECEIVED, bounded by a half-open queue.

import { ACK, RST, SYN, type TcpSegment } from '../wire/tcp.js';
import type { TcpConfig } from './config.js';
import { TcpConnection, type HalfOpenOwner } from './connection.js';
import { IsnGenerator, defaultIsnGenerator } from './isn.js';
import { makeRst, rstForUnmatched } from './rst.js';
import type { FourTuple, TcpEnv } from './types.js';

export interface TcpListenerCounters {
  /** SYNs that created a connection. */
  synReceived: number;
  /** Connections that completed the handshake and were handed to onConnection. */
  accepted: number;
  /** SYNs dropped because the half-open queue was full. */
  droppedQueueFull: number;
  /** Non-SYN segments dropped, or answered with a RST. */
  droppedNonSyn: number;
  rstSent: number;
  /** Half-open connections that failed (RST, SYN-ACK retries exhausted). */
  halfOpenFailed: number;
}

export class TcpListener implements HalfOpenOwner {
  readonly counters: TcpListenerCounters = {
    synReceived: 0,
    accepted: 0,
    droppedQueueFull: 0,
    droppedNonSyn: 0,
    rstSent: 0,
    halfOpenFailed: 0,
  };
  private readonly halfOpen = new Set<TcpConnection>();
  private readonly isn: IsnGenerator;
  private readonly limit: number;
  private closed = false;

  constructor(
    private readonly env: TcpEnv,
    private readonly config: TcpConfig,
    readonly localAddress: number,
    readonly localPort: number,
    backlog: number,
    private readonly onConnection: (conn: TcpConnection) => void,
    isnSecret?: Uint8Array,
    /** SYNs from other hosts are answered as by a closed port */
    private readonly ownHostOnly = false,
  ) {
    this.isn = isnSecret !== undefined ? new IsnGenerator(isnSecret) : defaultIsnGenerator;
    this.limit = Math.max(1, Math.min(backlog | 0 || 1, config.maxHalfOpen));
  }

  /** Connections in SYN-RECEIVED. */
  get halfOpenCount(): number {
    return this.halfOpen.size;
  }

  /**
   * A segment to this port that matched no connection. A SYN creates a connection in
   * SYN-RECEIVED (returned, for the stack's demultiplexing table); anything else
   * returns null after answering as RFC 9293 section 3.10.7.2 says.
   */
  input(seg: TcpSegment, remoteAddress: number, remotePort: number, now: number): TcpConnection | null {
    const f = seg.flags;
    const tuple: FourTuple = { localAddress: this.localAddress, localPort: this.localPort, remoteAddress, remotePort };
    if (this.closed || (this.ownHostOnly && remoteAddress !== this.localAddress)) {
      const rst = rstForUnmatched(seg);
      if (rst !== null) {
        this.counters.rstSent++;
        this.env.output(tuple, rst);
      }
      return null;
    }
    if ((f & RST) !== 0) {
      this.counters.droppedNonSyn++;
      return null;
    }
    if ((f & ACK) !== 0) {
      // RFC 9293 section 3.10.7.2 second: <SEQ=SEG.ACK><CTL=RST>.
      this.counters.droppedNonSyn++;
      this.counters.rstSent++;
      this.env.output(tuple, makeRst(seg, seg.ack >>> 0, 0, RST));
      return null;
    }
    if ((f & SYN) === 0) {
      this.counters.droppedNonSyn++;
      return null;
    }
    if (this.halfOpen.size >= this.limit) {
      this.counters.droppedQueueFull++;
      return null;
    }
    const iss = this.config.isn !== undefined ? this.config.isn(tuple, now) : this.isn.isn(tuple, now);
    const conn = TcpConnection.accept(this.env, this.config, tuple, seg, now, iss, this);
    this.counters.synReceived++;
    this.halfOpen.add(conn);
    return conn;
  }

  halfOpenDone(conn: TcpConnection, established: boolean): void {
    if (!this.halfOpen.delete(conn)) return;
    if (!established) {
      this.counters.halfOpenFailed++;
      return;
    }
    this.counters.accepted++;
    this.onConnection(conn);
  }

  /** Stop accepting; half-open connections are aborted, established ones are not affected. */
  close(now = 0): void {
    if (this.closed) return;
    this.closed = true;
    const pending = [...this.halfOpen];
    this.halfOpen.clear();
    for (const c of pending) c.abort(now);
  }
}
