// `imach join` flags, messages and exit codes, with the session and the machine checks
// injected (the real device path is covered in tun-netns.test.ts).

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JOIN_EXIT, parseJoinArgs, runJoin, type JoinCliDeps } from '../../cli/join.js';
import { silentLogger } from '../../hostfn/log.js';
import type { JoinError, JoinOptions } from '../../join/join-session.js';
import type { UserspaceOptions } from '../../join/userspace.js';
import { isTokenError, verifyToken } from '../../relay/auth.js';
import { recordingRunner } from '../support/join-memory-tun.js';

interface Captured {
  out: string[];
  err: string[];
  started: JoinOptions[];
  deps: Partial<JoinCliDeps>;
}

function capture(over: Partial<JoinCliDeps> = {}, startResult?: JoinError): Captured {
  const c: Captured = { out: [], err: [], started: [], deps: {} };
  c.deps = {
    out: (l) => c.out.push(l),
    err: (l) => c.err.push(l),
    logger: silentLogger,
    preflight: async () => [],
    run: recordingRunner().run,
    env: {},
    start: async (o) => {
      c.started.push(o);
      return startResult ?? { joinError: true, stage: 'relay', kind: 'network', message: 'cannot reach relay' };
    },
    ...over,
  };
  return c;
}

describe('join: imach join command line', function () {
  describe('parseJoinArgs', function () {
    it('takes relay, token, device and --dns', function () {
      const a = parseJoinArgs(['--relay', 'ws://127.0.0.1:7000', '--token', 't', '--dev', 'imach7', '--dns'], {});
      assert.ok(typeof a !== 'string');
      assert.equal(a.relay, 'ws://127.0.0.1:7000');
      assert.equal(a.token, 't');
      assert.equal(a.dev, 'imach7');
      assert.equal(a.dns, true);
      assert.equal(a.host, 'laptop');
    });

    it('takes a pinned relay certificate (--relay-cert-sha256) and hands it to the session', async function () {
      const pin = 'AB:'.repeat(31) + 'AB';
      const a = parseJoinArgs(['--relay', 'wss://relay.example:7000', '--token', 't', '--relay-cert-sha256', pin], {});
      assert.ok(typeof a !== 'string');
      assert.equal(a.relayCertSha256, pin);
      const bad = parseJoinArgs(['--relay', 'wss://r:1', '--token', 't', '--relay-cert-sha256', 'abc'], {});
      assert.ok(typeof bad === 'string');
      assert.match(bad, /--relay-cert-sha256 must be a SHA-256 fingerprint/);
      const c = capture();
      await runJoin(['--relay', 'wss://relay.example:7000', '--token', 't', '--relay-cert-sha256', pin], c.deps as JoinCliDeps);
      assert.equal(c.started.length, 1);
      assert.deepEqual(c.started[0]!.tls, { certSha256: pin });
    });

    it('takes the token from IMACH_TOKEN', function () {
      const a = parseJoinArgs(['--relay', 'ws://r:1'], { IMACH_TOKEN: 'from-env' });
      assert.ok(typeof a !== 'string');
      assert.equal(a.token, 'from-env');
    });

    it('listens beyond loopback only with --allow-remote (no authentication on the proxy)', function () {
      const base = ['--relay', 'ws://r:1', '--token', 't', '--userspace'];
      const loop = parseJoinArgs([...base, '--socks', '127.0.0.2:1080', '--forward', 'localhost:8080:web:80'], {});
      assert.ok(typeof loop !== 'string', String(loop));
      const open = parseJoinArgs([...base, '--allow-remote', '--socks', '0.0.0.0:1080', '--forward', '0.0.0.0:8080:web:80'], {});
      assert.ok(typeof open !== 'string', String(open));
      assert.deepEqual(open.socks, { host: '0.0.0.0', port: 1080 });
      assert.equal(open.forwards[0]!.bindHost, '0.0.0.0');
    });

    for (const [argv, pattern] of [
      [['--token', 't'], /--relay/],
      [['--relay', 'ws://r:1'], /--token/],
      [['--relay', 'ftp://r', '--token', 't'], /ws:\/\//],
      [['--relay', 'ws://r:1', '--token', 't', '--dev', 'x'.repeat(16)], /--dev/],
      [['--relay', 'ws://r:1', '--token', 't', '--dev', 'a/b'], /--dev/],
      [['--manifest', 'm.yaml', '--host', 'Not_A_Label'], /--host/],
      [['--manifest', 'm.yaml', '--ttl', '-5'], /--ttl/],
      [['--relay', 'ws://r:1', '--token', 't', '--bogus'], /bogus/],
      [['--relay', 'ws://r:1', '--token', 't', 'extra'], /extra|positional/i],
      [['--relay', 'ws://r:1', '--token', 't', '--socks', '1080'], /--userspace/],
      [['--relay', 'ws://r:1', '--token', 't', '--userspace', '--socks', 'nowhere'], /--socks/],
      [['--relay', 'ws://r:1', '--token', 't', '--userspace', '--socks', 'off'], /--forward/],
      [['--relay', 'ws://r:1', '--token', 't', '--userspace', '--forward', '80:web'], /--forward/],
      [['--relay', 'ws://r:1', '--token', 't', '--userspace', '--forward', '80:web:0'], /ports/],
      [['--relay', 'ws://r:1', '--token', 't', '--userspace', '--dns'], /--dns/],
      [['--relay', 'ws://r:1', '--token', 't', '--userspace', '--socks', '0.0.0.0:1080'], /--allow-remote/],
      [['--relay', 'ws://r:1', '--token', 't', '--userspace', '--forward', '192.168.1.5:8080:web:80'], /--allow-remote/],
    ] as [string[], RegExp][]) {
      it(`refuses ${argv.join(' ')}`, function () {
        const a = parseJoinArgs(argv, {});
        assert.equal(typeof a, 'string');
        assert.match(a as string, pattern);
      });
    }
  });

  it('--help prints the usage and exits 0', async function () {
    const c = capture();
    assert.equal(await runJoin(['--help'], c.deps), JOIN_EXIT.ok);
    assert.match(c.out.join('\n'), /usage: imach join --relay/);
    assert.match(c.out.join('\n'), /--userspace/);
    assert.equal(c.started.length, 0);
  });

  it('a usage error exits 2 and says what is wrong', async function () {
    const c = capture();
    assert.equal(await runJoin(['--relay', 'ws://r:1'], c.deps), JOIN_EXIT.usage);
    assert.match(c.err.join('\n'), /--token/);
    assert.equal(c.started.length, 0);
  });

  it('--userspace skips the TUN checks and passes the proxy and forwards on', async function () {
    const c = capture({ preflight: async () => ['root or CAP_NET_ADMIN'] });
    const seen: UserspaceOptions[] = [];
    c.deps.startUserspace = async (o) => {
      seen.push(o);
      return { joinError: true, stage: 'interface', message: 'cannot listen for SOCKS5 on 127.0.0.1:1099: EADDRINUSE' };
    };
    const code = await runJoin(['--relay', 'ws://r:1', '--token', 't', '--userspace', '--socks', '1099', '--forward', '8080:web:80'], c.deps);
    assert.equal(code, JOIN_EXIT.listen);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]!.socks, { host: '127.0.0.1', port: 1099 });
    assert.deepEqual(seen[0]!.forwards, [{ bindHost: '127.0.0.1', bindPort: 8080, host: 'web', port: 80 }]);
    assert.match(c.err.join('\n'), /EADDRINUSE/);
    assert.equal(c.started.length, 0);
  });

  it('without root or /dev/net/tun it fails at once, naming what is missing and suggesting --userspace', async function () {
    const c = capture({ preflight: async () => ['root or CAP_NET_ADMIN', '/dev/net/tun'] });
    assert.equal(await runJoin(['--relay', 'ws://r:1', '--token', 't'], c.deps), JOIN_EXIT.missing);
    const err = c.err.join('\n');
    assert.match(err, /root or CAP_NET_ADMIN/);
    assert.match(err, /\/dev\/net\/tun/);
    assert.match(err, /--userspace/);
    assert.equal(c.started.length, 0);
  });

  for (const [failure, code] of [
    [{ joinError: true, stage: 'relay', kind: 'auth', message: 'relay refused join: expired token' }, JOIN_EXIT.refused],
    [{ joinError: true, stage: 'relay', kind: 'forbidden', message: 'relay refused join: unknown host' }, JOIN_EXIT.refused],
    [{ joinError: true, stage: 'relay', kind: 'network', message: 'cannot reach relay' }, JOIN_EXIT.unreachable],
    [{ joinError: true, stage: 'device', code: 'EPERM', message: 'cannot create TUN device' }, JOIN_EXIT.missing],
    [{ joinError: true, stage: 'device', code: 'EBUSY', message: 'cannot create TUN device' }, JOIN_EXIT.config],
    [{ joinError: true, stage: 'interface', message: 'ip route add failed: File exists' }, JOIN_EXIT.config],
  ] as [JoinError, number][]) {
    it(`a ${failure.stage} failure (${failure.kind ?? failure.code ?? 'command'}) exits ${code} with its message`, async function () {
      const c = capture({}, failure);
      assert.equal(await runJoin(['--relay', 'ws://r:1', '--token', 't'], c.deps), code);
      assert.ok(c.err.some((l) => l.includes(failure.message)), c.err.join('\n'));
    });
  }

  it('--dns without systemd-resolved says so and joins without it', async function () {
    const r = recordingRunner(/^resolvectl/);
    const c = capture({ run: r.run });
    await runJoin(['--relay', 'ws://r:1', '--token', 't', '--dns'], c.deps);
    assert.match(c.err.join('\n'), /--dns needs systemd-resolved/);
    assert.equal(c.started[0]?.dns, false);
  });

  describe('--manifest', function () {
    let dir: string;
    beforeEach(async function () {
      dir = await mkdtemp(path.join(tmpdir(), 'imach-join-'));
      await writeFile(path.join(dir, 'imach.yaml'), 'relay:\n  listen: 0.0.0.0:7123\nhosts:\n  web: ./web.js\n');
    });
    afterEach(async function () {
      await rm(dir, { recursive: true, force: true });
    });

    it('takes the relay from the manifest and mints a token for the host with the state secret', async function () {
      const c = capture();
      const saved = process.env.IMACH_SECRET;
      delete process.env.IMACH_SECRET;
      // The relay (imach up) creates the secret; join only reads it.
      await mkdir(path.join(dir, '.imach'), { recursive: true });
      await writeFile(path.join(dir, '.imach', 'secret'), 'join-test-secret\n');
      try {
        await runJoin(['--manifest', path.join(dir, 'imach.yaml'), '--host', 'devbox'], c.deps);
      } finally {
        if (saved !== undefined) process.env.IMACH_SECRET = saved;
      }
      assert.equal(c.started.length, 1);
      const o = c.started[0]!;
      assert.equal(o.relay, 'ws://127.0.0.1:7123');
      assert.equal(typeof o.token, 'function');
      const token = await (o.token as () => string | Promise<string>)();
      const secret = (await readFile(path.join(dir, '.imach', 'secret'), 'utf8')).trim();
      const claims = verifyToken(secret, token);
      assert.ok(!isTokenError(claims), JSON.stringify(claims));
      assert.equal(claims.h, 'devbox');
    });

    it('refuses to mint a token when the state directory has no secret, and creates none', async function () {
      const empty = await mkdtemp(path.join(tmpdir(), 'imach-join-nosecret-'));
      try {
        await writeFile(path.join(empty, 'imach.yaml'), 'relay:\n  listen: 127.0.0.1:7123\n');
        const c = capture();
        const saved = process.env.IMACH_SECRET;
        delete process.env.IMACH_SECRET;
        let code: number;
        try {
          code = await runJoin(['--manifest', path.join(empty, 'imach.yaml')], c.deps);
        } finally {
          if (saved !== undefined) process.env.IMACH_SECRET = saved;
        }
        assert.equal(code, JOIN_EXIT.failed);
        assert.match(c.err.join('\n'), /no network secret/);
        assert.equal(c.started.length, 0);
        await assert.rejects(readFile(path.join(empty, '.imach', 'secret')));
      } finally {
        await rm(empty, { recursive: true, force: true });
      }
    });

    it('names the field of a bad manifest and exits 2', async function () {
      await writeFile(path.join(dir, 'imach.yaml'), 'relay:\n  listen: nowhere\n');
      const c = capture();
      assert.equal(await runJoin(['--manifest', path.join(dir, 'imach.yaml')], c.deps), JOIN_EXIT.usage);
      assert.match(c.err.join('\n'), /relay\.listen/);
      assert.equal(c.started.length, 0);
    });
  });
});
