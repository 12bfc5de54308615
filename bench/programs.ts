// `programs` group: unmodified Linux programs as hosts through the preload library.
// redis-benchmark (50 clients, no pipelining, GET and SET) against redis-server, both as
// `command:` hosts (the client in one host, the server in another, every byte through both
// hosts' stacks and the relay), against the same two programs on kernel loopback.
// Needs redis-server and redis-benchmark (Debian redis-server, redis-tools) and the built
// library; without them the group says so in one row. The client starts redis-server with
// a PING before it measures. pgbench is not measured yet.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProvider } from '../hostfn/local-provider.js';
import { PRELOAD_LIB_PATH } from '../hostfn/preload-host.js';
import { isManifestError, parseManifest, startRelay, type Provider } from '../relay/index.js';
import { silentLogger } from '../relay/log.js';
import { silentLogger as silentHostLogger } from '../hostfn/log.js';
import type { BenchRow } from './report.js';

const G = 'programs';

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** `SET: 1234.5 requests per second` lines of redis-benchmark -q (its \r progress dropped). */
function parseRates(text: string): Map<string, number> {
  const rates = new Map<string, number>();
  for (const m of text.replace(/\r/g, '\n').matchAll(/^(SET|GET): ([\d.]+) requests per second/gm)) rates.set(m[1]!, Number(m[2]));
  return rates;
}

async function loopback(requests: number): Promise<Map<string, number>> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 500));
    const res = spawnSync('redis-benchmark', ['-p', String(port), '-c', '50', '-n', String(requests), '-t', 'get,set', '-q'], { encoding: 'utf8', timeout: 300_000 });
    return parseRates(res.stdout ?? '');
  } finally {
    server.kill('SIGKILL');
  }
}

async function overlay(requests: number): Promise<Map<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'imach-bench-programs-'));
  const m = parseManifest(
    `
hosts:
  kv:
    command: redis-server --port 6379 --bind 0.0.0.0 --save "" --appendonly no --protected-mode no --dir ${dir}
    idle: 300s
  bench:
    command: [sh, -c, "redis-cli -h kv ping >/dev/null; redis-benchmark -h kv -p 6379 -c 50 -n ${requests} -t get,set -q | tr '\\\\r' '\\\\n' | grep 'per second'"]
    address: 10.77.0.90
    idle: 300s
`,
    dir,
    join(dir, 'imach.yaml'),
  );
  if (isManifestError(m)) throw new Error(`programs bench manifest: ${m.message}`);
  const lines: string[] = [];
  const local = new LocalProvider({ logger: silentHostLogger, stopGraceMs: 2000, output: (host, _s, line) => void (host === 'bench' && lines.push(line)) });
  let ended: () => void = () => {};
  const benchEnded = new Promise<void>((r) => (ended = r));
  const provider: Provider = {
    name: 'local',
    async start(launch) {
      const inst = await local.start(launch);
      if (launch.host === 'bench') void inst.exited.then(() => ended());
      return { exited: inst.exited, stop: () => inst.stop() };
    },
  };
  const relay = await startRelay({ manifest: m, listen: { host: '127.0.0.1', port: 0 }, secret: 'bench-' + Math.random(), providers: { local: provider }, logger: silentLogger });
  try {
    await relay.ping('10.77.0.90').catch(() => 0);
    await Promise.race([benchEnded, new Promise((r) => setTimeout(r, 600_000))]);
    return parseRates(lines.join('\n'));
  } finally {
    await relay.close().catch(() => {});
    await local.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runProgramsBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const missing = ['redis-server', 'redis-benchmark'].filter((t) => !has(t));
  if (!existsSync(PRELOAD_LIB_PATH)) missing.push(`the preload library (${PRELOAD_LIB_PATH})`);
  if (missing.length > 0) return [{ group: G, name: `not run: ${missing.join(', ')} missing`, metric: '-', value: 0 }];
  const requests = opts.quick ? 10_000 : 100_000;
  const base = await loopback(requests);
  const ours = await overlay(requests);
  const rows: BenchRow[] = [];
  for (const t of ['GET', 'SET']) {
    const b = base.get(t) ?? NaN;
    const o = ours.get(t) ?? NaN;
    rows.push({ group: G, name: `redis-benchmark ${t}, 50 clients, kernel loopback (baseline)`, metric: 'requests/s', value: b });
    rows.push({ group: G, name: `redis-benchmark ${t}, 50 clients, client and redis-server as preloaded hosts through the relay`, metric: 'requests/s', value: o, ratio: o / b, goal: '>= 0.5x', pass: o / b >= 0.5 });
  }
  return rows;
}
