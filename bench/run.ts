// `npm run bench`: every benchmark group, each against a baseline measured in the same run.

import { parseArgs } from 'node:util';
import { printTable, writeResults, type BenchRow } from './report.js';

const usage = `usage: npm run bench -- [--only GROUP[,GROUP]] [--quick]

Groups: netstack (two stacks in one process), micro (checksum, IPv4 and TCP header parse
and emit, with Benchmark.js), codec (the WebSocket codec: what masking costs), relay (hosts
through the relay), capture (relay forwarding with and without a running capture), cold (SYN to a cold local host: first start after boot, back to back),
join (a kernel through TUN; needs root, /dev/net/tun and the addon),
lambda (start latency through lambda-local), http (express with autocannon through TUN: a
command: host against kernel loopback; needs root, /dev/net/tun and the addon),
queue (the relay's per-destination queue: 1 MiB responses to 400 connections through TUN,
per queue size: drops and p99; same needs as http), programs (redis-benchmark against
redis-server, both preloaded hosts, against kernel loopback; needs redis-server,
redis-tools and the preload library).
  --only   run only these groups (default: all)
  --quick  shorter runs, smaller transfers (figures are noisier)
  --help   this text`;

type Group = (opts: { quick: boolean }) => Promise<BenchRow[]>;

async function groups(): Promise<Record<string, Group>> {
  const found: Record<string, Group> = {};
  found.netstack = (await import('./netstack.js')).runNetstackBench;
  found.micro = (await import('./micro.js')).runMicroBench;
  found.codec = (await import('./codec.js')).runCodecBench;
  for (const [name, file, fn] of [
    ['relay', './relay.js', 'runRelayBench'],
    ['capture', './capture.js', 'runCaptureBench'],
    ['cold', './cold-start.js', 'runColdStartBench'],
    ['join', './join.js', 'runJoinBench'],
    ['lambda', './lambda.js', 'runLambdaBench'],
    ['http', './http.js', 'runHttpBench'],
    ['queue', './queue.js', 'runQueueBench'],
    ['programs', './programs.js', 'runProgramsBench'],
  ] as const) {
    try {
      const mod = (await import(file)) as Record<string, Group>;
      if (typeof mod[fn] === 'function') found[name] = mod[fn];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    }
  }
  return found;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: { only: { type: 'string' }, quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  const all = await groups();
  const wanted = values.only ? values.only.split(',') : Object.keys(all);
  for (const w of wanted) {
    if (!all[w]) {
      process.stderr.write(`bench: unknown group '${w}' (have: ${Object.keys(all).join(', ')})\n`);
      return 2;
    }
  }
  if (!(globalThis as { gc?: unknown }).gc) process.stderr.write('bench: run with node --expose-gc for stable heap figures\n');
  const rows: BenchRow[] = [];
  for (const w of wanted) {
    process.stderr.write(`bench: ${w}...\n`);
    const got = await all[w]({ quick: !!values.quick });
    rows.push(...got);
    process.stdout.write(printTable(got) + '\n\n');
  }
  const file = writeResults(rows);
  process.stdout.write(`results: ${file}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
