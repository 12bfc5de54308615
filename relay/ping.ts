// The relay's own ping of a host (`imach ping`, POST /api/ping): ICMP echo requests from
// the gateway, resent every second until a reply or the timeout, and the table of the
// requests in flight (bounded).

import { randomBytes } from 'node:crypto';
import { buildIcmpEchoRequest } from '../netstack/wire/icmp.js';
import { formatAddress, parseAddress } from './address.js';
import type { HostEntry } from './host.js';
import type { HostTable } from './host-table.js';

export interface PingResult {
  address: string;
  rttMs: number;
}

export interface RelayPingerEnv {
  readonly table: HostTable;
  readonly gateway: number;
  readonly domain: string;
  readonly maxPending: number;
  /** why the relay can neither reach nor start the host now (null: it can) */
  unreachable(entry: HostEntry): string | null;
  /** send a packet from the gateway into the network */
  send(packet: Uint8Array): void;
  closing(): boolean;
}

/** One relay ping: echo requests go out every PING_RESEND_MS until a reply or the timeout. */
interface PendingPing {
  address: number;
  name: string;
  /** sequence number -> when that request went out (performance.now) */
  sent: Map<number, number>;
  resolve: (v: PingResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  resend: NodeJS.Timeout;
}

const PING_RESEND_MS = 1000;
const PING_PAYLOAD = new TextEncoder().encode('imach relay ping');

export class RelayPinger {
  /** by sequence number of each request in flight */
  private readonly bySeq = new Map<number, PendingPing>();
  private readonly inFlight = new Set<PendingPing>();
  private nextSeq = 1;
  private readonly id = randomBytes(2).readUInt16BE(0);

  constructor(private readonly env: RelayPingerEnv) {}

  ping(target: string, timeoutMs = 30_000): Promise<PingResult> {
    const { table, domain } = this.env;
    const byAddr = parseAddress(target);
    const entry = byAddr !== null ? table.byAddress(byAddr) : table.byName(target.endsWith(`.${domain}`) ? target.slice(0, -domain.length - 1) : target);
    if (entry === undefined) return Promise.reject(new Error(`unknown host: ${target}`));
    if (this.inFlight.size >= this.env.maxPending) return Promise.reject(new Error('too many pings in flight'));
    if (this.env.closing()) return Promise.reject(new Error('relay is closing'));
    return new Promise((resolve, reject) => {
      const p: PendingPing = {
        address: entry.address,
        name: entry.name,
        sent: new Map(),
        resolve,
        reject,
        timer: setTimeout(() => this.end(p, new Error(`ping ${target}: no reply within ${timeoutMs}ms`)), timeoutMs),
        // a request may be lost (e.g. while the host starts): send another each second
        resend: setInterval(() => this.send(p), PING_RESEND_MS),
      };
      this.inFlight.add(p);
      this.send(p);
    });
  }

  /** An echo reply reached the gateway. */
  onEchoReply(from: number, id: number, seq: number): void {
    if (id !== this.id) return;
    const p = this.bySeq.get(seq);
    const sentAt = p?.sent.get(seq);
    if (p === undefined || sentAt === undefined || p.address !== from) return;
    this.end(p, null, performance.now() - sentAt);
  }

  /** End the pings of the host at `address` with `message` (it cannot be reached). */
  failHost(address: number, message: string): void {
    for (const p of this.inFlight) if (p.address === address) this.end(p, new Error(message));
  }

  /** End every ping (relay shutdown). */
  closeAll(message: string): void {
    for (const p of [...this.inFlight]) this.end(p, new Error(message));
  }

  private send(p: PendingPing): void {
    // a host the relay can neither reach nor start: say so now rather than at the timeout
    const entry = this.env.table.byAddress(p.address);
    if (entry === undefined) return this.end(p, new Error(`host ${p.name} unreachable: forgotten by the relay`));
    const why = this.env.unreachable(entry);
    if (why !== null) return this.end(p, new Error(`host ${entry.name} unreachable: ${why}`));
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq % 0xffff) + 1;
    p.sent.set(seq, performance.now());
    this.bySeq.set(seq, p);
    this.env.send(buildIcmpEchoRequest({ src: this.env.gateway, dst: p.address, identifier: this.id, sequence: seq, payload: PING_PAYLOAD }));
  }

  private end(p: PendingPing, error: Error | null, rttMs = 0): void {
    if (!this.inFlight.delete(p)) return;
    clearTimeout(p.timer);
    clearInterval(p.resend);
    for (const seq of p.sent.keys()) this.bySeq.delete(seq);
    if (error !== null) p.reject(error);
    else p.resolve({ address: formatAddress(p.address), rttMs });
  }
}
