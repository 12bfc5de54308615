// A SOCKS5 server (RFC 1928, CONNECT only, no authentication) on a kernel TCP port, whose
// outgoing connections are made by a Dial function (the userspace stack in `imach join
// --userspace`). Meant for loopback: it has no authentication.

import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../hostfn/log.js';

/** Open a connection to host:port; rejects with an error whose `code` says why (ECONNREFUSED...). */
export type Dial = (target: { host: string; port: number }) => Promise<Duplex>;

// RFC 1928 section 6: reply codes
export const SOCKS_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

const VERSION = 0x05;
const NO_AUTH = 0x00;
const NO_ACCEPTABLE = 0xff;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

export type GreetingParse = { need: true } | { methods: number[]; length: number } | { error: string };

/** RFC 1928 section 3: VER NMETHODS METHODS. */
export function parseGreeting(b: Uint8Array): GreetingParse {
  if (b.length < 2) return { need: true };
  if (b[0] !== VERSION) return { error: `not SOCKS5 (version byte ${b[0]})` };
  const n = b[1]!;
  if (n === 0) return { error: 'no authentication methods offered' };
  if (b.length < 2 + n) return { need: true };
  return { methods: Array.from(b.subarray(2, 2 + n)), length: 2 + n };
}

export interface SocksRequest {
  command: number;
  addressType: number;
  host: string;
  port: number;
  length: number;
}

export type RequestParse = { need: true } | SocksRequest | { error: string; reply: number };

/** RFC 1928 section 4: VER CMD RSV ATYP DST.ADDR DST.PORT. */
export function parseRequest(b: Uint8Array): RequestParse {
  if (b.length < 5) return { need: true };
  if (b[0] !== VERSION) return { error: `bad request version ${b[0]}`, reply: SOCKS_REPLY.generalFailure };
  const command = b[1]!;
  const addressType = b[3]!;
  let host: string;
  let off: number;
  if (addressType === ATYP_IPV4) {
    if (b.length < 10) return { need: true };
    host = `${b[4]}.${b[5]}.${b[6]}.${b[7]}`;
    off = 8;
  } else if (addressType === ATYP_DOMAIN) {
    const len = b[4]!;
    if (len === 0) return { error: 'empty domain name', reply: SOCKS_REPLY.generalFailure };
    if (b.length < 5 + len + 2) return { need: true };
    host = Buffer.from(b.subarray(5, 5 + len)).toString('latin1');
    off = 5 + len;
  } else if (addressType === ATYP_IPV6) {
    if (b.length < 22) return { need: true };
    host = Array.from({ length: 8 }, (_, i) => ((b[4 + 2 * i]! << 8) | b[5 + 2 * i]!).toString(16)).join(':');
    off = 20;
  } else {
    return { error: `unknown address type ${addressType}`, reply: SOCKS_REPLY.addressTypeNotSupported };
  }
  const port = (b[off]! << 8) | b[off + 1]!;
  return { command, addressType, host, port, length: off + 2 };
}

/** The reply to a request: RFC 1928 section 6, bound address always IPv4. */
export function encodeReply(reply: number, bound: { address: string; port: number } = { address: '0.0.0.0', port: 0 }): Uint8Array {
  const out = new Uint8Array(10);
  out[0] = VERSION;
  out[1] = reply;
  out[3] = ATYP_IPV4;
  const parts = bound.address.split('.').map(Number);
  for (let i = 0; i < 4; i++) out[4 + i] = Number.isInteger(parts[i]) ? parts[i]! & 0xff : 0;
  out[8] = (bound.port >> 8) & 0xff;
  out[9] = bound.port & 0xff;
  return out;
}

/** The SOCKS reply for a dial failure's error code. */
export function replyForError(code: string | undefined): number {
  switch (code) {
    case 'ECONNREFUSED':
      return SOCKS_REPLY.connectionRefused;
    case 'EHOSTUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
      return SOCKS_REPLY.hostUnreachable;
    case 'ENETUNREACH':
      return SOCKS_REPLY.networkUnreachable;
    case 'EACCES':
    case 'EPERM':
      return SOCKS_REPLY.notAllowed;
    default:
      return SOCKS_REPLY.generalFailure;
  }
}

export interface Socks5Options {
  dial: Dial;
  /** default 127.0.0.1 */
  host?: string;
  /** default 1080; 0 picks a free port */
  port?: number;
  logger?: Logger;
  /** clients at once (more are closed at accept); default 256 */
  maxClients?: number;
  /** time for greeting + request; default 10 s */
  handshakeTimeoutMs?: number;
}

export type SocksDropReason = 'tooManyClients' | 'badGreeting' | 'noAcceptableMethod' | 'badRequest' | 'unsupportedCommand' | 'handshakeTimeout' | 'dialFailed';

export interface SocksCounters {
  accepted: number;
  connected: number;
  drops: Record<SocksDropReason, number>;
}

const MAX_HANDSHAKE_BYTES = 600;

export class Socks5Server {
  readonly counters: SocksCounters = {
    accepted: 0,
    connected: 0,
    drops: { tooManyClients: 0, badGreeting: 0, noAcceptableMethod: 0, badRequest: 0, unsupportedCommand: 0, handshakeTimeout: 0, dialFailed: 0 },
  };
  private readonly clients = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    private readonly options: Required<Omit<Socks5Options, 'logger'>> & { logger?: Logger },
  ) {}

  static async start(options: Socks5Options): Promise<Socks5Server> {
    const o = { host: '127.0.0.1', port: 1080, maxClients: 256, handshakeTimeoutMs: 10_000, ...options };
    // Half-close passes through: a client's FIN must not cut off the answer still on its way.
    const server = net.createServer({ allowHalfOpen: true });
    const s = new Socks5Server(server, o);
    server.on('connection', (c) => s.accept(c));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => o.logger?.error('SOCKS5 server error', { err }));
    return s;
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  get clientCount(): number {
    return this.clients.size;
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(c: net.Socket): void {
    if (this.clients.size >= this.options.maxClients) {
      this.counters.drops.tooManyClients++;
      c.destroy();
      return;
    }
    this.counters.accepted++;
    this.clients.add(c);
    c.on('close', () => this.clients.delete(c));
    c.on('error', () => c.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let stage: 'greeting' | 'request' | 'dialing' = 'greeting';
    const timer = setTimeout(() => {
      this.counters.drops.handshakeTimeout++;
      c.destroy();
    }, this.options.handshakeTimeoutMs);
    c.once('close', () => clearTimeout(timer));

    const fail = (reason: SocksDropReason, reply?: number) => {
      this.counters.drops[reason]++;
      clearTimeout(timer);
      if (reply !== undefined) c.end(encodeReply(reply));
      else c.destroy();
    };

    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (buf.length > MAX_HANDSHAKE_BYTES) return fail('badRequest');
      if (stage === 'greeting') {
        const g = parseGreeting(buf);
        if ('need' in g) return;
        if ('error' in g) return fail('badGreeting');
        buf = buf.subarray(g.length);
        if (!g.methods.includes(NO_AUTH)) {
          this.counters.drops.noAcceptableMethod++;
          clearTimeout(timer);
          c.end(Uint8Array.from([VERSION, NO_ACCEPTABLE]));
          return;
        }
        c.write(Uint8Array.from([VERSION, NO_AUTH]));
        stage = 'request';
      }
      if (stage === 'request') {
        const r = parseRequest(buf);
        if ('need' in r) return;
        if ('error' in r) return fail('badRequest', r.reply);
        if (r.command !== CMD_CONNECT) return fail('unsupportedCommand', SOCKS_REPLY.commandNotSupported);
        stage = 'dialing';
        c.off('data', onData);
        c.pause();
        const early = buf.subarray(r.length);
        clearTimeout(timer);
        void this.connect(c, r, early);
      }
    };
    c.on('data', onData);
  }

  private async connect(c: net.Socket, r: SocksRequest, early: Buffer): Promise<void> {
    let remote: Duplex;
    try {
      remote = await this.options.dial({ host: r.host, port: r.port });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.counters.drops.dialFailed++;
      this.options.logger?.debug('SOCKS5 connect failed', { host: r.host, port: r.port, code });
      if (!c.destroyed) c.end(encodeReply(replyForError(code)));
      return;
    }
    if (c.destroyed) {
      remote.destroy();
      return;
    }
    this.counters.connected++;
    const local = remote as Duplex & { localAddress?: string; localPort?: number };
    c.write(encodeReply(SOCKS_REPLY.succeeded, { address: local.localAddress ?? '0.0.0.0', port: local.localPort ?? 0 }));
    if (early.length > 0) remote.write(early);
    splice(c, remote);
    c.resume();
  }
}

/** Pipe two streams both ways (each end's EOF is passed on); when either fails, both go. */
export function splice(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const fail = () => {
    a.destroy();
    b.destroy();
  };
  a.once('error', fail);
  b.once('error', fail);
  a.once('close', () => {
    if (!b.destroyed) b.end();
  });
  b.once('close', () => {
    if (!a.destroyed) a.end();
  });
}
