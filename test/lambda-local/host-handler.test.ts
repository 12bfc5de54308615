// The project's host handler (hostfn/lambda.ts) as a Lambda function in lambda-local,
// run by the project's Runtime API client, started by a real relay through the SDK.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateFunctionCommand, InvokeCommand } from '@aws-sdk/client-lambda';
import { LOCAL_CODE_BUCKET } from '../../lambda-local/index.js';
import type { Provider } from '../../relay/index.js';
import { joinTestHost, startE2eApp, waitFor, type E2eApp, type TestHost } from '../support/e2e-harness.js';
import { TEST_ROLE, payloadJson, payloadText, startLambdaFixture, waitActive, type LambdaFixture } from '../support/lambda-local-fixture.js';

const HOSTFN_DIR = fileURLToPath(new URL('../../hostfn/', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

const ECHO = `export default ({ net, log }) => {
  net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(7);
  log.info('echo up');
};
`;

const MANIFEST = `network: 10.77.0.0/16
hosts:
  lhost:
    run: ./echo.mjs
    address: 10.77.0.40
    idle: 1500ms
`;

interface HandlerResult {
  host: string | null;
  code: number;
  reason: string;
}

describe('lambda-local: the host handler (hostfn/lambda.ts) as a function, started by a relay', function () {
  this.timeout(60_000);
  let f: LambdaFixture;
  let app: E2eApp;
  let me: TestHost;
  const results: (HandlerResult | string)[] = [];
  let functionName = 'imach-host';
  let packageDir: string;

  before(async () => {
    f = await startLambdaFixture();
    await f.client.send(
      new CreateFunctionCommand({
        FunctionName: 'imach-host',
        Runtime: 'nodejs20.x',
        Role: TEST_ROLE,
        Handler: 'lambda.handler',
        Code: { S3Bucket: LOCAL_CODE_BUCKET, S3Key: HOSTFN_DIR },
        Timeout: 30,
        MemorySize: 512,
      }),
    );
    await waitActive(f, 'imach-host');
    // the same handler under provided.al2023: a package with hostfn/bootstrap at its root
    packageDir = mkdtempSync(join(tmpdir(), 'imach-host-pkg-'));
    copyFileSync(join(REPO, 'hostfn', 'bootstrap'), join(packageDir, 'bootstrap'));
    symlinkSync(join(REPO, 'dist'), join(packageDir, 'dist'));
    symlinkSync(join(REPO, 'node_modules'), join(packageDir, 'node_modules'));
    await f.client.send(
      new CreateFunctionCommand({
        FunctionName: 'imach-host-custom',
        Runtime: 'provided.al2023',
        Role: TEST_ROLE,
        Handler: 'dist/hostfn/lambda.handler',
        Code: { S3Bucket: LOCAL_CODE_BUCKET, S3Key: packageDir },
        Timeout: 30,
      }),
    );
    await waitActive(f, 'imach-host-custom');
    // what a LambdaProvider does: one RequestResponse invocation per start, the launch as the event
    const lambda: Provider = {
      name: 'local',
      async start(launch) {
        const exited = f.client.send(new InvokeCommand({ FunctionName: functionName, Payload: Buffer.from(JSON.stringify(launch)) })).then(
          (r) => {
            if (r.FunctionError) {
              results.push(`function error: ${payloadText(r.Payload)}`);
              return { code: 1, reason: 'function error' };
            }
            const res = payloadJson(r.Payload) as HandlerResult;
            results.push(res);
            return { code: res.code, reason: res.reason };
          },
          (err: Error) => {
            results.push(`invoke failed: ${err.message}`);
            return { code: null, reason: err.message };
          },
        );
        return { exited, stop: () => exited.then(() => {}) };
      },
    };
    app = await startE2eApp(MANIFEST, { 'echo.mjs': ECHO }, { providers: { local: lambda } });
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600), { backoffMaxMs: 500, giveUpAfterMs: 30_000 });
  });
  after(async () => {
    me?.close();
    await app?.close();
    await f?.close();
    if (packageDir) rmSync(packageDir, { recursive: true, force: true });
  });

  const host = () => app.relay.hosts().find((h) => h.name === 'lhost')!;

  it('a ping starts the host in a new environment; it joins and answers; idle, it drains and the invocation returns', async () => {
    const g = await app.relay.ping('lhost', 20_000);
    assert.equal(g.address, '10.77.0.40');
    assert.equal(host().state, 'running');
    const rtt = await me.ping('10.77.0.40', 10_000);
    assert.ok(rtt >= 0);
    assert.equal(f.local.stats().coldStarts, 1);
    await waitFor(() => results.length === 1, 'the invocation to return after the idle drain', 20_000);
    assert.equal(typeof results[0], 'object', String(results[0]));
    assert.deepEqual(results[0], { host: 'lhost', code: 0, reason: (results[0] as HandlerResult).reason });
    assert.match((results[0] as HandlerResult).reason, /drain|idle/);
    await waitFor(() => host().state === 'cold', 'lhost released');
    assert.ok(app.relay.events().some((e) => e.host === 'lhost' && e.type === 'released'));
  });

  it('the next start reuses the frozen environment (warm) and the host answers again', async () => {
    await app.relay.ping('lhost', 20_000);
    assert.equal(await me.ping('10.77.0.40', 10_000) >= 0, true);
    assert.equal(f.local.stats().coldStarts, 1);
    assert.equal(f.local.stats().warmStarts, 1);
    await waitFor(() => results.length === 2, 'the second invocation to return', 20_000);
    assert.equal((results[1] as HandlerResult).code, 0, JSON.stringify(results[1]));
  });

  it('runs the same way under provided.al2023 with the project\'s bootstrap (hostfn/bootstrap)', async () => {
    await waitFor(() => host().state === 'cold', 'lhost released');
    functionName = 'imach-host-custom';
    const cold = f.local.stats().coldStarts;
    await app.relay.ping('lhost', 20_000);
    assert.ok((await me.ping('10.77.0.40', 10_000)) >= 0);
    assert.equal(f.local.stats().coldStarts, cold + 1);
    await waitFor(() => results.length === 3, 'the third invocation to return', 20_000);
    assert.equal(typeof results[2], 'object', String(results[2]));
    assert.deepEqual(results[2], { host: 'lhost', code: 0, reason: (results[2] as HandlerResult).reason });
  });
});
