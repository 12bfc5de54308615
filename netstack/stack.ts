// The stack: one IPv4 address on a Link. Ingress parses each packet once, drops and
// counts bad ones by reason, reassembles fragments, answers ICMP echo, demultiplexes UDP
// and TCP; egress fragments UDP and ICMP datagrams larger than the MTU (TCP segments fit
// it and keep DF). Everything timed runs off one clock timer driven by a deadline heap.

import { createDgramApi, type DgramApi, type UdpHost, type UdpReceiver } from './api/dgram.js';
import { Pinger, type PingHost, type PingOptions } from './api/ping.js';
import { lookupError } from './api/net-errors.js';
import { createNetApi, type NetApi } from './api/net.js';
import { RateLimiter, newCounters, type StackCounters } from './counters.js';
import { Reassembler } from './fragments.js';
import type { Link } from './link/link.js';
import { mulberry32, type Random } from './link/prng.js';
import { createLogger, type Logger } from './log.js';
import {
  DEFAULT_EPHEMERAL_PORTS,
  DEFAULT_LIMITS,
  DEFAULT_MTU,
  DEFAULT_PREFIX_LENGTH,
  DEFAULT_TTL,
  MIN_MTU,
  type LookupFunction,
  type SendDatagramOptions,
  type StackLimits,
  type StackOptions,
} from './options.js';
import { TcpEndpoints } from './tcp-host.js';
import type { TcpHost } from './tcp/types.js';
import { realClock, type Clock, type TimerHandle } from './time.js';
import { TimerHeap, type Timed } from './timer-heap.js';
import { isWireError } from './wire/error.js';
import {
  ICMP_DEST_UNREACHABLE,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_UNREACH_FRAG_NEEDED,
  ICMP_UNREACH_PORT,
  ICMP_UNREACH_PROTOCOL,
  ICMP_HEADER_LENGTH,
  buildIcmpUnreachable,
  emitIcmpHeader,
  parseIcmp,
  parseIcmpQuote,
  type IcmpMessage,
} from './wire/icmp.js';
import {
  IPV4_FLAG_DF,
  IPV4_FLAG_MF,
  IPV4_HEADER_LENGTH,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
  buildIpv4Packets,
  ipv4ToString,
  parseIpv4,
  parseIpv4Address,
  readUint32,
  type Ipv4HeaderFields,
  type Ipv4Packet,
} from './wire/ipv4.js';
import { UDP_HEADER_LENGTH, UDP_MAX_PAYLOAD, emitUdpHeader, parseUdp } from './wire/udp.js';

export type { StackOptions, StackLimits, LookupFunction, FragmentPolicy, SendDatagramOptions } from './options.js';
export type { StackCounters } from './counters.js';

/** Packets to our own address waiting to go round. */
const LOOPBACK_QUEUE_LIMIT = 4096;

export interface SocketStats {
  /** TCP connections in ESTABLISHED, or closing but still carrying data */
  established: number;
  listening: number;
  /** bound UDP sockets */
  udp: number;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** stack.clock time (ms; performance.now() for realClock) of the last packet in or out; -Infinity before any */
  lastActivity: number;
  /** ms since lastActivity (Infinity before any packet) */
  idleMs: number;
}

export interface StackTableSizes {
  tcpConnections: number;
  tcpListeners: number;
  udpSockets: number;
  reassemblyBytes: number;
  reassemblyDatagrams: number;
  /** items on the deadline heap */
  timers: number;
  loopbackQueue: number;
  pendingPings: number;
  counterKeys: number;
}

/** A one-shot job on the stack's timer. */
class Job implements Timed {
  deadline: number;
  constructor(
    at: number,
    private fn: (() => void) | null,
  ) {
    this.deadline = at;
  }
  poll(now: number): void {
    if (now < this.deadline) return;
    this.deadline = Infinity;
    const fn = this.fn;
    this.fn = null;
    fn?.();
  }
}

export class Stack implements UdpHost, PingHost {
  /** our address, dotted quad */
  readonly address: string;
  /** our address, uint32 */
  readonly localAddress: number;
  readonly prefixLength: number;
  readonly netmask: number;
  readonly broadcast: number;
  readonly gateway: string;
  readonly mtu: number;
  readonly ttl: number;
  readonly clock: Clock;
  readonly limits: Readonly<StackLimits>;
  readonly counters: StackCounters = newCounters();
  readonly logger: Logger;
  /** verify checksums on input */
  readonly verifyChecksums: boolean;
  readonly tcp: TcpHost;
  readonly dgram: DgramApi;
  /** The Node `net` facade (api/net.ts) over `tcp`. */
  readonly net: NetApi;

  private link: Link | null = null;
  private closed = false;
  private lastActivity = -Infinity;
  private ipId = 0;
  private resolver: LookupFunction;
  private readonly random: Random;
  /** The ephemeral port range (StackOptions.ephemeralPorts). */
  readonly ephemeralPorts: readonly [number, number];
  private readonly udpSockets = new Map<number, UdpReceiver>();
  private readonly reassembler: Reassembler;
  private readonly icmpLimiter: RateLimiter;
  private readonly pinger: Pinger;
  private readonly tcpEndpoints: TcpEndpoints;
  private readonly timers = new TimerHeap();
  private timer: TimerHandle | null = null;
  private timerAt = Infinity;
  private readonly reassemblyTimed: Timed;
  private readonly loopbackQueue: Uint8Array[] = [];

  constructor(options: StackOptions) {
    const addr = parseIpv4Address(options.address);
    if (addr === null) throw new TypeError(`StackOptions.address must be an IPv4 address, got ${String(options.address)}`);
    const prefix = options.prefixLength ?? DEFAULT_PREFIX_LENGTH;
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`StackOptions.prefixLength must be 0..32, got ${prefix}`);
    const mtu = options.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > 65535) throw new RangeError(`StackOptions.mtu must be ${MIN_MTU}..65535, got ${mtu}`);
    this.address = options.address;
    this.localAddress = addr;
    this.prefixLength = prefix;
    this.netmask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    this.broadcast = ((addr & this.netmask) | (~this.netmask >>> 0)) >>> 0;
    const network = (addr & this.netmask) >>> 0;
    this.gateway = options.gateway ?? (prefix < 31 ? ipv4ToString(network + 1) : options.address);
    this.mtu = mtu;
    this.ttl = options.ttl ?? DEFAULT_TTL;
    this.clock = options.clock ?? realClock;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.verifyChecksums = options.verifyChecksums ?? true;
    this.random = options.seed !== undefined ? mulberry32(options.seed) : Math.random;
    this.ephemeralPorts = options.ephemeralPorts ?? DEFAULT_EPHEMERAL_PORTS;
    this.logger = options.logger ?? createLogger({ fields: { stack: options.address } });
    this.resolver = options.lookup ?? literalOnly;
    this.icmpLimiter = new RateLimiter(this.limits.icmpErrorsPerSecond, this.limits.icmpErrorBurst);
    this.reassembler = new Reassembler(
      {
        memory: this.limits.reassemblyMemory,
        timeoutMs: this.limits.reassemblyTimeoutMs,
        maxDatagrams: this.limits.reassemblyMaxDatagrams,
        maxFragments: this.limits.reassemblyMaxFragments,
      },
      (reason, n = 1) => this.drop(reason, n),
      () => this.reschedule(this.reassemblyTimed),
    );
    const reassembler = this.reassembler;
    this.reassemblyTimed = {
      get deadline() {
        return reassembler.deadline;
      },
      poll: (now) => reassembler.poll(now),
    };
    this.pinger = new Pinger(this, this.limits.maxPendingPings, (this.random() * 0x10000) >>> 0);
    this.tcpEndpoints = new TcpEndpoints(this, options.tcp ?? {});
    this.tcp = this.tcpEndpoints;
    this.dgram = createDgramApi(this);
    this.net = createNetApi(this);
  }

  // ---- wiring -------------------------------------------------------------------------

  /** Send and receive through `link` (a later call replaces the previous link). */
  attach(link: Link): void {
    if (link.mtu !== undefined && link.mtu < this.mtu) {
      this.logger.warn('link MTU below stack MTU: larger packets will be dropped', { linkMtu: link.mtu, mtu: this.mtu });
    }
    this.link = link;
    if (link.onBatchEnd !== undefined) {
      link.onReceive((packet) => {
        this.tcpEndpoints.beginInputBatch();
        this.input(packet);
      });
      link.onBatchEnd(() => this.endInputBatch());
    } else {
      link.onReceive((packet) => this.input(packet));
    }
  }

  now(): number {
    return this.clock.now();
  }

  /** Install name resolution (e.g. createDnsResolver(stack, stack.gateway).lookup). */
  setResolver(lookup: LookupFunction): void {
    this.resolver = lookup;
  }

  /** Resolve a host name to a dotted quad; IPv4 literals resolve to themselves. */
  lookup(hostname: string): Promise<string> {
    if (hostname === 'localhost') return Promise.resolve(this.address);
    if (parseIpv4Address(hostname) !== null) return Promise.resolve(hostname);
    return this.resolver(hostname);
  }

  ping(address: string, options?: PingOptions): Promise<number> {
    return this.pinger.ping(address, options);
  }

  /** Run `fn` at clock time `at` off the stack's single timer; returns a cancel function. */
  schedule(at: number, fn: () => void): () => void {
    const job = new Job(at, fn);
    this.timers.update(job);
    this.armTimer();
    return () => {
      job.deadline = Infinity;
      this.timers.remove(job);
    };
  }

  /** An item's deadline changed: requeue it and move the timer earlier if needed. */
  reschedule(item: Timed): void {
    if (this.closed) return;
    this.timers.update(item);
    this.armTimer();
  }

  unschedule(item: Timed): void {
    this.timers.remove(item);
  }

  socketStats(): SocketStats {
    const c = this.counters;
    const t = this.tcpEndpoints.stats();
    return {
      established: t.established,
      listening: t.listening,
      udp: this.udpSockets.size,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      packetsIn: c.packetsIn,
      packetsOut: c.packetsOut,
      lastActivity: this.lastActivity,
      idleMs: this.clock.now() - this.lastActivity,
    };
  }

  /** Sizes of every bounded table, for diagnostics and tests. */
  tableSizes(): StackTableSizes {
    return {
      tcpConnections: this.tcpEndpoints.connectionCount,
      tcpListeners: this.tcpEndpoints.listenerCount,
      udpSockets: this.udpSockets.size,
      reassemblyBytes: this.reassembler.bytesHeld,
      reassemblyDatagrams: this.reassembler.datagrams,
      timers: this.timers.size,
      loopbackQueue: this.loopbackQueue.length,
      pendingPings: this.pinger.outstanding,
      counterKeys: Object.keys(this.counters).length,
    };
  }

  /** Abort every connection, close listeners and sockets, clear the timer, detach the link. */
  close(): void {
    if (this.closed) return;
    this.tcpEndpoints.close(this.clock.now());
    this.closed = true;
    this.pinger.close();
    const sockets = [...this.udpSockets.values()];
    this.udpSockets.clear();
    for (const r of sockets) r.hostClosed?.();
    this.reassembler.clear();
    this.timers.clear();
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    this.link?.onReceive(() => {});
    this.link?.onBatchEnd?.(() => {});
    this.link = null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---- timer --------------------------------------------------------------------------

  private armTimer(): void {
    if (this.closed) return;
    const next = this.timers.next();
    if (next >= this.timerAt) return;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timerAt = next;
    this.timer = this.clock.setTimer(next, this.onTimer);
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.closed) return;
    try {
      const stuck = this.timers.runDue(this.clock.now());
      if (stuck > 0) this.counters.timerStuck += stuck;
    } catch (err) {
      this.internalError('timer', err);
    }
    this.armTimer();
  };

  // ---- counters -----------------------------------------------------------------------

  /** Count a dropped packet under `reason`. */
  drop(reason: string, n = 1): void {
    const c = this.counters;
    c.dropped += n;
    c[reason] = (c[reason] ?? 0) + n;
  }

  private internalError(where: string, err: unknown): void {
    this.counters.internalErrors++;
    this.logger.error('internal error', { where, error: err instanceof Error ? err.stack ?? err.message : String(err) });
  }

  // ---- egress -------------------------------------------------------------------------

  /**
   * Hand one whole IPv4 packet to the link. One larger than the MTU is fragmented unless
   * it has DF set (then it is dropped as 'egress-too-big').
   */
  sendPacket(packet: Uint8Array): void {
    if (this.closed || (this.link === null && readUint32(packet, 16) !== this.localAddress)) {
      this.drop('egress-no-link');
      return;
    }
    if (packet.length <= this.mtu) {
      this.transmit(packet);
      return;
    }
    const ip = parseIpv4(packet, false);
    if (isWireError(ip) || ip.headerLength !== IPV4_HEADER_LENGTH || (ip.flags & IPV4_FLAG_DF) !== 0) {
      this.drop('egress-too-big');
      return;
    }
    const { src, dst, protocol, ttl, tos, id, flags, fragmentOffset } = ip;
    this.sendFragments({ src, dst, protocol, ttl, tos, id, flags, fragmentOffset }, [ip.payload]);
  }

  /**
   * Send a datagram of `protocol` to `dst` whose IPv4 payload is the concatenation of
   * `parts` (e.g. a transport header and its data): one packet when it fits the MTU, else
   * fragments (RFC 791 section 3.2) as `options.fragment` allows. Each byte is copied once.
   */
  sendDatagram(dst: number, protocol: number, parts: readonly Uint8Array[], options: SendDatagramOptions = {}): 'EMSGSIZE' | 'ENETDOWN' | null {
    if (this.closed || (this.link === null && dst !== this.localAddress)) {
      this.drop('egress-no-link');
      return 'ENETDOWN';
    }
    let length = IPV4_HEADER_LENGTH;
    for (const p of parts) length += p.length;
    const policy = options.fragment ?? 'want';
    const df = policy === 'do' || (policy === 'want' && length <= this.mtu);
    if (length > 0xffff || (df && length > this.mtu)) {
      this.drop('egress-too-big');
      return 'EMSGSIZE';
    }
    const fields = { src: this.localAddress, dst, protocol, ttl: options.ttl ?? this.ttl, id: this.nextIpId(), flags: df ? IPV4_FLAG_DF : 0 };
    return this.sendFragments(fields, parts);
  }

  private sendFragments(fields: Omit<Ipv4HeaderFields, 'totalLength'>, parts: readonly Uint8Array[]): 'EMSGSIZE' | null {
    const packets = buildIpv4Packets(fields, parts, this.mtu);
    if (isWireError(packets)) {
      this.drop('egress-too-big');
      return 'EMSGSIZE';
    }
    if (packets.length > 1) {
      this.counters.datagramsFragmented++;
      this.counters.fragmentsCreated += packets.length;
    }
    for (const p of packets) this.transmit(p);
    return null;
  }

  /**
   * Whether a packet to `dst` may be sent as header and payload views (sendGather): the
   * link takes gather lists and the packet leaves the stack (loopback packets are input
   * again here, and input keeps views of what it is given).
   */
  canGather(dst: number): boolean {
    const link = this.link;
    return link !== null && link.sendGather !== undefined && dst !== this.localAddress && !this.closed;
  }

  /**
   * Hand one IPv4 packet of `length` bytes, `header` followed by the `payload` views, to
   * the link without joining them (Link.sendGather). It is never fragmented: one larger
   * than the MTU is dropped as 'egress-too-big'.
   */
  sendGather(header: Uint8Array, payload: readonly Uint8Array[], length: number): void {
    const link = this.link;
    if (this.closed || link === null || link.sendGather === undefined) {
      this.drop('egress-no-link');
      return;
    }
    if (length > this.mtu) {
      this.drop('egress-too-big');
      return;
    }
    const c = this.counters;
    c.packetsOut++;
    c.bytesOut += length;
    this.lastActivity = this.clock.now();
    link.sendGather(header, payload, length);
  }

  private transmit(packet: Uint8Array): void {
    const c = this.counters;
    c.packetsOut++;
    c.bytesOut += packet.length;
    this.lastActivity = this.clock.now();
    if (readUint32(packet, 16) === this.localAddress) this.loopback(packet);
    else this.link?.send(packet);
  }

  /** Packets to ourselves go round through input(), later, off the stack's timer. */
  private loopback(packet: Uint8Array): void {
    if (this.loopbackQueue.length >= LOOPBACK_QUEUE_LIMIT) {
      this.drop('loopback-queue-full');
      return;
    }
    this.loopbackQueue.push(packet);
    if (this.loopbackQueue.length === 1) {
      this.schedule(this.clock.now(), () => {
        const batch = this.loopbackQueue.splice(0, this.loopbackQueue.length);
        this.tcpEndpoints.beginInputBatch();
        for (const p of batch) this.receive(p, true);
        this.endInputBatch();
      });
    }
  }

  nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  private sendIcmpError(original: Uint8Array, code: number): void {
    if (!this.icmpLimiter.take(this.clock.now())) {
      this.counters.icmpErrorsRateLimited++;
      return;
    }
    this.counters.icmpErrorsSent++;
    this.sendPacket(buildIcmpUnreachable(original, code, this.localAddress, this.ttl));
  }

  // ---- ingress ------------------------------------------------------------------------

  /** One packet from the link. Never throws. */
  input(packet: Uint8Array): void {
    this.receive(packet, false);
  }

  /**
   * Packets that arrived together (one frame, one read): TCP answers them with one ACK per
   * connection at the end of the batch rather than one per two segments. Never throws.
   */
  inputBatch(packets: readonly Uint8Array[]): void {
    this.tcpEndpoints.beginInputBatch();
    for (const p of packets) this.receive(p, false);
    this.endInputBatch();
  }

  /** The end of a batch of packets given to input(): send the ACKs held for it. Never throws. */
  endInputBatch(): void {
    try {
      this.tcpEndpoints.endInputBatch(this.clock.now());
    } catch (err) {
      this.internalError('batch-end', err);
    }
  }

  private receive(packet: Uint8Array, loopback: boolean): void {
    const c = this.counters;
    c.packetsIn++;
    c.bytesIn += packet.length;
    if (this.closed) {
      this.drop('stack-closed');
      return;
    }
    const now = this.clock.now();
    this.lastActivity = now;
    try {
      this.ingress(packet, now, loopback);
    } catch (err) {
      this.drop('internal-error');
      this.internalError('input', err);
    }
  }

  private isBroadcast(dst: number): boolean {
    return dst === 0xffffffff || (dst === this.broadcast && this.prefixLength < 31);
  }

  private ingress(packet: Uint8Array, now: number, loopback: boolean): void {
    let ip = parseIpv4(packet, this.verifyChecksums);
    if (isWireError(ip)) {
      this.drop(ip.reason);
      return;
    }
    const broadcast = this.isBroadcast(ip.dst);
    if (ip.dst !== this.localAddress && !broadcast) {
      this.drop('not-for-us');
      return;
    }
    if ((ip.src === this.localAddress && !loopback) || this.isBroadcast(ip.src) || ip.src === 0) {
      // RFC 1122 section 3.2.1.3: a source must be a host address.
      this.drop('bad-source');
      return;
    }
    if ((ip.flags & IPV4_FLAG_MF) !== 0 || ip.fragmentOffset !== 0) {
      const whole = this.reassembler.add(ip, now);
      if (whole === null) return;
      this.counters.fragmentsReassembled++;
      ip = whole;
      packet = new Uint8Array(whole.payload.buffer, whole.payload.byteOffset - whole.headerLength, whole.totalLength);
    }
    switch (ip.protocol) {
      case PROTO_TCP:
        if (broadcast) {
          this.drop('tcp-broadcast');
          return;
        }
        this.tcpEndpoints.input(ip, now);
        return;
      case PROTO_UDP:
        this.udpInput(ip, packet, broadcast);
        return;
      case PROTO_ICMP:
        this.icmpInput(ip, broadcast, now);
        return;
      default:
        this.drop('unknown-protocol');
        if (!broadcast) this.sendIcmpError(packet, ICMP_UNREACH_PROTOCOL);
    }
  }

  private udpInput(ip: Ipv4Packet, packet: Uint8Array, broadcast: boolean): void {
    const udp = parseUdp(ip.payload, ip.src, ip.dst, this.verifyChecksums);
    if (isWireError(udp)) {
      this.drop(udp.reason);
      return;
    }
    const socket = this.udpSockets.get(udp.dstPort);
    if (socket === undefined) {
      this.drop('udp-no-socket');
      // RFC 1122 section 3.2.2: no ICMP error about a broadcast datagram.
      if (!broadcast) this.sendIcmpError(packet, ICMP_UNREACH_PORT);
      return;
    }
    this.counters.udpDelivered++;
    socket.deliver(udp.payload, ip.src, udp.srcPort);
  }

  private icmpInput(ip: Ipv4Packet, broadcast: boolean, now: number): void {
    const icmp = parseIcmp(ip.payload, this.verifyChecksums);
    if (isWireError(icmp)) {
      this.drop(icmp.reason);
      return;
    }
    switch (icmp.type) {
      case ICMP_ECHO_REQUEST:
        if (broadcast) {
          this.drop('icmp-echo-broadcast');
          return;
        }
        this.counters.icmpEchoReplies++;
        this.sendIcmp(ip.src, { type: ICMP_ECHO_REPLY, code: 0, identifier: icmp.identifier, sequence: icmp.sequence, data: icmp.data });
        return;
      case ICMP_ECHO_REPLY:
        if (!this.pinger.onReply(ip.src, icmp.identifier, icmp.sequence, now)) this.drop('icmp-unmatched-reply');
        return;
      case ICMP_DEST_UNREACHABLE: {
        this.counters.icmpErrorsReceived++;
        const q = parseIcmpQuote(icmp.data);
        if (isWireError(q)) {
          this.drop(q.reason);
          return;
        }
        if (q.src !== this.localAddress) {
          this.drop('icmp-quote-not-ours');
          return;
        }
        if (icmp.code === ICMP_UNREACH_FRAG_NEEDED) {
          // No path MTU discovery: the overlay MTU is configured, and only TCP sets DF.
          this.drop('icmp-frag-needed');
          return;
        }
        const refused = icmp.code === ICMP_UNREACH_PORT || icmp.code === ICMP_UNREACH_PROTOCOL;
        if (q.protocol === PROTO_TCP) {
          if (!this.tcpEndpoints.icmpError(q.srcPort, q.dst, q.dstPort, q.word1, refused ? 'ECONNREFUSED' : 'EHOSTUNREACH', now)) {
            this.drop('icmp-no-connection');
          }
        } else if (q.protocol === PROTO_UDP) {
          const s = this.udpSockets.get(q.srcPort);
          if (s === undefined) this.drop('icmp-no-socket');
          else s.icmpError(refused ? 'ECONNREFUSED' : 'EHOSTUNREACH', q.dst, q.dstPort);
        } else if (q.protocol === PROTO_ICMP) {
          if (!this.pinger.onUnreachable(q.dst, q.word1 >>> 16, q.word1 & 0xffff)) this.drop('icmp-no-ping');
        } else {
          this.drop('icmp-quote-unknown-protocol');
        }
        return;
      }
      default:
        this.drop('icmp-unhandled-type');
    }
  }

  // ---- UDP host -----------------------------------------------------------------------

  udpBind(port: number, receiver: UdpReceiver): number | 'EADDRINUSE' | 'EMFILE' {
    if (this.closed || this.udpSockets.size >= this.limits.maxUdpSockets) return 'EMFILE';
    if (port === 0) {
      const p = this.pickEphemeral((q) => this.udpSockets.has(q));
      if (p === 0) return 'EADDRINUSE';
      port = p;
    } else if (this.udpSockets.has(port)) return 'EADDRINUSE';
    this.udpSockets.set(port, receiver);
    return port;
  }

  udpUnbind(port: number, receiver: UdpReceiver): void {
    if (this.udpSockets.get(port) === receiver) this.udpSockets.delete(port);
  }

  udpSend(srcPort: number, dst: number, dstPort: number, payload: Uint8Array): 'EMSGSIZE' | 'ENETDOWN' | null {
    if (this.closed || (this.link === null && dst !== this.localAddress)) return 'ENETDOWN';
    if (payload.length > UDP_MAX_PAYLOAD) return 'EMSGSIZE';
    const header = new Uint8Array(UDP_HEADER_LENGTH);
    emitUdpHeader({ srcPort, dstPort, payload }, header, 0, this.localAddress, dst);
    return this.sendDatagram(dst, PROTO_UDP, [header, payload]);
  }

  /** An ICMP message (header checksummed over `msg.data` in place), fragmented as needed. */
  sendIcmp(dst: number, msg: IcmpMessage, ttl = this.ttl): 'EMSGSIZE' | 'ENETDOWN' | null {
    const header = new Uint8Array(ICMP_HEADER_LENGTH);
    emitIcmpHeader(msg, header, 0);
    // Linux sends ICMP replies and ping without DF (IP_PMTUDISC_DONT).
    return this.sendDatagram(dst, PROTO_ICMP, [header, msg.data], { ttl, fragment: 'dont' });
  }

  /** A free port in the ephemeral range (random start, then linear), or 0. */
  pickEphemeral(inUse: (port: number) => boolean): number {
    const [first, last] = this.ephemeralPorts;
    const span = last - first + 1;
    const start = Math.floor(this.random() * span);
    for (let i = 0; i < span; i++) {
      const p = first + ((start + i) % span);
      if (!inUse(p)) return p;
    }
    return 0;
  }
}

function literalOnly(hostname: string): Promise<string> {
  return Promise.reject(lookupError('ENOTFOUND', hostname));
}
