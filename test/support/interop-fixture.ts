// Runs inside a network namespace for test/interop and bench/join
// (`ip netns exec <ns> node interop-fixture.js <mode> ...`). It reports JSON lines on
// stdout and takes JSON-line commands on stdin ({"id": n, "cmd": ...}); stdin EOF ends it.
//
//   relay <mtu>           the real relay on 127.0.0.1:<free port>; reports url and tokens
//   relay-app <manifest>  the real relay for a manifest, its hosts started by the local
//                         provider (child processes); reports url, a token for `laptop`,
//                         and each lifecycle event as {event}
//   host <url> <token> [tcp]  a host running netstack on a RelayLink (commands below);
//                         tcp: JSON TcpConfig overrides
//   kernel                the same commands on the kernel's own sockets
//
// Commands: serve {port, bytes, seed} (HTTP/1.1, every GET gets the data); sink {port,
// hash?, pauseMs?} (reports each connection's byte count and SHA-256); upload {host, port,
// bytes, seed, fast?} (fast: a repeated chunk, no hashing, for benchmarks); resetter {port}
// (reads a little, then sends a RST); udpEcho {port}; udpSend {host, port, text};
// connect {host, port}; ping {host} (host mode only); stats.

import { createHash } from 'node:crypto';
import dgramKernel from 'node:dgram';
import netKernel from 'node:net';
import type { Duplex } from 'node:stream';
import { silentLogger } from '../../hostfn/log.js';
import { RelayLink, isRelayLinkError } from '../../transport/relay-link.js';
import { Stack } from '../../netstack/stack.js';
import { LocalProvider } from '../../hostfn/local-provider.js';
import { isManifestError, loadManifest, startRelay } from '../../relay/index.js';
import { silentLogger as relaySilentLogger } from '../../relay/log.js';
import { writeData } from './interop-data.js';

type Obj = Record<string, unknown>;

function report(obj: Obj): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

interface ServerLike {
  listen(port: number, cb: () => void): unknown;
  on(ev: 'error', fn: (err: Error) => void): unknown;
  close(cb?: () => void): unknown;
}

interface NetLike {
  createServer(options: { allowHalfOpen?: boolean }, onConnection: (s: Duplex) => void): ServerLike;
  connect(options: { host: string; port: number; allowHalfOpen?: boolean }, onConnect: () => void): Duplex & { setNoDelay?(b: boolean): unknown };
}

interface UdpLike {
  bind(port: number, cb: () => void): unknown;
  on(ev: 'message', fn: (msg: Buffer, rinfo: { address: string; port: number }) => void): unknown;
  on(ev: 'error', fn: (err: Error) => void): unknown;
  send(msg: Buffer, port: number, address: string, cb?: (err: Error | null) => void): void;
  close(cb?: () => void): unknown;
}

interface Env {
  net: NetLike;
  udp: () => UdpLike;
  ping?: (host: string) => Promise<number>;
  stats?: () => Obj;
  close(): Promise<void>;
}

const closers: (() => void)[] = [];

function serve(env: Env, port: number, bytes: number, seed: number): Promise<number> {
  const server = env.net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', (err) => report({ event: 'served', port, error: err.message }));
    let head = '';
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      s.on('data', () => {});
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\nConnection: close\r\n\r\n`);
      writeData(s, bytes, seed).then(
        (sha256) => {
          s.end();
          report({ event: 'served', port, bytes, sha256 });
        },
        (err: Error) => report({ event: 'served', port, error: err.message }),
      );
    };
    s.on('data', onData);
  });
  return listen(server, port);
}

/** pauseMs: stop reading for that long after the first chunk, so the windows fill up. */
function sink(env: Env, port: number, hash: boolean, pauseMs: number): Promise<number> {
  const server = env.net.createServer({ allowHalfOpen: true }, (s) => {
    const h = hash ? createHash('sha256') : null;
    let bytes = 0;
    let paused = false;
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      h?.update(c);
      if (pauseMs > 0 && !paused) {
        paused = true;
        s.pause();
        const t = setTimeout(() => s.resume(), pauseMs);
        closers.push(() => clearTimeout(t));
      }
    });
    s.on('end', () => {
      report({ event: 'sunk', port, bytes, ...(h ? { sha256: h.digest('hex') } : {}) });
      s.end();
    });
    s.on('error', (err) => report({ event: 'sunk', port, bytes, error: err.message }));
  });
  return listen(server, port);
}

/** Read a little, then abort the connection with a RST. */
function resetter(env: Env, port: number): Promise<number> {
  const server = env.net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.once('data', () => {
      (s as Duplex & { resetAndDestroy(): void }).resetAndDestroy();
      report({ event: 'reset', port });
    });
  });
  return listen(server, port);
}

function listen(server: ServerLike, port: number): Promise<number> {
  closers.push(() => server.close());
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(port, () => resolve(port));
  });
}

/** Write `bytes` as one 64 KiB chunk over and over: no generator or hash cost (benchmarks). */
async function writeRepeated(out: Duplex, bytes: number): Promise<string> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  for (let left = bytes; left > 0; left -= chunk.length) {
    if (!out.write(left >= chunk.length ? chunk : chunk.subarray(0, left))) await new Promise((r) => out.once('drain', r));
  }
  return '';
}

/** Connect, send, half-close; resolves once the peer closes too, with ms from connected to then. */
function upload(env: Env, host: string, port: number, bytes: number, seed: number, fast: boolean): Promise<Obj> {
  return new Promise((resolve) => {
    let sha256 = '';
    let t0 = 0;
    const s = env.net.connect({ host, port, allowHalfOpen: true }, () => {
      t0 = performance.now();
      (fast ? writeRepeated(s, bytes) : writeData(s, bytes, seed)).then(
        (h) => {
          sha256 = h;
          s.end();
        },
        () => {},
      );
    });
    s.on('data', () => {});
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.message, code: err.code }));
    s.on('end', () => resolve({ bytes, ms: performance.now() - t0, ...(fast ? {} : { sha256 }) }));
  });
}

function udpEcho(env: Env, port: number): Promise<number> {
  const u = env.udp();
  u.on('message', (msg, rinfo) => {
    report({ event: 'udp', port, bytes: msg.length, from: `${rinfo.address}:${rinfo.port}` });
    u.send(msg, rinfo.port, rinfo.address, (err) => {
      if (err) report({ event: 'udpEchoError', port, error: err.message, code: (err as NodeJS.ErrnoException).code });
    });
  });
  u.on('error', () => {});
  closers.push(() => u.close());
  return new Promise((resolve) => u.bind(port, () => resolve(port)));
}

function udpSend(env: Env, host: string, port: number, text: string): Promise<Obj> {
  const u = env.udp();
  return new Promise((resolve) => {
    let tries = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (o: Obj) => {
      clearTimeout(timer);
      u.close();
      resolve(o);
    };
    u.on('message', (msg, rinfo) => finish({ reply: msg.toString(), from: `${rinfo.address}:${rinfo.port}`, tries }));
    u.on('error', (err) => finish({ error: err.message }));
    const send = () => {
      if (++tries > 5) return finish({ error: 'no reply', tries: tries - 1 });
      u.send(Buffer.from(text), port, host);
      timer = setTimeout(send, 1000);
    };
    u.bind(0, send);
  });
}

function connect(env: Env, host: string, port: number): Promise<Obj> {
  return new Promise((resolve) => {
    const s = env.net.connect({ host, port }, () => {
      s.destroy();
      resolve({ connected: true });
    });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ code: 'TIMEOUT' });
    }, 15_000);
    s.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ code: err.code ?? err.message });
    });
    s.on('close', () => clearTimeout(timer));
  });
}

async function command(env: Env, c: Obj): Promise<Obj> {
  const n = (k: string) => Number(c[k]);
  const str = (k: string) => String(c[k]);
  switch (c.cmd) {
    case 'serve':
      return { listening: await serve(env, n('port'), n('bytes'), n('seed')) };
    case 'sink':
      return { listening: await sink(env, n('port'), c.hash !== false, Number(c.pauseMs ?? 0)) };
    case 'resetter':
      return { listening: await resetter(env, n('port')) };
    case 'upload':
      return upload(env, str('host'), n('port'), n('bytes'), n('seed'), c.fast === true);
    case 'udpEcho':
      return { listening: await udpEcho(env, n('port')) };
    case 'udpSend':
      return udpSend(env, str('host'), n('port'), str('text'));
    case 'connect':
      return connect(env, str('host'), n('port'));
    case 'ping': {
      if (!env.ping) return { error: 'ping is for host mode' };
      let last: NodeJS.ErrnoException | null = null;
      for (let i = 0; i < 3; i++) {
        try {
          return { rtt: await env.ping(str('host')) };
        } catch (err) {
          last = err as NodeJS.ErrnoException;
        }
      }
      return { code: last?.code, error: last?.message };
    }
    case 'stats':
      return env.stats?.() ?? {};
    default:
      return { error: `unknown command ${String(c.cmd)}` };
  }
}

function commandLoop(env: Env): void {
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let c: Obj;
      try {
        c = JSON.parse(line) as Obj;
      } catch {
        report({ error: `bad command ${line}` });
        continue;
      }
      command(env, c).then(
        (r) => report({ id: c.id, ...r }),
        (err: NodeJS.ErrnoException) => report({ id: c.id, error: err.message, code: err.code }),
      );
    }
  });
  process.stdin.on('end', () => {
    for (const close of closers) close();
    void env.close().then(() => process.exit(0));
  });
}

/** queueBytes: the relay's limits.queueBytes (default: the relay's). A `counters` command line reports its counters. */
async function relayMode(mtu: number, queueBytes: number | undefined): Promise<void> {
  const relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, mtu, logger: relaySilentLogger, ...(queueBytes ? { limits: { queueBytes } } : {}) });
  const tokens: Record<string, string> = {};
  for (const h of ['laptop', 'web', 'phone']) tokens[h] = relay.mintToken(h);
  report({ ready: true, url: relay.url, gateway: relay.gateway, tokens });
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const c = JSON.parse(line) as Obj;
        if (c.cmd === 'counters') report({ id: c.id, counters: relay.counters() });
      } catch {
        report({ error: `bad command ${line}` });
      }
    }
  });
  process.stdin.on('end', () => {
    void relay.close().then(() => process.exit(0));
  });
}

async function relayAppMode(manifestPath: string): Promise<void> {
  const manifest = await loadManifest(manifestPath);
  if (isManifestError(manifest)) throw new Error(`manifest: ${manifest.message}`);
  const provider = new LocalProvider({ logger: silentLogger, output: () => {} });
  // a short reconnect window: segments for a cold host are held only that long after the start
  const relay = await startRelay({
    manifest,
    listen: { host: '127.0.0.1', port: 0 },
    secret: 'interop-relay-app',
    providers: { local: provider },
    limits: { reconnectHoldMs: 500 },
    logger: relaySilentLogger,
  });
  relay.onEvent((event) => report({ event }));
  report({ ready: true, url: relay.url, gateway: relay.gateway, tokens: { laptop: relay.mintToken('laptop') } });
  process.stdin.resume();
  process.stdin.on('end', () => {
    void relay
      .close()
      .then(() => provider.close())
      .then(() => process.exit(0));
  });
}

/** tcpJson: TcpConfig overrides for the host's stack, e.g. {"receiveBufferSize":4194304}. */
async function hostMode(url: string, token: string, tcpJson: string | undefined): Promise<void> {
  const link = await RelayLink.connect({ url, token, logger: silentLogger });
  if (isRelayLinkError(link)) throw new Error(`host could not join: ${link.kind}: ${link.message}`);
  const w = link.welcome;
  const tcp = tcpJson ? (JSON.parse(tcpJson) as Record<string, number | boolean>) : undefined;
  const stack = new Stack({ address: w.address, prefixLength: w.prefixLength, mtu: w.mtu, gateway: w.gateway, logger: silentLogger, ...(tcp ? { tcp } : {}) });
  stack.attach(link);
  const env: Env = {
    net: stack.net as unknown as NetLike,
    udp: () => stack.dgram.createSocket('udp4') as unknown as UdpLike,
    ping: (host) => stack.ping(host, { timeout: 3000 }),
    stats: () => ({ stack: stack.counters, link: link.counters }),
    close: async () => {
      stack.close();
      await link.closeGracefully(500).catch(() => link.close());
    },
  };
  commandLoop(env);
  report({ ready: true, address: w.address, mtu: w.mtu });
}

function kernelMode(): void {
  const env: Env = {
    net: netKernel as unknown as NetLike,
    udp: () => dgramKernel.createSocket('udp4') as unknown as UdpLike,
    close: async () => {},
  };
  commandLoop(env);
  report({ ready: true });
}

const [mode, ...rest] = process.argv.slice(2);
const run =
  mode === 'relay'
    ? relayMode(Number(rest[0] ?? 65535), rest[1] !== undefined ? Number(rest[1]) : undefined)
    : mode === 'relay-app'
      ? relayAppMode(rest[0]!)
    : mode === 'host'
      ? hostMode(rest[0]!, rest[1]!, rest[2])
      : mode === 'kernel'
        ? Promise.resolve(kernelMode())
        : Promise.reject(new Error(`unknown mode ${String(mode)}`));
run.catch((err: NodeJS.ErrnoException) => {
  report({ error: err.message, code: err.code });
  process.exit(1);
});
