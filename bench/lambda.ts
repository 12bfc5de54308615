// `lambda` group: start latency through lambda-local, from the SDK's Invoke until the
// handler is entered, for a new execution environment and for a frozen warm one. The
// baseline is node's own start (spawn until its first line runs).

import { spawn } from 'node:child_process';
import { CreateFunctionCommand, GetFunctionConfigurationCommand, InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { startLambdaLocal, writeZip } from '../lambda-local/index.js';
import type { BenchRow } from './report.js';

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
  } finally {
    client.destroy();
    await local.close();
  }
  return rows;
}
