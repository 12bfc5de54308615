// The TCP and UDP flows the relay sees (`imach flows`, GET /api/flows): the 5-tuple, bytes
// and packets each way, first and last packet, and a state read from the TCP flags. Updated
// on the data path for every packet a host sends: a numeric hash, a short bucket scan and a
// few additions, no allocation for a known flow. Bounded: at `maxFlows`, new flows are not
// tracked (counted) until the sweep expires idle ones.

import { PROTO_TCP, PROTO_UDP } from '../netstack/wire/ipv4.js';
import { formatAddress } from './address.js';

/** TCP flags (RFC 9293 section 3.1) */
const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;

export type FlowState = 'syn-sent' | 'syn-received' | 'established' | 'closing' | 'closed' | 'reset' | 'active';

export interface FlowLimits {
  maxFlows: number;
  /** an open flow with no packet this long is forgotten */
  idleMs: number;
  /** a closed or reset flow is kept this long for the listing */
  closedMs: number;
}

export const DEFAULT_FLOW_LIMITS: FlowLimits = { maxFlows: 8192, idleMs: 120_000, closedMs: 10_000 };

class Flow {
  packetsAB = 0;
  bytesAB = 0;
  packetsBA = 0;
  bytesBA = 0;
  state: FlowState;
  /** FIN seen from A (1), from B (2) */
  fins = 0;
  lastSeen: number;

  constructor(
    readonly proto: number,
    /** the endpoint that sent the first packet seen */
    readonly addrA: number,
    readonly portA: number,
    readonly addrB: number,
    readonly portB: number,
    readonly firstSeen: number,
  ) {
    this.lastSeen = firstSeen;
    this.state = proto === PROTO_TCP ? 'syn-sent' : 'active';
  }
}

export interface FlowRecord {
  protocol: 'tcp' | 'udp';
  /** initiator (the first packet's sender) and responder, `address:port` */
  src: string;
  dst: string;
  state: FlowState;
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
  /** ms since the first and the last packet */
  ageMs: number;
  idleMs: number;
}

function hash(proto: number, a: number, pa: number, b: number, pb: number): number {
  // symmetric in the two endpoints, so both directions find the same flow
  const x = (Math.imul(a ^ (pa << 16), 0x9e3779b1) ^ Math.imul(b ^ (pb << 16), 0x9e3779b1)) >>> 0;
  return (x ^ proto) >>> 0;
}

export class FlowTable {
  private readonly buckets = new Map<number, Flow[]>();
  private count = 0;
  /** packets of new flows not tracked because the table was full */
  untracked = 0;

  constructor(private readonly limits: FlowLimits = DEFAULT_FLOW_LIMITS) {}

  get size(): number {
    return this.count;
  }

  /** A packet (its first bytes at least: IPv4 and TCP/UDP headers) of `length` bytes. */
  observe(p: Uint8Array, length: number, now: number): void {
    const proto = p[9]!;
    if (proto !== PROTO_TCP && proto !== PROTO_UDP) return;
    const ihl = (p[0]! & 0x0f) * 4;
    // only the first fragment carries the ports
    if ((((p[6]! & 0x1f) << 8) | p[7]!) !== 0 || p.length < ihl + (proto === PROTO_TCP ? 14 : 4)) return;
    const src = ((p[12]! << 24) | (p[13]! << 16) | (p[14]! << 8) | p[15]!) >>> 0;
    const dst = ((p[16]! << 24) | (p[17]! << 16) | (p[18]! << 8) | p[19]!) >>> 0;
    const sp = (p[ihl]! << 8) | p[ihl + 1]!;
    const dp = (p[ihl + 2]! << 8) | p[ihl + 3]!;
    const h = hash(proto, src, sp, dst, dp);
    let bucket = this.buckets.get(h);
    let flow: Flow | undefined;
    let forward = true;
    if (bucket !== undefined) {
      for (const f of bucket) {
        if (f.proto !== proto) continue;
        if (f.addrA === src && f.portA === sp && f.addrB === dst && f.portB === dp) {
          flow = f;
          break;
        }
        if (f.addrA === dst && f.portA === dp && f.addrB === src && f.portB === sp) {
          flow = f;
          forward = false;
          break;
        }
      }
    }
    if (flow === undefined) {
      if (this.count >= this.limits.maxFlows) {
        this.untracked++;
        return;
      }
      flow = new Flow(proto, src, sp, dst, dp, now);
      if (bucket === undefined) this.buckets.set(h, (bucket = []));
      bucket.push(flow);
      this.count++;
    }
    flow.lastSeen = now;
    if (forward) {
      flow.packetsAB++;
      flow.bytesAB += length;
    } else {
      flow.packetsBA++;
      flow.bytesBA += length;
    }
    if (proto === PROTO_TCP) this.tcpState(flow, p[ihl + 13]!, forward);
  }

  private tcpState(f: Flow, flags: number, forward: boolean): void {
    if (flags & RST) {
      f.state = 'reset';
      return;
    }
    if (flags & FIN) {
      f.fins |= forward ? 1 : 2;
      f.state = f.fins === 3 ? 'closed' : 'closing';
      return;
    }
    if (f.state === 'syn-sent' && flags & SYN && flags & ACK && !forward) f.state = 'syn-received';
    else if (f.state === 'syn-received' && flags & ACK && !(flags & SYN) && forward) f.state = 'established';
    else if (f.state === 'syn-sent' && !(flags & SYN) && flags & ACK) f.state = 'established'; // joined mid-connection
    else if ((f.state === 'closed' || f.state === 'reset') && flags & SYN && !(flags & ACK) && forward) {
      // a new connection on the same 5-tuple
      f.state = 'syn-sent';
      f.fins = 0;
    }
  }

  /** Forget idle flows (the relay's ticker). */
  sweep(now: number): void {
    for (const [h, bucket] of this.buckets) {
      const kept = bucket.filter((f) => now - f.lastSeen < (f.state === 'closed' || f.state === 'reset' ? this.limits.closedMs : this.limits.idleMs));
      this.count -= bucket.length - kept.length;
      if (kept.length === 0) this.buckets.delete(h);
      else if (kept.length !== bucket.length) this.buckets.set(h, kept);
    }
  }

  /** The flows, most recently active first; only those touching `address` when given. */
  list(now: number, address?: number): FlowRecord[] {
    const out: { f: Flow; r: FlowRecord }[] = [];
    for (const bucket of this.buckets.values()) {
      for (const f of bucket) {
        if (address !== undefined && f.addrA !== address && f.addrB !== address) continue;
        out.push({
          f,
          r: {
            protocol: f.proto === PROTO_TCP ? 'tcp' : 'udp',
            src: `${formatAddress(f.addrA)}:${f.portA}`,
            dst: `${formatAddress(f.addrB)}:${f.portB}`,
            state: f.state,
            packetsOut: f.packetsAB,
            bytesOut: f.bytesAB,
            packetsIn: f.packetsBA,
            bytesIn: f.bytesBA,
            ageMs: now - f.firstSeen,
            idleMs: now - f.lastSeen,
          },
        });
      }
    }
    return out.sort((x, y) => y.f.lastSeen - x.f.lastSeen).map((x) => x.r);
  }
}
