// Execution environments of lambda-local through the real SDK: the Runtime API contract,
// warm reuse, freezing, timeouts, concurrency limits, Event retries, init failures, and
// that nothing is left running.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  CreateFunctionCommand,
  DeleteFunctionConcurrencyCommand,
  InvokeCommand,
  PutFunctionConcurrencyCommand,
  PutFunctionEventInvokeConfigCommand,
  type InvokeCommandOutput,
  type TooManyRequestsException,
} from '@aws-sdk/client-lambda';
import {
  TEST_ROLE,
  createNodeFunction,
  payloadJson,
  payloadText,
  processGone,
  startLambdaFixture,
  waitActive,
  zipOf,
  type LambdaFixture,
} from '../support/lambda-local-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function invoke(f: LambdaFixture, name: string, payload: unknown = {}, extra: Partial<ConstructorParameters<typeof InvokeCommand>[0]> = {}): Promise<InvokeCommandOutput> {
  return f.client.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify(payload)), ...extra }));
}

/** The state letter of /proc/<pid>/stat (T = stopped). */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0];
}

async function waitUntil(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('lambda-local: execution environments', function () {
  this.timeout(30_000);
  let f: LambdaFixture;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'imach-lambda-env-'));
    f = await startLambdaFixture({ initTimeoutMs: 1500, eventRetryDelayMs: 100 });
  });
  after(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives the runtime Lambda\'s environment variables and context, and the deadline of its timeout', async () => {
    await createNodeFunction(
      f,
      'ctx',
      `export const handler = async (event, context) => ({
        event, requestId: context.awsRequestId, arn: context.invokedFunctionArn, remaining: context.getRemainingTimeInMillis(),
        env: Object.fromEntries(['AWS_LAMBDA_FUNCTION_NAME', 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'AWS_LAMBDA_FUNCTION_VERSION', 'AWS_REGION',
          '_HANDLER', 'LAMBDA_TASK_ROOT', 'AWS_LAMBDA_RUNTIME_API', 'AWS_EXECUTION_ENV', 'MINE'].map((k) => [k, process.env[k] ?? null])),
        cwd: process.cwd(),
      });\n`,
      { Timeout: 5, MemorySize: 512, Environment: { Variables: { MINE: 'yes' } } },
    );
    const r = await invoke(f, 'ctx', { n: 1 });
    const p = payloadJson(r.Payload) as { event: unknown; requestId: string; arn: string; remaining: number; env: Record<string, string | null>; cwd: string };
    assert.deepEqual(p.event, { n: 1 });
    assert.match(p.requestId, /^[0-9a-f-]{36}$/);
    assert.equal(p.arn, 'arn:aws:lambda:us-east-1:123456789012:function:ctx');
    assert.ok(p.remaining > 4000 && p.remaining <= 5000, `remaining ${p.remaining}`);
    assert.equal(p.env.AWS_LAMBDA_FUNCTION_NAME, 'ctx');
    assert.equal(p.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, '512');
    assert.equal(p.env.AWS_LAMBDA_FUNCTION_VERSION, '$LATEST');
    assert.equal(p.env.AWS_REGION, 'us-east-1');
    assert.equal(p.env._HANDLER, 'index.handler');
    assert.equal(p.env.AWS_EXECUTION_ENV, 'AWS_Lambda_nodejs20.x');
    assert.equal(p.env.MINE, 'yes');
    assert.match(p.env.AWS_LAMBDA_RUNTIME_API ?? '', /^127\.0\.0\.1:\d+$/);
    assert.equal(p.env.LAMBDA_TASK_ROOT, p.cwd);
  });

  it('reuses a warm environment, frozen (SIGSTOP) between invocations', async () => {
    await createNodeFunction(f, 'warm', `let n = 0;\nexport const handler = async () => ({ pid: process.pid, n: ++n });\n`);
    const cold = f.local.stats().coldStarts;
    const a = payloadJson((await invoke(f, 'warm')).Payload) as { pid: number; n: number };
    await waitUntil(() => processState(a.pid) === 'T', 'the environment to be frozen');
    const b = payloadJson((await invoke(f, 'warm')).Payload) as { pid: number; n: number };
    assert.equal(b.pid, a.pid);
    assert.equal(b.n, 2);
    assert.equal(f.local.stats().coldStarts, cold + 1);
  });

  it('a frozen environment\'s timers do not run: an interval counts only thawed time', async () => {
    await createNodeFunction(
      f,
      'ticker',
      `let ticks = 0, timer = null;
      export const handler = async () => {
        if (!timer) { timer = setInterval(() => ticks++, 20); await new Promise((r) => setTimeout(r, 200)); }
        return ticks;
      };\n`,
    );
    const first = payloadJson((await invoke(f, 'ticker')).Payload) as number;
    assert.ok(first >= 2 && first <= 11, `ticks in 200 ms: ${first}`);
    await sleep(1000);
    const second = payloadJson((await invoke(f, 'ticker')).Payload) as number;
    // 1 s unfrozen would add about 50 ticks; frozen, the one overdue tick and a few around the freeze (more on a loaded machine)
    assert.ok(second - first <= 10, `ticks while frozen: ${second - first}`);
  });

  it('a handler error is FunctionError Unhandled with the error, and the environment stays warm', async () => {
    await createNodeFunction(f, 'thrower', `export const handler = async () => { throw new TypeError('boom'); };\n`);
    const r = await invoke(f, 'thrower');
    assert.equal(r.StatusCode, 200);
    assert.equal(r.FunctionError, 'Unhandled');
    const p = payloadJson(r.Payload) as { errorType: string; errorMessage: string; trace: string[] };
    assert.equal(p.errorType, 'TypeError');
    assert.equal(p.errorMessage, 'boom');
    assert.ok(p.trace.length > 0);
    const warm = f.local.stats().warmStarts;
    await invoke(f, 'thrower');
    assert.equal(f.local.stats().warmStarts, warm + 1);
  });

  it('a callback-style handler answers through its callback; an error thrown outside the handler\'s promise is the invocation\'s error', async () => {
    await createNodeFunction(f, 'callback', `export const handler = (event, context, callback) => { setTimeout(() => callback(null, { via: 'callback', n: event.n }), 10); };\n`);
    assert.deepEqual(payloadJson((await invoke(f, 'callback', { n: 3 })).Payload), { via: 'callback', n: 3 });
    await createNodeFunction(f, 'stray', `export const handler = () => new Promise(() => { setTimeout(() => { throw new RangeError('stray'); }, 10); });\n`);
    const r = await invoke(f, 'stray');
    assert.equal(r.FunctionError, 'Unhandled');
    assert.deepEqual(
      (({ errorType, errorMessage }) => ({ errorType, errorMessage }))(payloadJson(r.Payload) as { errorType: string; errorMessage: string }),
      { errorType: 'RangeError', errorMessage: 'stray' },
    );
  });

  it('kills the environment at its timeout and answers Task timed out, Unhandled; the next invoke is cold', async () => {
    await createNodeFunction(f, 'slow', `export const handler = async (e) => { if (e.hang) await new Promise(() => setInterval(() => {}, 1000)); return process.pid; };\n`, { Timeout: 1 });
    const pid = payloadJson((await invoke(f, 'slow')).Payload) as number;
    const t0 = Date.now();
    const r = await invoke(f, 'slow', { hang: true });
    const took = Date.now() - t0;
    assert.ok(took >= 950 && took < 3000, `took ${took} ms`);
    assert.equal(r.FunctionError, 'Unhandled');
    const p = payloadJson(r.Payload) as { errorType: string; errorMessage: string };
    assert.equal(p.errorType, 'Sandbox.Timedout');
    assert.match(p.errorMessage, /^RequestId: [0-9a-f-]{36} Error: Task timed out after 1\.00 seconds$/);
    await waitUntil(() => processGone(pid), 'the timed-out environment to be gone');
    const again = payloadJson((await invoke(f, 'slow')).Payload) as number;
    assert.notEqual(again, pid);
  });

  it('a runtime that exits during an invocation is Runtime.ExitError with its status', async () => {
    await createNodeFunction(f, 'quitter', `export const handler = async () => { process.exit(3); };\n`);
    const r = await invoke(f, 'quitter');
    assert.equal(r.FunctionError, 'Unhandled');
    const p = payloadJson(r.Payload) as { errorType: string; errorMessage: string };
    assert.equal(p.errorType, 'Runtime.ExitError');
    assert.match(p.errorMessage, /Runtime exited with error: exit status 3/);
  });

  it('an init error (module throws on load, or no such export) is reported through init/error as Unhandled', async () => {
    await createNodeFunction(f, 'badinit', `throw new Error('cannot start');\n`);
    let r = await invoke(f, 'badinit');
    assert.equal(r.FunctionError, 'Unhandled');
    let p = payloadJson(r.Payload) as { errorType: string; errorMessage: string };
    assert.equal(p.errorType, 'Runtime.ImportModuleError');
    assert.match(p.errorMessage, /cannot start/);
    await createNodeFunction(f, 'noexport', `export const other = () => 1;\n`);
    r = await invoke(f, 'noexport');
    p = payloadJson(r.Payload) as { errorType: string; errorMessage: string };
    assert.equal(r.FunctionError, 'Unhandled');
    assert.equal(p.errorType, 'Runtime.HandlerNotFound');
  });

  it('init is limited (here 1.5 s): a module that loads forever is killed and answered Sandbox.Timedout', async () => {
    await createNodeFunction(f, 'slowinit', `await new Promise(() => setInterval(() => {}, 1000));\nexport const handler = async () => 1;\n`);
    const t0 = Date.now();
    const r = await invoke(f, 'slowinit');
    assert.ok(Date.now() - t0 < 4000);
    assert.equal(r.FunctionError, 'Unhandled');
    assert.equal((payloadJson(r.Payload) as { errorType: string }).errorType, 'Sandbox.Timedout');
  });

  it('a response over 6 MB is FunctionError Unhandled, Function.ResponseSizeTooLarge', async () => {
    await createNodeFunction(f, 'huge', `export const handler = async () => 'x'.repeat(7 * 1024 * 1024);\n`);
    const r = await invoke(f, 'huge');
    assert.equal(r.FunctionError, 'Unhandled');
    assert.equal((payloadJson(r.Payload) as { errorType: string }).errorType, 'Function.ResponseSizeTooLarge');
  });

  it('speaks the Runtime API exactly: next\'s headers, and 400 / 404 for a wrong request id or path', async () => {
    // a bootstrap in Node.js: reports what `next` gave it and what the API answers to bad requests
    const bootstrap = `#!${process.execPath}
const api = 'http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime';
(async () => {
  for (;;) {
    const inv = await fetch(api + '/invocation/next');
    const headers = Object.fromEntries([...inv.headers].filter(([k]) => k.startsWith('lambda-runtime-')));
    const body = await inv.text();
    const probe = async (path, method = 'POST') => {
      const r = await fetch(api + path, { method, body: method === 'POST' ? '{}' : undefined });
      return [r.status, await r.text()];
    };
    const probes = {
      wrongId: await probe('/invocation/not-the-id/response'),
      badEscape: await probe('/invocation/%zz/error'),
      unknown: await probe('/unknown', 'GET'),
    };
    const id = headers['lambda-runtime-aws-request-id'];
    await fetch(api + '/invocation/' + id + '/response', { method: 'POST', body: JSON.stringify({ headers, body, probes, now: Date.now() }) });
  }
})();
`;
    await f.client.send(
      new CreateFunctionCommand({
        FunctionName: 'raw',
        Runtime: 'provided.al2023',
        Role: TEST_ROLE,
        Handler: 'unused',
        Timeout: 8,
        Code: { ZipFile: zipOf({ bootstrap }, ['bootstrap']) },
      }),
    );
    await waitActive(f, 'raw');
    const clientContext = { custom: { who: 'test' } };
    const r = await invoke(f, 'raw', { hello: 'raw' }, { ClientContext: Buffer.from(JSON.stringify(clientContext)).toString('base64') });
    assert.equal(r.FunctionError, undefined, payloadText(r.Payload));
    const p = payloadJson(r.Payload) as { headers: Record<string, string>; body: string; probes: Record<string, [number, string]>; now: number };
    assert.deepEqual(JSON.parse(p.body), { hello: 'raw' });
    assert.equal(p.headers['lambda-runtime-aws-request-id'], r.$metadata.requestId);
    const deadline = Number(p.headers['lambda-runtime-deadline-ms']);
    assert.ok(deadline > p.now + 7000 && deadline <= p.now + 8000, `deadline ${deadline - p.now} ms ahead`);
    assert.equal(p.headers['lambda-runtime-invoked-function-arn'], 'arn:aws:lambda:us-east-1:123456789012:function:raw');
    assert.match(p.headers['lambda-runtime-trace-id'], /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/);
    assert.deepEqual(JSON.parse(p.headers['lambda-runtime-client-context']), clientContext);
    assert.equal(p.probes.wrongId[0], 400);
    assert.equal(JSON.parse(p.probes.wrongId[1]).errorType, 'InvalidRequestID');
    assert.equal(p.probes.badEscape[0], 400);
    assert.equal(p.probes.unknown[0], 404);
  });

  it('X-Amz-Log-Type Tail returns the function\'s output and the REPORT line', async () => {
    await createNodeFunction(f, 'logger', `export const handler = async () => { console.log('hello from the tail'); return 1; };\n`);
    const r = await invoke(f, 'logger', {}, { LogType: 'Tail' });
    const log = Buffer.from(r.LogResult ?? '', 'base64').toString('utf8');
    assert.match(log, /^START RequestId: /);
    assert.match(log, /hello from the tail/);
    assert.match(log, /REPORT RequestId: .*Duration: .*Init Duration/);
    // Lambda's Node.js format: time, request id, level, message
    assert.ok(f.output.some((l) => new RegExp(`^logger: \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\t${r.$metadata.requestId}\\tINFO\\thello from the tail$`).test(l)), f.output.join('\n'));
  });

  it('function output is decoded per stream: a multi-byte character split across reads stays whole', async () => {
    await createNodeFunction(f, 'euro', `export const handler = async () => { process.stdout.write('€'.repeat(100_000) + '\\n'); return 1; };\n`);
    await invoke(f, 'euro');
    // output is read from the environment's pipe as it comes, not before the invoke returns
    const text = (): string => f.output.filter((l) => l.startsWith('euro: €')).map((l) => l.slice('euro: '.length)).join('');
    for (let i = 0; i < 100 && text().length < 100_000; i++) await sleep(50);
    assert.equal(text(), '€'.repeat(100_000));
  });

  it('reserved concurrency: an invoke beyond it is a 429 TooManyRequestsException with Reason; 0 throttles all', async () => {
    await createNodeFunction(f, 'busy', `export const handler = async () => { await new Promise((r) => setTimeout(r, 400)); return 'done'; };\n`);
    await f.client.send(new PutFunctionConcurrencyCommand({ FunctionName: 'busy', ReservedConcurrentExecutions: 1 }));
    const results = await Promise.allSettled([invoke(f, 'busy'), sleep(100).then(() => invoke(f, 'busy'))]);
    assert.equal(results[0].status, 'fulfilled');
    assert.equal(results[1].status, 'rejected');
    const err = (results[1] as PromiseRejectedResult).reason as TooManyRequestsException;
    assert.equal(err.name, 'TooManyRequestsException');
    assert.equal(err.$metadata.httpStatusCode, 429);
    assert.equal(err.Reason, 'ReservedFunctionConcurrentInvocationLimitExceeded');
    assert.equal(err.message, 'Rate Exceeded.');
    await f.client.send(new PutFunctionConcurrencyCommand({ FunctionName: 'busy', ReservedConcurrentExecutions: 0 }));
    await assert.rejects(invoke(f, 'busy'), { name: 'TooManyRequestsException', Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded' });
  });

  it('Event invocations are accepted with 202 and run; a failing one is retried MaximumRetryAttempts times, then discarded', async () => {
    const file = join(dir, 'events.log');
    await createNodeFunction(
      f,
      'events',
      `import { appendFileSync } from 'node:fs';
      export const handler = async (e) => { appendFileSync(${JSON.stringify(file)}, e.tag + '\\n'); if (e.fail) throw new Error('fail'); return 1; };\n`,
    );
    const ok = await invoke(f, 'events', { tag: 'ok' }, { InvocationType: 'Event' });
    assert.equal(ok.StatusCode, 202);
    // events may run concurrently: let the first finish so the file's order is known
    await waitUntil(() => existsSync(file) && readFileSync(file, 'utf8') === 'ok\n', 'the first event to run');
    await f.client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'events', MaximumRetryAttempts: 1 }));
    const discarded = f.local.stats().eventsDiscarded;
    await invoke(f, 'events', { tag: 'bad', fail: true }, { InvocationType: 'Event' });
    await waitUntil(() => f.local.stats().eventsDiscarded === discarded + 1, 'the failing event to be discarded');
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.deepEqual(lines, ['ok', 'bad', 'bad']);
  });

  it('a throttled Event invocation waits in the queue without using an attempt, and runs once concurrency allows', async () => {
    const file = join(dir, 'throttled.log');
    await createNodeFunction(f, 'held', `import { appendFileSync } from 'node:fs';\nexport const handler = async (e) => { appendFileSync(${JSON.stringify(file)}, e.tag + '\\n'); };\n`);
    await f.client.send(new PutFunctionConcurrencyCommand({ FunctionName: 'held', ReservedConcurrentExecutions: 0 }));
    await f.client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'held', MaximumRetryAttempts: 0 }));
    const queued = f.local.stats().eventsQueued;
    assert.equal((await invoke(f, 'held', { tag: 'late' }, { InvocationType: 'Event' })).StatusCode, 202);
    await sleep(500);
    assert.equal(f.local.stats().eventsQueued, queued + 1);
    await f.client.send(new DeleteFunctionConcurrencyCommand({ FunctionName: 'held' }));
    await waitUntil(() => f.local.stats().eventsQueued === queued, 'the held event to run');
    await waitUntil(() => existsSync(file) && readFileSync(file, 'utf8') === 'late\n', 'the held event to be handled once');
    await sleep(300);
    assert.equal(readFileSync(file, 'utf8'), 'late\n');
  });
});

describe('lambda-local: account concurrency, idle reclaim, and close', function () {
  this.timeout(30_000);

  it('the account limit throttles with ConcurrentInvocationLimitExceeded', async () => {
    const f = await startLambdaFixture({ accountConcurrency: 2, minUnreservedConcurrency: 0 });
    try {
      await createNodeFunction(f, 'a', `export const handler = async () => { await new Promise((r) => setTimeout(r, 500)); return 1; };\n`);
      const results = await Promise.allSettled([invoke(f, 'a'), invoke(f, 'a'), sleep(150).then(() => invoke(f, 'a'))]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected']);
      const err = (results[2] as PromiseRejectedResult).reason as TooManyRequestsException;
      assert.equal(err.Reason, 'ConcurrentInvocationLimitExceeded');
      assert.equal(f.local.stats().environments, 2);
    } finally {
      await f.close();
    }
  });

  it('reclaims idle environments after idleEnvironmentMs', async () => {
    const f = await startLambdaFixture({ idleEnvironmentMs: 300 });
    try {
      await createNodeFunction(f, 'idle', `export const handler = async () => process.pid;\n`);
      const pid = payloadJson((await invoke(f, 'idle')).Payload) as number;
      assert.equal(f.local.stats().environments, 1);
      await waitUntil(() => f.local.stats().environments === 0, 'the idle environment to be reclaimed', 5000);
      await waitUntil(() => processGone(pid), 'its process to be gone', 2000);
    } finally {
      await f.close();
    }
  });

  it('a process that dies without close() (uncaught error) takes its environments, frozen ones too, with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'imach-lambda-crash-'));
    const script = join(dir, 'crash.mjs');
    const index = new URL('../../lambda-local/index.js', import.meta.url).href;
    writeFileSync(
      script,
      `import { startLambdaLocal, writeZip } from ${JSON.stringify(index)};
const local = await startLambdaLocal({ port: 0, stateTransitionMs: 10 });
const zip = writeZip([{ name: 'index.mjs', data: Buffer.from('export const handler = async () => process.pid;') }]).toString('base64');
const fn = local.url + '/2015-03-31/functions';
await fetch(fn, { method: 'POST', body: JSON.stringify({ FunctionName: 'c', Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/r', Handler: 'index.handler', Code: { ZipFile: zip } }) });
while ((await (await fetch(fn + '/c/configuration')).json()).State !== 'Active') await new Promise((r) => setTimeout(r, 10));
const pid = await (await fetch(fn + '/c/invocations', { method: 'POST', body: '{}' })).text();
process.stdout.write(pid + ' ' + (await (await fetch(fn + '/c')).json()).Code.Location.slice('file://'.length) + '\\n');
await new Promise((r) => setTimeout(r, 100));
throw new Error('crash without close');
`,
    );
    try {
      const { out, code } = await new Promise<{ out: string; code: number | null }>((resolve) => {
        const c = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d));
        c.on('close', (code) => resolve({ out, code }));
      });
      assert.equal(code, 1);
      const [pidText, codeDir] = out.trim().split(' ');
      const pid = Number(pidText);
      assert.ok(pid > 0, out);
      await waitUntil(() => processGone(pid), 'the frozen environment to be gone', 3000);
      assert.match(codeDir, /lambda-local-code-[^/]+\/c-[0-9a-f]+$/);
      assert.equal(existsSync(dirname(codeDir)), false, 'unpacked code removed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() leaves no environment running: frozen, busy and initializing ones are killed', async () => {
    const f = await startLambdaFixture();
    await createNodeFunction(f, 'frozen', `export const handler = async () => process.pid;\n`);
    await createNodeFunction(f, 'stuck', `export const handler = async () => { await new Promise(() => setInterval(() => {}, 1000)); };\n`, { Timeout: 60 });
    await createNodeFunction(f, 'loading', `await new Promise(() => setInterval(() => {}, 1000));\nexport const handler = async () => 1;\n`);
    const frozenPid = payloadJson((await invoke(f, 'frozen')).Payload) as number;
    const pending = [invoke(f, 'stuck').catch(() => null), invoke(f, 'loading').catch(() => null)];
    await waitUntil(() => f.local.environmentPids().length === 3, 'three environments');
    const pids = f.local.environmentPids();
    assert.ok(pids.includes(frozenPid));
    await f.close();
    await Promise.all(pending);
    for (const pid of pids) assert.ok(processGone(pid), `pid ${pid} still running`);
  });
});
