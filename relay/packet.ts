// The relay's fast path reads only the IPv4 header (RFC 791 section 3.1): version, IHL,
// total length, header checksum, source, destination. No allocation besides views.

import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../netstack/wire/ipv4.js';
import { formatAddress } from './address.js';

export const MALFORMED_SHORT = -1;
export const MALFORMED_VERSION = -2;
export const MALFORMED_IHL = -3;
export const MALFORMED_LENGTH = -4;
export const MALFORMED_CHECKSUM = -5;

/** Drop-counter reasons for the negative results of checkPacket, indexed by -result. */
export const MALFORMED_REASONS = ['', 'malformed-short', 'malformed-version', 'malformed-ihl', 'malformed-length', 'malformed-checksum'] as const;

/**
 * Check the IPv4 header of the packet starting at `offset` in `frame`. Returns its total
 * length (> 0) or a negative MALFORMED_* code.
 */
export function checkPacket(frame: Uint8Array, offset: number, avail: number = frame.length - offset, verifyChecksum = true): number {
  if (avail < 20) return MALFORMED_SHORT;
  const vihl = frame[offset];
  if (vihl >>> 4 !== 4) return MALFORMED_VERSION;
  const hl = (vihl & 0x0f) << 2;
  if (hl < 20) return MALFORMED_IHL;
  const total = (frame[offset + 2] << 8) | frame[offset + 3];
  if (total < hl || total > avail) return MALFORMED_LENGTH;
  if (!verifyChecksum) return total;
  // RFC 1071: the one's complement sum over a valid header is all ones.
  let sum = 0;
  for (let i = offset; i < offset + hl; i += 2) sum += (frame[i] << 8) | frame[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  if (sum !== 0xffff) return MALFORMED_CHECKSUM;
  return total;
}

export function readSrc(frame: Uint8Array, offset: number): number {
  return ((frame[offset + 12] << 24) | (frame[offset + 13] << 16) | (frame[offset + 14] << 8) | frame[offset + 15]) >>> 0;
}

export function readDst(frame: Uint8Array, offset: number): number {
  return ((frame[offset + 16] << 24) | (frame[offset + 17] << 16) | (frame[offset + 18] << 8) | frame[offset + 19]) >>> 0;
}

/** True for ICMP errors (RFC 1122 section 3.2.2: never answer an ICMP error with one). */
export function isIcmpError(packet: Uint8Array): boolean {
  if (packet[9] !== PROTO_ICMP) return false;
  const hl = (packet[0] & 0x0f) << 2;
  if (packet.length < hl + 1) return false;
  const type = packet[hl];
  return type !== 0 && type !== 8 && type !== 13 && type !== 14;
}

/** A one-line description for events: 'SYN 10.77.0.5:40112 -> 10.77.0.10:8080'. */
export function describePacket(packet: Uint8Array): string {
  const src = formatAddress(readSrc(packet, 0));
  const dst = formatAddress(readDst(packet, 0));
  const hl = (packet[0] & 0x0f) << 2;
  const proto = packet[9];
  const hasPorts = packet.length >= hl + 4;
  const sport = hasPorts ? (packet[hl] << 8) | packet[hl + 1] : 0;
  const dport = hasPorts ? (packet[hl + 2] << 8) | packet[hl + 3] : 0;
  if (proto === PROTO_TCP && hasPorts) {
    const flags = packet.length >= hl + 14 ? packet[hl + 13] : 0;
    const kind = flags & 0x02 ? 'SYN' : 'TCP';
    return `${kind} ${src}:${sport} -> ${dst}:${dport}`;
  }
  if (proto === PROTO_UDP && hasPorts) return `UDP ${src}:${sport} -> ${dst}:${dport}`;
  if (proto === PROTO_ICMP && packet.length > hl) return `ICMP ${packet[hl] === 8 ? 'echo ' : ''}${src} -> ${dst}`;
  return `IP proto ${proto} ${src} -> ${dst}`;
}

/**
 * Whether a packet may start a host that is not running: a fresh instance would have a use
 * for it. TCP: only a SYN without ACK (any other segment belongs to a connection a fresh
 * instance does not have; it would answer RST, RFC 9293 section 3.10.7.1). ICMP: only
 * queries (echo, timestamp), not errors or replies. Any other protocol (UDP, ...): yes.
 */
export function isAllocationSignal(packet: Uint8Array): boolean {
  const proto = packet[9];
  if (proto === PROTO_TCP) return isTcpSynOnly(packet);
  if (proto === PROTO_ICMP) {
    const hl = (packet[0] & 0x0f) << 2;
    return packet.length > hl && (packet[hl] === 8 || packet[hl] === 13);
  }
  return true;
}

/** A TCP segment opening a connection: SYN without ACK. */
export function isTcpSynOnly(packet: Uint8Array): boolean {
  if (packet[9] !== PROTO_TCP) return false;
  const hl = (packet[0] & 0x0f) << 2;
  return packet.length >= hl + 14 && (packet[hl + 13] & 0x12) === 0x02;
}
