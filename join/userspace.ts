// `imach join --userspace`: no TUN, no root. The machine joins the relay with a TCP/IP
// stack in this process and offers the network to local programs through a SOCKS5 proxy
// and port forwards on loopback, and lets hosts reach local servers through `--expose`.

import net from 'node:net';
import type { Duplex } from 'node:stream';
import { createNetstackBundle } from '../hostfn/netstack-bundle.js';
import { createLogger, type Logger } from '../hostfn/log.js';
import { RelayLink, isRelayLinkError, type RelayLinkError } from '../transport/relay-link.js';
import type { TlsTrust } from '../transport/dial.js';
import type { NetApi } from '../netstack/api/net.js';
import type { WelcomeMessage } from '../relay/protocol.js';
import type { Link } from '../netstack/link/link.js';
import { formatImpair, impairLink, type ImpairSpec } from './impair.js';
import { ExposedPort, type ExposeOptions, type ExposeSpec, type OverlayListen, type OverlaySocket } from './expose.js';
import { isIPv4 } from './iproute.js';
import { leaveRelay, type JoinEnd, type JoinError } from './join-session.js';
import { Socks5Server, splice, type Dial } from './socks5.js';

/**
 * What the session needs from a stack: outgoing TCP connections by name or address (SOCKS5,
 * forwards) and listeners on the overlay address (`--expose`).
 */
export interface UserspaceStack {
  dial: Dial;
  /** listen on this port at the joined machine's overlay address; rejects e.g. with EADDRINUSE */
  listen: OverlayListen;
  close(): void;
}

/** `link` is the relay link, or an ImpairedLink around it with `--impair`. */
export type UserspaceStackFactory = (welcome: WelcomeMessage, link: Link, log: Logger) => UserspaceStack;

export interface ForwardSpec {
  /** loopback address to listen on (default 127.0.0.1) */
  bindHost: string;
  bindPort: number;
  /** host name or overlay address, and port, to connect to */
  host: string;
  port: number;
}

/** `[bind:]localPort:host:port`, e.g. `8080:web:80` or `127.0.0.1:5432:db.imach:5432`. */
export function parseForward(text: string): ForwardSpec | string {
  const parts = text.split(':');
  if (parts.length !== 3 && parts.length !== 4) return `--forward wants [bind:]localPort:host:port, not ${JSON.stringify(text)}`;
  const [bindHost, lp, host, p] = parts.length === 4 ? parts : ['127.0.0.1', ...parts];
  const bindPort = port(lp!);
  const targetPort = port(p!);
  if (bindPort === null || targetPort === null || targetPort === 0) return `--forward ${text}: ports must be 0..65535 (target 1..65535)`;
  if (!isIPv4(bindHost!) && bindHost !== 'localhost') return `--forward ${text}: bind address must be IPv4`;
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(host!)) return `--forward ${text}: bad host ${JSON.stringify(host)}`;
  return { bindHost: bindHost!, bindPort, host: host!, port: targetPort };
}

function port(s: string): number | null {
  return /^\d{1,5}$/.test(s) && Number(s) <= 65535 ? Number(s) : null;
}

const DIAL_TIMEOUT_MS = 30_000;

/** The default stack: netstack on the relay link, names through the relay's DNS. */
export const netstackFactory: UserspaceStackFactory = (welcome, link, log) => {
  const bundle = createNetstackBundle(welcome, link, log);
  const api = bundle.stack.net as NetApi;
  const network = parseCidr(welcome.network);
  const lookup = bundle.dns.lookup as (name: string) => Promise<string>;
  const dial: Dial = async ({ host, port }) => {
    const address = isIPv4(host) ? host : await lookup(host);
    if (network && !inCidr(network, address)) {
      throw Object.assign(new Error(`${address} is outside the imaginary network ${welcome.network}`), { code: 'EACCES' });
    }
    return new Promise<Duplex>((resolve, reject) => {
      const s = api.createConnection({ host: address, port, allowHalfOpen: true });
      const timer = setTimeout(() => {
        s.destroy();
        reject(Object.assign(new Error(`connect ${address}:${port} timed out`), { code: 'ETIMEDOUT' }));
      }, DIAL_TIMEOUT_MS);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  };
  const listen: OverlayListen = (port, onConnection) =>
    new Promise((resolve, reject) => {
      const server = api.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => onConnection(s as OverlaySocket));
      server.once('error', reject);
      server.listen(port, welcome.address, () => {
        server.off('error', reject);
        resolve({ close: () => void server.close() });
      });
    });
  return { dial, listen, close: () => bundle.stack.close() };
};

function parseCidr(cidr: string): { base: number; mask: number } | null {
  const [a, l] = cidr.split('/');
  if (!a || !l || !isIPv4(a)) return null;
  const len = Number(l);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return { base: (toInt(a) & mask) >>> 0, mask };
}

function toInt(a: string): number {
  return a.split('.').reduce((n, p) => ((n << 8) | Number(p)) >>> 0, 0);
}

function inCidr(c: { base: number; mask: number }, a: string): boolean {
  return ((toInt(a) & c.mask) >>> 0) === c.base;
}

/** A kernel TCP listener on loopback whose connections are carried to one overlay target. */
export class PortForward {
  private readonly clients = new Set<net.Socket>();
  failures = 0;
  private constructor(private readonly server: net.Server, readonly spec: ForwardSpec) {}

  static async start(spec: ForwardSpec, dial: Dial, log: Logger, maxClients = 256): Promise<PortForward> {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    const f = new PortForward(server, spec);
    server.on('connection', (c) => {
      if (f.clients.size >= maxClients) return void c.destroy();
      f.clients.add(c);
      c.on('close', () => f.clients.delete(c));
      c.on('error', () => c.destroy());
      dial({ host: spec.host, port: spec.port }).then(
        (remote) => {
          if (c.destroyed) return void remote.destroy();
          splice(c, remote);
          c.resume();
        },
        (err: NodeJS.ErrnoException) => {
          f.failures++;
          log.warn('forward could not connect', { to: `${spec.host}:${spec.port}`, code: err.code, err });
          c.destroy();
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.bindPort, spec.bindHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return f;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface UserspaceOptions {
  relay: string;
  token: string | (() => string | Promise<string>);
  /** where the SOCKS5 proxy listens; null: no proxy */
  socks: { host: string; port: number } | null;
  forwards: ForwardSpec[];
  /** overlay ports carried to local TCP servers (`--expose`) */
  exposes?: ExposeSpec[];
  /** limits of every `--expose` (default EXPOSE_DEFAULTS), and the local connect in tests */
  expose?: ExposeOptions;
  logger?: Logger;
  giveUpAfterMs?: number;
  /** how to trust a wss:// relay (default: the system's CAs) */
  tls?: TlsTrust;
  /** injected by tests; default netstack */
  stackFactory?: UserspaceStackFactory;
  /** seeded faults between the stack and the relay (`--impair`, tests and debugging) */
  impair?: ImpairSpec;
}

export class UserspaceSession {
  readonly ended: Promise<JoinEnd>;
  private endResolve!: (e: JoinEnd) => void;
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly link: RelayLink,
    readonly welcome: WelcomeMessage,
    private readonly stack: UserspaceStack,
    readonly socks: Socks5Server | null,
    readonly forwards: PortForward[],
    readonly exposed: ExposedPort[],
    private readonly log: Logger,
    /** what the stack is attached to: the relay link, or an ImpairedLink around it */
    readonly data: Link,
  ) {
    this.ended = new Promise((r) => (this.endResolve = r));
  }

  /** Join and open the proxy and forwards. Never throws: failures are JoinError values. */
  static async start(options: UserspaceOptions): Promise<UserspaceSession | JoinError> {
    const log = options.logger ?? createLogger({ fields: { component: 'join' } });
    const link = await RelayLink.connect({
      url: options.relay,
      token: options.token,
      logger: log.child({ component: 'relay-link' }),
      ...(options.tls !== undefined ? { tls: options.tls } : {}),
      ...(options.giveUpAfterMs !== undefined ? { giveUpAfterMs: options.giveUpAfterMs } : {}),
    });
    if (isRelayLinkError(link)) return { joinError: true, stage: 'relay', kind: link.kind, message: link.message };
    const welcome = link.welcome;
    const data = impairLink(link, options.impair);
    if (data !== link) log.warn('impairing the relay path', { impair: formatImpair(options.impair!) });
    let stack: UserspaceStack;
    try {
      stack = (options.stackFactory ?? netstackFactory)(welcome, data, log);
    } catch (err) {
      link.close();
      return { joinError: true, stage: 'device', message: `cannot start the userspace stack: ${(err as Error).message}` };
    }
    let socks: Socks5Server | null = null;
    const forwards: PortForward[] = [];
    const exposed: ExposedPort[] = [];
    const undo = async (message: string): Promise<JoinError> => {
      if (socks) await socks.close();
      for (const f of forwards) await f.close();
      for (const e of exposed) e.close();
      stack.close();
      data.close();
      link.close();
      return { joinError: true, stage: 'interface', message };
    };
    try {
      if (options.socks) socks = await Socks5Server.start({ dial: stack.dial, ...options.socks, logger: log });
    } catch (err) {
      return undo(`cannot listen for SOCKS5 on ${options.socks!.host}:${options.socks!.port}: ${(err as Error).message}`);
    }
    for (const spec of options.forwards) {
      try {
        forwards.push(await PortForward.start(spec, stack.dial, log));
      } catch (err) {
        return undo(`cannot listen on ${spec.bindHost}:${spec.bindPort} for --forward: ${(err as Error).message}`);
      }
    }
    for (const spec of options.exposes ?? []) {
      try {
        exposed.push(await ExposedPort.start(spec, stack.listen, log.child({ component: 'expose' }), options.expose));
      } catch (err) {
        return undo(`cannot listen on ${welcome.address}:${spec.overlayPort} for --expose: ${(err as Error).message}`);
      }
    }
    const s = new UserspaceSession(link, welcome, stack, socks, forwards, exposed, log, data);
    s.wire();
    return s;
  }

  private wire(): void {
    this.link.onStateChange((state, err?: RelayLinkError) => {
      if (state === 'reconnecting') this.log.warn('relay connection lost, reconnecting');
      if (state === 'closed' && err) void this.stop({ reason: 'relay-gone', message: err.message });
    });
    this.link.onControl((msg) => {
      if (msg.type === 'drain') void this.stop({ reason: 'drained', message: `relay asked to leave: ${msg.reason}` });
    });
  }

  stop(end: JoinEnd = { reason: 'stopped', message: 'stopped' }): Promise<void> {
    if (!this.stopping) this.stopping = this.teardown(end);
    return this.stopping;
  }

  private async teardown(end: JoinEnd): Promise<void> {
    if (this.socks) await this.socks.close();
    for (const f of this.forwards) await f.close();
    for (const e of this.exposed) {
      e.close();
      if (e.accepted > 0 || Object.values(e.drops).some((n) => n > 0)) {
        this.log.info('expose counters', { port: e.spec.overlayPort, accepted: e.accepted, drops: { ...e.drops } });
      }
    }
    this.stack.close();
    await leaveRelay(this.link, this.data, this.log, end);
    this.endResolve(end);
  }
}
