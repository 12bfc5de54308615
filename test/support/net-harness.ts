// Environments in which the same socket scenario runs: Node's own `net` over 127.0.0.1,
// and the facade (netstack/api/net.ts) over a pair of TCP hosts. A scenario returns what
// it observed; tests compare the facade's observations with Node's.

import { once, type EventEmitter } from 'node:events';
import * as nodeNet from 'node:net';
import type { Duplex } from 'node:stream';
import { createNetApi, type NetApi } from '../../netstack/api/net.js';
import { FakeTcpNetwork, type FakeTcpHost, type FakeTcpOptions } from './net-fake-tcp.js';

/** The surface shared by node:net sockets and facade sockets that scenarios use. */
export interface TestSocket extends Duplex {
  connecting: boolean;
  readonly pending: boolean;
  readonly readyState: string;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily?: string;
  readonly localPort?: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  setTimeout(ms: number, callback?: () => void): unknown;
  setNoDelay(noDelay?: boolean): unknown;
  setKeepAlive(enable?: boolean, initialDelay?: number): unknown;
  resetAndDestroy(): unknown;
  address(): unknown;
}

export interface TestServer extends EventEmitter {
  listen(port: number, host: string, callback?: () => void): unknown;
  address(): unknown;
  close(callback?: (err?: Error) => void): unknown;
  getConnections(callback: (err: Error | null, count: number) => void): unknown;
  readonly listening: boolean;
}

export interface TestServerOptions {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
}

export interface TestConnectOptions {
  port: number;
  host: string;
  allowHalfOpen?: boolean;
  timeout?: number;
  noDelay?: boolean;
}

export interface TestNet {
  createServer(options?: TestServerOptions, listener?: (socket: TestSocket) => void): TestServer;
  connect(options: TestConnectOptions, connectListener?: () => void): TestSocket;
}

export interface NetEnv {
  readonly name: string;
  readonly client: TestNet;
  readonly server: TestNet;
  /** the address clients connect to, and servers listen on */
  readonly serverHost: string;
  /** more bytes than every buffer between a writer and a reader that does not read */
  readonly bulkBytes: number;
  close(): Promise<void>;
}

export interface NetEnvFactory {
  readonly name: string;
  create(): Promise<NetEnv>;
}

export const nodeEnvFactory: NetEnvFactory = {
  name: 'node:net',
  async create() {
    const net = nodeNet as unknown as TestNet;
    return { name: 'node:net', client: net, server: net, serverHost: '127.0.0.1', bulkBytes: 64 << 20, close: async () => {} };
  },
};

export interface FakeEnv extends NetEnv {
  readonly network: FakeTcpNetwork;
  readonly clientHost: FakeTcpHost;
  readonly serverTcp: FakeTcpHost;
  readonly clientApi: NetApi;
  readonly serverApi: NetApi;
}

export const CLIENT_ADDRESS = '10.77.0.2';
export const SERVER_ADDRESS = '10.77.0.3';

/** The facade over the in-memory contract model; `names` answer lookups. */
export function createFakeEnv(options: FakeTcpOptions = {}, names: Record<string, string> = {}): FakeEnv {
  const network = new FakeTcpNetwork();
  const clientHost = network.host(CLIENT_ADDRESS, options);
  const serverTcp = network.host(SERVER_ADDRESS, options);
  const lookup = async (name: string): Promise<string> => {
    const a = names[name];
    if (a === undefined) throw Object.assign(new Error(`no such host ${name}`), { code: 'ENOTFOUND' });
    return a;
  };
  const clientApi = createNetApi({ tcp: clientHost, lookup, address: CLIENT_ADDRESS });
  const serverApi = createNetApi({ tcp: serverTcp, lookup, address: SERVER_ADDRESS });
  return {
    name: 'facade over the contract model',
    network,
    clientHost,
    serverTcp,
    clientApi,
    serverApi,
    client: clientApi as unknown as TestNet,
    server: serverApi as unknown as TestNet,
    serverHost: SERVER_ADDRESS,
    bulkBytes: 4 << 20,
    close: async () => network.close(),
  };
}

export const fakeEnvFactory: NetEnvFactory = {
  name: 'facade over the contract model',
  create: async () => createFakeEnv(),
};

/** Tracks what a scenario opens so that it is closed whatever happens. */
export class Resources {
  private readonly sockets = new Set<TestSocket>();
  private readonly servers = new Set<TestServer>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();

  socket<T extends TestSocket>(s: T): T {
    this.sockets.add(s);
    s.on('error', () => {});
    return s;
  }

  server<T extends TestServer>(s: T): T {
    this.servers.add(s);
    return s;
  }

  /** Resolves after `ms` (a wait, never an assertion about time). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const closing: Promise<unknown>[] = [];
    for (const s of this.sockets) {
      if (!s.destroyed) {
        closing.push(once(s, 'close').catch(() => {}));
        s.destroy();
      }
    }
    for (const srv of this.servers) {
      if (srv.listening) closing.push(new Promise<void>((resolve) => srv.close(() => resolve())));
    }
    await Promise.all(closing);
    this.sockets.clear();
    this.servers.clear();
  }
}

/** Resolves on 'close' (events.once would reject on an 'error' first). */
export function closed(s: EventEmitter): Promise<void> {
  return new Promise((resolve) => s.once('close', () => resolve()));
}

/** Listen on an ephemeral port of env.serverHost. */
export async function listen(env: NetEnv, server: TestServer): Promise<number> {
  server.listen(0, env.serverHost);
  await once(server, 'listening');
  const a = server.address() as { port: number };
  return a.port;
}

/** Run a scenario in a fresh environment and close everything it opened. */
export async function runScenario<T>(
  factory: NetEnvFactory,
  scenario: (env: NetEnv, res: Resources) => Promise<T>,
): Promise<T> {
  const env = await factory.create();
  const res = new Resources();
  try {
    return await scenario(env, res);
  } finally {
    await res.close();
    await env.close();
  }
}

/** Records events as short strings; consecutive 'data' events collapse into one. */
export function recordEvents(emitter: EventEmitter, names: readonly string[], out: string[], prefix = ''): void {
  for (const name of names) {
    emitter.on(name, (...args: unknown[]) => {
      let entry = prefix + name;
      if (name === 'close' && typeof args[0] === 'boolean') entry += `:${args[0]}`;
      if (name === 'error') entry += `:${String((args[0] as { code?: string }).code ?? (args[0] as Error).message)}`;
      if (name === 'data' && out[out.length - 1] === entry) return;
      out.push(entry);
    });
  }
}

/** Deterministic test bytes: byte i of the stream is (i * 7 + 3) mod 251. */
export function patternBytes(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = ((offset + i) * 7 + 3) % 251;
  return b;
}

/** Checks bytes against patternBytes as they stream in. */
export class PatternChecker {
  received = 0;
  mismatches = 0;
  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== ((this.received + i) * 7 + 3) % 251) this.mismatches++;
    }
    this.received += chunk.length;
  }
}
