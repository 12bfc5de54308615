// IPv4 addresses as uint32 numbers, and the overlay network's CIDR.

export function parseAddress(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (m === null) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i].length > 1 && m[i][0] === '0')) return null;
    n = n * 256 + octet;
  }
  return n;
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
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (m === null) return 'expected a.b.c.d/len';
  const base = parseAddress(m[1]);
  if (base === null) return `${m[1]} is not an IPv4 address`;
  const prefixLength = Number(m[2]);
  if (prefixLength < 8 || prefixLength > 30) return 'prefix length must be between 8 and 30';
  const size = 2 ** (32 - prefixLength);
  if (base % size !== 0) return `host bits of ${m[1]} are not zero for /${prefixLength}`;
  return { cidr: `${formatAddress(base)}/${prefixLength}`, base, prefixLength, size, broadcast: base + size - 1, gateway: base + 1 };
}

export function inNetwork(net: Network, addr: number): boolean {
  return addr >= net.base && addr <= net.broadcast;
}

/** An address a host may have: inside the network, not network, broadcast or gateway. */
export function isHostAddress(net: Network, addr: number): boolean {
  return addr > net.gateway && addr < net.broadcast;
}
