// IPv4 addresses as uint32 numbers, and the overlay network's CIDR. Text from manifests,
// flags and the admin API is parsed by `ip-address`; the numeric helpers below stay plain
// arithmetic, because the router and the gateway call them per packet, where a library
// object per call would allocate.

import { Address4 } from 'ip-address';

/** An Address4, or null where ip-address refuses the text (it throws AddressError). */
function address4(text: string): Address4 | null {
  try {
    return new Address4(text);
  } catch {
    return null;
  }
}

/** 'a.b.c.d' (no prefix, no leading zeroes) as a uint32; null otherwise. */
export function parseAddress(text: string): number | null {
  if (text.includes('/')) return null;
  const a = address4(text);
  return a === null ? null : Number(a.bigInt());
}

export function formatAddress(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export interface Network {
  /** e.g. '10.77.0.0/16' (normalized) */
  cidr: string;
  /** network address (uint32) */
  base: number;
  prefixLength: number;
  /** number of addresses in the network */
  size: number;
  broadcast: number;
  /** the first usable address: the relay's gateway */
  gateway: number;
}

/** Parse 'a.b.c.d/len' (len 8..30, host bits zero). Returns a message on error. */
export function parseNetwork(text: string): Network | string {
  const slash = text.indexOf('/');
  if (slash < 0 || !/^\d{1,2}$/.test(text.slice(slash + 1))) return 'expected a.b.c.d/len';
  const addressText = text.slice(0, slash);
  if (parseAddress(addressText) === null) return `${addressText} is not an IPv4 address`;
  const prefixLength = Number(text.slice(slash + 1));
  if (prefixLength < 8 || prefixLength > 30) return 'prefix length must be between 8 and 30';
  const net = address4(`${addressText}/${prefixLength}`);
  if (net === null) return 'expected a.b.c.d/len';
  const base = net.startAddress();
  if (base.correctForm() !== net.correctForm()) return `host bits of ${addressText} are not zero for /${prefixLength}`;
  const start = Number(base.bigInt());
  const broadcast = Number(net.endAddress().bigInt());
  return { cidr: `${base.correctForm()}/${prefixLength}`, base: start, prefixLength, size: broadcast - start + 1, broadcast, gateway: start + 1 };
}

export function inNetwork(net: Network, addr: number): boolean {
  return addr >= net.base && addr <= net.broadcast;
}

/** An address a host may have: inside the network, not network, broadcast or gateway. */
export function isHostAddress(net: Network, addr: number): boolean {
  return addr > net.gateway && addr < net.broadcast;
}
