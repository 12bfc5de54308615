// LambdaProvider: `provider: lambda` hosts started through the real SDK against
// lambda-local, the project's handler (hostfn/lambda.ts) running them.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CreateFunctionCommand, InvokeCommand, PutFunctionConcurrencyCommand } from '@aws-sdk/client-lambda';
import { LOCAL_CODE_BUCKET } from '../../lambda-local/index.js';
import { LambdaProvider, type LambdaFunctionRef } from '../../hostfn/lambda-provider.js';
import { parseLaunch, isProtocolError, type Launch } from '../../relay/protocol.js';
import { joinTestHost, startE2eApp, waitFor, type E2eApp, type TestHost } from '../support/e2e-harness.js';
import { TEST_ROLE, payloadJson, startLambdaFixture, waitActive, type LambdaFixture } from '../support/lambda-local-fixture.js';

const HOSTFN_DIR = fileURLToPath(new URL('../../hostfn/', import.meta.url));

const ECHO = `export default ({ net, dgram, log }) => {
  net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(7);
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(m, r.port, r.address));
  u.bind(7);
  log.info('echo up');
};
`;

// Hashes everything it receives on port 9000 and answers with the hex SHA-256 at the end.
const SINK = `import { createHash } from 'node:crypto';
export default ({ net }) => {
  net.createServer((s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d) => { h.update(d); n += d.length; });
    s.on('end', () => s.end(h.digest('hex') + ' ' + n + '\\n'));
    s.on('error', () => {});
  }).listen(9000);
};
`;

function connectError(h: TestHost, host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = h.net.connect({ host, port });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

function echoOnce(h: TestHost, host: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = h.net.connect({ host, port: 7 });
    let got = '';
    s.on('connect', () => s.write(text));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
  });
}

describe('LambdaProvider: provider: lambda hosts through the SDK against lambda-local', function () {
  this.timeout(60_000);
  let f: LambdaFixture;
  let app: E2eApp;
  let provider: LambdaProvider;
  let me: TestHost;
  const launches: Launch[] = [];
  let keepHosts = false;

  before(async () => {
    f = await startLambdaFixture();
    for (const name of ['imach-web', 'imach-busy', 'imach-sink']) {
      await f.client.send(
        new CreateFunctionCommand({
          FunctionName: name,
          Runtime: 'nodejs20.x',
          Role: TEST_ROLE,
          Handler: 'lambda.handler',
          Code: { S3Bucket: LOCAL_CODE_BUCKET, S3Key: HOSTFN_DIR },
          Timeout: 30,
        }),
      );
      await waitActive(f, name);
    }
    // a reservation of 0: every invoke of imach-busy is throttled
    await f.client.send(new PutFunctionConcurrencyCommand({ FunctionName: 'imach-busy', ReservedConcurrentExecutions: 0 }));
    const manifest = `network: 10.77.0.0/16
lambda:
  endpoint: ${f.local.url}
  region: us-east-1
  timeout: 30s
hosts:
  web:
    run: ./echo.mjs
    provider: lambda
    address: 10.77.0.50
    idle: 1500ms
  ghost:
    run: ./echo.mjs
    provider: lambda
    lambda: { function: imach-missing }
  busy:
    run: ./echo.mjs
    provider: lambda
  sink:
    run: ./sink.mjs
    provider: lambda
    address: 10.77.0.51
    idle: 20s
  nowhere:
    run: ./echo.mjs
    provider: lambda
    lambda: { endpoint: 'http://127.0.0.1:1' }
`;
    let lambda: LambdaProvider | null = null;
    app = await startE2eApp(manifest, { 'echo.mjs': ECHO, 'sink.mjs': SINK }, {
      providers: {
        lambda: {
          name: 'lambda',
          start: async (launch) => {
            launches.push(launch);
            const inst = await lambda!.start(launch);
            // a relay restart leaves the invocations running, as a crashed relay would
            return { exited: inst.exited, stop: () => (keepHosts ? Promise.resolve() : inst.stop()) };
          },
        },
      },
    });
    const functions: Record<string, LambdaFunctionRef> = {};
    for (const h of app.manifest.hosts) if (h.lambda !== undefined) functions[h.name] = h.lambda;
    provider = lambda = new LambdaProvider({ functions, credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' }, acceptWindowMs: 1000 });
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600), { backoffMaxMs: 500, giveUpAfterMs: 30_000 });
  });
  after(async () => {
    me?.close();
    await app?.close();
    await provider?.close();
    await f?.close();
  });

  const host = (name: string) => app.relay.hosts().find((h) => h.name === name)!;

  it('the manifest merges the lambda defaults with a host\'s own', () => {
    assert.deepEqual(app.manifest.hosts.find((h) => h.name === 'web')!.lambda, {
      function: 'imach-web',
      region: 'us-east-1',
      endpoint: f.local.url,
      memory: 512,
      timeout: 30,
      architecture: 'x86_64',
    });
    assert.equal(app.manifest.hosts.find((h) => h.name === 'ghost')!.lambda!.function, 'imach-missing');
  });

  it('a cold connect starts the host in a new environment and the connection is echoed', async () => {
    assert.equal(await echoOnce(me, 'web', 'hello lambda'), 'hello lambda');
    assert.equal(host('web').state, 'running');
    assert.equal(f.local.stats().coldStarts, 1);
  });

  it('UDP request/response to the Lambda host', async () => {
    const u = me.dgram.createSocket('udp4');
    try {
      const got = new Promise<string>((resolve) => u.on('message', (m: Buffer) => resolve(m.toString())));
      u.send(Buffer.from('dgram'), 7, '10.77.0.50');
      assert.equal(await got, 'dgram');
    } finally {
      u.close();
    }
  });

  it('idle, the host is released and the invocation returns; a DNS lookup starts it again in the frozen environment', async () => {
    await waitFor(() => host('web').state === 'cold', 'web released after idle', 20_000);
    assert.ok(app.relay.events().some((e) => e.host === 'web' && e.type === 'released'));
    assert.equal(await me.dns.lookup('web'), '10.77.0.50');
    assert.equal(await echoOnce(me, 'web', 'again'), 'again');
    assert.equal(f.local.stats().coldStarts, 1);
    assert.equal(f.local.stats().warmStarts, 1);
  });

  it('a superseded launch delivered again (a retry) is refused by its nonce and ends: never two live instances', async () => {
    const webLaunches = launches.filter((l) => l.host === 'web');
    assert.equal(webLaunches.length, 2);
    assert.notEqual(webLaunches[0]!.token, webLaunches[1]!.token);
    const session = () => app.relay.hosts().find((h) => h.name === 'web')!;
    const startsBefore = session().starts;
    // The first launch was retired when that instance was released; invoke it again, as a
    // retry of its invocation would.
    const t0 = Date.now();
    const out = await f.client.send(new InvokeCommand({ FunctionName: 'imach-web', Payload: Buffer.from(JSON.stringify(webLaunches[0])) }));
    const body = payloadJson(out.Payload) as { host: string | null; code: number; reason: string };
    assert.equal(body.host, 'web');
    assert.notEqual(body.code, 0, JSON.stringify(body));
    assert.match(body.reason, /refused|403|retired|superseded/i, JSON.stringify(body));
    assert.ok(Date.now() - t0 < 10_000, `ended after ${Date.now() - t0} ms`);
    // the current instance is the only one: still running on its own session, not restarted
    assert.equal(session().starts, startsBefore);
    assert.equal(await echoOnce(me, 'web', 'still one'), 'still one');
  });

  it('a missing function: the host is failed with a clear reason, senders get EHOSTUNREACH', async () => {
    assert.equal(await connectError(me, 'ghost', 7), 'EHOSTUNREACH');
    await waitFor(() => host('ghost').state === 'failed', 'ghost failed');
    assert.match(host('ghost').lastReason, /function not found: imach-missing in us-east-1/);
  });

  it('a concurrency limit reached: failed with throttled: ..., EHOSTUNREACH, and the start retried with backoff', async () => {
    const codes: string[] = [];
    const end = Date.now() + 4500;
    while (Date.now() < end) {
      codes.push(await connectError(me, 'busy', 7));
      await new Promise((r) => setTimeout(r, 100));
    }
    const h = host('busy');
    assert.equal(h.state, 'failed');
    assert.match(h.lastReason, /throttled: ReservedFunctionConcurrentInvocationLimitExceeded/);
    assert.ok(codes.every((c) => c === 'EHOSTUNREACH'), codes.join(','));
    // backoff 1 s, 2 s: about 2 or 3 starts in 4.5 s, not one per SYN
    assert.ok(h.starts >= 2 && h.starts <= 3, `${h.starts} starts`);
  });

  it('a bad endpoint: failed with "cannot reach the Lambda API", no hang', async () => {
    const t0 = Date.now();
    assert.equal(await connectError(me, 'nowhere', 7), 'EHOSTUNREACH');
    assert.ok(Date.now() - t0 < 8000, `${Date.now() - t0} ms`);
    assert.match(host('nowhere').lastReason, /cannot reach the Lambda API at http:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
  });

  it('a malformed launch event is answered at once with a clear error', async () => {
    assert.ok(isProtocolError(parseLaunch({ host: 'web' })));
    const out = await f.client.send(new InvokeCommand({ FunctionName: 'imach-web', Payload: Buffer.from('{"host":"web","relay":"http://x"}') }));
    assert.equal(out.FunctionError, undefined);
    const body = payloadJson(out.Payload) as { host: string | null; code: number; reason: string };
    assert.equal(body.host, null);
    assert.equal(body.code, 2);
    assert.match(body.reason, /bad launch: relay must be a ws:\/\/ or wss:\/\/ URL/);
  });

  it('a relay restart during a transfer: the Lambda host rejoins the new relay and the transfer completes', async () => {
    const total = 8 * 1024 * 1024;
    const chunk = 64 * 1024;
    const hash = createHash('sha256');
    const result = new Promise<string>((resolve, reject) => {
      const s = me.net.connect({ host: '10.77.0.51', port: 9000 });
      let reply = '';
      let sent = 0;
      let restarted = false;
      const pump = () => {
        while (sent < total) {
          const buf = randomBytes(chunk);
          hash.update(buf);
          sent += buf.length;
          if (!restarted && sent >= total / 4) {
            restarted = true;
            keepHosts = true;
            app.restartRelay(1500).then(() => (keepHosts = false), reject);
          }
          if (!s.write(buf)) return void s.once('drain', pump);
        }
        s.end();
      };
      s.on('connect', pump);
      s.setEncoding('utf8');
      s.on('data', (d: string) => (reply += d));
      s.on('end', () => resolve(reply.trim()));
      s.on('error', reject);
    });
    const reply = await result;
    assert.equal(reply, `${hash.digest('hex')} ${total}`);
    assert.ok(me.link.counters.reconnects >= 1);
    assert.equal(host('sink').state, 'running', 'adopted by the new relay');
    assert.equal(f.local.stats().coldStarts >= 1, true);
  });
});
