// A listening port (RFC 9293 section 3.10.7.2, LISTEN): turns SYNs into connections in
// SYN-RECEIVED, bounded by a half-open queue; beyond it, SYN cookies (syn-cookie.ts).

import { ACK, RST, SYN, type TcpOptions, type TcpSegment } from '../wire/tcp.js';
import { windowScaleFor, type TcpConfig } from './config.js';
import { TcpConnection, type HalfOpenOwner } from './connection.js';
import { IsnGenerator, defaultIsnGenerator } from './isn.js';
import { makeRst, rstForUnmatched } from './rst.js';
import { SynCookies } from './syn-cookie.js';
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
  /** SYN-ACKs with a cookie, sent with the half-open queue full (RFC 4987 section 3.6). */
  synCookiesSent: number;
  /** ACKs whose cookie was valid: connections made without a half-open entry. */
  synCookiesAccepted: number;
  /** ACKs while cookies were in use whose cookie was not valid (answered with a RST). */
  synCookiesFailed: number;
}

// A cookie is good for two 64 s periods; ACKs are checked only that long after the last one sent.
const COOKIE_CHECK_MS = 128_000;

export class TcpListener implements HalfOpenOwner {
  readonly counters: TcpListenerCounters = {
    synReceived: 0,
    accepted: 0,
    droppedQueueFull: 0,
    droppedNonSyn: 0,
    rstSent: 0,
    halfOpenFailed: 0,
    synCookiesSent: 0,
    synCookiesAccepted: 0,
    synCookiesFailed: 0,
  };
  private readonly cookies: SynCookies;
  private lastCookieAt = -Infinity;
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
    this.cookies = new SynCookies(isnSecret);
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
    if ((f & (ACK | SYN)) === ACK && this.config.synCookies && now - this.lastCookieAt <= COOKIE_CHECK_MS) {
      const conn = this.fromCookie(seg, tuple, now);
      if (conn !== null) return conn;
      this.counters.synCookiesFailed++;
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
      if (this.config.synCookies) this.sendCookie(seg, tuple, now);
      else this.counters.droppedQueueFull++;
      return null;
    }
    const iss = this.config.isn !== undefined ? this.config.isn(tuple, now) : this.isn.isn(tuple, now);
    const conn = TcpConnection.accept(this.env, this.config, tuple, seg, now, iss, this);
    this.counters.synReceived++;
    this.halfOpen.add(conn);
    return conn;
  }

  /** RFC 4987 section 3.6: a SYN-ACK whose ISS and TSval hold what we would have kept. */
  private sendCookie(syn: TcpSegment, tuple: FourTuple, now: number): void {
    const c = this.config;
    const peer = syn.options;
    const irs = syn.seq >>> 0;
    const iss = this.cookies.encode(tuple, irs, peer.mss !== undefined && peer.mss > 0 ? peer.mss : 536, now);
    const options: TcpOptions = { mss: c.mss };
    // Window scale and SACK need the timestamp to be remembered in (as Linux).
    if (c.timestamps && peer.timestamp !== undefined) {
      const windowScale = c.windowScaling && peer.windowScale !== undefined ? Math.min(14, peer.windowScale) : null;
      const sack = c.sack && peer.sackPermitted === true;
      const offset = c.tsOffset !== undefined ? c.tsOffset(tuple) : defaultIsnGenerator.tsOffset(tuple.localAddress, tuple.remoteAddress);
      const tsNow = (Math.floor(now) + offset) >>> 0;
      options.timestamp = { value: SynCookies.tsValue(tsNow, { windowScale, sack }), echo: peer.timestamp.value >>> 0 };
      if (windowScale !== null) options.windowScale = windowScaleFor(c.receiveBufferSize);
      if (sack) options.sackPermitted = true;
    }
    this.counters.synCookiesSent++;
    this.lastCookieAt = now;
    this.env.output(tuple, {
      srcPort: tuple.localPort,
      dstPort: tuple.remotePort,
      seq: iss,
      ack: (irs + 1) >>> 0,
      flags: SYN | ACK,
      window: Math.min(c.receiveBufferSize, 0xffff),
      urgent: 0,
      options,
      payload: new Uint8Array(0),
      payloadLength: 0,
    });
  }

  /** An ACK that may return a cookie: the connection it stands for, or null. */
  private fromCookie(ack: TcpSegment, tuple: FourTuple, now: number): TcpConnection | null {
    const irs = (ack.seq - 1) >>> 0;
    const iss = (ack.ack - 1) >>> 0;
    const mss = this.cookies.decode(tuple, irs, iss, now);
    if (mss < 0) return null;
    const synOptions: TcpOptions = { mss };
    const ts = ack.options.timestamp;
    if (this.config.timestamps && ts !== undefined) {
      const remembered = SynCookies.tsOptions(ts.echo);
      if (remembered.windowScale !== null) synOptions.windowScale = remembered.windowScale;
      if (remembered.sack) synOptions.sackPermitted = true;
      synOptions.timestamp = { value: ts.value >>> 0, echo: 0 };
    }
    const conn = TcpConnection.fromCookie(this.env, this.config, tuple, synOptions, irs, iss, now, this);
    this.counters.synCookiesAccepted++;
    this.halfOpen.add(conn);
    conn.input(ack, now);
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
