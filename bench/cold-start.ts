// Cold starts as users meet them: time from a SYN to a cold local host until the
// connection is established (goal: first start after boot < 100 ms, back-to-back median
// < 60 ms).
// - first start after boot: a fresh relay and local provider booted as `imach up` boots
//   them (the warm pool sized by the manifest, the relay announced once the pool is
//   ready), then one connect at once;
// - back-to-back: ten declared hosts started one after another, each connect sent the
//   moment the previous one is established (nothing waits for the pool to refill);
// - no warm pool: a process spawned per start (what the pool saves);
// - the first start when nothing waits for the pool (what `imach up` did before).
// The relay runs in this process; the client is a host joined by hand in a child process.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_WARM, warmPoolSize } from '../cli/up.js';
import { LocalProvider } from '../hostfn/local-provider.js';
import { silentLogger as hostSilentLogger } from '../hostfn/log.js';
import { createNetstackBundle } from '../hostfn/netstack-bundle.js';
import { RelayLink, isRelayLinkError } from '../transport/relay-link.js';
import type { NetApi } from '../netstack/api/net.js';
import { startRelay, type Relay } from '../relay/index.js';
import { silentLogger } from '../relay/log.js';
import { isManifestError, parseManifest } from '../relay/manifest.js';
import { median, startPeer, type Peer } from './relay.js';
import type { BenchRow } from './report.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const echoApp = join(repo, 'bench', 'apps', 'echo.mjs');
const PORT = 7;
/** Longest the bench waits for the pool at boot (as `imach up`) and for one connect. */
const WAIT_MS = 30_000;

interface Booted {
  relay: Relay;
  provider: LocalProvider;
  probe: Peer;
  /** ms from the start of boot until the relay would be announced and the probe has joined */
  bootMs: number;
  addresses: string[];
  close(): Promise<void>;
}

/** `hosts` echo hosts (10.77.0.60 and up), booted as `imach up` does; `warm` overrides the pool size. */
async function boot(hosts: number, warm?: number): Promise<Booted> {
  const dir = mkdtempSync(join(tmpdir(), 'imach-bench-cold-'));
  const addresses = Array.from({ length: hosts }, (_, i) => `10.77.0.${60 + i}`);
  const yaml =
    'network: 10.77.0.0/16\nrelay:\n  listen: 127.0.0.1:0\nhosts:\n' +
    addresses.map((a, i) => `  echo${i}:\n    run: ${echoApp}\n    address: ${a}\n    idle: 30s\n`).join('');
  writeFileSync(join(dir, 'imach.yaml'), yaml);
  const manifest = parseManifest(yaml, dir, join(dir, 'imach.yaml'));
  if (isManifestError(manifest)) throw new Error(`bench manifest: ${manifest.field}: ${manifest.message}`);
  const t0 = performance.now();
  const provider = new LocalProvider({ output: () => {}, logger: hostSilentLogger, warm: warm ?? warmPoolSize(manifest) });
  const poolReady = provider.ready(WAIT_MS);
  const relay = await startRelay({
    manifest,
    listen: { host: '127.0.0.1', port: 0 },
    secret: 'bench-secret-' + process.pid,
    providers: { local: provider },
    logger: silentLogger,
  });
  // The client joins while the pool loads, so that its connect can go at once.
  const probe = startPeer({ mode: 'host', role: 'connect-probe', url: relay.url, token: relay.mintToken('probe'), target: addresses[0], port: PORT });
  await Promise.all([poolReady, probe.next()]);
  const bootMs = performance.now() - t0;
  return {
    relay,
    provider,
    probe,
    bootMs,
    addresses,
    close: async () => {
      probe.stop();
      await relay.close();
      await provider.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function connectMs(probe: Peer, target: string): Promise<number> {
  probe.go(target);
  const r = (await probe.next()) as { connectMs: number };
  return r.connectMs;
}

/** SYN-to-established of the first start after each of `boots` fresh boots; and the boot times. */
export async function firstStartsAfterBoot(boots: number): Promise<{ starts: number[]; bootMs: number[] }> {
  const starts: number[] = [];
  const bootMs: number[] = [];
  for (let i = 0; i < boots; i++) {
    const b = await boot(1);
    try {
      starts.push(await connectMs(b.probe, b.addresses[0]));
      bootMs.push(b.bootMs);
    } finally {
      await b.close();
    }
  }
  return { starts, bootMs };
}

/** SYN-to-established of `hosts` cold hosts started one after another right after boot; and the boot time. */
export async function backToBackStarts(hosts: number, warm?: number): Promise<{ starts: number[]; bootMs: number }> {
  const b = await boot(hosts, warm);
  try {
    const starts: number[] = [];
    for (const a of b.addresses) starts.push(await connectMs(b.probe, a));
    return { starts, bootMs: b.bootMs };
  } finally {
    await b.close();
  }
}

/**
 * The same first start without waiting for the pool (startRelay and LocalProvider used
 * directly, not as `imach up` boots them): the client is a stack in this process, joined
 * and connecting as soon as the relay listens, while the spare is still loading.
 */
export async function firstStartsNoPoolWait(boots: number): Promise<number[]> {
  const starts: number[] = [];
  for (let i = 0; i < boots; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'imach-bench-cold-'));
    const yaml = `network: 10.77.0.0/16\nrelay:\n  listen: 127.0.0.1:0\nhosts:\n  echo0:\n    run: ${echoApp}\n    address: 10.77.0.60\n    idle: 30s\n`;
    const manifest = parseManifest(yaml, dir, join(dir, 'imach.yaml'));
    if (isManifestError(manifest)) throw new Error(`bench manifest: ${manifest.field}: ${manifest.message}`);
    const provider = new LocalProvider({ output: () => {}, logger: hostSilentLogger, warm: 1 });
    const relay = await startRelay({ manifest, listen: { host: '127.0.0.1', port: 0 }, secret: 'bench-secret-' + process.pid, providers: { local: provider }, logger: silentLogger });
    const link = await RelayLink.connect({ url: relay.url, token: relay.mintToken('probe'), logger: hostSilentLogger });
    try {
      if (isRelayLinkError(link)) throw new Error(`bench probe: ${link.message}`);
      const bundle = createNetstackBundle(link.welcome, link);
      const net = bundle.stack.net as NetApi;
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const sock = net.connect({ host: '10.77.0.60', port: PORT });
        sock.once('connect', () => {
          starts.push(performance.now() - t0);
          sock.destroy();
          resolve();
        });
        sock.once('error', reject);
      });
      bundle.stack.close();
    } finally {
      if (!isRelayLinkError(link)) link.close();
      await relay.close();
      await provider.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return starts;
}

export async function runColdStartBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const g = 'cold';
  const rows: BenchRow[] = [];
  const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
  const first = await firstStartsAfterBoot(opts.quick ? 3 : 5);
  rows.push({ group: g, name: `boot as imach up: relay listening, warm pool ready (${list(first.bootMs)})`, metric: 'median ms', value: median(first.bootMs) });
  rows.push({
    group: g,
    name: `SYN to a cold local host until established: first start after boot (${list(first.starts)})`,
    metric: 'median ms',
    value: median(first.starts),
    goal: '< 100',
    pass: median(first.starts) < 100,
  });
  rows.push({ group: g, name: 'same', metric: 'max ms', value: Math.max(...first.starts) });
  const noWait = await firstStartsNoPoolWait(3);
  rows.push({
    group: g,
    name: `same, not waiting for the pool (startRelay and LocalProvider used directly; client in this process; ${list(noWait)})`,
    metric: 'median ms',
    value: median(noWait),
  });
  const hosts = 10;
  const { starts: b2b, bootMs } = await backToBackStarts(hosts);
  rows.push({ group: g, name: `boot as imach up with ${hosts} local hosts (a pool of ${Math.min(MAX_WARM, hosts)} spares)`, metric: 'ms', value: bootMs });
  rows.push({
    group: g,
    name: `same: ${hosts} hosts back to back, pool as imach up sizes it (${list(b2b)})`,
    metric: 'median ms',
    value: median(b2b),
    goal: '< 60',
    pass: median(b2b) < 60,
  });
  rows.push({ group: g, name: 'same', metric: 'max ms', value: Math.max(...b2b) });
  if (!opts.quick) {
    const { starts: one } = await backToBackStarts(hosts, 1);
    rows.push({ group: g, name: `same: ${hosts} hosts back to back, pool of 1 (the provider's default; ${list(one)})`, metric: 'median ms', value: median(one) });
  }
  const { starts: spawned } = await backToBackStarts(opts.quick ? 3 : 5, 0);
  rows.push({ group: g, name: `same: no warm pool, a process spawned per start (${list(spawned)})`, metric: 'median ms', value: median(spawned) });
  return rows;
}
