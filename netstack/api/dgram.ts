// A Node `dgram`-compatible UDP socket over the stack (udp4 only): bind, send, close,
// address, and the 'message', 'listening', 'close' and 'error' events.

import { ProcessHold } from './keepalive.js';
import { EventEmitter } from 'node:events';
import { ipv4ToString, parseIpv4Address } from '../wire/ipv4.js';
import { hostPortError, syscallError, type NetError } from './net-errors.js';

/** Where the stack hands a bound socket its datagrams and ICMP errors. */
export interface UdpReceiver {
  deliver(msg: Uint8Array, fromAddress: number, fromPort: number): void;
  icmpError(code: 'ECONNREFUSED' | 'EHOSTUNREACH', address: number, port: number): void;
  /** The stack closed: the binding is gone. */
  hostClosed?(): void;
}

/** What the dgram facade needs from a stack. */
export interface UdpHost {
  readonly address: string;
  readonly localAddress: number;
  /** port 0 picks an ephemeral port; returns the bound port. */
  udpBind(port: number, receiver: UdpReceiver): number | 'EADDRINUSE' | 'EMFILE';
  udpUnbind(port: number, receiver: UdpReceiver): void;
  udpSend(srcPort: number, dst: number, dstPort: number, payload: Uint8Array): 'EMSGSIZE' | 'ENETDOWN' | null;
  lookup(hostname: string): Promise<string>;
}

export interface RemoteInfo {
  address: string;
  family: 'IPv4';
  port: number;
  size: number;
}

export interface SocketOptions {
  type: 'udp4';
}

export type MessageListener = (msg: Buffer, rinfo: RemoteInfo) => void;
export type SendCallback = (error: Error | null, bytes: number) => void;
type Data = string | Uint8Array | readonly (string | Uint8Array)[];

function toBytes(data: Data): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof Uint8Array) return data;
  return Buffer.concat(data.map((d) => (typeof d === 'string' ? Buffer.from(d) : d)));
}

function validPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535;
}

export class UdpSocket extends EventEmitter implements UdpReceiver {
  private port = 0;
  /** a bound socket keeps the process alive, as Node's does, unless unref()'d */
  private readonly hold = new ProcessHold();
  private state: 'unbound' | 'binding' | 'bound' | 'closed' = 'unbound';

  constructor(private readonly host: UdpHost) {
    super();
  }

  bind(port?: number | { port?: number; address?: string }, address?: string | (() => void), callback?: () => void): this {
    let p: number | undefined;
    let addr: string | undefined;
    let cb: (() => void) | undefined;
    if (typeof port === 'object' && port !== null) {
      p = port.port;
      addr = port.address;
      cb = typeof address === 'function' ? address : callback;
    } else {
      p = port;
      if (typeof address === 'function') cb = address;
      else {
        addr = address;
        cb = callback;
      }
    }
    if (this.state !== 'unbound') throw Object.assign(new Error('Socket is already bound'), { code: 'ERR_SOCKET_ALREADY_BOUND' });
    p = p ?? 0;
    if (!validPort(p)) throw Object.assign(new RangeError(`Port should be >= 0 and < 65536. Received ${String(p)}.`), { code: 'ERR_SOCKET_BAD_PORT' });
    if (cb !== undefined) this.once('listening', cb);
    this.state = 'binding';
    if (addr !== undefined && addr !== '0.0.0.0' && addr !== this.host.address && addr !== 'localhost') {
      this.fail(hostPortError('EADDRNOTAVAIL', 'bind', addr, p));
      return this;
    }
    this.bindNow(p);
    return this;
  }

  private bindNow(p: number): boolean {
    const result = this.host.udpBind(p, this);
    if (typeof result === 'string') {
      this.fail(hostPortError(result, 'bind', this.host.address, p));
      return false;
    }
    this.port = result;
    this.state = 'bound';
    this.hold.setActive(true);
    process.nextTick(() => {
      if (this.state === 'bound') this.emit('listening');
    });
    return true;
  }

  private fail(err: NetError): void {
    this.state = 'unbound';
    process.nextTick(() => this.emit('error', err));
  }

  send(msg: Data, port: number, address?: string | SendCallback, callback?: SendCallback): void;
  send(msg: Data, offset: number, length: number, port: number, address?: string | SendCallback, callback?: SendCallback): void;
  send(msg: Data, a: number, b?: number | string | SendCallback, c?: number | string | SendCallback, d?: string | SendCallback, e?: SendCallback): void {
    let bytes = toBytes(msg);
    let port: number;
    let address: string | undefined;
    let cb: SendCallback | undefined;
    if (typeof b === 'number' && typeof c === 'number') {
      bytes = bytes.subarray(a, a + b);
      port = c;
      if (typeof d === 'function') cb = d;
      else {
        address = d;
        cb = e;
      }
    } else {
      port = a;
      if (typeof b === 'function') cb = b;
      else {
        address = typeof b === 'string' ? b : undefined;
        cb = typeof c === 'function' ? c : undefined;
      }
    }
    if (this.state === 'closed') throw Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    if (!validPort(port) || port === 0) throw Object.assign(new RangeError(`Port should be > 0 and < 65536. Received ${String(port)}.`), { code: 'ERR_SOCKET_BAD_PORT' });
    if (this.state === 'unbound' && !this.bindNow(0)) return;
    const target = address === undefined || address === 'localhost' ? this.host.address : address;
    const literal = parseIpv4Address(target);
    const done = (err: Error | null): void => {
      if (cb !== undefined) process.nextTick(cb, err, err === null ? bytes.length : 0);
      else if (err !== null) process.nextTick(() => this.emit('error', err));
    };
    const deliver = (dst: number): void => {
      if (this.state !== 'bound') return done(syscallError('EBADF', 'send'));
      const r = this.host.udpSend(this.port, dst, port, bytes);
      done(r === null ? null : hostPortError(r, 'send', ipv4ToString(dst), port));
    };
    if (literal !== null) deliver(literal);
    else {
      this.host.lookup(target).then(
        (a) => deliver(parseIpv4Address(a) ?? 0),
        (err: unknown) => done(err instanceof Error ? err : new Error(String(err))),
      );
    }
  }

  close(callback?: () => void): this {
    if (this.state === 'closed') throw Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    if (this.state === 'bound') this.host.udpUnbind(this.port, this);
    this.state = 'closed';
    this.hold.setActive(false);
    if (callback !== undefined) this.once('close', callback);
    process.nextTick(() => this.emit('close'));
    return this;
  }

  address(): { address: string; family: 'IPv4'; port: number } {
    if (this.state !== 'bound') throw Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    return { address: this.host.address, family: 'IPv4', port: this.port };
  }

  ref(): this {
    this.hold.setRef(true);
    return this;
  }

  unref(): this {
    this.hold.setRef(false);
    return this;
  }

  setBroadcast(_flag: boolean): void {}

  setTTL(ttl: number): number {
    return ttl;
  }

  /** @internal called by the stack */
  deliver(msg: Uint8Array, fromAddress: number, fromPort: number): void {
    const buf = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
    this.emit('message', buf, { address: ipv4ToString(fromAddress), family: 'IPv4', port: fromPort, size: msg.length });
  }

  /** @internal the stack closed under this socket */
  hostClosed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.hold.setActive(false);
    process.nextTick(() => this.emit('close'));
  }

  /** @internal called by the stack; reported only to sockets listening for errors. */
  icmpError(code: 'ECONNREFUSED' | 'EHOSTUNREACH', address: number, port: number): void {
    if (this.listenerCount('error') > 0) this.emit('error', hostPortError(code, 'recv', ipv4ToString(address), port));
  }
}

export interface DgramApi {
  createSocket(type: 'udp4' | SocketOptions, onMessage?: MessageListener): UdpSocket;
}

export function createDgramApi(host: UdpHost): DgramApi {
  return {
    createSocket(type, onMessage) {
      const t = typeof type === 'string' ? type : type?.type;
      if (t !== 'udp4') throw Object.assign(new TypeError(`Bad socket type specified. Valid types are: udp4`), { code: 'ERR_SOCKET_BAD_TYPE' });
      const s = new UdpSocket(host);
      if (onMessage !== undefined) s.on('message', onMessage);
      return s;
    },
  };
}
