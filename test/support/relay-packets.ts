// Hand-built IPv4 packets for the relay tests (on top of the netstack wire builders).

import { buildIpv4Packet, PROTO_TCP, parseIpv4Address } from '../../netstack/wire/ipv4.js';
import { buildTcpPacket } from '../../netstack/wire/tcp.js';

export function addr(s: string): number {
  const n = parseIpv4Address(s);
  if (n === null) throw new Error(`bad address ${s}`);
  return n;
}

/** A TCP segment with only a header (the relay never reads past the IPv4 header). */
export function tcpPacket(src: string, dst: string, srcPort: number, dstPort: number, flags: number, payload = new Uint8Array(0)): Uint8Array {
  const seg = new Uint8Array(20 + payload.length);
  seg[0] = srcPort >>> 8;
  seg[1] = srcPort;
  seg[2] = dstPort >>> 8;
  seg[3] = dstPort;
  seg[12] = 5 << 4;
  seg[13] = flags;
  seg[14] = 0xff;
  seg[15] = 0xff;
  seg.set(payload, 20);
  return buildIpv4Packet({ src: addr(src), dst: addr(dst), protocol: PROTO_TCP }, seg);
}

/**
 * A TCP segment with sequence numbers and right checksums (what a real peer sends; the
 * relay answers only intact segments with RST).
 */
export function tcpSegment(src: string, dst: string, srcPort: number, dstPort: number, flags: number, payload = new Uint8Array(0), seq = 0, ack = 0): Uint8Array {
  return buildTcpPacket(
    { src: addr(src), dst: addr(dst) },
    { srcPort, dstPort, seq, ack, flags, window: 0xffff, urgent: 0, options: {}, payload },
  );
}

/** A raw IPv4 packet of the given protocol and payload size (filled with `fill`). */
export function rawPacket(src: string, dst: string, size: number, fill = 0xab, protocol = 253): Uint8Array {
  return buildIpv4Packet({ src: addr(src), dst: addr(dst), protocol }, new Uint8Array(Math.max(0, size - 20)).fill(fill));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Split a frame into its packets by the IPv4 total length field. */
export function splitFrame(frame: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o + 20 <= frame.length) {
    const len = (frame[o + 2] << 8) | frame[o + 3];
    if (len < 20 || o + len > frame.length) break;
    out.push(frame.subarray(o, o + len));
    o += len;
  }
  return out;
}
