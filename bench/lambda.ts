// `lambda` group: start latency through lambda-local, from the SDK's Invoke until the
// handler is entered, for a new execution environment and for a frozen warm one (the
// baseline is node's own start: spawn until its first line runs); and an imach host
// (hostfn/lambda.ts) started by the relay through the LambdaProvider: a gateway ping to
// the cold host until its reply, and a probe's SYN until established, each in a new and
// in a frozen warm environment.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateFunctionCommand,
  GetFunctionConfigurationCommand,
  InvokeCommand,
  LambdaClient,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import { LOCAL_CODE_BUCKET, startLambdaLocal, writeZip } from '../lambda-local/index.js';
import { isManifestError, parseManifest, startRelay, type Provider } from '../relay/index.js';
import { silentLogger } from '../relay/log.js';
import type { BenchRow } from './report.js';
import { startPeer } from './relay.js';
import { LambdaProvider } from '../hostfn/lambda-provider.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const HANDLER = `export const handler = async () => performance.timeOrigin + performance.now();\n`;
const ROLE = 'arn:aws:iam::123456789012:role/bench';

const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Spawn until a bare node's first line runs. */
function nodeStartMs(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const c = spawn(process.execPath, ['-e', 'process.stdout.write(String(performance.timeOrigin + performance.now()))'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.on('error', reject);
    c.on('close', () => resolve(Number(out) - t0));
  });
}

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`lambda bench: ${what}`);
    await sleep(10);
  }
}

/** Gateway ping until reply for an imach host whose provider invokes hostfn/lambda.ts in lambda-local. */
async function hostStarts(client: LambdaClient, endpoint: string, samples: number): Promise<{ cold: number[]; warm: number[]; coldSyn: number[]; warmSyn: number[] }> {
  await client.send(
    new CreateFunctionCommand({
      FunctionName: 'imach-host',
      Runtime: 'nodejs20.x',
      Role: ROLE,
      Handler: 'lambda.handler',
      Code: { S3Bucket: LOCAL_CODE_BUCKET, S3Key: join(repo, 'dist', 'hostfn') },
      Timeout: 60,
      MemorySize: 512,
    }),
  );
  const settled = async () => {
    const c = await client.send(new GetFunctionConfigurationCommand({ FunctionName: 'imach-host' }));
    return c.State === 'Active' && c.LastUpdateStatus === 'Successful';
  };
  await waitUntil(settled, 'imach-host never became Active');
  const dir = mkdtempSync(join(tmpdir(), 'imach-bench-lambda-'));
  const yaml = `network: 10.77.0.0/16\nhosts:\n  echo:\n    run: ${join(repo, 'bench', 'apps', 'echo.mjs')}\n    provider: lambda\n    address: 10.77.0.50\n    idle: 200ms\n`;
  writeFileSync(join(dir, 'imach.yaml'), yaml);
  const manifest = parseManifest(yaml, dir, join(dir, 'imach.yaml'));
  if (isManifestError(manifest)) throw new Error(`bench manifest: ${manifest.message}`);
  let running = 0;
  const provider = new LambdaProvider({ functions: { echo: { function: 'imach-host', region: 'us-east-1', endpoint, timeout: 60 } }, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const lambda: Provider = {
    name: 'lambda',
    async start(launch) {
      running++;
      try {
        const inst = await provider.start(launch);
        void inst.exited.finally(() => running--);
        return inst;
      } catch (e) {
        running--;
        throw e;
      }
    },
  };
  const relay = await startRelay({ manifest, listen: { host: '127.0.0.1', port: 0 }, secret: 'bench-' + process.pid, providers: { lambda }, logger: silentLogger });
  const cold: number[] = [];
  const warm: number[] = [];
  const coldSyn: number[] = [];
  const warmSyn: number[] = [];
  const probe = startPeer({ mode: 'host', role: 'connect-probe', url: relay.url, token: relay.mintToken('probe'), target: '10.77.0.50', port: 7 });
  await probe.next();
  try {
    const idle = () => relay.hosts().find((h) => h.name === 'echo')?.state === 'cold' && running === 0;
    for (let i = 0; i < samples * 2; i++) {
      await waitUntil(idle, 'echo never went cold');
      const fresh = i % 2 === 0;
      if (fresh) {
        // a configuration change retires the frozen environment: the next start is a new one
        await client.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'imach-host', Description: `bench ${i}` }));
        await waitUntil(settled, 'the update never completed');
      } else await sleep(50);
      if (i % 4 < 2) {
        const t0 = performance.now();
        await relay.ping('echo', 20_000);
        (fresh ? cold : warm).push(performance.now() - t0);
      } else {
        // SYN until established, through the LambdaProvider's Invoke
        probe.go('10.77.0.50');
        const r = (await probe.next()) as { connectMs: number };
        (fresh ? coldSyn : warmSyn).push(r.connectMs);
      }
    }
  } finally {
    probe.stop();
    await relay.close();
    await provider.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return { cold, warm, coldSyn, warmSyn };
}

export async function runLambdaBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const g = 'lambda';
  const colds = opts.quick ? 4 : 10;
  const warms = opts.quick ? 10 : 40;
  const local = await startLambdaLocal({ port: 0, stateTransitionMs: 20 });
  const client = new LambdaClient({ endpoint: local.url, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 });
  const rows: BenchRow[] = [];
  try {
    const zip = new Uint8Array(writeZip([{ name: 'index.mjs', data: Buffer.from(HANDLER) }]));
    const create = async (name: string) => {
      await client.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: ROLE, Handler: 'index.handler', Code: { ZipFile: zip } }));
      for (;;) {
        const c = await client.send(new GetFunctionConfigurationCommand({ FunctionName: name }));
        if (c.State === 'Active') return;
        await sleep(10);
      }
    };
    const entry = async (name: string) => {
      const t0 = nowMs();
      const r = await client.send(new InvokeCommand({ FunctionName: name }));
      const t1 = nowMs();
      return { toHandler: Number(Buffer.from(r.Payload ?? new Uint8Array()).toString()) - t0, roundTrip: t1 - t0 };
    };
    const base: number[] = [];
    const coldEntry: number[] = [];
    const coldTrip: number[] = [];
    // alternated with the baseline, so both see the same load on a shared machine
    for (let i = 0; i < colds; i++) {
      base.push(await nodeStartMs());
      await create(`cold${i}`);
      const r = await entry(`cold${i}`);
      coldEntry.push(r.toHandler);
      coldTrip.push(r.roundTrip);
    }
    await create('warm');
    await entry('warm');
    const warmEntry: number[] = [];
    const warmTrip: number[] = [];
    for (let i = 0; i < warms; i++) {
      await sleep(30); // frozen again before each invoke
      const r = await entry('warm');
      warmEntry.push(r.toHandler);
      warmTrip.push(r.roundTrip);
    }
    const b = median(base);
    rows.push({ group: g, name: `baseline: spawn a bare node until its first line runs (${colds} runs)`, metric: 'median ms', value: b });
    rows.push({ group: g, name: `Invoke until handler entry, new environment (${colds} cold starts)`, metric: 'median ms', value: median(coldEntry), ratio: median(coldEntry) / b });
    rows.push({ group: g, name: 'same, Invoke until the SDK has the answer', metric: 'median ms', value: median(coldTrip) });
    rows.push({ group: g, name: `Invoke until handler entry, frozen warm environment (${warms} invokes)`, metric: 'median ms', value: median(warmEntry), goal: '< 10', pass: median(warmEntry) < 10 });
    rows.push({ group: g, name: 'same', metric: 'max ms', value: Math.max(...warmEntry) });
    rows.push({ group: g, name: 'same, Invoke until the SDK has the answer', metric: 'median ms', value: median(warmTrip) });
    const host = await hostStarts(client, local.url, opts.quick ? 4 : 8);
    rows.push({ group: g, name: `imach host on lambda-local: gateway ping to a cold host until its reply, new environment (${host.cold.length} starts)`, metric: 'median ms', value: median(host.cold) });
    rows.push({ group: g, name: `same, frozen warm environment (${host.warm.length} starts)`, metric: 'median ms', value: median(host.warm) });
    rows.push({ group: g, name: `imach host through LambdaProvider: SYN until established to a cold host, new environment (${host.coldSyn.length} starts)`, metric: 'median ms', value: median(host.coldSyn) });
    rows.push({ group: g, name: `same, frozen warm environment (${host.warmSyn.length} starts)`, metric: 'median ms', value: median(host.warmSyn) });
  } finally {
    client.destroy();
    await local.close();
  }
  return rows;
}
