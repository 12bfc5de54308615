// The manifest's `lambda:` section and `relay.public`, and the URL each provider's hosts dial.

import assert from 'node:assert/strict';
import { isManifestError, parseManifest } from '../../relay/manifest.js';
import { startRelay, type Launch } from '../../relay/index.js';

function ok(yaml: string) {
  const m = parseManifest(yaml, '/srv/app');
  if (isManifestError(m)) throw new Error(m.message);
  return m;
}

function errorOf(yaml: string): string {
  const m = parseManifest(yaml, '/srv/app');
  assert.ok(isManifestError(m), 'expected a manifest error');
  return m.message;
}

describe('manifest: lambda section and relay.public', function () {
  it('network defaults, per-host overrides, and defaults of its own', function () {
    const m = ok(`lambda:
  region: eu-west-1
  memory: 1024
  role: arn:aws:iam::123456789012:role/imach
hosts:
  web: {run: ./web.js, provider: lambda}
  api:
    run: ./api.js
    provider: lambda
    lambda: {function: my-api, timeout: 2m, architecture: arm64, endpoint: 'http://127.0.0.1:9001'}
  db: ./db.js
`);
    assert.deepEqual(m.hosts[0]!.lambda, { function: 'imach-web', region: 'eu-west-1', memory: 1024, timeout: 900, role: 'arn:aws:iam::123456789012:role/imach', architecture: 'x86_64' });
    assert.deepEqual(m.hosts[1]!.lambda, {
      function: 'my-api',
      region: 'eu-west-1',
      memory: 1024,
      timeout: 120,
      role: 'arn:aws:iam::123456789012:role/imach',
      architecture: 'arm64',
      endpoint: 'http://127.0.0.1:9001',
    });
    assert.equal(m.hosts[2]!.lambda, undefined, 'a local host has no function');
  });

  it('names the field of a bad value', function () {
    const h = (lambda: string) => `hosts:\n  web:\n    run: ./w.js\n    provider: lambda\n    lambda: ${lambda}\n`;
    assert.match(errorOf(h('{memory: 64}')), /^hosts\.web\.lambda\.memory: expected MB from 128 to 10240/);
    assert.match(errorOf(h('{timeout: 16m}')), /^hosts\.web\.lambda\.timeout: expected whole seconds from 1s to 15m/);
    assert.match(errorOf(h('{function: "a b"}')), /^hosts\.web\.lambda\.function: /);
    assert.match(errorOf(h('{endpoint: "not a url"}')), /^hosts\.web\.lambda\.endpoint: expected an http/);
    assert.match(errorOf(h('{endpoint: "ftp://x"}')), /^hosts\.web\.lambda\.endpoint: /);
    assert.match(errorOf(h('{role: admin}')), /^hosts\.web\.lambda\.role: expected an IAM role ARN/);
    assert.match(errorOf(h('{architecture: mips}')), /^hosts\.web\.lambda\.architecture: /);
    assert.match(errorOf(h('{region: Mars}')), /^hosts\.web\.lambda\.region: /);
    assert.match(errorOf(h('{colour: red}')), /^hosts\.web\.lambda/);
    assert.match(errorOf('hosts:\n  web:\n    run: ./w.js\n    lambda: {memory: 256}\n'), /^hosts\.web\.lambda: only for a host with provider: lambda/);
    assert.match(errorOf('lambda: {memory: 1}\nhosts:\n  web: ./w.js\n'), /^lambda\.memory: /);
  });

  it('relay.public: a ws:// or wss:// URL without a path', function () {
    assert.equal(ok('relay:\n  public: wss://relay.example.com\n').relay.public, 'wss://relay.example.com');
    assert.equal(ok('relay:\n  public: ws://10.0.0.5:7000/\n').relay.public, 'ws://10.0.0.5:7000');
    assert.match(errorOf('relay:\n  public: https://relay.example.com\n'), /^relay\.public: expected a ws:\/\/ or wss:\/\/ URL/);
    assert.match(errorOf('relay:\n  public: wss://relay.example.com/v1/join\n'), /^relay\.public: expected scheme:\/\/host\[:port\] only/);
    assert.match(errorOf('relay:\n  public: 7\n'), /^relay\.public: /);
  });

  it('a Lambda host is launched with relay.public, a local host with the listen URL', async function () {
    const launches: Launch[] = [];
    const never = { exited: new Promise<{ code: number | null; reason: string }>(() => {}), stop: async () => {} };
    const recorder = (name: string) => ({
      name,
      async start(launch: Launch) {
        launches.push(launch);
        return never;
      },
    });
    const m = ok('relay:\n  public: wss://relay.example.com\nhosts:\n  web: {run: ./w.js, address: 10.77.0.10}\n  api: {run: ./a.js, provider: lambda, address: 10.77.0.11}\n');
    const relay = await startRelay({ manifest: m, listen: { host: '127.0.0.1', port: 0 }, secret: 's', providers: { local: recorder('local'), lambda: recorder('lambda') } });
    try {
      await Promise.allSettled([relay.ping('web', 300), relay.ping('api', 300)]);
      const byHost = new Map(launches.map((l) => [l.host, l.relay]));
      assert.equal(byHost.get('web'), relay.url);
      assert.equal(byHost.get('api'), 'wss://relay.example.com');
    } finally {
      await relay.close();
    }
  });
});
