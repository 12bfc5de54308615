// ICMP echo (RFC 792) from a stack: ping(address) resolves with the round-trip time.

import { ICMP_ECHO_REQUEST, type IcmpMessage } from '../wire/icmp.js';
import { UDP_MAX_PAYLOAD } from '../wire/udp.js';
import { ipv4ToString, parseIpv4Address } from '../wire/ipv4.js';
import { codedError } from './net-errors.js';

export interface PingOptions {
  /** ms before rejecting with ETIMEDOUT; default 2000 */
  timeout?: number;
  /** bytes of echo data, 0..65507; default 32. Larger than the MTU goes in fragments. */
  size?: number;
  ttl?: number;
}

/** What the pinger needs from a stack. */
export interface PingHost {
  readonly localAddress: number;
  now(): number;
  /** Send an ICMP message, fragmented when it exceeds the MTU. */
  sendIcmp(dst: number, msg: IcmpMessage, ttl?: number): 'EMSGSIZE' | 'ENETDOWN' | null;
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
    const size = options.size ?? 32;
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`PingOptions.size must be a non-negative integer, got ${size}`);
    // An echo has the same 8-byte header as UDP, so the same 65507-byte ceiling.
    if (size > UDP_MAX_PAYLOAD) throw codedError('EMSGSIZE', `ping EMSGSIZE ${address}: ${size} bytes`);
    const data = new Uint8Array(size);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    return new Promise<number>((resolve, reject) => {
      const sentAt = this.host.now();
      const cancel = this.host.schedule(sentAt + timeout, () => {
        this.pending.delete(seq);
        reject(codedError('ETIMEDOUT', `ping ETIMEDOUT ${ipv4ToString(dst)}`));
      });
      this.pending.set(seq, { dst, sentAt, resolve, reject, cancel });
      const error = this.host.sendIcmp(dst, { type: ICMP_ECHO_REQUEST, code: 0, identifier: this.identifier, sequence: seq, data }, options.ttl);
      if (error !== null) {
        this.pending.delete(seq);
        cancel();
        reject(codedError(error, `ping ${error} ${ipv4ToString(dst)}`));
      }
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
