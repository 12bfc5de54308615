// The relay's per-destination queue (limits.queueBytes) under concurrent 1 MiB responses
// from a host to a kernel joined through TUN (`imach join`), in a network namespace made
// for the run: wrk with 400 connections GETs /1m of the express app (a `command:`
// host behind the real relay), once per queue size, against the same app on kernel
// loopback. Reports requests/s, p99 and the relay's queue-full drops per size.
// Needs root, /dev/net/tun and the TUN addon; without them it returns rows saying why.

import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { Agent, LineProcess, interopBlocker, startJoin } from '../test/support/interop-netns.js';
import { NetNs } from '../test/support/join-netns.js';
import { appProcess, expressHost } from './express-host.js';
import type { BenchRow } from './report.js';

const GROUP = 'queue';
const CONNECTIONS = Number(process.env.IMACH_BENCH_QUEUE_CONNECTIONS ?? 400);
const MIB = 1024 * 1024;
/** the queue sizes measured, in MiB (8: the relay's default before this measurement) */
const QUEUE_MIB = (process.env.IMACH_BENCH_QUEUE_MIB ?? '1,4,8,32').split(',').map(Number);

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** wrk's duration text (e.g. 812.34us, 1.20ms, 4.50s) in ms. */
function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

/** wrk (Debian's `wrk`: a C client, so the client is not what limits) inside the namespace against `url`. */
async function wrk(ns: NetNs, url: string, connections: number, secs: number): Promise<Load> {
  const child = spawn('ip', ['netns', 'exec', ns.name, 'wrk', '-t2', `-c${connections}`, `-d${secs}s`, '--timeout', '30s', '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const pct = (p: string) => wrkMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (code !== 0 || rps === undefined) throw new Error(`wrk exited with ${code}: ${out.slice(-500)}`);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return { rps: Number(rps), p50: pct('50'), p99: pct('99'), errors };
}

async function stopAll(procs: LineProcess[]): Promise<void> {
  for (const p of procs.reverse()) {
    p.child.kill('SIGTERM');
    await p.stop('SIGKILL', 2000);
  }
}

/** One relay with `queueBytes`, join and the host; autocannon against the host; the relay's drops. */
async function throughRelay(ns: NetNs, queueBytes: number, secs: number): Promise<Load & { queueFull: number; delivered: number }> {
  const procs: LineProcess[] = [];
  try {
    const relay = Agent.spawn(ns, 'relay', ['65535', String(queueBytes)]);
    procs.push(relay);
    const r = await relay.ready();
    const tokens = r.tokens as Record<string, string>;
    const join = await startJoin(ns, ['--relay', String(r.url), '--token', tokens.laptop!, '--dev', 'imq0']);
    procs.push(join.proc);
    const host = expressHost(ns, String(r.url), tokens.web!);
    procs.push(host);
    await host.waitFor((o) => o.text === 'ready', 'the host app ready', 30_000);
    const address = /address=(\d+\.\d+\.\d+\.\d+)/.exec(host.lines.map((o) => String(o.text)).join('\n') + host.stderr)?.[1];
    if (address === undefined) throw new Error(`no address in the host's log: ${host.stderr}`);
    const url = `http://${address}:3000/1m`;
    await wrk(ns, url, 10, 1);
    const before = ((await relay.cmd({ cmd: 'counters' })).counters ?? {}) as Record<string, number>;
    const load = await wrk(ns, url, CONNECTIONS, secs);
    const after = ((await relay.cmd({ cmd: 'counters' })).counters ?? {}) as Record<string, number>;
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    return { ...load, queueFull: delta('queue-full'), delivered: delta('packets-delivered') };
  } finally {
    await stopAll(procs);
  }
}

export async function runQueueBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const secs = Number(process.env.IMACH_BENCH_QUEUE_SECONDS ?? (opts.quick ? 5 : 10));
  const blocker = await interopBlocker(['wrk']);
  if (blocker) return [{ group: GROUP, name: 'relay queue under 1 MiB responses', metric: `skipped: ${blocker}`, value: 0 }];
  const made = await NetNs.create();
  if (typeof made === 'string') return [{ group: GROUP, name: 'relay queue under 1 MiB responses', metric: `skipped: ${made}`, value: 0 }];
  const ns = made;
  const rows: BenchRow[] = [];
  const load = () => `load ${loadavg()[0].toFixed(1)}`;
  try {
    const kernel = appProcess(ns, { PORT: '3001', LISTEN_HOST: '127.0.0.1' }, false, 'express on loopback');
    try {
      await kernel.waitFor((o) => o.text === 'ready', 'the loopback app ready', 30_000);
      await wrk(ns, 'http://127.0.0.1:3001/1m', 10, 1);
      const base = await wrk(ns, 'http://127.0.0.1:3001/1m', CONNECTIONS, secs);
      const name = `GET 1 MiB, ${CONNECTIONS} connections (wrk): baseline kernel loopback (${load()}, ${base.errors} errors)`;
      rows.push({ group: GROUP, name, metric: 'requests/s', value: base.rps }, { group: GROUP, name, metric: 'p99 ms', value: base.p99 });
    } finally {
      await stopAll([kernel]);
    }
    for (const mib of QUEUE_MIB) {
      const r = await throughRelay(ns, mib * MIB, secs);
      const name = `same through TUN + relay + host, relay queue ${mib} MiB (${load()}, ${r.errors} errors)`;
      rows.push(
        { group: GROUP, name, metric: 'requests/s', value: r.rps },
        { group: GROUP, name, metric: 'p99 ms', value: r.p99 },
        { group: GROUP, name, metric: 'queue-full drops', value: r.queueFull },
        { group: GROUP, name, metric: 'drops per 1000 delivered', value: r.delivered > 0 ? (1000 * r.queueFull) / r.delivered : 0 },
      );
    }
  } catch (err) {
    rows.push({ group: GROUP, name: 'relay queue under 1 MiB responses', metric: `failed: ${(err as Error).message.slice(0, 300)}`, value: 0 });
  } finally {
    await ns.remove();
  }
  return rows;
}
