// A DNS stub resolver (RFC 1035) over the stack's UDP: A queries to one server, with a
// timeout, retries, a search domain for single-label names, and a small TTL cache.

import { DNS_RCODE_NOERROR, DNS_RCODE_NXDOMAIN, buildDnsQuery, parseDns } from '../wire/dns.js';
import { isWireError } from '../wire/error.js';
import { parseIpv4Address } from '../wire/ipv4.js';
import type { UdpHost, UdpReceiver } from './dgram.js';
import { lookupError, type NetError } from './net-errors.js';

export interface DnsResolverOptions {
  /** ms per attempt; default 1000 */
  timeout?: number;
  /** attempts after the first; default 2 */
  retries?: number;
  /** appended to names without a dot; default 'imach' */
  domain?: string;
  /** server port; default 53 */
  port?: number;
  /** cached names; default 256 */
  cacheSize?: number;
  /** outstanding queries; default 256 */
  maxPending?: number;
}

export interface DnsResolver {
  /** One address (dotted quad); rejects with ENOTFOUND for NXDOMAIN or no address. */
  lookup(name: string): Promise<string>;
  /** All A addresses; rejects with ENOTFOUND for NXDOMAIN, ENODATA for none. */
  resolve4(name: string): Promise<string[]>;
  close(): void;
}

/** What the resolver needs from a stack. */
export interface DnsHost extends UdpHost {
  now(): number;
  schedule(at: number, fn: () => void): () => void;
}

interface Query {
  name: string;
  bytes: Uint8Array;
  attempts: number;
  cancel: () => void;
  resolve(addresses: string[]): void;
  reject(err: NetError): void;
}

class StubResolver implements DnsResolver, UdpReceiver {
  private readonly pending = new Map<number, Query>();
  private readonly cache = new Map<string, { addresses: string[]; expires: number }>();
  private port = 0;
  private nextId: number;
  private closed = false;
  private readonly timeout: number;
  private readonly retries: number;
  private readonly domain: string;
  private readonly serverPort: number;
  private readonly cacheSize: number;
  private readonly maxPending: number;

  constructor(
    private readonly host: DnsHost,
    private readonly server: number,
    options: DnsResolverOptions,
  ) {
    this.timeout = options.timeout ?? 1000;
    this.retries = options.retries ?? 2;
    this.domain = (options.domain ?? 'imach').replace(/^\.|\.$/g, '').toLowerCase();
    this.serverPort = options.port ?? 53;
    this.cacheSize = options.cacheSize ?? 256;
    this.maxPending = options.maxPending ?? 256;
    this.nextId = (Math.random() * 0x10000) >>> 0;
  }

  private qualify(name: string): string {
    const n = name.toLowerCase().replace(/\.$/, '');
    return n.includes('.') || this.domain === '' ? n : `${n}.${this.domain}`;
  }

  async lookup(name: string): Promise<string> {
    if (parseIpv4Address(name) !== null) return name;
    try {
      const all = await this.resolve4(name);
      return all[0];
    } catch (err) {
      const code = (err as NetError).code;
      throw lookupError(code === 'ENODATA' || code === 'ENOTFOUND' ? 'ENOTFOUND' : 'EAI_AGAIN', name);
    }
  }

  resolve4(name: string): Promise<string[]> {
    if (parseIpv4Address(name) !== null) return Promise.resolve([name]);
    const qname = this.qualify(name);
    const cached = this.cache.get(qname);
    if (cached !== undefined) {
      if (cached.expires > this.host.now()) return Promise.resolve(cached.addresses.slice());
      this.cache.delete(qname);
    }
    if (this.closed) return Promise.reject(lookupError('ECANCELLED', name));
    if (this.pending.size >= this.maxPending) return Promise.reject(lookupError('EAI_AGAIN', name));
    if (this.port === 0) {
      const bound = this.host.udpBind(0, this);
      if (typeof bound === 'string') return Promise.reject(lookupError('EAI_AGAIN', name));
      this.port = bound;
    }
    let id = this.nextId;
    while (this.pending.has(id)) id = (id + 1) & 0xffff;
    this.nextId = (id + 1) & 0xffff;
    const bytes = buildDnsQuery({ id, name: qname });
    if (isWireError(bytes)) return Promise.reject(lookupError('ENOTFOUND', name));
    return new Promise<string[]>((resolve, reject) => {
      const q: Query = { name: qname, bytes, attempts: 0, cancel: () => {}, resolve, reject };
      this.pending.set(id, q);
      this.attempt(id, q);
    });
  }

  private attempt(id: number, q: Query): void {
    q.attempts++;
    this.host.udpSend(this.port, this.server, this.serverPort, q.bytes);
    q.cancel = this.host.schedule(this.host.now() + this.timeout, () => {
      if (this.pending.get(id) !== q) return;
      if (q.attempts <= this.retries) this.attempt(id, q);
      else this.finish(id, q, lookupError('ETIMEOUT', q.name));
    });
  }

  private finish(id: number, q: Query, result: string[] | NetError): void {
    this.pending.delete(id);
    q.cancel();
    // Hold a port only while queries are in flight: an idle resolver is no open socket
    // (the host's idle rule counts sockets), and each burst gets a fresh port (RFC 5452 section 9.2).
    if (this.pending.size === 0 && this.port !== 0) {
      this.host.udpUnbind(this.port, this);
      this.port = 0;
    }
    if (Array.isArray(result)) q.resolve(result);
    else q.reject(result);
  }

  deliver(msg: Uint8Array, fromAddress: number, fromPort: number): void {
    if (fromAddress !== this.server || fromPort !== this.serverPort) return;
    const m = parseDns(msg);
    if (isWireError(m) || !m.qr) return;
    const q = this.pending.get(m.id);
    if (q === undefined || m.questions.length !== 1 || m.questions[0].name !== q.name) return;
    if (m.rcode === DNS_RCODE_NXDOMAIN) return this.finish(m.id, q, lookupError('ENOTFOUND', q.name));
    if (m.rcode !== DNS_RCODE_NOERROR) return this.finish(m.id, q, lookupError('ESERVFAIL', q.name));
    const addresses: string[] = [];
    let ttl = Infinity;
    for (const a of m.answers) {
      if (a.address !== undefined) {
        addresses.push(a.address);
        ttl = Math.min(ttl, a.ttl);
      }
    }
    if (addresses.length === 0) return this.finish(m.id, q, lookupError('ENODATA', q.name));
    if (ttl > 0) {
      if (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(q.name, { addresses, expires: this.host.now() + ttl * 1000 });
    }
    this.finish(m.id, q, addresses.slice());
  }

  icmpError(_code: 'ECONNREFUSED' | 'EHOSTUNREACH', address: number, port: number): void {
    if (address !== this.server || port !== this.serverPort) return;
    // The server is unreachable: fail every outstanding query now rather than time out.
    for (const [id, q] of [...this.pending]) this.finish(id, q, lookupError('ECONNREFUSED', q.name));
  }

  close(): void {
    this.closed = true;
    for (const [id, q] of [...this.pending]) this.finish(id, q, lookupError('ECANCELLED', q.name));
    if (this.port !== 0) this.host.udpUnbind(this.port, this);
    this.port = 0;
  }
}

/** A resolver asking `server` (dotted quad, e.g. the relay's gateway). */
export function createDnsResolver(host: DnsHost, server: string, options: DnsResolverOptions = {}): DnsResolver {
  const s = parseIpv4Address(server);
  if (s === null) throw new TypeError(`DNS server must be an IPv4 address, got ${server}`);
  return new StubResolver(host, s, options);
}
