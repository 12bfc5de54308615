// The data path: a host's binary frame is walked packet by packet; consecutive packets for
// the same connected destination go out as one run (views of the frame, no copy). A packet
// whose destination is not on the fast path takes the slow path: the gateway, admission by
// the lifecycle, or ICMP unreachable for an address with no host.

import { ICMP_UNREACH_HOST } from '../netstack/wire/icmp.js';
import { PROTO_ICMP } from '../netstack/wire/ipv4.js';
import { buildTcpResetFor } from '../netstack/wire/tcp.js';
import type { Counters } from './counters.js';
import type { Gateway } from './gateway.js';
import type { HostEntry } from './host.js';
import type { HostTable } from './host-table.js';
import type { Admission, RefusalAnswer } from './lifecycle.js';
import type { PacketTap } from './capture.js';
import type { FlowTable } from './flows.js';
import { MALFORMED_REASONS, readDst } from './packet.js';
import { PacketWalker } from '../transport/packet-walker.js';

/** IPv4 header with options (60) and the TCP flags (14): what the flow table reads */
const FLOW_HEADER_BYTES = 74;

export interface RouterEnv {
  readonly table: HostTable;
  readonly counters: Counters;
  /** the gateway's address */
  readonly gateway: number;
  /** the lifecycle's decision for a packet to a host off the fast path */
  admit(entry: HostEntry, packet: Uint8Array, now: number): Admission;
  /** an allocation signal for the host (its packet is held) */
  signal(entry: HostEntry, reason: string, now: number): void;
  /** the relay's clock (ms) */
  now(): number;
}

export class Router {
  private gw: Gateway | null = null;
  /** a running packet capture (null when none runs: the data path's only cost is this check) */
  tap: PacketTap | null = null;
  /** the flow table (`imach flows`), fed the headers of every packet a host sends */
  flows: FlowTable | null = null;
  /** reused frame after frame; null while a routeFrame is walking with it */
  private walker: PacketWalker | null = new PacketWalker([], 0);

  constructor(private readonly env: RouterEnv) {}

  /** The gateway (it sends through the router, so it is attached after both exist). */
  attachGateway(gw: Gateway): void {
    this.gw = gw;
  }

  /**
   * A binary frame from a host, given as views of the reads it came in (`length` bytes in
   * all): whole IPv4 packets back to back. Consecutive packets for the same connected
   * destination go out as one frame (the whole frame, untouched, when all go to one place).
   */
  routeFrame(src: HostEntry, views: readonly Uint8Array[], length: number, now: number): void {
    src.bucket.refill(now);
    src.lastTrafficAt = now;
    const w = this.walker?.reset(views, length) ?? new PacketWalker(views, length);
    this.walker = null;
    try {
      this.walk(src, w, now);
    } finally {
      this.walker = w;
    }
  }

  private walk(src: HostEntry, w: PacketWalker, now: number): void {
    const table = this.env.table;
    let runStart = 0;
    let runDest: HostEntry | null = null;
    let runPackets = 0;
    while (!w.done) {
      const off = w.pos;
      const len = w.check();
      if (len < 0) {
        this.env.counters.count(MALFORMED_REASONS[-len], src);
        break;
      }
      src.packetsOut++;
      src.bytesOut += len;
      if (this.tap !== null) this.tap.offer(w.bytes(off, off + len));
      if (this.flows !== null) this.flows.observe(w.bytes(off, off + (len < FLOW_HEADER_BYTES ? len : FLOW_HEADER_BYTES)), len, now);
      let forwarded = false;
      if (w.src !== src.address) {
        this.env.counters.count('spoofed-source', src);
      } else if (!src.bucket.take(len)) {
        this.env.counters.count('rate-limited', src);
      } else {
        const dst = w.dst;
        const dest = table.route(dst);
        if (dest !== undefined) {
          if (runDest !== dest) {
            if (runDest !== null) this.sendRun(runDest, w.slice(runStart, off), off - runStart, now, runPackets);
            runDest = dest;
            runStart = off;
            runPackets = 0;
          }
          runPackets++;
          forwarded = true;
        } else {
          if (runDest !== null) this.sendRun(runDest, w.slice(runStart, off), off - runStart, now, runPackets);
          runDest = null;
          this.slowPath(src, w.bytes(off, off + len), dst, now);
        }
      }
      if (!forwarded && runDest !== null) {
        this.sendRun(runDest, w.slice(runStart, off), off - runStart, now, runPackets);
        runDest = null;
      }
      w.skip(len);
    }
    if (runDest !== null) this.sendRun(runDest, w.slice(runStart, w.pos), w.pos - runStart, now, runPackets);
  }

  private sendRun(dest: HostEntry, views: readonly Uint8Array[], bytes: number, now: number, packets = 1): void {
    if (bytes === 0) return;
    const s = dest.session;
    if (s === null || !s.sendFrame(views, bytes)) {
      this.env.counters.count('queue-full', dest, packets);
      return;
    }
    dest.bytesIn += bytes;
    dest.packetsIn += packets;
    dest.lastTrafficAt = now;
  }

  /** One packet in one buffer (gateway answers, held packets, a packet the slow path keeps). */
  sendOne(dest: HostEntry, packet: Uint8Array, now: number): void {
    this.sendRun(dest, [packet], packet.length, now);
  }

  /** A packet whose destination is not on the fast path: the gateway, admission, or nowhere. */
  private slowPath(src: HostEntry | null, packet: Uint8Array, dst: number, now: number): void {
    if (dst === this.env.gateway) {
      this.gw?.handle(packet);
      return;
    }
    const entry = this.env.table.byAddress(dst);
    if (entry === undefined) {
      this.env.counters.count('no-route', src);
      this.unreachable(packet);
      return;
    }
    this.admit(entry, packet, now);
  }

  /** Carry out the lifecycle's decision for a packet to `entry`. */
  private admit(entry: HostEntry, packet: Uint8Array, now: number): void {
    const a = this.env.admit(entry, packet, now);
    switch (a.action) {
      case 'deliver':
        this.sendOne(entry, packet, now);
        return;
      case 'hold':
        if (!this.env.table.hold(entry, packet)) this.env.counters.count('held-overflow', entry);
        return;
      case 'hold-and-start':
        if (!this.env.table.hold(entry, packet)) this.env.counters.count('held-overflow', entry);
        this.env.signal(entry, a.reason, now);
        return;
      case 'refuse':
        this.env.counters.count(a.reason, entry);
        this.answer(entry, packet, a.answer);
        return;
    }
  }

  /** Deliver packets held for a host that has joined. */
  deliverHeld(entry: HostEntry, packets: readonly Uint8Array[], now: number): void {
    for (const p of packets) this.sendOne(entry, p, now);
  }

  /** Refuse packets held for a host: count them under `reason`, answer each. */
  refuseHeld(entry: HostEntry, packets: readonly Uint8Array[], reason: string, answerFor: (p: Uint8Array) => RefusalAnswer): void {
    if (packets.length > 0) this.env.counters.count(reason, entry, packets.length);
    for (const p of packets) this.answer(entry, p, answerFor(p));
  }

  private answer(entry: HostEntry, packet: Uint8Array, answer: RefusalAnswer): void {
    if (answer === 'icmp-unreachable') {
      this.unreachable(packet);
    } else if (answer === 'rst') {
      // the host's instance has ended: it answers as a rebooted machine would
      const rst = buildTcpResetFor(packet);
      if (rst !== null) {
        this.env.counters.count('stale-rst', entry);
        this.toHost(rst, this.env.now());
      }
    }
  }

  /** ICMP host unreachable from the gateway to the packet's sender. */
  private unreachable(packet: Uint8Array): void {
    const reply = this.gw?.unreachable(packet, ICMP_UNREACH_HOST) ?? null;
    if (reply !== null) this.fromGateway(reply);
  }

  /**
   * A packet the relay originates (the gateway's answers, a RST for a dead instance): to a
   * connected host now; an echo request to a host without a session goes through admission
   * (it may start the host); other answers to a host without a session are dropped.
   */
  fromGateway(packet: Uint8Array): void {
    this.toHost(packet, this.env.now());
  }

  private toHost(packet: Uint8Array, now: number): void {
    const dst = readDst(packet, 0);
    if (dst === this.env.gateway) return;
    if (this.tap !== null) this.tap.offer(packet);
    const entry = this.env.table.byAddress(dst);
    if (entry === undefined) return;
    if (entry.session !== null) this.sendOne(entry, packet, now);
    else if (packet[9] === PROTO_ICMP && packet[20] === 8) this.admit(entry, packet, now);
  }
}
