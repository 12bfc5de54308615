// TCP segment records (RFC 9293 section 3.1). Protocol code works with these plain
// records; parse/emit (added below by the wire layer) are the only bridge to bytes.

import { gatherSum, internetChecksum, onesComplementSum, pseudoHeaderSum } from './checksum.js';
import { isWireError, wireError, type WireError } from './error.js';
import { IPV4_FLAG_DF, IPV4_FLAG_MF, IPV4_HEADER_LENGTH, PROTO_TCP, emitIpv4Header, parseIpv4, readUint32, writeUint32 } from './ipv4.js';

/** TCP header flags (RFC 9293 section 3.1). */
export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;
export const ECE = 0x40;
export const CWR = 0x80;

/** A SACK block (RFC 2018 section 3): left edge inclusive, right edge exclusive, both uint32. */
export interface SackBlock {
  left: number;
  right: number;
}

/** TCP options this stack understands; unknown options are skipped on parse. */
export interface TcpOptions {
  /** RFC 9293 section 3.7.1 */
  mss?: number;
  /** RFC 7323 section 2: shift count 0..14 */
  windowScale?: number;
  /** RFC 2018 section 2 */
  sackPermitted?: boolean;
  /** RFC 2018 section 3: at most 4 blocks (3 with timestamps) */
  sack?: SackBlock[];
  /** RFC 7323 section 3: TSval and TSecr, uint32 */
  timestamp?: { value: number; echo: number };
}

/**
 * One TCP segment as protocol code sees it. Ports are the TCP header's; addresses live
 * in the IP layer. `seq`, `ack` are uint32; `window` is the raw 16-bit header field
 * (unscaled). `payload` is a view: for received segments it aliases the packet buffer
 * and is only valid during the input call unless copied or retained deliberately.
 */
export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/**
 * An outgoing segment. The payload may be a gather list so that the sender can avoid
 * copying data that spans several send-buffer chunks; the emitter copies it once into
 * the packet.
 */
export interface TcpSegmentOut extends Omit<TcpSegment, 'payload'> {
  payload: Uint8Array | readonly Uint8Array[];
  /** total payload bytes (sum over the gather list) */
  payloadLength: number;
}

// ---- parse / emit -------------------------------------------------------------------

export const TCP_HEADER_LENGTH = 20;
/** RFC 9293 section 3.1: data offset is 4 bits of 32-bit words, so options <= 40 bytes. */
export const TCP_MAX_OPTIONS_LENGTH = 40;

const OPT_END = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WSCALE = 3;
const OPT_SACK_PERMITTED = 4;
const OPT_SACK = 5;
const OPT_TIMESTAMP = 8;
/** RFC 7323 section 2.3: a larger shift count is treated as 14. */
const MAX_WINDOW_SCALE = 14;

function parseOptions(b: Uint8Array, start: number, end: number): TcpOptions | WireError {
  const options: TcpOptions = {};
  let i = start;
  while (i < end) {
    const kind = b[i];
    if (kind === OPT_END) break;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return wireError('tcp-bad-option');
    const len = b[i + 1];
    if (len < 2 || i + len > end) return wireError('tcp-bad-option');
    switch (kind) {
      case OPT_MSS:
        if (len === 4) options.mss = (b[i + 2] << 8) | b[i + 3];
        break;
      case OPT_WSCALE:
        if (len === 3) options.windowScale = Math.min(b[i + 2], MAX_WINDOW_SCALE);
        break;
      case OPT_SACK_PERMITTED:
        if (len === 2) options.sackPermitted = true;
        break;
      case OPT_SACK:
        if ((len - 2) % 8 === 0 && len > 2) {
          const blocks: SackBlock[] = [];
          for (let j = i + 2; j < i + len; j += 8) blocks.push({ left: readUint32(b, j), right: readUint32(b, j + 4) });
          options.sack = blocks;
        }
        break;
      case OPT_TIMESTAMP:
        if (len === 10) options.timestamp = { value: readUint32(b, i + 2), echo: readUint32(b, i + 6) };
        break;
      default:
        break;
    }
    i += len;
  }
  return options;
}

/**
 * Parse a TCP segment (the IP payload) sent from src to dst (uint32). `verify` checks the
 * checksum over the pseudo-header. The payload aliases `bytes`.
 */
export function parseTcp(bytes: Uint8Array, src: number, dst: number, verify = true): TcpSegment | WireError {
  if (bytes.length < TCP_HEADER_LENGTH) return wireError('tcp-truncated');
  const headerLength = (bytes[12] >>> 4) * 4;
  if (headerLength < TCP_HEADER_LENGTH || headerLength > bytes.length) return wireError('tcp-bad-header-length');
  if (verify && internetChecksum(bytes, 0, bytes.length, pseudoHeaderSum(src, dst, PROTO_TCP, bytes.length)) !== 0) {
    return wireError('tcp-bad-checksum');
  }
  const options = headerLength > TCP_HEADER_LENGTH ? parseOptions(bytes, TCP_HEADER_LENGTH, headerLength) : {};
  if ('wireError' in options) return options;
  return {
    srcPort: (bytes[0] << 8) | bytes[1],
    dstPort: (bytes[2] << 8) | bytes[3],
    seq: readUint32(bytes, 4),
    ack: readUint32(bytes, 8),
    flags: bytes[13],
    window: (bytes[14] << 8) | bytes[15],
    urgent: (bytes[18] << 8) | bytes[19],
    options,
    payload: bytes.subarray(headerLength),
  };
}

function sackBlocksThatFit(options: TcpOptions, fixed: number): number {
  const n = options.sack?.length ?? 0;
  if (n === 0) return 0;
  const room = TCP_MAX_OPTIONS_LENGTH - fixed - 4;
  return Math.max(0, Math.min(n, 4, Math.floor(room / 8)));
}

function fixedOptionsLength(o: TcpOptions): number {
  let len = 0;
  if (o.mss !== undefined) len += 4;
  if (o.timestamp !== undefined) len += 12;
  else if (o.sackPermitted) len += 4;
  if (o.windowScale !== undefined) len += 4;
  return len;
}

/** Bytes of options as emitted (NOP-aligned to 32 bits); SACK blocks that do not fit are left out. */
export function tcpOptionsLength(options: TcpOptions): number {
  const fixed = fixedOptionsLength(options);
  const blocks = sackBlocksThatFit(options, fixed);
  return fixed + (blocks > 0 ? 4 + 8 * blocks : 0);
}

/** TCP header length (fixed header plus options) for these options. */
export function tcpHeaderLength(options: TcpOptions): number {
  return TCP_HEADER_LENGTH + tcpOptionsLength(options);
}

function emitOptions(o: TcpOptions, b: Uint8Array, at: number): number {
  const start = at;
  if (o.mss !== undefined) {
    b[at] = OPT_MSS;
    b[at + 1] = 4;
    b[at + 2] = o.mss >>> 8;
    b[at + 3] = o.mss;
    at += 4;
  }
  if (o.timestamp !== undefined) {
    if (o.sackPermitted) {
      b[at] = OPT_SACK_PERMITTED;
      b[at + 1] = 2;
    } else {
      b[at] = OPT_NOP;
      b[at + 1] = OPT_NOP;
    }
    b[at + 2] = OPT_TIMESTAMP;
    b[at + 3] = 10;
    writeUint32(b, at + 4, o.timestamp.value);
    writeUint32(b, at + 8, o.timestamp.echo);
    at += 12;
  } else if (o.sackPermitted) {
    b[at] = OPT_NOP;
    b[at + 1] = OPT_NOP;
    b[at + 2] = OPT_SACK_PERMITTED;
    b[at + 3] = 2;
    at += 4;
  }
  if (o.windowScale !== undefined) {
    b[at] = OPT_NOP;
    b[at + 1] = OPT_WSCALE;
    b[at + 2] = 3;
    b[at + 3] = o.windowScale;
    at += 4;
  }
  const blocks = sackBlocksThatFit(o, at - start);
  if (blocks > 0 && o.sack !== undefined) {
    b[at] = OPT_NOP;
    b[at + 1] = OPT_NOP;
    b[at + 2] = OPT_SACK;
    b[at + 3] = 2 + 8 * blocks;
    at += 4;
    for (let k = 0; k < blocks; k++) {
      writeUint32(b, at, o.sack[k].left);
      writeUint32(b, at + 4, o.sack[k].right);
      at += 8;
    }
  }
  return at - start;
}

function writeHeader(seg: TcpSegment | TcpSegmentOut, b: Uint8Array, o: number): number {
  b[o] = seg.srcPort >>> 8;
  b[o + 1] = seg.srcPort;
  b[o + 2] = seg.dstPort >>> 8;
  b[o + 3] = seg.dstPort;
  writeUint32(b, o + 4, seg.seq);
  writeUint32(b, o + 8, seg.ack);
  const optLen = emitOptions(seg.options, b, o + TCP_HEADER_LENGTH);
  const headerLength = TCP_HEADER_LENGTH + optLen;
  b[o + 12] = (headerLength / 4) << 4;
  b[o + 13] = seg.flags;
  b[o + 14] = seg.window >>> 8;
  b[o + 15] = seg.window;
  b[o + 16] = 0;
  b[o + 17] = 0;
  b[o + 18] = seg.urgent >>> 8;
  b[o + 19] = seg.urgent;
  return headerLength;
}

function copyPayload(payload: Uint8Array | readonly Uint8Array[], b: Uint8Array, at: number): number {
  if (payload instanceof Uint8Array) {
    b.set(payload, at);
    return at + payload.length;
  }
  for (const chunk of payload) {
    b.set(chunk, at);
    at += chunk.length;
  }
  return at;
}

function payloadLengthOf(seg: TcpSegment | TcpSegmentOut): number {
  return 'payloadLength' in seg ? seg.payloadLength : seg.payload.length;
}

/** Bytes `emitTcp` writes for this segment (header, options, payload). */
export function tcpBufferLength(seg: TcpSegment | TcpSegmentOut): number {
  return tcpHeaderLength(seg.options) + payloadLengthOf(seg);
}

/**
 * Write header, options, payload and checksum at buffer[offset] for a segment from src to
 * dst (uint32). Returns the number of bytes written.
 */
export function emitTcp(seg: TcpSegment | TcpSegmentOut, buffer: Uint8Array, offset: number, src: number, dst: number): number {
  const headerLength = writeHeader(seg, buffer, offset);
  const end = copyPayload(seg.payload, buffer, offset + headerLength);
  const length = end - offset;
  const sum = internetChecksum(buffer, offset, end, pseudoHeaderSum(src, dst, PROTO_TCP, length));
  buffer[offset + 16] = sum >>> 8;
  buffer[offset + 17] = sum;
  return length;
}

/**
 * Write header and options at buffer[offset] for a segment from src to dst (uint32), with
 * a checksum that covers the payload where it lies (not copied: the caller sends header
 * and payload as a gather list). Returns the header length.
 */
export function emitTcpHeader(seg: TcpSegmentOut, buffer: Uint8Array, offset: number, src: number, dst: number): number {
  const headerLength = writeHeader(seg, buffer, offset);
  const length = headerLength + seg.payloadLength;
  // The header is a whole number of 32-bit words, so the payload's words stay aligned.
  const headerSum = onesComplementSum(buffer, offset, offset + headerLength, pseudoHeaderSum(src, dst, PROTO_TCP, length));
  const payload = seg.payload;
  const sum = ~(payload instanceof Uint8Array ? onesComplementSum(payload, 0, payload.length, headerSum) : gatherSum(payload, headerSum)) & 0xffff;
  buffer[offset + 16] = sum >>> 8;
  buffer[offset + 17] = sum;
  return headerLength;
}

export interface TcpPacketIp {
  src: number;
  dst: number;
  ttl?: number;
  id?: number;
  tos?: number;
  /** IPv4 flags; default DF (TCP segments always fit the MTU, so they are never fragmented) */
  flags?: number;
}

/**
 * One fresh buffer holding IPv4 header, TCP header and payload: the payload (possibly a
 * gather list) is copied once and the TCP checksum computed once.
 */
export function buildTcpPacket(ip: TcpPacketIp, seg: TcpSegment | TcpSegmentOut): Uint8Array {
  const tcpLength = tcpBufferLength(seg);
  const total = IPV4_HEADER_LENGTH + tcpLength;
  const out = new Uint8Array(total);
  emitTcp(seg, out, IPV4_HEADER_LENGTH, ip.src, ip.dst);
  emitIpv4Header(
    { src: ip.src, dst: ip.dst, protocol: PROTO_TCP, totalLength: total, ttl: ip.ttl, id: ip.id, tos: ip.tos, flags: ip.flags ?? IPV4_FLAG_DF },
    out,
    0,
  );
  return out;
}

const NO_PAYLOAD = new Uint8Array(0);

/**
 * RFC 9293 section 3.10.7.1: the reset a host sends for a segment that belongs to no
 * connection it has. If the segment has ACK: <SEQ=SEG.ACK><CTL=RST>; otherwise
 * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SYN and FIN counting in SEG.LEN.
 * null for a RST (never answered).
 */
export function tcpResetFor(seg: TcpSegment): TcpSegmentOut | null {
  if ((seg.flags & RST) !== 0) return null;
  const hasAck = (seg.flags & ACK) !== 0;
  const segLen = seg.payload.length + ((seg.flags & SYN) !== 0 ? 1 : 0) + ((seg.flags & FIN) !== 0 ? 1 : 0);
  return {
    srcPort: seg.dstPort,
    dstPort: seg.srcPort,
    seq: hasAck ? seg.ack >>> 0 : 0,
    ack: hasAck ? 0 : (seg.seq + segLen) >>> 0,
    flags: hasAck ? RST : RST | ACK,
    window: 0,
    urgent: 0,
    options: {},
    payload: NO_PAYLOAD,
    payloadLength: 0,
  };
}

/**
 * The whole IPv4 packet answering `packet` (IPv4 carrying TCP) with tcpResetFor, from its
 * destination to its source. null when no reset is due: a RST, a fragment, or bytes that
 * do not parse (header or TCP checksum wrong: RFC 9293 section 3.10.7.1 answers only
 * segments that arrived intact).
 */
export function buildTcpResetFor(packet: Uint8Array, ttl = 64): Uint8Array | null {
  const ip = parseIpv4(packet);
  if (isWireError(ip) || ip.protocol !== PROTO_TCP) return null;
  if (ip.fragmentOffset !== 0 || (ip.flags & IPV4_FLAG_MF) !== 0) return null;
  const seg = parseTcp(ip.payload, ip.src, ip.dst);
  if (isWireError(seg)) return null;
  const rst = tcpResetFor(seg);
  return rst === null ? null : buildTcpPacket({ src: ip.dst, dst: ip.src, ttl }, rst);
}

/** Flags as a short string for logs and test messages, e.g. 'SYN|ACK'. */
export function tcpFlagsToString(flags: number): string {
  const names: string[] = [];
  const table: [number, string][] = [[FIN, 'FIN'], [SYN, 'SYN'], [RST, 'RST'], [PSH, 'PSH'], [ACK, 'ACK'], [URG, 'URG'], [ECE, 'ECE'], [CWR, 'CWR']];
  for (const [bit, name] of table) if (flags & bit) names.push(name);
  return names.join('|') || '-';
}
