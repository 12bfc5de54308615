// `imach deploy` against lambda-local through the real SDK: create, invoke from the
// package, a second deploy changes nothing, --dry-run changes nothing, bad input.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetFunctionConfigurationCommand, GetFunctionEventInvokeConfigCommand } from '@aws-sdk/client-lambda';
import { deployManifest } from '../../cli/deploy.js';
import { LambdaProvider, type LambdaFunctionRef } from '../../hostfn/lambda-provider.js';
import { isManifestError, parseManifest, startRelay, type Manifest, type Relay } from '../../relay/index.js';
import { e2eLogger, joinTestHost, type TestHost } from '../support/e2e-harness.js';
import { TEST_ROLE, startLambdaFixture, type LambdaFixture } from '../support/lambda-local-fixture.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

const ECHO = `export default ({ net }) => {
  net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(7);
};
`;

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('imach deploy against lambda-local', function () {
  this.timeout(60_000);
  let f: LambdaFixture;
  let dir: string;
  let path: string;
  const yaml = (memory: number) => `lambda:
  endpoint: ${f.local.url}
  region: us-east-1
  timeout: 30s
  memory: ${memory}
  role: ${TEST_ROLE}
hosts:
  web:
    run: ./echo.mjs
    provider: lambda
    address: 10.77.0.60
    idle: 2s
  db: ./echo.mjs
`;
  const manifest = (memory: number): Manifest => {
    const m = parseManifest(yaml(memory), dir, path);
    if (isManifestError(m)) throw new Error(m.message);
    return m;
  };

  before(async () => {
    f = await startLambdaFixture();
    dir = mkdtempSync(join(tmpdir(), 'imach-deploy-'));
    path = join(dir, 'imach.yaml');
    writeFileSync(join(dir, 'echo.mjs'), ECHO);
    writeFileSync(path, yaml(256));
  });
  after(async () => {
    await f?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates the function with its event invoke config, waiting until it is Active', async () => {
    const plans = await deployManifest(manifest(256));
    assert.deepEqual(plans.map((p) => [p.function, p.hosts, p.changes]), [['imach-web', ['web'], ['create', 'event-invoke-config']]]);
    const c = await f.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'imach-web' }));
    assert.equal(c.State, 'Active');
    assert.equal(c.MemorySize, 256);
    assert.equal(c.Timeout, 30);
    assert.equal(c.Handler, 'dist/hostfn/lambda.handler');
    assert.equal(c.Environment?.Variables?.IMACH_APP_BASE, dir);
    const eic = await f.client.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'imach-web' }));
    assert.equal(eic.MaximumRetryAttempts, 0);
    assert.equal(eic.MaximumEventAgeInSeconds, 60);
  });

  it('a second deploy changes nothing and says so (imach deploy, text and --json)', async () => {
    const text = await runCli(['deploy', path]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /imach-web\s+web\s+no change/);
    assert.match(text.stdout, /everything is up to date/);
    const json = await runCli(['deploy', path, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout) as { functions: { function: string; changes: string[] }[] };
    assert.deepEqual(out.functions.map((p) => p.changes), [[]]);
  });

  it('--dry-run reports a configuration change and makes none; the deploy then makes it', async () => {
    writeFileSync(path, yaml(512));
    const dry = await runCli(['deploy', path, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /imach-web\s+web\s+would change: configuration: MemorySize/);
    assert.equal((await f.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'imach-web' }))).MemorySize, 256);
    const plans = await deployManifest(manifest(512));
    assert.deepEqual(plans[0]!.changes, ['configuration: MemorySize']);
    assert.equal((await f.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'imach-web' }))).MemorySize, 512);
  });

  it('a changed app is a code update', async () => {
    writeFileSync(join(dir, 'extra.txt'), 'new file\n');
    const plans = await deployManifest(manifest(512));
    assert.deepEqual(plans[0]!.changes, ['code']);
    assert.deepEqual((await deployManifest(manifest(512)))[0]!.changes, []);
  });

  it('the relay starts the deployed host: the app runs from the package (its source file here is gone)', async () => {
    unlinkSync(join(dir, 'echo.mjs'));
    const m = manifest(512);
    const functions: Record<string, LambdaFunctionRef> = {};
    for (const h of m.hosts) if (h.lambda) functions[h.name] = h.lambda;
    const provider = new LambdaProvider({ functions, credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'x' } });
    let relay: Relay | null = null;
    let me: TestHost | null = null;
    try {
      relay = await startRelay({ manifest: m, listen: { host: '127.0.0.1', port: 0 }, secret: 'deploy-test', providers: { lambda: provider }, logger: e2eLogger() });
      me = await joinTestHost(relay.url, relay.mintToken('tester', 600));
      const got = await new Promise<string>((resolve, reject) => {
        const s = me!.net.connect({ host: '10.77.0.60', port: 7 });
        s.on('connect', () => s.write('from the package'));
        s.on('data', (d: Buffer) => {
          s.destroy();
          resolve(d.toString());
        });
        s.on('error', reject);
      });
      assert.equal(got, 'from the package');
    } finally {
      me?.close();
      await relay?.close();
      await provider.close();
      writeFileSync(join(dir, 'echo.mjs'), ECHO);
    }
  });

  it('bad input: a missing role to create, an unreachable endpoint: clear errors, no hang', async () => {
    const noRole = parseManifest(`lambda: {endpoint: '${f.local.url}'}\nhosts:\n  api: {run: ./echo.mjs, provider: lambda}\n`, dir);
    assert.ok(!isManifestError(noRole));
    await assert.rejects(deployManifest(noRole), /imach-api: does not exist, and creating it needs lambda\.role/);
    const t0 = Date.now();
    const nowhere = parseManifest(`lambda: {endpoint: 'http://127.0.0.1:1', role: '${TEST_ROLE}'}\nhosts:\n  api: {run: ./echo.mjs, provider: lambda}\n`, dir);
    assert.ok(!isManifestError(nowhere));
    await assert.rejects(deployManifest(nowhere), /imach-api \(http:\/\/127\.0\.0\.1:1\): ECONNREFUSED/);
    assert.ok(Date.now() - t0 < 15_000);
  });
});
