// HTTP requests/s and latency of the same express app (bench/apps/express-app.mjs), loaded
// by autocannon from a kernel joined through TUN (`imach join`), in a network namespace
// made for the run: through the overlay (the app is a `command:` host under the register
// module, behind the real relay) against the same app on kernel loopback, same run.
// Needs root, /dev/net/tun and the TUN addon; without them it returns rows saying why.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent, LineProcess, interopBlocker, startJoin } from '../test/support/interop-netns.js';
import { NetNs } from '../test/support/join-netns.js';
import { appProcess, expressHost } from './express-host.js';
import type { BenchRow } from './report.js';

const GROUP = 'http';
const AUTOCANNON = fileURLToPath(new URL('../../node_modules/autocannon/autocannon.js', import.meta.url));
const PROBE = fileURLToPath(new URL('../../bench/apps/latency-probe.mjs', import.meta.url));

function note(msg: string): void {
  process.stderr.write(`bench http: ${msg}\n`);
}

interface Load {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
}

/** Run autocannon inside the namespace against `url`. */
async function autocannon(ns: NetNs, url: string, connections: number, secs: number): Promise<Load> {
  const proc = new LineProcess(
    spawn('ip', ['netns', 'exec', ns.name, process.execPath, AUTOCANNON, '-c', String(connections), '-d', String(secs), '-j', url], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
    'autocannon',
  );
  await proc.exited;
  const r = proc.lines.find((o) => typeof o.requests === 'object') as
    | { requests: { average: number }; latency: { p50: number; p90: number; p99: number }; non2xx?: number; errors?: number }
    | undefined;
  if (r === undefined) throw new Error(`autocannon printed no result: ${proc.stderr.slice(-500)}`);
  if ((r.errors ?? 0) > 0 || (r.non2xx ?? 0) > 0) note(`${url}: ${r.errors ?? 0} errors, ${r.non2xx ?? 0} non-2xx`);
  return { rps: r.requests.average, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99 };
}

/** One connection, sequential requests, latency in microseconds (latency-probe.mjs). */
async function probe(ns: NetNs, url: string, requests: number): Promise<Load> {
  const proc = new LineProcess(
    spawn('ip', ['netns', 'exec', ns.name, process.execPath, PROBE, url, String(requests)], { stdio: ['pipe', 'pipe', 'pipe'] }),
    'latency probe',
  );
  await proc.exited;
  const r = proc.lines.find((o) => typeof o.p50 === 'number') as Load | undefined;
  if (r === undefined) throw new Error(`the latency probe printed no result: ${proc.stderr.slice(-500)}`);
  return r;
}

function rowsOf(name: string, load: Load, base: Load | undefined, unit: 'ms' | 'us'): BenchRow[] {
  return [
    { group: GROUP, name, metric: 'requests/s', value: load.rps, ...(base ? { ratio: load.rps / base.rps } : {}) },
    { group: GROUP, name, metric: `p50 ${unit}`, value: load.p50 },
    { group: GROUP, name, metric: `p90 ${unit}`, value: load.p90 },
    { group: GROUP, name, metric: `p99 ${unit}`, value: load.p99 },
  ];
}

export async function runHttpBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const secs = opts.quick ? 3 : 10;
  const blocker = await interopBlocker([]);
  if (blocker) return [{ group: GROUP, name: 'express through TUN and the relay', metric: `skipped: ${blocker}`, value: 0 }];
  const made = await NetNs.create();
  if (typeof made === 'string') return [{ group: GROUP, name: 'express through TUN and the relay', metric: `skipped: ${made}`, value: 0 }];
  const ns = made;
  const procs: LineProcess[] = [];
  const rows: BenchRow[] = [];
  try {
    const relay = Agent.spawn(ns, 'relay', ['65535']);
    procs.push(relay);
    const r = await relay.ready();
    const tokens = r.tokens as Record<string, string>;
    const join = await startJoin(ns, ['--relay', String(r.url), '--token', tokens.laptop!, '--dev', 'imhttp0']);
    procs.push(join.proc);
    const host = expressHost(ns, String(r.url), tokens.web!);
    procs.push(host);
    const kernel = appProcess(ns, { PORT: '3001', LISTEN_HOST: '127.0.0.1' }, false, 'express on loopback');
    procs.push(kernel);
    await host.waitFor((o) => o.text === 'ready', 'the host app ready', 30_000);
    await kernel.waitFor((o) => o.text === 'ready', 'the loopback app ready', 30_000);
    const joined = host.lines.map((o) => String(o.text)).join('\n');
    const address = /address=(\d+\.\d+\.\d+\.\d+)/.exec(joined + host.stderr)?.[1];
    if (address === undefined) throw new Error(`no address in the host's log: ${joined} ${host.stderr}`);
    const overlayUrl = `http://${address}:3000/`;
    const loopbackUrl = 'http://127.0.0.1:3001/';
    // warm-up: JIT of both apps and the path
    await autocannon(ns, overlayUrl, 10, 2);
    await autocannon(ns, loopbackUrl, 10, 2);
    const base = await autocannon(ns, loopbackUrl, 100, secs);
    const over = await autocannon(ns, overlayUrl, 100, secs);
    rows.push(...rowsOf('express, 100 keep-alive connections (autocannon): baseline kernel loopback', base, undefined, 'ms'));
    const overRows = rowsOf('express, 100 keep-alive connections (autocannon): TUN + relay + host', over, base, 'ms');
    Object.assign(overRows[0]!, { goal: '>= 0.5x loopback', pass: over.rps / base.rps >= 0.5 });
    rows.push(...overRows);
    // -c1: sequential requests on one connection, latency in microseconds
    const requests = opts.quick ? 1000 : 5000;
    const base1 = await probe(ns, loopbackUrl, requests);
    const over1 = await probe(ns, overlayUrl, requests);
    rows.push(...rowsOf('express, 1 keep-alive connection: baseline kernel loopback', base1, undefined, 'us'));
    const over1Rows = rowsOf('express, 1 keep-alive connection: TUN + relay + host', over1, base1, 'us');
    Object.assign(over1Rows[1]!, { ratio: over1.p50 / base1.p50, goal: '<= 2x loopback p50', pass: over1.p50 <= 2 * base1.p50 });
    rows.push(...over1Rows);
  } catch (err) {
    rows.push({ group: GROUP, name: 'express through TUN and the relay', metric: `failed: ${(err as Error).message.slice(0, 300)}`, value: 0 });
  } finally {
    for (const p of procs.reverse()) {
      p.child.kill('SIGTERM');
      await p.stop('SIGKILL', 2000);
    }
    await ns.remove();
  }
  return rows;
}
