// Puts a host's stack under Node's own networking modules, for ordinary programs run as
// hosts (`command:`): net, dgram, dns (and dns/promises), http, https, tls, and through
// them http2, fetch (Node's undici dials with net.connect) and the libraries built on
// them. The builtin modules' exports are patched and syncBuiltinESMExports() carries the
// change to ES named imports.
//
// Where a connection goes:
// - overlay addresses and names (no dot, or under the overlay's domain): the host's stack;
// - localhost, 127.0.0.0/8, ::1: the host's own loopback, on its own stack;
// - the relay itself: the machine's network (the host's own link to the relay);
// - anything else: the machine's network (egress 'host'), or refused (egress 'none').
// Servers of Node's own classes (net.Server and its subclasses http.Server, tls.Server,
// http2 servers) listen on the host's stack.

import { createRequire, syncBuiltinESMExports } from 'node:module';
import type * as NodeDgram from 'node:dgram';
import type * as NodeDns from 'node:dns';
import type * as NodeHttp from 'node:http';
import type * as NodeNet from 'node:net';
import type * as NodeTls from 'node:tls';
import type { DgramApi } from '../netstack/api/dgram.js';
import { isLoopbackHost, type NetApi, type NetServer, type NetSocket } from '../netstack/api/net.js';
import { hostPortError, lookupError } from '../netstack/api/net-errors.js';
import { parseIpv4Address } from '../netstack/wire/ipv4.js';
import type { Logger } from './log.js';

const require = createRequire(import.meta.url);
const net = require('node:net') as typeof NodeNet;
const dgram = require('node:dgram') as typeof NodeDgram;
const dns = require('node:dns') as typeof NodeDns;
const http = require('node:http') as typeof NodeHttp;
const tls = require('node:tls') as typeof NodeTls;

/** What the hooks need of a running host. */
export interface HostNetworking {
  net: NetApi;
  dgram: DgramApi;
  lookup(name: string): Promise<string>;
  resolve4(name: string): Promise<string[]>;
  /** this host's overlay address and the overlay's prefix length */
  address: string;
  prefixLength: number;
  /** the overlay's DNS domain (`imach`) */
  domain: string;
  egress: 'host' | 'none';
  /** the relay's host and port: connections there use the machine's network */
  relay: { host: string; port: number };
  /** called with every kernel socket made for the relay (the register unrefs them) */
  onRelaySocket?: (socket: NodeNet.Socket) => void;
  /** called when the program first dials or binds on the stack (the register then lets packets in) */
  onStackUse?: () => void;
  log: Logger;
}

type Route = { kind: 'stack'; host: string } | { kind: 'machine' } | { kind: 'blocked' };

const originals = {
  netConnect: net.connect,
  netCreateConnection: net.createConnection,
  NetSocket: net.Socket,
  serverListen: net.Server.prototype.listen,
  serverClose: net.Server.prototype.close,
  serverAddress: net.Server.prototype.address,
  serverGetConnections: net.Server.prototype.getConnections,
  serverRef: net.Server.prototype.ref,
  serverUnref: net.Server.prototype.unref,
  serverListening: Object.getOwnPropertyDescriptor(net.Server.prototype, 'listening'),
  tlsConnect: tls.connect,
  dgramCreateSocket: dgram.createSocket,
  dnsLookup: dns.lookup,
  dnsResolve4: dns.resolve4,
  dnsPromisesLookup: dns.promises.lookup,
  dnsPromisesResolve4: dns.promises.resolve4,
  httpAgentCreateConnection: http.Agent.prototype.createConnection,
};

let installed: HostNetworking | null = null;

function ipv4Mask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

function inOverlay(h: HostNetworking, ip: number): boolean {
  const mask = ipv4Mask(h.prefixLength);
  return ((ip & mask) >>> 0) === ((parseIpv4Address(h.address)! & mask) >>> 0);
}

/** Is `name` an overlay name (`web`, `web.imach`)? */
function isOverlayName(h: HostNetworking, name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return !n.includes('.') || n.endsWith(`.${h.domain}`);
}

function routeOf(h: HostNetworking, host: string | undefined, port: number | undefined): Route {
  if (host === undefined || host === null || host === '' || isLoopbackHost(host)) return { kind: 'stack', host: h.address };
  if (host === h.relay.host && Number(port) === h.relay.port) return { kind: 'machine' };
  const ip = parseIpv4Address(host);
  if (ip !== null) {
    if (inOverlay(h, ip)) return { kind: 'stack', host };
  } else if (!net.isIPv6(host) && isOverlayName(h, host)) {
    return { kind: 'stack', host };
  }
  return h.egress === 'host' ? { kind: 'machine' } : { kind: 'blocked' };
}

function blockedError(host: string, port: number): Error {
  const err = hostPortError('ENETUNREACH', 'connect', host, port);
  err.message += " (egress: none in the manifest: this host reaches only the overlay)";
  return err;
}

interface ConnectArgs {
  options: NodeNet.NetConnectOpts & { host?: string; port?: number; path?: string };
  cb: (() => void) | undefined;
}

/** net.connect's argument forms: (options[, cb]), (port[, host][, cb]), (path[, cb]). */
function connectArgs(args: unknown[]): ConnectArgs {
  const cb = typeof args[args.length - 1] === 'function' ? (args[args.length - 1] as () => void) : undefined;
  const a0 = args[0];
  if (a0 !== null && typeof a0 === 'object') return { options: { ...(a0 as ConnectArgs['options']) }, cb };
  if (typeof a0 === 'string' && !/^\s*\d+\s*$/.test(a0)) return { options: { path: a0 }, cb };
  return {
    options: { port: Number(a0), host: typeof args[1] === 'string' ? args[1] : undefined } as ConnectArgs['options'],
    cb,
  };
}

/** A socket that fails with `err` (the next tick), as Node's fail a refused connect. */
function failedSocket(h: HostNetworking, err: Error): NetSocket {
  const s = new h.net.Socket();
  process.nextTick(() => s.destroy(err));
  return s;
}

function connect(...args: unknown[]): NodeNet.Socket {
  const h = installed;
  const { options, cb } = connectArgs(args);
  if (h === null || (options.path !== undefined && options.path !== null)) {
    return (originals.netConnect as (...a: unknown[]) => NodeNet.Socket)(...args);
  }
  const route = routeOf(h, options.host, options.port);
  if (route.kind === 'machine') {
    const s = (originals.netConnect as (...a: unknown[]) => NodeNet.Socket)(...args);
    if (options.host === h.relay.host && Number(options.port) === h.relay.port) h.onRelaySocket?.(s);
    return s;
  }
  if (route.kind === 'blocked') return failedSocket(h, blockedError(String(options.host), Number(options.port))) as unknown as NodeNet.Socket;
  h.onStackUse?.();
  const facadeOptions = { ...options, host: route.host, port: options.port ?? 0 };
  return h.net.connect(facadeOptions, cb) as unknown as NodeNet.Socket;
}

/** `new net.Socket()`: a facade socket; sockets over an fd or handle (pipes) stay Node's. */
function Socket(this: unknown, options?: { fd?: unknown; handle?: unknown }): NodeNet.Socket {
  // Node's own subclasses call net.Socket on their `this` (TLSSocket: ReflectApply(net.Socket, this, ...)).
  if (new.target === undefined) return Reflect.apply(originals.NetSocket, this, [options]) as NodeNet.Socket;
  if (new.target !== Socket) return Reflect.construct(originals.NetSocket, [options], new.target) as NodeNet.Socket;
  const h = installed;
  if (h === null || (options !== undefined && (options.handle !== undefined || options.fd !== undefined))) {
    return new originals.NetSocket(options as NodeNet.SocketConstructorOpts);
  }
  return new h.net.Socket(options as object) as unknown as NodeNet.Socket;
}
// `x instanceof net.Socket` stays true for Node's own sockets only: node:tls takes a
// socket that claims to be one for a libuv stream and reads its handle.
Socket.prototype = originals.NetSocket.prototype;

// ---- servers: Node's own Server classes listen on the stack ----

const facadeOf = new WeakMap<object, NetServer>();

type NodeServer = NodeNet.Server & {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
};

function listen(this: NodeServer, ...args: unknown[]): NodeNet.Server {
  const h = installed;
  const a0 = args[0];
  const byHandle =
    a0 !== null &&
    typeof a0 === 'object' &&
    ('_handle' in a0 || 'fd' in a0 || ('path' in a0 && (a0 as { path?: unknown }).path !== undefined));
  const byPath = typeof a0 === 'string' && !/^\s*\d+\s*$/.test(a0);
  if (h === null || byHandle || byPath) return (originals.serverListen as (...a: unknown[]) => NodeNet.Server).apply(this, args);
  if (facadeOf.get(this)?.listening === true) {
    throw Object.assign(new Error('Listen method has been called more than once without closing.'), { code: 'ERR_SERVER_ALREADY_LISTEN' });
  }
  const cb = typeof args[args.length - 1] === 'function' ? (args.pop() as () => void) : undefined;
  const server = h.net.createServer(
    {
      allowHalfOpen: this.allowHalfOpen === true,
      pauseOnConnect: this.pauseOnConnect === true,
      noDelay: this.noDelay === true,
      keepAlive: this.keepAlive === true,
      keepAliveInitialDelay: this.keepAliveInitialDelay,
    },
    (socket) => this.emit('connection', socket),
  );
  if (typeof this.maxConnections === 'number') server.maxConnections = this.maxConnections;
  facadeOf.set(this, server);
  server.on('listening', () => this.emit('listening'));
  server.on('error', (err) => this.emit('error', err));
  server.on('close', () => {
    if (facadeOf.get(this) === server) facadeOf.delete(this);
    this.emit('close');
  });
  if (cb !== undefined) this.once('listening', cb);
  (server.listen as (...a: unknown[]) => NetServer)(...args);
  return this;
}

function close(this: NodeNet.Server, cb?: (err?: Error) => void): NodeNet.Server {
  const server = facadeOf.get(this);
  if (server === undefined) return originals.serverClose.call(this, cb);
  if (typeof cb === 'function') {
    if (!server.listening) {
      this.once('close', () => cb(Object.assign(new Error('Server is not running.'), { code: 'ERR_SERVER_NOT_RUNNING' })));
    } else this.once('close', cb);
  }
  server.close();
  return this;
}

function patchServers(): void {
  const proto = net.Server.prototype as unknown as Record<string, unknown>;
  proto.listen = listen;
  proto.close = close;
  proto.address = function (this: NodeNet.Server) {
    const server = facadeOf.get(this);
    return server === undefined ? originals.serverAddress.call(this) : server.address();
  };
  proto.getConnections = function (this: NodeNet.Server, cb: (err: Error | null, count: number) => void) {
    const server = facadeOf.get(this);
    if (server === undefined) return originals.serverGetConnections.call(this, cb);
    server.getConnections(cb);
    return this;
  };
  proto.ref = function (this: NodeNet.Server) {
    facadeOf.get(this)?.ref();
    return originals.serverRef.call(this);
  };
  proto.unref = function (this: NodeNet.Server) {
    facadeOf.get(this)?.unref();
    return originals.serverUnref.call(this);
  };
  const listening = originals.serverListening;
  Object.defineProperty(net.Server.prototype, 'listening', {
    configurable: true,
    get(this: NodeNet.Server) {
      const server = facadeOf.get(this);
      return server !== undefined ? server.listening : listening?.get?.call(this) === true;
    },
  });
}

// ---- tls, http ----

function tlsConnect(...args: unknown[]): NodeTls.TLSSocket {
  const h = installed;
  const call = () => (originals.tlsConnect as (...a: unknown[]) => NodeTls.TLSSocket)(...args);
  if (h === null) return call();
  const a0 = args[0];
  let options: NodeTls.ConnectionOptions;
  let cb: (() => void) | undefined = typeof args[args.length - 1] === 'function' ? (args[args.length - 1] as () => void) : undefined;
  if (a0 !== null && typeof a0 === 'object') options = { ...(a0 as NodeTls.ConnectionOptions) };
  else {
    const host = typeof args[1] === 'string' ? args[1] : undefined;
    const extra = [args[1], args[2]].find((a) => a !== null && typeof a === 'object') as NodeTls.ConnectionOptions | undefined;
    options = { ...extra, port: Number(a0), host };
  }
  if (options.socket !== undefined && options.socket !== null) return call();
  if (options.path !== undefined && options.path !== null) return call();
  const route = routeOf(h, options.host, options.port);
  if (route.kind === 'machine') {
    const s = call();
    if (options.host === h.relay.host && Number(options.port) === h.relay.port) h.onRelaySocket?.(s);
    return s;
  }
  const port = options.port ?? 443;
  h.onStackUse?.();
  const socket =
    route.kind === 'blocked'
      ? failedSocket(h, blockedError(String(options.host), port))
      : h.net.connect({ host: route.host, port });
  const host = options.host ?? 'localhost';
  const servername = options.servername ?? (net.isIP(host) === 0 ? host : undefined);
  return originals.tlsConnect({ ...options, socket: socket as unknown as NodeNet.Socket, servername }, cb);
}

// ---- dgram, dns ----

function createSocket(...args: unknown[]): NodeDgram.Socket {
  const h = installed;
  const a0 = args[0] as string | { type?: string };
  const type = typeof a0 === 'string' ? a0 : a0?.type;
  if (h === null || type !== 'udp4') return (originals.dgramCreateSocket as (...a: unknown[]) => NodeDgram.Socket)(...args);
  h.onStackUse?.();
  return h.dgram.createSocket('udp4', args[1] as never) as unknown as NodeDgram.Socket;
}

type LookupAll = Array<{ address: string; family: number }>;

/** Resolve `name` for a program: overlay names through the relay's DNS, others by egress. */
async function lookupAddress(h: HostNetworking, name: string): Promise<{ address: string; family: number } | null> {
  if (name === 'localhost') return { address: '127.0.0.1', family: 4 };
  if (net.isIP(name) !== 0) return { address: name, family: net.isIP(name) };
  if (!isOverlayName(h, name)) return null;
  try {
    return { address: await h.lookup(name), family: 4 };
  } catch {
    throw lookupError('ENOTFOUND', name);
  }
}

function dnsLookup(hostname: string, ...rest: unknown[]): void {
  const h = installed;
  const cb = rest[rest.length - 1] as (err: Error | null, address?: string | LookupAll, family?: number) => void;
  const options = rest.length > 1 ? rest[0] : undefined;
  const all = options !== null && typeof options === 'object' && (options as { all?: boolean }).all === true;
  if (h === null || typeof hostname !== 'string' || typeof cb !== 'function') {
    (originals.dnsLookup as (...a: unknown[]) => void)(hostname, ...rest);
    return;
  }
  lookupAddress(h, hostname).then(
    (r) => {
      if (r === null) {
        if (h.egress === 'host') (originals.dnsLookup as (...a: unknown[]) => void)(hostname, ...rest);
        else cb(lookupError('ENOTFOUND', hostname));
      } else if (all) cb(null, [r]);
      else cb(null, r.address, r.family);
    },
    (err: Error) => cb(err),
  );
}

async function dnsPromisesLookup(hostname: string, options?: unknown): Promise<unknown> {
  const h = installed;
  if (h === null) return (originals.dnsPromisesLookup as (...a: unknown[]) => Promise<unknown>).call(dns.promises, hostname, options);
  const r = await lookupAddress(h, hostname);
  if (r === null) {
    if (h.egress !== 'host') throw lookupError('ENOTFOUND', hostname);
    return (originals.dnsPromisesLookup as (...a: unknown[]) => Promise<unknown>).call(dns.promises, hostname, options);
  }
  const all = options !== null && typeof options === 'object' && (options as { all?: boolean }).all === true;
  return all ? [r] : r;
}

async function resolve4Overlay(name: string): Promise<string[] | null> {
  const h = installed;
  if (h === null || !isOverlayName(h, name)) return null;
  try {
    return await h.resolve4(name);
  } catch {
    throw Object.assign(new Error(`queryA ENOTFOUND ${name}`), { code: 'ENOTFOUND', syscall: 'queryA', hostname: name });
  }
}

function dnsResolve4(this: unknown, hostname: string, ...rest: unknown[]): void {
  const cb = rest[rest.length - 1] as (err: Error | null, addresses?: string[]) => void;
  resolve4Overlay(hostname).then(
    (r) => {
      if (r !== null) cb(null, r);
      else if (installed?.egress === 'none') cb(Object.assign(new Error(`queryA ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }));
      else (originals.dnsResolve4 as (...a: unknown[]) => void).call(this, hostname, ...rest);
    },
    (err: Error) => cb(err),
  );
}

async function dnsPromisesResolve4(this: unknown, hostname: string, options?: unknown): Promise<unknown> {
  const r = await resolve4Overlay(hostname);
  if (r !== null) return r;
  if (installed?.egress === 'none') throw Object.assign(new Error(`queryA ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return (originals.dnsPromisesResolve4 as (...a: unknown[]) => Promise<unknown>).call(this, hostname, options);
}

function patchDns(): void {
  const d = dns as unknown as Record<string, unknown>;
  d.lookup = dnsLookup;
  d.resolve4 = dnsResolve4;
  const p = dns.promises as unknown as Record<string, unknown>;
  p.lookup = dnsPromisesLookup;
  p.resolve4 = dnsPromisesResolve4;
  // Resolver instances: overlay names first, then the instance's own servers.
  const cbProto = dns.Resolver.prototype as unknown as Record<string, unknown>;
  const cbResolve4 = cbProto.resolve4 as (...a: unknown[]) => void;
  cbProto.resolve4 = function (this: unknown, hostname: string, ...rest: unknown[]) {
    const cb = rest[rest.length - 1] as (err: Error | null, a?: string[]) => void;
    resolve4Overlay(hostname).then(
      (r) => (r !== null ? cb(null, r) : cbResolve4.call(this, hostname, ...rest)),
      (err: Error) => cb(err),
    );
  };
  const pProto = dns.promises.Resolver.prototype as unknown as Record<string, unknown>;
  const pResolve4 = pProto.resolve4 as (...a: unknown[]) => Promise<unknown>;
  pProto.resolve4 = async function (this: unknown, hostname: string, ...rest: unknown[]) {
    const r = await resolve4Overlay(hostname);
    return r !== null ? r : pResolve4.call(this, hostname, ...rest);
  };
}

/** Install `host` under Node's networking modules (once per process). */
export function installNodeHooks(host: HostNetworking): void {
  if (installed !== null) throw new Error('node hooks already installed');
  installed = host;
  const n = net as unknown as Record<string, unknown>;
  n.connect = connect;
  n.createConnection = connect;
  n.Socket = Socket;
  n.Stream = Socket;
  patchServers();
  (tls as unknown as Record<string, unknown>).connect = tlsConnect;
  http.Agent.prototype.createConnection = connect as typeof http.Agent.prototype.createConnection;
  (dgram as unknown as Record<string, unknown>).createSocket = createSocket;
  patchDns();
  syncBuiltinESMExports();
}
