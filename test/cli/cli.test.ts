import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRelay, verifyToken, isTokenError, type Relay } from '../../relay/index.js';
import { isManifestError, parseManifest } from '../../relay/manifest.js';
import { silentLogger } from '../../hostfn/log.js';
import { JOIN_EXIT, runJoin, type JoinCliDeps } from '../../cli/join.js';
import type { JoinOptions } from '../../join/join-session.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the built CLI; kill it if it outlives `killAfterMs`. */
function imach(args: string[], opts: { env?: Record<string, string>; cwd?: string; killAfterMs?: number } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? tmpdir(),
      env: { PATH: process.env.PATH ?? '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 20_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('cli: imach', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'imach-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('with no command prints usage and exits 2', async () => {
    const r = await imach([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: imach <command>/);
  });

  it('--help lists every command and exits 0', async () => {
    const r = await imach(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['up', 'relay', 'host', 'token', 'ps', 'events', 'ping', 'join']) {
      assert.match(r.stdout, new RegExp(`^  ${c}\\b`, 'm'), c);
    }
  });

  for (const cmd of ['up', 'relay', 'host', 'token', 'ps', 'events', 'ping']) {
    it(`${cmd} --help prints its usage and exits 0`, async () => {
      const r = await imach([cmd, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^usage: imach ${cmd}\\b`));
    });
  }

  it('--version prints the package version and exits 0', async () => {
    const r = await imach(['--version']);
    assert.equal(r.code, 0, r.stderr);
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim().split(' ')[1], pkg.version);
  });

  it('an unknown command exits 2', async () => {
    const r = await imach(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });

  it('an unknown flag exits 2 and names the flag', async () => {
    const r = await imach(['ps', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--bogus/);
  });

  it('missing arguments and bad values exit 2', async () => {
    for (const args of [['token'], ['ping'], ['host'], ['token', 'web', '--ttl', 'soon'], ['ping', 'web', '--count', '0'], ['relay', '--listen', 'nope'], ['token', 'Not_A_Label'], ['ps', 'extra']]) {
      const r = await imach(args, { env: { IMACH_SECRET: 's' } });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /imach \w+: .+\nRun 'imach \w+ --help'/);
    }
  });

  it('token mints a token for the host, signed with the secret, with the ttl', async () => {
    const r = await imach(['token', 'web', '--ttl', '2h'], { env: { IMACH_SECRET: 'shh' } });
    assert.equal(r.code, 0, r.stderr);
    const claims = verifyToken('shh', r.stdout.trim());
    assert.ok(!isTokenError(claims));
    assert.equal(claims.h, 'web');
    assert.equal(claims.exp - claims.iat, 7200);
    assert.ok(isTokenError(verifyToken('other', r.stdout.trim())));
  });

  it('token uses the secret file the relay made in the state directory', async () => {
    const state = join(dir, 'state');
    const { loadOrCreateSecret } = await import('../../relay/auth.js');
    await loadOrCreateSecret(state);
    const a = await imach(['token', 'kv', '--state-dir', state]);
    const b = await imach(['token', '@admin', '--state-dir', state]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const { readFileSync, statSync } = await import('node:fs');
    const secret = readFileSync(join(state, 'secret'), 'utf8').trim();
    assert.equal(statSync(join(state, 'secret')).mode & 0o777, 0o600);
    assert.ok(!isTokenError(verifyToken(secret, a.stdout.trim())));
    assert.ok(!isTokenError(verifyToken(secret, b.stdout.trim())));
  });

  describe('without a network secret (only up and relay create one)', () => {
    const noSecret = (d: string) => `no network secret in ${d} (start the relay with imach up, or set IMACH_SECRET)`;

    it('token and host fail with exit 1 and create none', async () => {
      const state = join(dir, 'empty-state');
      const mod = join(dir, 'nosecret.mjs');
      writeFileSync(mod, 'export default () => {};\n');
      for (const args of [
        ['token', 'web', '--state-dir', state],
        ['host', mod, '--name', 'x', '--relay', 'ws://127.0.0.1:9', '--state-dir', state],
      ]) {
        const r = await imach(args);
        assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
        assert.equal(r.stderr.trim(), `imach ${args[0]}: ${noSecret(state)}`);
        assert.equal(existsSync(join(state, 'secret')), false, args[0]);
      }
    });

    function joinDeps(env: NodeJS.ProcessEnv) {
      const c = { err: [] as string[], started: [] as JoinOptions[] };
      const deps: Partial<JoinCliDeps> = {
        out: () => {},
        err: (l) => c.err.push(l),
        logger: silentLogger,
        preflight: async () => [],
        env,
        start: async (o) => {
          c.started.push(o);
          return { joinError: true, stage: 'relay', kind: 'network', message: 'cannot reach relay' };
        },
      };
      return { c, deps };
    }

    it('join --manifest fails with exit 1 and creates none; it takes the secret from IMACH_STATE_DIR', async () => {
      const app = join(dir, 'joinapp');
      mkdirSync(app, { recursive: true });
      const m = join(app, 'imach.yaml');
      writeFileSync(m, 'relay:\n  listen: 127.0.0.1:7123\nhosts:\n  web: ./web.js\n');
      const saved = process.env.IMACH_SECRET;
      delete process.env.IMACH_SECRET;
      try {
        const none = joinDeps({});
        assert.equal(await runJoin(['--manifest', m], none.deps), JOIN_EXIT.failed);
        assert.deepEqual(none.c.err, [`imach join: ${noSecret(join(app, '.imach'))}`]);
        assert.equal(existsSync(join(app, '.imach', 'secret')), false);
        assert.equal(none.c.started.length, 0);

        const state = join(dir, 'join-state');
        const { loadOrCreateSecret } = await import('../../relay/auth.js');
        const key = await loadOrCreateSecret(state);
        const some = joinDeps({ IMACH_STATE_DIR: state });
        await runJoin(['--manifest', m, '--host', 'devbox'], some.deps);
        assert.equal(some.c.started.length, 1, some.c.err.join('\n'));
        const token = await (some.c.started[0]!.token as () => string | Promise<string>)();
        const claims = verifyToken(key, token);
        assert.ok(!isTokenError(claims), JSON.stringify(claims));
        assert.equal(claims.h, 'devbox');
      } finally {
        if (saved !== undefined) process.env.IMACH_SECRET = saved;
      }
    });
  });

  describe('up refuses before it boots', () => {
    it('accepts a host with provider: lambda, warning that it would dial a loopback relay URL', async () => {
      // Changed behaviour: provider: lambda was refused before the LambdaProvider existed.
      const state = join(dir, 'lambda-state');
      const m = join(dir, 'lambda.yaml');
      writeFileSync(join(dir, 'app.mjs'), 'export default () => {};\n');
      writeFileSync(m, 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web: ./app.mjs\n  api:\n    run: ./app.mjs\n    provider: lambda\n');
      const r = await imach(['up', m, '--state-dir', state, '--warm', '0'], { killAfterMs: 4000 });
      assert.match(r.stdout, /relay on ws:\/\/127\.0\.0\.1:\d+/, r.stdout + r.stderr);
      assert.match(r.stdout, /api\s+10\.77\.0\.\d+\s+lambda/);
      assert.match(r.stderr, /Lambda hosts \(api\) would dial ws:\/\/127\.0\.0\.1:\d+, a loopback address .*set relay\.public/);
    });

    it('loopbackWarning: only for Lambda hosts not on a loopback endpoint, and not with a public relay.public', async () => {
      const { loopbackWarning } = await import('../../cli/up.js');
      const { parseManifest, isManifestError } = await import('../../relay/manifest.js');
      const parse = (y: string) => {
        const mf = parseManifest(y, dir);
        if (isManifestError(mf)) throw new Error(mf.message);
        return mf;
      };
      const url = 'ws://127.0.0.1:7000';
      assert.equal(loopbackWarning(parse('hosts:\n  web: ./a.js\n'), url), null);
      assert.match(loopbackWarning(parse('hosts:\n  api: {run: ./a.js, provider: lambda}\n'), url) ?? '', /api/);
      assert.equal(loopbackWarning(parse('relay:\n  public: wss://relay.example.com\nhosts:\n  api: {run: ./a.js, provider: lambda}\n'), url), null);
      assert.match(loopbackWarning(parse('relay:\n  public: ws://localhost:7000\nhosts:\n  api: {run: ./a.js, provider: lambda}\n'), 'ws://10.0.0.1:7000') ?? '', /ws:\/\/localhost:7000/);
      assert.equal(loopbackWarning(parse('lambda:\n  endpoint: http://127.0.0.1:9001\nhosts:\n  api: {run: ./a.js, provider: lambda}\n'), url), null);
    });

    it('a run module that does not exist, a YAML syntax error, a duplicate host (exit 1, naming each)', async () => {
      const cases: [string, string, RegExp][] = [
        ['nope', 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web:\n    run: ./nope.js\n', /nope\.yaml: hosts\.web\.run: \.\/nope\.js: no such file\n/],
        ['syntax', 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web:\n    run: [./a.js\n  x: 1\n', /syntax\.yaml: yaml: line 6, column 3: not valid YAML: /],
        ['dup', 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web: ./a.js\n  web: ./b.js\n', /dup\.yaml: hosts\.web: line 5, column 3: duplicate host name\n/],
      ];
      for (const [name, text, expected] of cases) {
        const state = join(dir, `${name}-state`);
        const m = join(dir, `${name}.yaml`);
        writeFileSync(m, text);
        const r = await imach(['up', m, '--state-dir', state], { killAfterMs: 10_000 });
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, expected);
        assert.doesNotMatch(r.stderr, /\(got nothing\)|\n\s+at /, 'no empty value, no stack');
        assert.doesNotMatch(r.stdout, /relay on/);
        assert.equal(existsSync(join(state, 'secret')), false, 'nothing booted');
      }
    });

    it('IMACH_LISTEN stands for --listen (a bad one exits 2 before boot)', async () => {
      const m = join(dir, 'listen.yaml');
      writeFileSync(m, 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web: ./app.mjs\n');
      writeFileSync(join(dir, 'app.mjs'), 'export default () => {};\n');
      const state = join(dir, 'listen-state');
      const r = await imach(['up', m, '--state-dir', state], { env: { IMACH_LISTEN: 'nowhere' }, killAfterMs: 10_000 });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /--listen must be host:port \(got 'nowhere'\)/);
      assert.equal(existsSync(join(state, 'secret')), false);
    });

    it('--warm out of range (exit 2)', async () => {
      const m = join(dir, 'warm.yaml');
      writeFileSync(m, 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web: ./app.mjs\n');
      const r = await imach(['up', m, '--state-dir', join(dir, 'warm-state'), '--warm', '9'], { killAfterMs: 10_000 });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /--warm must be a number of spares from 0 to 8 \(got '9'\)/);
      assert.doesNotMatch(r.stdout, /relay on/);
    });

    it('--start with a host the manifest does not declare (exit 2)', async () => {
      const state = join(dir, 'start-state');
      const m = join(dir, 'start.yaml');
      writeFileSync(m, 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web: ./app.mjs\n');
      const r = await imach(['up', m, '--state-dir', state, '--start', 'web,nosuch'], { killAfterMs: 10_000 });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /--start nosuch: no such host in the manifest/);
      assert.doesNotMatch(r.stdout, /relay on/);
      assert.equal(existsSync(join(state, 'secret')), false);
    });
  });

  it('admin commands fail with exit 1 when the relay is unreachable', async () => {
    const r = await imach(['ps', '--relay', 'ws://127.0.0.1:9'], { env: { IMACH_SECRET: 's' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach the relay/);
  });

  it('a bad manifest exits 1 naming the field', async () => {
    const m = join(dir, 'bad.yaml');
    writeFileSync(m, 'hosts:\n  web:\n    run: ./web.js\n    idle: soon\n');
    const r = await imach(['up', m], { env: { IMACH_SECRET: 's' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /hosts\.web\.idle/);
  });

  describe('against a running relay', () => {
    let relay: Relay;
    const secret = 'cli-test-secret';
    before(async () => {
      // two declared hosts (cold: no provider is needed until one is started)
      const manifest = parseManifest('hosts:\n  web:\n    run: ./web.js\n    address: 10.77.0.11\n  kv:\n    run: ./kv.js\n    idle: never\n', dir);
      if (isManifestError(manifest)) throw new Error(manifest.message);
      relay = await startRelay({ manifest, listen: { host: '127.0.0.1', port: 0 }, secret, logger: silentLogger });
    });
    after(() => relay.close());

    it('ps --json prints the hosts, ps prints a table', async () => {
      const env = { IMACH_SECRET: secret, IMACH_RELAY: relay.url };
      const j = await imach(['ps', '--json'], { env });
      assert.equal(j.code, 0, j.stderr);
      const listed = JSON.parse(j.stdout) as { name: string; address: string; state: string; provider: string }[];
      assert.deepEqual(
        listed.map((h) => [h.name, h.address, h.state, h.provider]),
        [
          ['web', '10.77.0.11', 'cold', 'local'],
          ['kv', '10.77.0.2', 'cold', 'local'],
        ],
      );
      assert.deepEqual(listed, JSON.parse(JSON.stringify(relay.hosts())));
      const t = await imach(['ps'], { env });
      assert.equal(t.code, 0, t.stderr);
      const rows = t.stdout.trim().split('\n');
      assert.match(rows[0]!, /^NAME\s+ADDRESS\s+STATE\s+PROVIDER\s+UPTIME\s+CONNS\s+IN\s+OUT\s+STARTS/);
      assert.match(rows[1]!, /^web\s+10\.77\.0\.11\s+cold\s+local\s/);
      assert.match(rows[2]!, /^kv\s+10\.77\.0\.2\s+cold\s+local\s/);
      assert.equal(rows.length, 3);
    });

    it('a wrong secret is refused with exit 1', async () => {
      const r = await imach(['ps'], { env: { IMACH_SECRET: 'wrong', IMACH_RELAY: relay.url } });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /401/);
    });

    it('ping of an unknown host reports it and exits 1', async () => {
      const r = await imach(['ping', 'nosuch', '--count', '1'], { env: { IMACH_SECRET: secret, IMACH_RELAY: relay.url } });
      assert.equal(r.code, 1);
      assert.match(r.stdout, /nosuch: seq=1 .*unknown host/);
      assert.match(r.stdout, /1 sent, 0 received, 100% loss/);
    });

    it('host joins a module by hand with a dynamic address and exits with its code', async () => {
      const mod = join(dir, 'extra.mjs');
      writeFileSync(mod, `export default ({ host, exit }) => { console.log('ADDR', host.name, host.address); exit(3); };\n`);
      const r = await imach(['host', mod, '--name', 'extra'], { env: { IMACH_SECRET: secret, IMACH_RELAY: relay.url } });
      assert.equal(r.code, 3, r.stderr);
      const m = /ADDR extra (\S+)/.exec(r.stdout);
      assert.ok(m, r.stdout);
      const h = relay.hosts().find((x) => x.name === 'extra');
      assert.ok(h);
      assert.equal(h.address, m[1]);
      assert.equal(h.provider, 'manual');
    });

    it('host with a token signed by another secret exits 1 with the refusal', async () => {
      const mod = join(dir, 'extra2.mjs');
      writeFileSync(mod, 'export default () => {};\n');
      const { mintToken } = await import('../../relay/auth.js');
      const r = await imach(['host', mod, '--token', mintToken('not-the-secret', 'x', 60)], { env: { IMACH_RELAY: relay.url } });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /refused|forged/);
    });

    it('events --json prints the relay\'s events as JSON lines', async () => {
      // the hand-joined host of the test above joined and left: there are events to print
      const expected = JSON.parse(JSON.stringify(relay.events())) as { host: string; type: string }[];
      assert.ok(expected.some((e) => e.host === 'extra' && e.type === 'joined'), JSON.stringify(expected));
      const r = await imach(['events', '--json'], { env: { IMACH_SECRET: secret, IMACH_RELAY: relay.url } });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);
      // (a later event, such as the hand-joined host's release, may follow)
      assert.deepEqual(lines.slice(0, expected.length), expected);
    });
  });

  it('up starts the relay for a manifest and exits 0 on SIGTERM', async () => {
    const m = join(dir, 'imach.yaml');
    writeFileSync(join(dir, 'app.mjs'), 'export default () => {};\n');
    writeFileSync(m, 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web:\n    run: ./app.mjs\n    idle: 5s\n');
    const child = spawn(process.execPath, [CLI, 'up', m], { cwd: dir, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const start = Date.now();
    while (!/all hosts are cold/.test(out) && Date.now() - start < 15_000) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /relay on ws:\/\/127\.0\.0\.1:\d+/);
    assert.match(out, /web\s+10\.77\.0\.2\s+local/);
    // announced only once its spare (one per local host) has loaded: a first start right
    // away does not wait for a process still loading
    assert.match(out, /\(1 spare processes ready\)/);
    child.kill('SIGTERM');
    const code = await exited;
    clearTimeout(t);
    assert.equal(code, 0, out);
  });
});
