// Small IPv4/ICMP builders and parsers for the join tests (the netstack has its own wire layer).

/** RFC 1071: the Internet checksum of bytes[start, end). */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let sum = 0;
  for (let i = start; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if ((end - start) % 2 === 1) sum += bytes[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ipv4ToString(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function ipv4FromString(s: string): Uint8Array {
  return Uint8Array.from(s.split('.').map(Number));
}

export interface IcmpEcho {
  src: string;
  dst: string;
  type: number;
  id: number;
  seq: number;
  payload: Uint8Array;
}

/** The ICMP echo request or reply in an IPv4 packet, or null for anything else. */
export function parseIcmpEcho(p: Uint8Array): IcmpEcho | null {
  if (p.length < 28 || p[0]! >> 4 !== 4) return null;
  const ihl = (p[0]! & 0x0f) * 4;
  const total = (p[2]! << 8) | p[3]!;
  if (ihl < 20 || total > p.length || total < ihl + 8 || p[9] !== 1) return null;
  const type = p[ihl]!;
  if (type !== 0 && type !== 8) return null;
  return {
    src: ipv4ToString(p, 12),
    dst: ipv4ToString(p, 16),
    type,
    id: (p[ihl + 4]! << 8) | p[ihl + 5]!,
    seq: (p[ihl + 6]! << 8) | p[ihl + 7]!,
    payload: p.slice(ihl + 8, total),
  };
}

/** An IPv4 packet carrying an ICMP echo (RFC 792): type 8 request, 0 reply. */
export function buildIcmpEcho(e: IcmpEcho, ttl = 64): Uint8Array {
  const total = 20 + 8 + e.payload.length;
  const p = new Uint8Array(total);
  p[0] = 0x45;
  p[2] = total >> 8;
  p[3] = total & 0xff;
  p[6] = 0x40; // don't fragment
  p[8] = ttl;
  p[9] = 1;
  p.set(ipv4FromString(e.src), 12);
  p.set(ipv4FromString(e.dst), 16);
  const ipSum = internetChecksum(p, 0, 20);
  p[10] = ipSum >> 8;
  p[11] = ipSum & 0xff;
  p[20] = e.type;
  p[24] = e.id >> 8;
  p[25] = e.id & 0xff;
  p[26] = e.seq >> 8;
  p[27] = e.seq & 0xff;
  p.set(e.payload, 28);
  const icmpSum = internetChecksum(p, 20, total);
  p[22] = icmpSum >> 8;
  p[23] = icmpSum & 0xff;
  return p;
}

/** The echo reply to an echo request packet, or null when it is not one. */
export function echoReplyTo(p: Uint8Array): Uint8Array | null {
  const req = parseIcmpEcho(p);
  if (!req || req.type !== 8) return null;
  return buildIcmpEcho({ ...req, src: req.dst, dst: req.src, type: 0 });
}
