// IPv4 fragment reassembly (RFC 791 section 3.2, RFC 815), bounded in memory, datagrams
// and time. Overlapping fragments drop the whole datagram, as Linux does since
// FragmentSmack; exact duplicates are ignored.

import { IPV4_FLAG_MF, IPV4_HEADER_LENGTH, emitIpv4Header, parseIpv4, type Ipv4Packet } from './wire/ipv4.js';
import { isWireError } from './wire/error.js';

const MAX_DATAGRAM = 65535;

interface Piece {
  offset: number;
  data: Uint8Array;
}

interface Partial {
  expires: number;
  pieces: Piece[];
  /** payload length once the last fragment (MF clear) arrived, else -1 */
  total: number;
  bytes: number;
  /** header fields of the offset-0 fragment (not the packet: its buffer is not accounted) */
  first: Pick<Ipv4Packet, 'src' | 'dst' | 'protocol' | 'ttl' | 'tos' | 'id'> | null;
}

export interface ReassemblyLimits {
  memory: number;
  timeoutMs: number;
  maxDatagrams: number;
  maxFragments: number;
}

export type DropCounter = (reason: string, n?: number) => void;

export class Reassembler {
  private readonly partials = new Map<string, Partial>();
  private memory = 0;

  constructor(
    private readonly limits: ReassemblyLimits,
    private readonly drop: DropCounter,
    private readonly onDeadlineChanged: () => void,
  ) {}

  /** Bytes held now. */
  get bytesHeld(): number {
    return this.memory;
  }

  get datagrams(): number {
    return this.partials.size;
  }

  /** Oldest expiry (Map order is insertion order, and all share one timeout). */
  get deadline(): number {
    for (const p of this.partials.values()) return p.expires;
    return Infinity;
  }

  poll(now: number): void {
    for (const [key, p] of this.partials) {
      if (p.expires > now) break;
      this.discard(key, p, 'frag-timeout');
    }
  }

  clear(): void {
    this.partials.clear();
    this.memory = 0;
  }

  /**
   * Add one fragment. Returns the whole datagram (a fresh packet, parsed) when complete,
   * or null while it is still incomplete or was dropped.
   */
  add(pkt: Ipv4Packet, now: number): Ipv4Packet | null {
    const more = (pkt.flags & IPV4_FLAG_MF) !== 0;
    const len = pkt.payload.length;
    const offset = pkt.fragmentOffset;
    if (offset + len > MAX_DATAGRAM - IPV4_HEADER_LENGTH) return this.reject('frag-too-big');
    // RFC 791 section 3.2: every fragment but the last carries a multiple of 8 bytes.
    if (more && (len === 0 || len % 8 !== 0)) return this.reject('frag-bad-length');
    if (len > this.limits.memory) return this.reject('frag-memory');
    const key = `${pkt.src}:${pkt.dst}:${pkt.protocol}:${pkt.id}`;
    let p = this.partials.get(key);
    if (p === undefined) {
      while (this.partials.size >= this.limits.maxDatagrams) this.evictOldest();
      p = { expires: now + this.limits.timeoutMs, pieces: [], total: -1, bytes: 0, first: null };
      const wasEmpty = this.partials.size === 0;
      this.partials.set(key, p);
      if (wasEmpty) this.onDeadlineChanged();
    }
    const end = offset + len;
    if (!more) {
      if ((p.total >= 0 && p.total !== end) || p.pieces.some((x) => x.offset + x.data.length > end)) {
        this.discard(key, p, 'frag-inconsistent');
        return null;
      }
      p.total = end;
    } else if (p.total >= 0 && end > p.total) {
      this.discard(key, p, 'frag-inconsistent');
      return null;
    }
    let insertAt = p.pieces.length;
    for (let i = 0; i < p.pieces.length; i++) {
      const x = p.pieces[i];
      const xEnd = x.offset + x.data.length;
      if (x.offset === offset && xEnd === end) {
        this.drop('frag-duplicate');
        return null;
      }
      if (offset < xEnd && x.offset < end) {
        this.discard(key, p, 'frag-overlap');
        return null;
      }
      if (x.offset > offset) {
        insertAt = i;
        break;
      }
    }
    if (p.pieces.length >= this.limits.maxFragments) {
      this.discard(key, p, 'frag-too-many');
      return null;
    }
    while (this.memory + len > this.limits.memory && this.partials.size > 1) {
      const oldestKey = this.partials.keys().next().value as string;
      if (oldestKey === key) break;
      this.evictOldest();
    }
    if (this.memory + len > this.limits.memory) {
      this.discard(key, p, 'frag-memory');
      return null;
    }
    p.pieces.splice(insertAt, 0, { offset, data: pkt.payload.slice() });
    p.bytes += len;
    this.memory += len;
    if (offset === 0) p.first = { src: pkt.src, dst: pkt.dst, protocol: pkt.protocol, ttl: pkt.ttl, tos: pkt.tos, id: pkt.id };
    if (p.total < 0 || p.bytes !== p.total) return null;
    // Non-overlapping pieces whose sizes add up to the total cover [0, total) exactly.
    this.partials.delete(key);
    this.memory -= p.bytes;
    const first = p.first!;
    const out = new Uint8Array(IPV4_HEADER_LENGTH + p.total);
    emitIpv4Header(
      { src: first.src, dst: first.dst, protocol: first.protocol, totalLength: out.length, ttl: first.ttl, tos: first.tos, id: first.id },
      out,
      0,
    );
    for (const x of p.pieces) out.set(x.data, IPV4_HEADER_LENGTH + x.offset);
    const whole = parseIpv4(out, false);
    return isWireError(whole) ? null : whole;
  }

  private reject(reason: string): null {
    this.drop(reason);
    return null;
  }

  private evictOldest(): void {
    for (const [key, p] of this.partials) {
      this.discard(key, p, 'frag-evicted');
      return;
    }
  }

  private discard(key: string, p: Partial, reason: string): void {
    this.partials.delete(key);
    this.memory -= p.bytes;
    this.drop(reason, Math.max(1, p.pieces.length));
  }
}
