// Packet capture as the relay routes (`imach capture`, GET /api/capture): each running
// capture gets the packets to or from its hosts (all hosts when none is named) as a pcap
// stream (LINKTYPE_RAW: IPv4 without a link header). The router calls `offer` only while a
// capture runs (one null check per packet otherwise); a capture whose reader is slow drops
// packets, counted, instead of buffering or slowing routing.

import type { ServerResponse } from 'node:http';
import { readDst, readSrc } from './packet.js';

/** pcap file format (draft-ietf-opsawg-pcap section 4): magic for microsecond timestamps */
export const PCAP_MAGIC = 0xa1b2c3d4;
/** LINKTYPE_RAW (tcpdump.org link types): the packet begins with the IP header */
export const LINKTYPE_RAW = 101;
export const PCAP_SNAPLEN = 65535;

export interface CaptureLimits {
  /** captures at once */
  maxCaptures: number;
  /** bytes a capture's reader may leave unread before packets are dropped */
  maxBufferedBytes: number;
}

export const DEFAULT_CAPTURE_LIMITS: CaptureLimits = { maxCaptures: 8, maxBufferedBytes: 4 * 1024 * 1024 };

/** What the router calls for every packet it sees while a capture runs. */
export interface PacketTap {
  offer(packet: Uint8Array): void;
}

/** The pcap global header (24 bytes, little-endian). */
export function pcapHeader(): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(PCAP_MAGIC, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeUInt32LE(PCAP_SNAPLEN, 16);
  b.writeUInt32LE(LINKTYPE_RAW, 20);
  return b;
}

/** One pcap record: a 16-byte header and a copy of the packet. */
export function pcapRecord(packet: Uint8Array, timeUs: number): Buffer {
  const len = Math.min(packet.length, PCAP_SNAPLEN);
  const b = Buffer.allocUnsafe(16 + len);
  b.writeUInt32LE(Math.floor(timeUs / 1e6), 0);
  b.writeUInt32LE(Math.floor(timeUs % 1e6), 4);
  b.writeUInt32LE(len, 8);
  b.writeUInt32LE(packet.length, 12);
  b.set(packet.subarray(0, len), 16);
  return b;
}

class Capture {
  captured = 0;
  dropped = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushing = false;
  private timer: NodeJS.Timeout | null = null;
  ended = false;

  constructor(
    private readonly hub: CaptureHub,
    /** addresses to capture (empty: all) */
    private readonly addresses: ReadonlySet<number>,
    private readonly res: ServerResponse,
    private readonly count: number,
    durationMs: number,
    private readonly maxBuffered: number,
  ) {
    if (durationMs > 0) this.timer = setTimeout(() => this.end(), durationMs);
  }

  offer(packet: Uint8Array, timeUs: number): void {
    if (this.ended) return;
    if (this.addresses.size > 0 && !this.addresses.has(readSrc(packet, 0)) && !this.addresses.has(readDst(packet, 0))) return;
    if (this.res.writableLength + this.pendingBytes + 16 + packet.length > this.maxBuffered) {
      this.dropped++;
      this.hub.dropped++;
      return;
    }
    const record = pcapRecord(packet, timeUs);
    this.pending.push(record);
    this.pendingBytes += record.length;
    this.captured++;
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
    if (this.count > 0 && this.captured >= this.count) this.end();
  }

  private flush(): void {
    this.flushing = false;
    if (this.pending.length === 0 || this.res.destroyed) return;
    const chunk = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.res.write(chunk);
  }

  /** Stop capturing: what is pending is written, then the stream ends. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.hub.remove(this);
    setImmediate(() => {
      this.flush();
      this.res.end();
    });
  }
}

export class CaptureHub implements PacketTap {
  private readonly captures = new Set<Capture>();
  /** packets dropped by all captures so far (a slow reader) */
  dropped = 0;

  constructor(
    private readonly limits: CaptureLimits,
    /** the router's tap is this hub while a capture runs, null otherwise */
    private readonly setTap: (tap: PacketTap | null) => void,
  ) {}

  get running(): number {
    return this.captures.size;
  }

  get full(): boolean {
    return this.captures.size >= this.limits.maxCaptures;
  }

  /** Start streaming pcap to `res` (headers already written by the caller). */
  start(res: ServerResponse, addresses: ReadonlySet<number>, count: number, durationMs: number): void {
    res.write(pcapHeader());
    const c = new Capture(this, addresses, res, count, durationMs, this.limits.maxBufferedBytes);
    this.captures.add(c);
    if (this.captures.size === 1) this.setTap(this);
    res.once('close', () => c.end());
  }

  remove(c: Capture): void {
    this.captures.delete(c);
    if (this.captures.size === 0) this.setTap(null);
  }

  offer(packet: Uint8Array): void {
    const timeUs = Math.round((performance.timeOrigin + performance.now()) * 1000);
    for (const c of this.captures) c.offer(packet, timeUs);
  }

  closeAll(): void {
    for (const c of [...this.captures]) c.end();
  }
}
