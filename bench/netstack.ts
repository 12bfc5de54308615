// Two stacks back to back in one process over an in-memory link pair: bulk goodput,
// 1-byte request/response rate, connection churn and heap per idle connection.
// Baseline in the same run: Node's own `net` over loopback for bulk and round trips.

import net from 'node:net';
import { Stack, createLinkPair } from '../netstack/index.js';
import type { BenchRow } from './report.js';

interface NetLike {
  createServer: typeof net.createServer;
  connect: typeof net.connect;
}

interface Pair {
  client: NetLike;
  server: NetLike;
  serverHost: string;
  close(): void;
}

function stackPair(mtu: number): Pair {
  const [a, b] = createLinkPair({ mtu });
  const client = new Stack({ address: '10.77.0.2', mtu });
  const server = new Stack({ address: '10.77.0.3', mtu });
  client.attach(a);
  server.attach(b);
  return {
    client: client.net as unknown as NetLike,
    server: server.net as unknown as NetLike,
    serverHost: '10.77.0.3',
    close() {
      client.close();
      server.close();
    },
  };
}

function kernelPair(): Pair {
  return { client: net, server: net, serverHost: '127.0.0.1', close() {} };
}

function listen(api: NetLike, onConn: (s: net.Socket) => void): Promise<{ port: number; srv: net.Server }> {
  return new Promise((resolve, reject) => {
    const srv = api.createServer(onConn);
    srv.once('error', reject);
    srv.listen(0, () => resolve({ port: (srv.address() as net.AddressInfo).port, srv }));
  });
}

function connectTo(api: NetLike, host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = api.connect({ host, port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Bulk goodput of one connection, in Gbit/s. */
export async function bulk(pair: Pair, bytes: number): Promise<number> {
  let received = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const { port, srv } = await listen(pair.server, (s) => {
    s.on('data', (c: Buffer) => {
      received += c.length;
    });
    s.on('end', () => {
      s.end();
      done();
    });
  });
  const sock = await connectTo(pair.client, pair.serverHost, port);
  sock.setNoDelay(true);
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!sock.write(chunk)) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
      resolve();
    };
    pump();
  });
  await finished;
  const secs = (performance.now() - t0) / 1000;
  sock.destroy();
  await new Promise<void>((r) => srv.close(() => r()));
  if (received !== sent) throw new Error(`bulk: received ${received} of ${sent} bytes`);
  return (received * 8) / secs / 1e9;
}

/** 1-byte request/response round trips per second on one connection. */
export async function roundTrips(pair: Pair, seconds: number): Promise<number> {
  const { port, srv } = await listen(pair.server, (s) => {
    s.setNoDelay(true);
    s.on('data', (c: Buffer) => s.write(c));
  });
  const sock = await connectTo(pair.client, pair.serverHost, port);
  sock.setNoDelay(true);
  const one = Buffer.from([0x2a]);
  let count = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await new Promise<void>((resolve) => {
    sock.on('data', () => {
      count++;
      if ((count & 255) === 0 && performance.now() > deadline) return resolve();
      sock.write(one);
    });
    sock.write(one);
  });
  const secs = (performance.now() - t0) / 1000;
  sock.destroy();
  await new Promise<void>((r) => srv.close(() => r()));
  return count / secs;
}

/** Connections opened, used for one byte each way, and closed per second. */
export async function churn(pair: Pair, seconds: number): Promise<number> {
  const { port, srv } = await listen(pair.server, (s) => {
    s.on('data', (c: Buffer) => s.end(c));
  });
  let count = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  while (performance.now() < deadline) {
    await new Promise<void>((resolve, reject) => {
      const s = pair.client.connect({ host: pair.serverHost, port }, () => s.write('x'));
      s.on('data', () => {});
      s.once('error', reject);
      s.on('close', () => resolve());
      s.on('end', () => s.end());
    });
    count++;
  }
  const secs = (performance.now() - t0) / 1000;
  await new Promise<void>((r) => srv.close(() => r()));
  return count / secs;
}

/** Heap bytes per idle established connection (both ends counted once each as one connection). */
export async function idleHeap(mtu: number, n: number): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await new Promise((r) => setImmediate(r));
    }
  };
  const pair = stackPair(mtu);
  const conns: net.Socket[] = [];
  const accepted: net.Socket[] = [];
  const { port, srv } = await listen(pair.server, (s) => accepted.push(s));
  await settle();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i += 100) {
    const batch: Promise<net.Socket>[] = [];
    for (let j = 0; j < 100 && i + j < n; j++) batch.push(connectTo(pair.client, pair.serverHost, port));
    conns.push(...(await Promise.all(batch)));
  }
  while (accepted.length < n) await new Promise((r) => setImmediate(r));
  await settle();
  const after = process.memoryUsage().heapUsed;
  for (const s of conns) s.destroy();
  srv.close();
  pair.close();
  // Leave a collected heap, so that the next case does not pay for these connections.
  await settle();
  // Each established connection has two endpoints in this process.
  return (after - before) / (2 * n);
}

export async function runNetstackBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const progress = (what: string) => process.stderr.write(`  netstack: ${what}\n`);
  const bulkBytes = opts.quick ? 64 << 20 : 512 << 20;
  const secs = opts.quick ? 1 : 3;
  const kernel = kernelPair();
  progress('baseline');
  const kBulk = await bulk(kernel, bulkBytes);
  const kRtt = await roundTrips(kernel, secs);
  const kChurn = await churn(kernel, secs);
  rows.push({ group: 'netstack', name: 'baseline: Node net over loopback', metric: 'bulk Gbit/s', value: kBulk });
  rows.push({ group: 'netstack', name: 'baseline: Node net over loopback', metric: 'round trips/s', value: kRtt });
  rows.push({ group: 'netstack', name: 'baseline: Node net over loopback', metric: 'connections/s', value: kChurn });
  // Unmeasured warm-up, so that the first case (MTU 1500) is not timed while the JIT is
  // still compiling the stack's fast paths.
  progress('warm-up');
  const warm = stackPair(1500);
  await bulk(warm, 16 << 20);
  await roundTrips(warm, 0.2);
  await churn(warm, 0.2);
  warm.close();
  for (const mtu of [1500, 16384, 65535]) {
    const name = `two stacks, MTU ${mtu}`;
    progress(name);
    let pair = stackPair(mtu);
    const g = await bulk(pair, mtu === 1500 ? bulkBytes / 4 : bulkBytes);
    pair.close();
    rows.push({ group: 'netstack', name, metric: 'bulk Gbit/s', value: g, ratio: g / kBulk, goal: mtu === 65535 ? '>= 2 Gbit/s' : undefined, pass: mtu === 65535 ? g >= 2 : undefined });
    pair = stackPair(mtu);
    progress('round trips');
    const r = await roundTrips(pair, secs);
    pair.close();
    rows.push({ group: 'netstack', name, metric: 'round trips/s', value: r, ratio: r / kRtt, goal: '>= 50000', pass: r >= 50000 });
    pair = stackPair(mtu);
    progress('connections');
    const c = await churn(pair, secs);
    pair.close();
    rows.push({ group: 'netstack', name, metric: 'connections/s', value: c, ratio: c / kChurn });
    // 10,000 open connections take about two seconds to set up, so --quick keeps them too.
    const n = 10000;
    progress('idle heap');
    const h = await idleHeap(mtu, n);
    rows.push({ group: 'netstack', name, metric: `heap bytes/idle conn (${n} open)`, value: h, goal: '< 4096', pass: h < 4096 });
  }
  return rows;
}
