// ICMPv4 (RFC 792): echo, destination unreachable and the quoted header it carries.

import { gatherSum, internetChecksum } from './checksum.js';
import { wireError, type WireError } from './error.js';
import {
  IPV4_HEADER_LENGTH,
  PROTO_ICMP,
  emitIpv4Header,
  readUint32,
  type Ipv4Packet,
} from './ipv4.js';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;

/** Destination unreachable codes (RFC 792; RFC 1122 section 3.2.2.1). */
export const ICMP_UNREACH_NET = 0;
export const ICMP_UNREACH_HOST = 1;
export const ICMP_UNREACH_PROTOCOL = 2;
export const ICMP_UNREACH_PORT = 3;
export const ICMP_UNREACH_FRAG_NEEDED = 4;
export const ICMP_UNREACH_NET_PROHIBITED = 9;
export const ICMP_UNREACH_HOST_PROHIBITED = 10;
export const ICMP_UNREACH_ADMIN_PROHIBITED = 13;

export const ICMP_HEADER_LENGTH = 8;

export interface IcmpMessage {
  type: number;
  code: number;
  /** bytes 4..7 of the header: identifier and sequence for echo, unused/MTU otherwise */
  identifier: number;
  sequence: number;
  /** the bytes after the 8-byte header (aliases the input) */
  data: Uint8Array;
}

/** The quoted datagram in an ICMP error: the original IPv4 header plus 8 bytes. */
export interface IcmpQuote {
  src: number;
  dst: number;
  protocol: number;
  /** the first 4 bytes of the transport header (ports for TCP and UDP) */
  srcPort: number;
  dstPort: number;
  /** bytes 4..7 of the transport header (TCP: the sequence number) */
  word1: number;
}

export function parseIcmp(bytes: Uint8Array, verify = true): IcmpMessage | WireError {
  if (bytes.length < ICMP_HEADER_LENGTH) return wireError('icmp-truncated');
  if (verify && internetChecksum(bytes) !== 0) return wireError('icmp-bad-checksum');
  return {
    type: bytes[0],
    code: bytes[1],
    identifier: (bytes[4] << 8) | bytes[5],
    sequence: (bytes[6] << 8) | bytes[7],
    data: bytes.subarray(ICMP_HEADER_LENGTH),
  };
}

/** Parse the datagram quoted in an ICMP error message (RFC 792: header + 64 bits). */
export function parseIcmpQuote(data: Uint8Array): IcmpQuote | WireError {
  if (data.length < IPV4_HEADER_LENGTH) return wireError('icmp-quote-truncated');
  if (data[0] >>> 4 !== 4) return wireError('icmp-quote-bad-version');
  const hl = (data[0] & 0x0f) * 4;
  if (hl < IPV4_HEADER_LENGTH || data.length < hl + 8) return wireError('icmp-quote-truncated');
  return {
    src: readUint32(data, 12),
    dst: readUint32(data, 16),
    protocol: data[9],
    srcPort: (data[hl] << 8) | data[hl + 1],
    dstPort: (data[hl + 2] << 8) | data[hl + 3],
    word1: readUint32(data, hl + 4),
  };
}

/** Write an ICMP message (header + data) with its checksum at buffer[offset]. */
export function emitIcmp(msg: IcmpMessage, buffer: Uint8Array, offset = 0): void {
  emitIcmpHeader(msg, buffer, offset);
  buffer.set(msg.data, offset + ICMP_HEADER_LENGTH);
}

/**
 * Write the 8-byte ICMP header alone at buffer[offset], its checksum covering `msg.data`
 * where it lies (for messages sent in fragments without a whole-message copy).
 */
export function emitIcmpHeader(msg: IcmpMessage, buffer: Uint8Array, offset = 0): void {
  const b = buffer;
  const o = offset;
  b[o] = msg.type;
  b[o + 1] = msg.code;
  b[o + 2] = 0;
  b[o + 3] = 0;
  b[o + 4] = msg.identifier >>> 8;
  b[o + 5] = msg.identifier;
  b[o + 6] = msg.sequence >>> 8;
  b[o + 7] = msg.sequence;
  const sum = ~gatherSum([b.subarray(o, o + ICMP_HEADER_LENGTH), msg.data]) & 0xffff;
  b[o + 2] = sum >>> 8;
  b[o + 3] = sum;
}

export function icmpBufferLength(msg: IcmpMessage): number {
  return ICMP_HEADER_LENGTH + msg.data.length;
}

function buildIcmpPacket(src: number, dst: number, ttl: number, msg: IcmpMessage): Uint8Array {
  const total = IPV4_HEADER_LENGTH + icmpBufferLength(msg);
  const out = new Uint8Array(total);
  emitIpv4Header({ src, dst, protocol: PROTO_ICMP, totalLength: total, ttl }, out, 0);
  emitIcmp(msg, out, IPV4_HEADER_LENGTH);
  return out;
}

export function buildIcmpEchoRequest(opts: {
  src: number;
  dst: number;
  identifier: number;
  sequence: number;
  payload?: Uint8Array;
  ttl?: number;
}): Uint8Array {
  return buildIcmpPacket(opts.src, opts.dst, opts.ttl ?? 64, {
    type: ICMP_ECHO_REQUEST,
    code: 0,
    identifier: opts.identifier,
    sequence: opts.sequence,
    data: opts.payload ?? new Uint8Array(0),
  });
}

/** The reply to an echo request (RFC 792): addresses swapped, same id, sequence, data. */
export function buildIcmpEchoReply(request: Ipv4Packet, icmp: IcmpMessage, ttl = 64): Uint8Array {
  return buildIcmpPacket(request.dst, request.src, ttl, {
    type: ICMP_ECHO_REPLY,
    code: 0,
    identifier: icmp.identifier,
    sequence: icmp.sequence,
    data: icmp.data,
  });
}

/**
 * Destination unreachable about `original` (a whole IPv4 packet), sent from `from` to the
 * original's source, quoting its header plus the first 8 bytes of its payload (RFC 792).
 * A field the original lacks is quoted as far as it goes.
 */
export function buildIcmpUnreachable(original: Uint8Array, code: number, from: number, ttl = 64): Uint8Array {
  const hl = original.length >= 1 ? Math.max(IPV4_HEADER_LENGTH, (original[0] & 0x0f) * 4) : IPV4_HEADER_LENGTH;
  const quoteLength = Math.min(original.length, hl + 8);
  const src = original.length >= 16 ? readUint32(original, 12) : 0;
  return buildIcmpPacket(from, src, ttl, {
    type: ICMP_DEST_UNREACHABLE,
    code,
    identifier: 0,
    sequence: 0,
    data: original.subarray(0, quoteLength),
  });
}
