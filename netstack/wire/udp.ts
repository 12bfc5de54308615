// UDP (RFC 768).

import { gatherSum, internetChecksum, pseudoHeaderSum } from './checksum.js';
import { wireError, type WireError } from './error.js';
import { IPV4_HEADER_LENGTH, PROTO_UDP, emitIpv4Header } from './ipv4.js';

export const UDP_HEADER_LENGTH = 8;
/** 65535 less the IPv4 and UDP headers: the largest datagram a socket can send. */
export const UDP_MAX_PAYLOAD = 65535 - IPV4_HEADER_LENGTH - UDP_HEADER_LENGTH;

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  /** view of the payload (aliases the input) */
  payload: Uint8Array;
}

/**
 * Parse a UDP datagram carried between src and dst (uint32). The UDP length must fit the
 * IP payload; bytes beyond it are ignored. A zero checksum means none was sent (RFC 768).
 */
export function parseUdp(bytes: Uint8Array, src: number, dst: number, verify = true): UdpDatagram | WireError {
  if (bytes.length < UDP_HEADER_LENGTH) return wireError('udp-truncated');
  const length = (bytes[4] << 8) | bytes[5];
  if (length < UDP_HEADER_LENGTH || length > bytes.length) return wireError('udp-bad-length');
  const checksum = (bytes[6] << 8) | bytes[7];
  if (verify && checksum !== 0) {
    if (internetChecksum(bytes, 0, length, pseudoHeaderSum(src, dst, PROTO_UDP, length)) !== 0) {
      return wireError('udp-bad-checksum');
    }
  }
  return {
    srcPort: (bytes[0] << 8) | bytes[1],
    dstPort: (bytes[2] << 8) | bytes[3],
    payload: bytes.subarray(UDP_HEADER_LENGTH, length),
  };
}

export function udpBufferLength(d: UdpDatagram): number {
  return UDP_HEADER_LENGTH + d.payload.length;
}

/** Write header, payload and checksum at buffer[offset]. */
export function emitUdp(d: UdpDatagram, buffer: Uint8Array, offset: number, src: number, dst: number): void {
  emitUdpHeader(d, buffer, offset, src, dst);
  buffer.set(d.payload, offset + UDP_HEADER_LENGTH);
}

/**
 * Write the 8-byte header alone at buffer[offset], its checksum covering `d.payload`
 * where it lies: the payload can then go out in fragments without a whole-datagram copy.
 */
export function emitUdpHeader(d: UdpDatagram, buffer: Uint8Array, offset: number, src: number, dst: number): void {
  const b = buffer;
  const o = offset;
  const length = UDP_HEADER_LENGTH + d.payload.length;
  b[o] = d.srcPort >>> 8;
  b[o + 1] = d.srcPort;
  b[o + 2] = d.dstPort >>> 8;
  b[o + 3] = d.dstPort;
  b[o + 4] = length >>> 8;
  b[o + 5] = length;
  b[o + 6] = 0;
  b[o + 7] = 0;
  const header = b.subarray(o, o + UDP_HEADER_LENGTH);
  let sum = ~gatherSum([header, d.payload], pseudoHeaderSum(src, dst, PROTO_UDP, length)) & 0xffff;
  // RFC 768: a computed zero is sent as all ones.
  if (sum === 0) sum = 0xffff;
  b[o + 6] = sum >>> 8;
  b[o + 7] = sum;
}

export function buildUdpPacket(opts: {
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  ttl?: number;
  id?: number;
  flags?: number;
}): Uint8Array {
  const total = IPV4_HEADER_LENGTH + UDP_HEADER_LENGTH + opts.payload.length;
  const out = new Uint8Array(total);
  emitIpv4Header(
    { src: opts.src, dst: opts.dst, protocol: PROTO_UDP, totalLength: total, ttl: opts.ttl, id: opts.id, flags: opts.flags },
    out,
    0,
  );
  emitUdp(opts, out, IPV4_HEADER_LENGTH, opts.src, opts.dst);
  return out;
}
