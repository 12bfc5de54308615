// TCP demultiplexing for a Stack: connections by four-tuple, listeners by port, a RST
// for the rest (RFC 9293 section 3.10.7.1), ephemeral ports, and the TcpHost surface.

import type { StackCounters } from './counters.js';
import type { Timed } from './timer-heap.js';
import { mssForMtu, tcpConfig, type TcpConfig } from './tcp/config.js';
import { TcpConnection } from './tcp/connection.js';
import { TcpListener } from './tcp/listener.js';
import { EphemeralPorts } from './tcp/ports.js';
import { rstForUnmatched } from './tcp/rst.js';
import type {
  TcpBatchAcker,
  FourTuple,
  TcpConnectOptions,
  TcpConnectionApi,
  TcpConnectionEvents,
  TcpConnectionLike,
  TcpEnv,
  TcpErrorCode,
  TcpHost,
  TcpListenerHandle,
  TcpListenOptions,
} from './tcp/types.js';
import { isWireError } from './wire/error.js';
import { IPV4_FLAG_DF, IPV4_HEADER_LENGTH, PROTO_TCP, emitIpv4Header, type Ipv4HeaderFields, type Ipv4Packet } from './wire/ipv4.js';
import { ACK, SYN, emitTcp, emitTcpHeader, parseTcp, tcpBufferLength, tcpHeaderLength, type TcpSegmentOut } from './wire/tcp.js';

/** What TCP needs from the stack around it. */
export interface TcpStackEnv {
  readonly localAddress: number;
  readonly mtu: number;
  readonly ttl: number;
  readonly counters: StackCounters;
  readonly limits: { readonly maxTcpConnections: number; readonly maxTcpListeners: number };
  readonly verifyChecksums: boolean;
  now(): number;
  sendPacket(packet: Uint8Array): void;
  /** Whether a segment to `dst` may go out as header and payload views (Link.sendGather). */
  canGather?(dst: number): boolean;
  /** Send `header` (IPv4 and TCP headers) followed by the `payload` views: `length` bytes in all. */
  sendGather?(header: Uint8Array, payload: readonly Uint8Array[], length: number): void;
  nextIpId(): number;
  reschedule(item: Timed): void;
  unschedule(item: Timed): void;
  drop(reason: string, n?: number): void;
  pickEphemeral(inUse: (port: number) => boolean): number;
  /** The stack's ephemeral range (StackOptions.ephemeralPorts). */
  readonly ephemeralPorts: readonly [number, number];
}

/**
 * Segments with at least this much payload go to a link with sendGather as header and
 * send-buffer views: below it, a copy costs less than a gather list.
 */
const GATHER_MIN_PAYLOAD = 1024;
const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_PACKET = 16 * 1024;

/** Remote half of the four-tuple as one number (48 bits: address and port). */
function remoteKey(address: number, port: number): number {
  return address * 0x10000 + port;
}

/** States that count as an open connection for idleness (everything but TIME-WAIT/CLOSED). */
function isActive(state: string): boolean {
  return state !== 'TIME-WAIT' && state !== 'CLOSED' && state !== 'LISTEN';
}

export class TcpEndpoints implements TcpHost, TcpEnv {
  readonly localAddress: number;
  readonly config: TcpConfig;
  /** localPort -> (remoteKey -> connection) */
  private readonly conns = new Map<number, Map<number, TcpConnection>>();
  private readonly listeners = new Map<number, TcpListener>();
  private count = 0;
  private closed = false;
  private readonly ports: EphemeralPorts;
  /** True between beginInputBatch() and endInputBatch(). */
  private batchOpen = false;
  /** Connections holding an ACK for the end of the open batch (at most one entry each). */
  private readonly batchAckers = new Set<TcpBatchAcker>();
  private slab = new ArrayBuffer(0);
  private slabUsed = SLAB_BYTES;
  private readonly ipHeader: Ipv4HeaderFields = { src: 0, dst: 0, protocol: PROTO_TCP, totalLength: 0, ttl: 64, id: 0, flags: IPV4_FLAG_DF };

  constructor(
    private readonly stack: TcpStackEnv,
    overrides: Partial<TcpConfig>,
  ) {
    this.localAddress = stack.localAddress;
    this.ports = new EphemeralPorts(stack.ephemeralPorts);
    this.config = tcpConfig({ mss: mssForMtu(stack.mtu), ...overrides });
    if (this.config.mss > stack.mtu - 40) throw new RangeError(`tcp.mss ${this.config.mss} does not fit mtu ${stack.mtu}`);
  }

  get connectionCount(): number {
    return this.count;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  now(): number {
    return this.stack.now();
  }

  // ---- TcpEnv -------------------------------------------------------------------------

  output(tuple: FourTuple, segment: TcpSegmentOut): void {
    if (segment.payloadLength >= GATHER_MIN_PAYLOAD && this.stack.sendGather !== undefined && this.stack.canGather?.(tuple.remoteAddress) === true) {
      this.outputGather(tuple, segment);
      return;
    }
    const tcpLength = tcpBufferLength(segment);
    const total = IPV4_HEADER_LENGTH + tcpLength;
    const packet = this.allocPacket(total);
    const written = emitTcp(segment, packet, IPV4_HEADER_LENGTH, tuple.localAddress, tuple.remoteAddress);
    if (written !== tcpLength) throw new Error(`tcp segment payloadLength ${segment.payloadLength} does not match its payload`);
    this.emitIpHeader(tuple, total, packet);
    this.stack.sendPacket(packet);
  }

  /**
   * The segment's payload (send-buffer views) is not copied: only the IPv4 and TCP headers
   * are built, and the link writes them and the views out. The send buffer may reuse a
   * block while a packet holding views of it is still queued; see tcp/send-buffer.ts for
   * why that is safe.
   */
  private outputGather(tuple: FourTuple, segment: TcpSegmentOut): void {
    const p = segment.payload;
    const payload = p instanceof Uint8Array ? [p] : p;
    let n = 0;
    for (const part of payload) n += part.length;
    if (n !== segment.payloadLength) throw new Error(`tcp segment payloadLength ${segment.payloadLength} does not match its payload`);
    const headerLength = IPV4_HEADER_LENGTH + tcpHeaderLength(segment.options);
    const total = headerLength + n;
    const header = this.allocPacket(headerLength);
    emitTcpHeader(segment, header, IPV4_HEADER_LENGTH, tuple.localAddress, tuple.remoteAddress);
    this.emitIpHeader(tuple, total, header);
    this.stack.sendGather?.(header, payload, total);
  }

  /** The IPv4 header of a TCP packet of `total` bytes from this connection, at `into[0]`. */
  private emitIpHeader(tuple: FourTuple, total: number, into: Uint8Array): void {
    const h = this.ipHeader;
    h.src = tuple.localAddress;
    h.dst = tuple.remoteAddress;
    h.totalLength = total;
    h.ttl = this.stack.ttl;
    h.id = this.stack.nextIpId();
    emitIpv4Header(h, into, 0);
  }

  deadlineChanged(conn: TcpConnectionLike): void {
    this.stack.reschedule(conn);
  }

  deferAck(conn: TcpBatchAcker): boolean {
    if (!this.batchOpen || this.closed) return false;
    this.batchAckers.add(conn);
    return true;
  }

  removed(conn: TcpConnectionLike): void {
    const t = conn.tuple;
    const byPort = this.conns.get(t.localPort);
    const key = remoteKey(t.remoteAddress, t.remotePort);
    if (byPort !== undefined && byPort.get(key) === conn) {
      byPort.delete(key);
      if (byPort.size === 0) this.conns.delete(t.localPort);
      this.count--;
    }
    this.stack.unschedule(conn);
  }

  // ---- TcpHost ------------------------------------------------------------------------

  connect(
    remoteAddress: number,
    remotePort: number,
    events: TcpConnectionEvents,
    options: TcpConnectOptions = {},
  ): TcpConnectionApi | 'EADDRINUSE' | 'EADDRNOTAVAIL' {
    if (this.closed || this.count >= this.stack.limits.maxTcpConnections) return 'EADDRNOTAVAIL';
    if (!Number.isInteger(remotePort) || remotePort <= 0 || remotePort > 0xffff) return 'EADDRNOTAVAIL';
    const remote = remoteAddress >>> 0;
    let localPort = options.localPort ?? 0;
    if (localPort !== 0) {
      if (this.listeners.has(localPort) || this.conns.get(localPort)?.has(remoteKey(remote, remotePort))) return 'EADDRINUSE';
    } else {
      // A port may serve several remotes, as only the four-tuple must be unique; so ports
      // held in TIME-WAIT do not run the range dry.
      const key = remoteKey(remote, remotePort);
      localPort = this.ports.pick(this.localAddress, remote, remotePort, (p) => this.listeners.has(p) || (this.conns.get(p)?.has(key) ?? false));
      if (localPort === 0) return 'EADDRNOTAVAIL';
    }
    const tuple: FourTuple = { localAddress: this.localAddress, localPort, remoteAddress: remote, remotePort };
    const conn = TcpConnection.connect(this, this.config, tuple, events, this.stack.now(), options.noDelay ?? false);
    if (conn.state !== 'CLOSED') this.insert(conn);
    return conn;
  }

  listen(localPort: number, options: TcpListenOptions, onConnection: (conn: TcpConnectionApi) => void): TcpListenerHandle | 'EADDRINUSE' {
    if (this.closed || this.listeners.size >= this.stack.limits.maxTcpListeners) return 'EADDRINUSE';
    let port = localPort;
    if (port === 0) {
      port = this.stack.pickEphemeral((p) => this.listeners.has(p) || this.conns.has(p));
      if (port === 0) return 'EADDRINUSE';
    } else if (!Number.isInteger(port) || port < 0 || port > 0xffff || this.listeners.has(port)) return 'EADDRINUSE';
    // Node's default backlog.
    const listener = new TcpListener(this, this.config, this.localAddress, port, options.backlog ?? 511, onConnection, undefined, options.ownHostOnly === true);
    this.listeners.set(port, listener);
    return {
      localPort: port,
      close: () => {
        listener.close(this.stack.now());
        if (this.listeners.get(port) === listener) this.listeners.delete(port);
      },
    };
  }

  // ---- from the stack -----------------------------------------------------------------

  /** Segments input from now on belong to one batch: ACKs owed for them may wait for its end. */
  beginInputBatch(): void {
    this.batchOpen = true;
  }

  /** The batch ended: every connection holding an ACK for it sends it now. */
  endInputBatch(now: number): void {
    this.batchOpen = false;
    if (this.batchAckers.size === 0) return;
    for (const c of this.batchAckers) c.flushBatchAck(now);
    this.batchAckers.clear();
  }

  input(ip: Ipv4Packet, now: number): void {
    const seg = parseTcp(ip.payload, ip.src, ip.dst, this.stack.verifyChecksums);
    if (isWireError(seg)) {
      this.stack.drop(seg.reason);
      return;
    }
    this.stack.counters.tcpSegmentsIn++;
    if (seg.srcPort === 0 || seg.dstPort === 0) {
      this.stack.drop('tcp-port-zero');
      return;
    }
    const key = remoteKey(ip.src, seg.srcPort);
    const conn = this.conns.get(seg.dstPort)?.get(key);
    if (conn !== undefined) {
      if (!conn.input(seg, now)) return;
      // TIME-WAIT gave way to a new SYN (RFC 9293 section 3.10.7.4): on to the listener.
      if (this.conns.get(seg.dstPort)?.get(key) === conn) this.removed(conn);
    }
    const listener = this.listeners.get(seg.dstPort);
    if (listener !== undefined) {
      // a SYN, or an ACK that completes a half-open entry or returns a SYN cookie, would
      // make a connection: none beyond the table's limit
      if ((seg.flags & (SYN | ACK)) !== 0 && this.count >= this.stack.limits.maxTcpConnections) {
        this.stack.drop('tcp-table-full');
        return;
      }
      const created = listener.input(seg, ip.src, seg.srcPort, now);
      if (created !== null && created.state !== 'CLOSED') this.insert(created);
      return;
    }
    this.stack.counters['tcp-closed-port'] = (this.stack.counters['tcp-closed-port'] ?? 0) + 1;
    const rst = rstForUnmatched(seg);
    if (rst === null) return;
    this.stack.counters.tcpResetsSent++;
    this.output({ localAddress: this.localAddress, localPort: seg.dstPort, remoteAddress: ip.src, remotePort: seg.srcPort }, rst);
  }

  /** ICMP destination unreachable quoting one of our segments; false if no connection matches. */
  icmpError(localPort: number, remote: number, remotePort: number, _seq: number, code: TcpErrorCode, now: number): boolean {
    const conn = this.conns.get(localPort)?.get(remoteKey(remote, remotePort));
    if (conn === undefined) return false;
    conn.icmpError(code, now);
    return true;
  }

  stats(): { established: number; listening: number } {
    let established = 0;
    for (const byPort of this.conns.values()) for (const c of byPort.values()) if (isActive(c.state)) established++;
    return { established, listening: this.listeners.size };
  }

  /** Every connection, for diagnostics and tests. */
  *connections(): IterableIterator<TcpConnection> {
    for (const byPort of this.conns.values()) yield* byPort.values();
  }

  /** Close listeners and abort every connection. */
  close(now: number): void {
    if (this.closed) return;
    this.closed = true;
    this.batchAckers.clear();
    for (const l of this.listeners.values()) l.close(now);
    this.listeners.clear();
    for (const c of [...this.connections()]) c.abort(now);
    this.conns.clear();
    this.count = 0;
  }

  /**
   * A buffer for one outgoing packet. Small packets are carved from a shared slab: one
   * allocation per slab instead of one per packet (emitTcp and emitIpv4Header write every
   * byte). A slab lives while any of its packets is referenced: only a link that hands our
   * packets to a receiver in the same process (the memory pair) can make that long.
   */
  private allocPacket(total: number): Uint8Array {
    // Uninitialised (no zero fill): every byte of a packet is written before it is sent.
    if (total > SLAB_MAX_PACKET) return new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
    if (this.slabUsed + total > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES).buffer;
      this.slabUsed = 0;
    }
    const packet = new Uint8Array(this.slab, this.slabUsed, total);
    this.slabUsed += (total + 7) & ~7;
    return packet;
  }

  private insert(conn: TcpConnection): void {
    const t = conn.tuple;
    let byPort = this.conns.get(t.localPort);
    if (byPort === undefined) {
      byPort = new Map();
      this.conns.set(t.localPort, byPort);
    }
    const key = remoteKey(t.remoteAddress, t.remotePort);
    if (!byPort.has(key)) this.count++;
    byPort.set(key, conn);
    this.stack.reschedule(conn);
  }
}
