// What the relay reads of a packet beyond the header check (transport/packet-walker.ts):
// allocation signals, ICMP errors, and one-line descriptions for events.

import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../netstack/wire/ipv4.js';
import { formatAddress } from './address.js';
import { readDst, readSrc } from '../transport/packet-walker.js';

export { MALFORMED_CHECKSUM, MALFORMED_IHL, MALFORMED_LENGTH, MALFORMED_REASONS, MALFORMED_SHORT, MALFORMED_VERSION, checkPacket, readDst, readSrc } from '../transport/packet-walker.js';

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
