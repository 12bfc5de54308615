// ICMP echo (RFC 792) from a stack: ping(address) resolves with the round-trip time.

import { buildIcmpEchoRequest } from '../wire/icmp.js';
import { ipv4ToString, parseIpv4Address } from '../wire/ipv4.js';
import { codedError } from './net-errors.js';

export interface PingOptions {
  /** ms before rejecting with ETIMEDOUT; default 2000 */
  timeout?: number;
  /** bytes of echo data; default 32 */
  size?: number;
  ttl?: number;
}

/** What the pinger needs from a stack. */
export interface PingHost {
  readonly localAddress: number;
  now(): number;
  sendPacket(packet: Uint8Array): void;
  /** Run fn at time `at` on the stack's single timer; returns a cancel function. */
  schedule(at: number, fn: () => void): () => void;
  lookup(hostname: string): Promise<string>;
}

interface Pending {
  dst: number;
  sentAt: number;
  resolve(rtt: number): void;
  reject(err: Error): void;
  cancel(): void;
}

export type PingError = Error & { code: 'ETIMEDOUT' | 'EHOSTUNREACH' | 'ENOBUFS' | 'ECANCELED' | string };

export class Pinger {
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  readonly identifier: number;

  constructor(
    private readonly host: PingHost,
    private readonly maxPending: number,
    identifier: number,
  ) {
    this.identifier = identifier & 0xffff;
  }

  get outstanding(): number {
    return this.pending.size;
  }

  async ping(address: string, options: PingOptions = {}): Promise<number> {
    const literal = parseIpv4Address(address);
    const dst = literal ?? parseIpv4Address(await this.host.lookup(address));
    if (dst === null) throw codedError('ENOTFOUND', `ping ENOTFOUND ${address}`);
    if (this.pending.size >= this.maxPending) throw codedError('ENOBUFS', `ping ENOBUFS ${address}`);
    let seq = this.seq;
    for (let i = 0; i < 0x10000 && this.pending.has(seq); i++) seq = (seq + 1) & 0xffff;
    this.seq = (seq + 1) & 0xffff;
    const timeout = options.timeout ?? 2000;
    const data = new Uint8Array(options.size ?? 32);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    return new Promise<number>((resolve, reject) => {
      const sentAt = this.host.now();
      const cancel = this.host.schedule(sentAt + timeout, () => {
        this.pending.delete(seq);
        reject(codedError('ETIMEDOUT', `ping ETIMEDOUT ${ipv4ToString(dst)}`));
      });
      this.pending.set(seq, { dst, sentAt, resolve, reject, cancel });
      this.host.sendPacket(
        buildIcmpEchoRequest({ src: this.host.localAddress, dst, identifier: this.identifier, sequence: seq, payload: data, ttl: options.ttl }),
      );
    });
  }

  /** An echo reply arrived. */
  onReply(src: number, identifier: number, sequence: number, now: number): boolean {
    if (identifier !== this.identifier) return false;
    const p = this.pending.get(sequence);
    if (p === undefined || p.dst !== src) return false;
    this.pending.delete(sequence);
    p.cancel();
    p.resolve(now - p.sentAt);
    return true;
  }

  /** A destination unreachable quoting one of our echo requests arrived. */
  onUnreachable(dst: number, identifier: number, sequence: number): boolean {
    if (identifier !== this.identifier) return false;
    const p = this.pending.get(sequence);
    if (p === undefined || p.dst !== dst) return false;
    this.pending.delete(sequence);
    p.cancel();
    p.reject(codedError('EHOSTUNREACH', `ping EHOSTUNREACH ${ipv4ToString(dst)}`));
    return true;
  }

  close(): void {
    for (const p of this.pending.values()) {
      p.cancel();
      p.reject(codedError('ECANCELED', 'ping ECANCELED: stack closed'));
    }
    this.pending.clear();
  }
}
