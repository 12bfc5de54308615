// The contract between one TCP connection (sans-IO, in tcp/), the stack that
// demultiplexes segments to it, and the socket facade (api/net.ts) on top.
// Addresses are IPv4 as uint32 numbers; time is milliseconds (float) passed in as `now`.

import type { TcpSegmentOut } from '../wire/tcp.js';

/** RFC 9293 section 3.3.2 states. */
export type TcpState =
  | 'CLOSED'
  | 'LISTEN'
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT';

/** Node's error codes for the ways a connection can fail. */
export type TcpErrorCode =
  | 'ECONNREFUSED'
  | 'ECONNRESET'
  | 'ETIMEDOUT'
  | 'EHOSTUNREACH'
  | 'ENETUNREACH'
  | 'ECONNABORTED'
  | 'EPIPE';

export interface FourTuple {
  localAddress: number;
  localPort: number;
  remoteAddress: number;
  remotePort: number;
}

/** What a connection tells its owner (the socket facade, or a test). */
export interface TcpConnectionEvents {
  /** The three-way handshake completed (active or passive open). */
  established(): void;
  /**
   * In-order bytes arrived. The chunk may alias the received packet and may be retained.
   * Delivered bytes count against the receive window until the owner calls consume().
   */
  data(chunk: Uint8Array): void;
  /** The peer sent FIN: no more data will arrive. */
  fin(): void;
  /** Send-buffer space became available after send() accepted fewer bytes than offered. */
  sendSpace(): void;
  /** The connection is finished (CLOSED, or TIME-WAIT entered after a clean close
   * when the owner no longer needs it). `error` is null for an orderly close. Last event. */
  closed(error: TcpErrorCode | null): void;
}

/** What a connection needs from the stack around it. */
export interface TcpEnv {
  /**
   * Emit one segment for this connection's four-tuple, now. The stack serialises it at
   * once: the record and its options may be reused by the caller after the call returns.
   */
  output(tuple: FourTuple, segment: TcpSegmentOut): void;
  /** The connection's next deadline changed; the stack reschedules its single timer. */
  deadlineChanged(conn: TcpConnectionLike): void;
  /** The connection reached CLOSED and must leave the demultiplexing table. */
  removed(conn: TcpConnectionLike): void;
  /**
   * Optional: hold the ACK `conn` owes until the end of the input batch being handled, when
   * the stack calls conn.flushBatchAck(now). False (or absent) when no batch is open: the
   * connection then ACKs at once.
   */
  deferAck?(conn: TcpBatchAcker): boolean;
}

/** A connection that can hold an ACK to the end of an input batch (TcpEnv.deferAck). */
export interface TcpBatchAcker {
  /** Send the ACK held for the batch, if it is still owed. */
  flushBatchAck(now: number): void;
}

/** The parts of a connection the stack relies on. */
export interface TcpConnectionLike {
  readonly tuple: FourTuple;
  readonly state: TcpState;
  /** Absolute time (ms) of the next timer, or Infinity. */
  readonly deadline: number;
  /** Run whatever timers are due at `now`. */
  poll(now: number): void;
}

/** The connection surface the socket facade uses (implemented by tcp/connection.ts). */
export interface TcpConnectionApi extends TcpConnectionLike {
  /** Replaceable: a passive connection gets its owner's events when it is accepted. */
  events: TcpConnectionEvents;
  /**
   * Queue bytes for sending; returns how many were accepted (0..length) given the send
   * buffer's space. The connection may keep a reference to `data`: callers must not
   * modify it afterwards. Segments go out at once where the window and Nagle allow.
   * `end` (if every byte was accepted) also queues the FIN, as shutdown() would, so that
   * it can ride on the last data segment.
   */
  send(data: Uint8Array, now: number, end?: boolean): number;
  /** Free space in the send buffer. */
  readonly sendSpace: number;
  /** Bytes accepted by send() and not yet acknowledged by the peer. */
  readonly sendBuffered: number;
  /** Half-close: FIN after all queued data (RFC 9293 section 3.10.4). */
  shutdown(now: number): void;
  /**
   * The owner is gone (a destroyed socket whose FIN is still on its way): the connection
   * finishes its close alone, and FIN-WAIT-2 is bounded by TcpConfig.finWait2TimeoutMs.
   */
  orphan?(now: number): void;
  /** Abort: RST if synchronized, then CLOSED; emits closed(null) (RFC 9293 section 3.10.5). */
  abort(now: number): void;
  /** The owner has consumed `bytes` of delivered data: reopen the receive window. */
  consume(bytes: number, now: number): void;
  setNoDelay(noDelay: boolean, now: number): void;
  setKeepAlive(enable: boolean, initialDelayMs: number, now: number): void;
  readonly bytesSent: number;
  readonly bytesReceived: number;
}

export interface TcpListenerHandle {
  readonly localPort: number;
  /** Stop accepting; established connections are not affected. */
  close(): void;
}

export interface TcpConnectOptions {
  localPort?: number;
  noDelay?: boolean;
}

/** The TCP surface of a Stack (`stack.tcp`), used by the facade and by simulation tests. */
export interface TcpListenOptions {
  backlog?: number;
  /**
   * Take SYNs only from this host's own address (a listener on its loopback); others are
   * answered as a closed port (RFC 9293 section 3.10.7.1), so the peer sees ECONNREFUSED.
   */
  ownHostOnly?: boolean;
}

export interface TcpHost {
  now(): number;
  readonly localAddress: number;
  connect(
    remoteAddress: number,
    remotePort: number,
    events: TcpConnectionEvents,
    options?: TcpConnectOptions,
  ): TcpConnectionApi | 'EADDRINUSE' | 'EADDRNOTAVAIL';
  /** localPort 0 picks an ephemeral port. */
  listen(
    localPort: number,
    options: TcpListenOptions,
    onConnection: (conn: TcpConnectionApi) => void,
  ): TcpListenerHandle | 'EADDRINUSE';
}
