import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRunFiles, isManifestError, loadManifest, parseManifest, parseDuration, parseSize, type Manifest, type ManifestError } from '../../relay/manifest.js';

function ok(text: string, base = '/apps/demo'): Manifest {
  const m = parseManifest(text, base);
  if (isManifestError(m)) throw new Error(`unexpected error: ${m.message}`);
  return m;
}

function bad(text: string): ManifestError {
  const m = parseManifest(text, '/apps/demo');
  assert.ok(isManifestError(m), 'expected a ManifestError');
  return m;
}

describe('relay manifest', () => {
  it('takes relay.tls: PEM paths resolved beside the manifest; refuses a malformed one naming the field', () => {
    const m = ok(`relay:\n  tls: { cert: tls/relay.pem, key: /etc/imach/relay.key }\nhosts:\n  web: { run: ./web.js }\n`);
    assert.deepEqual(m.relay.tls, { cert: '/apps/demo/tls/relay.pem', key: '/etc/imach/relay.key' });
    assert.equal(ok(`hosts:\n  web: { run: ./web.js }\n`).relay.tls, undefined);
    assert.equal(bad(`relay:\n  tls: { cert: a.pem }\nhosts:\n  web: { run: ./web.js }\n`).field, 'relay.tls.key');
    assert.equal(bad(`relay:\n  tls: { cert: a.pem, key: b.key, ca: c.pem }\nhosts:\n  web: { run: ./web.js }\n`).field, 'relay.tls.ca');
    assert.equal(bad(`relay:\n  tls: yes\nhosts:\n  web: { run: ./web.js }\n`).field, 'relay.tls');
  });

  it('parses hosts in declaration order with defaults, resolved paths and assigned addresses', () => {
    const m = ok(`
hosts:
  web:
    run: ./web.js
    idle: 5m
    env: { PORT: 8080, MODE: prod }
  db:
    run: /srv/db.js
    address: 10.77.0.2
    idle: never
  cache:
    run: cache.js
    idle: 500ms
    startTimeout: 3s
`);
    assert.equal(m.network, '10.77.0.0/16');
    assert.equal(m.prefixLength, 16);
    assert.equal(m.gateway, '10.77.0.1');
    assert.deepEqual(m.relay.listen, { host: '127.0.0.1', port: 7000 });
    assert.deepEqual(m.hosts.map((h) => h.name), ['web', 'db', 'cache']);
    const [web, db, cache] = m.hosts;
    assert.equal(web.run, '/apps/demo/web.js');
    assert.equal(db.run, '/srv/db.js');
    // web takes the first free address after the gateway; db's .2 is skipped for cache
    assert.equal(web.address, '10.77.0.3');
    assert.equal(db.address, '10.77.0.2');
    assert.equal(cache.address, '10.77.0.4');
    assert.equal(web.idleMs, 300_000);
    assert.equal(db.idleMs, null);
    assert.equal(cache.idleMs, 500);
    assert.equal(cache.startTimeoutMs, 3000);
    assert.equal(web.provider, 'local');
    assert.deepEqual(web.env, { PORT: '8080', MODE: 'prod' });
  });

  it('keeps addresses stable when a later host is added', () => {
    const a = ok('hosts:\n  web: {run: w.js}\n  db: {run: d.js}\n');
    const b = ok('hosts:\n  web: {run: w.js}\n  db: {run: d.js}\n  extra: {run: e.js}\n');
    assert.deepEqual(
      b.hosts.slice(0, 2).map((h) => h.address),
      a.hosts.map((h) => h.address),
    );
  });

  it('accepts a custom network, listen string and lambda provider', () => {
    const m = ok('network: 10.1.0.0/24\nrelay:\n  listen: 0.0.0.0:9000\nhosts:\n  api: {run: a.js, provider: lambda}\n');
    assert.equal(m.gateway, '10.1.0.1');
    assert.equal(m.hosts[0].address, '10.1.0.2');
    assert.deepEqual(m.relay.listen, { host: '0.0.0.0', port: 9000 });
    assert.equal(m.hosts[0].provider, 'lambda');
  });

  it('reads the per-host rate limit from relay.rate and relay.burst', () => {
    const m = ok('relay:\n  rate: 100MB/s\n  burst: 2MiB\n');
    assert.deepEqual(m.relay.limits, { rateBytesPerSec: 100_000_000, rateBurstBytes: 2 * 1024 * 1024 });
    assert.deepEqual(ok('relay:\n  listen: 127.0.0.1:7000\n').relay.limits, {});
    assert.equal(parseSize('512MiB/s', true), 512 * 1024 * 1024);
    assert.equal(parseSize(4096, false), 4096);
    assert.equal(typeof parseSize('10MB', true), 'string');
  });

  const cases: [string, string, string, unknown][] = [
    ['bad rate', 'relay:\n  rate: fast\n', 'relay.rate', 'fast'],
    ['rate without /s', 'relay:\n  rate: 10MB\n', 'relay.rate', '10MB'],
    ['negative burst', 'relay:\n  burst: -1\n', 'relay.burst', -1],
    ['bad idle', 'hosts:\n  web: {run: w.js, idle: soon}\n', 'hosts.web.idle', 'soon'],
    ['numeric idle without unit', 'hosts:\n  web: {run: w.js, idle: 30}\n', 'hosts.web.idle', 30],
    ['missing run', 'hosts:\n  web: {idle: 30s}\n', 'hosts.web.run', undefined],
    ['host name not a DNS label', 'hosts:\n  Web_1: {run: w.js}\n', 'hosts.Web_1', 'Web_1'],
    ['address outside the network', 'hosts:\n  web: {run: w.js, address: 10.78.0.5}\n', 'hosts.web.address', '10.78.0.5'],
    ['address is the gateway', 'hosts:\n  web: {run: w.js, address: 10.77.0.1}\n', 'hosts.web.address', '10.77.0.1'],
    ['address is the broadcast', 'hosts:\n  web: {run: w.js, address: 10.77.255.255}\n', 'hosts.web.address', '10.77.255.255'],
    ['address not an address', 'hosts:\n  web: {run: w.js, address: 10.77.0.300}\n', 'hosts.web.address', '10.77.0.300'],
    ['duplicate address', 'hosts:\n  a: {run: a.js, address: 10.77.0.9}\n  b: {run: b.js, address: 10.77.0.9}\n', 'hosts.b.address', '10.77.0.9'],
    ['unknown provider', 'hosts:\n  web: {run: w.js, provider: k8s}\n', 'hosts.web.provider', 'k8s'],
    ['unknown host field', 'hosts:\n  web: {run: w.js, memory: 512}\n', 'hosts.web.memory', 512],
    ['bad env value', 'hosts:\n  web: {run: w.js, env: {A: [1]}}\n', 'hosts.web.env.A', [1]],
    ['bad network', 'network: 10.77.0.0/33\n', 'network', '10.77.0.0/33'],
    ['network host bits', 'network: 10.77.0.1/16\n', 'network', '10.77.0.1/16'],
    ['bad listen port', 'relay:\n  listen: {host: 127.0.0.1, port: 70000}\n', 'relay.listen.port', 70000],
    ['bad start timeout', 'hosts:\n  web: {run: w.js, startTimeout: never}\n', 'hosts.web.startTimeout', 'never'],
    ['unknown top-level field', 'hostz: {}\n', 'hostz', {}],
    ['hosts not a map', 'hosts: 3\n', 'hosts', 3],
  ];
  for (const [title, text, field, value] of cases) {
    it(`names field and value: ${title}`, () => {
      const e = bad(text);
      assert.equal(e.field, field);
      assert.deepEqual(e.value, value);
      assert.ok(e.message.includes(field), e.message);
    });
  }

  it('reports invalid YAML with its line and column, and shows no value', () => {
    const unclosed = bad('network: 10.77.0.0/16\nhosts:\n  web:\n    run: [./a.js\n  x: 1\n');
    assert.equal(unclosed.field, 'yaml');
    assert.deepEqual(unclosed.value, { line: 5, column: 3 });
    assert.match(unclosed.message, /^yaml: line 5, column 3: not valid YAML: Flow sequence/);
    assert.doesNotMatch(unclosed.message, /\(got /);
    const quote = bad('hosts:\n  web:\n    run: "x\n');
    assert.match(quote.message, /^yaml: line \d+, column \d+: not valid YAML: Missing closing "quote/);
    const compact = bad('a: b: c\n');
    assert.match(compact.message, /^yaml: line 1, column 4: /);
  });

  it('names a duplicate host (map form, with its line; list form) and reports other duplicate keys by line', () => {
    const dup = bad('hosts:\n  web: {run: a.js}\n  api: {run: c.js}\n  web: {run: b.js}\n');
    assert.equal(dup.field, 'hosts.web');
    assert.equal(dup.message, 'hosts.web: line 4, column 3: duplicate host name');
    const listed = bad('hosts:\n  - {name: web, run: a.js}\n  - {name: web, run: b.js}\n');
    assert.equal(listed.field, 'hosts.web');
    assert.match(listed.message, /^hosts\.web: duplicate host name/);
    const relay = bad('relay:\n  listen: 1\n  listen: 2\n');
    assert.equal(relay.field, 'yaml');
    assert.equal(relay.message, 'yaml: line 3, column 3: duplicate key (map keys must be unique)');
  });

  it('checkRunFiles: a local host whose module does not exist is named by field, the path as written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imach-manifest-run-'));
    try {
      await writeFile(join(dir, 'web.js'), 'export default () => {};\n');
      const good = ok('hosts:\n  web: ./web.js\n  fn: {run: ./gone.js, provider: lambda}\n', dir);
      assert.equal(checkRunFiles(good), null, 'a Lambda host\'s module is not on this machine');
      const programs = ok('hosts:\n  web: ./web.js\n  kv: {command: redis-server --port 6379}\n  api: {command: node server.js}\n', dir);
      assert.equal(checkRunFiles(programs), null, 'a command: host has no module to check');
      const e = checkRunFiles(ok('hosts:\n  web: ./web.js\n  api: {run: ./nope.js}\n', dir));
      assert.ok(e !== null);
      assert.equal(e.field, 'hosts.api.run');
      assert.equal(e.message, 'hosts.api.run: ./nope.js: no such file');
      const folder = checkRunFiles(ok(`hosts:\n  web: ${dir}\n`, dir));
      assert.equal(folder?.message, `hosts.web.run: ${dir}: not a file`);
      const outside = checkRunFiles(ok('hosts:\n  web: /nonexistent-imach/app.js\n', dir));
      assert.equal(outside?.message, 'hosts.web.run: /nonexistent-imach/app.js: no such file');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('parses durations', () => {
    assert.equal(parseDuration('30s', true), 30_000);
    assert.equal(parseDuration('5m', true), 300_000);
    assert.equal(parseDuration('1h', true), 3_600_000);
    assert.equal(parseDuration('never', true), null);
    assert.equal(typeof parseDuration('never', false), 'string');
    assert.equal(typeof parseDuration('0s', true), 'string');
  });

  it('loads from a file, resolving run against its folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imach-manifest-'));
    try {
      await writeFile(join(dir, 'imach.yaml'), 'hosts:\n  web: {run: ./web.js}\n');
      const m = await loadManifest(join(dir, 'imach.yaml'));
      assert.ok(!isManifestError(m));
      assert.equal(m.hosts[0].run, join(dir, 'web.js'));
      assert.equal(m.path, join(dir, 'imach.yaml'));
      const missing = await loadManifest(join(dir, 'nope.yaml'));
      assert.ok(isManifestError(missing));
      assert.equal(missing.field, 'path');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
