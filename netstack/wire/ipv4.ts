// IPv4 headers (RFC 791 section 3.1): a record for protocol code, parse and emit as the
// only bridge to bytes.

import { internetChecksum } from './checksum.js';
import { wireError, type WireError } from './error.js';

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export const IPV4_HEADER_LENGTH = 20;
/** The total length field is 16 bits (RFC 791 section 3.1): payload after a 20-byte header. */
export const IPV4_MAX_PAYLOAD = 65535 - IPV4_HEADER_LENGTH;
/** Flags field bits (RFC 791 section 3.1), as they sit in the 3-bit field. */
export const IPV4_FLAG_DF = 0x2;
export const IPV4_FLAG_MF = 0x1;

export interface Ipv4Packet {
  /** uint32 */
  src: number;
  /** uint32 */
  dst: number;
  protocol: number;
  ttl: number;
  tos: number;
  id: number;
  /** the 3-bit flags field: IPV4_FLAG_DF | IPV4_FLAG_MF */
  flags: number;
  /** in bytes (the header field times 8) */
  fragmentOffset: number;
  headerLength: number;
  totalLength: number;
  /** view of the bytes after the header up to totalLength (aliases the input) */
  payload: Uint8Array;
}

export interface Ipv4HeaderFields {
  src: number;
  dst: number;
  protocol: number;
  /** header plus payload bytes */
  totalLength: number;
  ttl?: number;
  tos?: number;
  id?: number;
  flags?: number;
  fragmentOffset?: number;
}

/**
 * Parse an IPv4 packet. Options are skipped; bytes beyond the total length are ignored.
 * `verify` checks the header checksum.
 */
export function parseIpv4(bytes: Uint8Array, verify = true): Ipv4Packet | WireError {
  if (bytes.length < IPV4_HEADER_LENGTH) return wireError('ipv4-truncated');
  const vihl = bytes[0];
  if (vihl >>> 4 !== 4) return wireError('ipv4-bad-version');
  const headerLength = (vihl & 0x0f) * 4;
  if (headerLength < IPV4_HEADER_LENGTH || headerLength > bytes.length) return wireError('ipv4-bad-header-length');
  const totalLength = (bytes[2] << 8) | bytes[3];
  if (totalLength < headerLength) return wireError('ipv4-bad-total-length');
  if (totalLength > bytes.length) return wireError('ipv4-truncated');
  if (verify && internetChecksum(bytes, 0, headerLength) !== 0) return wireError('ipv4-bad-checksum');
  const fragWord = (bytes[6] << 8) | bytes[7];
  return {
    src: ((bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) | bytes[15]) >>> 0,
    dst: ((bytes[16] << 24) | (bytes[17] << 16) | (bytes[18] << 8) | bytes[19]) >>> 0,
    protocol: bytes[9],
    ttl: bytes[8],
    tos: bytes[1],
    id: (bytes[4] << 8) | bytes[5],
    flags: fragWord >>> 13,
    fragmentOffset: (fragWord & 0x1fff) * 8,
    headerLength,
    totalLength,
    payload: bytes.subarray(headerLength, totalLength),
  };
}

export function writeUint32(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = value >>> 24;
  buf[offset + 1] = value >>> 16;
  buf[offset + 2] = value >>> 8;
  buf[offset + 3] = value;
}

export function readUint32(buf: Uint8Array, offset: number): number {
  return ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]) >>> 0;
}

/** Write a 20-byte IPv4 header (no options) with its checksum at buffer[offset]. */
export function emitIpv4Header(fields: Ipv4HeaderFields, buffer: Uint8Array, offset = 0): void {
  const b = buffer;
  const o = offset;
  b[o] = 0x45;
  b[o + 1] = fields.tos ?? 0;
  b[o + 2] = fields.totalLength >>> 8;
  b[o + 3] = fields.totalLength;
  const id = fields.id ?? 0;
  b[o + 4] = id >>> 8;
  b[o + 5] = id;
  const fragWord = ((fields.flags ?? 0) << 13) | (((fields.fragmentOffset ?? 0) >>> 3) & 0x1fff);
  b[o + 6] = fragWord >>> 8;
  b[o + 7] = fragWord;
  b[o + 8] = fields.ttl ?? 64;
  b[o + 9] = fields.protocol;
  b[o + 10] = 0;
  b[o + 11] = 0;
  writeUint32(b, o + 12, fields.src);
  writeUint32(b, o + 16, fields.dst);
  const sum = internetChecksum(b, o, o + IPV4_HEADER_LENGTH);
  b[o + 10] = sum >>> 8;
  b[o + 11] = sum;
}

/** Build a whole IPv4 packet around a payload (one copy of the payload). */
export function buildIpv4Packet(fields: Omit<Ipv4HeaderFields, 'totalLength'>, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(IPV4_HEADER_LENGTH + payload.length);
  emitIpv4Header({ ...fields, totalLength: out.length }, out, 0);
  out.set(payload, IPV4_HEADER_LENGTH);
  return out;
}

/** Payload bytes in each fragment but the last at `mtu`: a multiple of 8 (RFC 791 section 3.2). */
export function fragmentPayloadSize(mtu: number): number {
  return Math.max(0, Math.floor((mtu - IPV4_HEADER_LENGTH) / 8) * 8);
}

/**
 * The IPv4 packet(s) carrying the concatenation of `parts` (a gather list such as a
 * transport header and its payload), each byte copied once. When it fits `mtu` this is
 * one packet with `fields.flags`; otherwise fragments (RFC 791 section 3.2) with the same
 * id, DF clear, MF on every one but the last (which keeps the MF of `fields`, so a
 * fragment can be fragmented again), and offsets from `fields.fragmentOffset`.
 * Errors: 'ipv4-too-big' (over 65535 bytes), 'ipv4-dont-fragment' (DF set and over the
 * MTU), 'ipv4-mtu-too-small' (no room for 8 bytes after a header).
 */
export function buildIpv4Packets(fields: Omit<Ipv4HeaderFields, 'totalLength'>, parts: readonly Uint8Array[], mtu: number): Uint8Array[] | WireError {
  let length = 0;
  for (const p of parts) length += p.length;
  const base = fields.fragmentOffset ?? 0;
  const flags = fields.flags ?? 0;
  if (base + length > IPV4_MAX_PAYLOAD) return wireError('ipv4-too-big');
  if (IPV4_HEADER_LENGTH + length <= mtu) {
    const out = new Uint8Array(IPV4_HEADER_LENGTH + length);
    emitIpv4Header({ ...fields, totalLength: out.length }, out, 0);
    let at = IPV4_HEADER_LENGTH;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return [out];
  }
  if ((flags & IPV4_FLAG_DF) !== 0) return wireError('ipv4-dont-fragment');
  const size = fragmentPayloadSize(mtu);
  if (size === 0) return wireError('ipv4-mtu-too-small');
  const count = Math.ceil(length / size);
  const packets: Uint8Array[] = new Array<Uint8Array>(count);
  const header: Ipv4HeaderFields = { ...fields, totalLength: 0 };
  let part = 0;
  let partOffset = 0;
  for (let i = 0; i < count; i++) {
    const start = i * size;
    const n = Math.min(size, length - start);
    const pkt = new Uint8Array(IPV4_HEADER_LENGTH + n);
    header.totalLength = pkt.length;
    header.flags = i === count - 1 ? flags & ~IPV4_FLAG_DF : (flags & ~IPV4_FLAG_DF) | IPV4_FLAG_MF;
    header.fragmentOffset = base + start;
    emitIpv4Header(header, pkt, 0);
    let at = IPV4_HEADER_LENGTH;
    while (at < pkt.length) {
      const src = parts[part];
      const take = Math.min(pkt.length - at, src.length - partOffset);
      pkt.set(src.subarray(partOffset, partOffset + take), at);
      at += take;
      partOffset += take;
      if (partOffset === src.length) {
        part++;
        partOffset = 0;
      }
    }
    packets[i] = pkt;
  }
  return packets;
}

export function ipv4ToString(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** Dotted-quad to uint32, or null when it is not a plain IPv4 literal. */
export function parseIpv4Address(s: string): number | null {
  if (typeof s !== 'string' || s.length < 7 || s.length > 15) return null;
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}
