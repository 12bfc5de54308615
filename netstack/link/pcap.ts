// A tap that records every packet a Link sends and receives to a pcap file or stream
// (LINKTYPE_RAW: each record is a bare IPv4 packet), readable by Wireshark and tcpdump.

import { createWriteStream } from 'node:fs';
import type { Clock } from '../time.js';
import type { Link, PacketHandler } from './link.js';

/** https://www.tcpdump.org/linktypes.html: LINKTYPE_RAW, packets begin with an IP header. */
const LINKTYPE_RAW = 101;
const SNAPLEN = 65535;

/** Anything with a write method: a fs.WriteStream, a socket, or a test's collector. */
export interface PcapSink {
  write(chunk: Uint8Array): unknown;
  end?(): unknown;
}

export interface PcapTapOptions {
  /** Timestamps come from this clock (ms) plus `epochMs`; default Date.now(). */
  clock?: Clock;
  epochMs?: number;
  /** Close the sink when the link closes. Default true for a path, false for a sink. */
  endOnClose?: boolean;
}

export function pcapFileHeader(): Uint8Array {
  const h = new Uint8Array(24);
  const v = new DataView(h.buffer);
  v.setUint32(0, 0xa1b2c3d4, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true);
  v.setUint32(12, 0, true);
  v.setUint32(16, SNAPLEN, true);
  v.setUint32(20, LINKTYPE_RAW, true);
  return h;
}

export function pcapRecord(packet: Uint8Array, timeMs: number): Uint8Array {
  const captured = Math.min(packet.length, SNAPLEN);
  const rec = new Uint8Array(16 + captured);
  const v = new DataView(rec.buffer);
  const sec = Math.floor(timeMs / 1000);
  v.setUint32(0, sec >>> 0, true);
  v.setUint32(4, Math.floor((timeMs - sec * 1000) * 1000), true);
  v.setUint32(8, captured, true);
  v.setUint32(12, packet.length, true);
  rec.set(packet.subarray(0, captured), 16);
  return rec;
}

/** A Link that forwards to `inner` and writes both directions to `sink` (or a file path). */
export class PcapTap implements Link {
  private readonly sink: PcapSink;
  private readonly endOnClose: boolean;
  private readonly time: () => number;
  /** Resolves once a file opened by the tap is flushed and closed after close(). */
  readonly finished: Promise<void>;

  constructor(
    private readonly inner: Link,
    sink: PcapSink | string,
    options: PcapTapOptions = {},
  ) {
    if (typeof sink === 'string') {
      const stream = createWriteStream(sink);
      this.sink = stream;
      this.finished = new Promise((resolve) => {
        stream.once('close', () => resolve());
        stream.on('error', () => resolve());
      });
    } else {
      this.sink = sink;
      this.finished = Promise.resolve();
    }
    this.endOnClose = options.endOnClose ?? typeof sink === 'string';
    const clock = options.clock;
    const epoch = options.epochMs ?? 0;
    this.time = clock !== undefined ? () => epoch + clock.now() : () => Date.now();
    this.sink.write(pcapFileHeader());
    if (inner.sendGather !== undefined) {
      this.sendGather = (header, payload, length) => {
        const packet = new Uint8Array(length);
        packet.set(header, 0);
        let off = header.length;
        for (const part of payload) {
          packet.set(part, off);
          off += part.length;
        }
        this.sink.write(pcapRecord(packet, this.time()));
        inner.sendGather!(header, payload, length);
      };
    }
  }

  /** Present when the inner link has it: the record gets a contiguous copy of the packet. */
  readonly sendGather?: (header: Uint8Array, payload: readonly Uint8Array[], length: number) => void;

  get mtu(): number | undefined {
    return this.inner.mtu;
  }

  send(packet: Uint8Array): void {
    this.sink.write(pcapRecord(packet, this.time()));
    this.inner.send(packet);
  }

  onReceive(handler: PacketHandler): void {
    this.inner.onReceive((packet) => {
      this.sink.write(pcapRecord(packet, this.time()));
      handler(packet);
    });
  }

  close(): void {
    this.inner.close();
    if (this.endOnClose) this.sink.end?.();
  }
}

export function createPcapTap(link: Link, sink: PcapSink | string, options?: PcapTapOptions): PcapTap {
  return new PcapTap(link, sink, options);
}
