// The manifest's `command:` hosts: words, cwd, egress, and clear errors for bad values.

import assert from 'node:assert/strict';
import { checkRunFiles, isManifestError, parseManifest, splitCommand } from '../../relay/manifest.js';
import { tmpdir } from 'node:os';
import { isProtocolError, parseLaunch, type ProgramSpec } from '../../relay/protocol.js';

function hostProgram(yaml: string): ProgramSpec | undefined {
  const m = parseManifest(yaml, '/srv/app');
  if (isManifestError(m)) throw new Error(m.message);
  assert.equal(m.hosts[0]!.run, '', 'a command host has no run module');
  return m.hosts[0]!.program;
}

function errorOf(yaml: string): string {
  const m = parseManifest(yaml, '/srv/app');
  assert.ok(isManifestError(m), 'expected a manifest error');
  return `${m.field}: ${m.message}`;
}

describe('manifest: command hosts', function () {
  it('imach up checks a command host by its folder, not as a module file', function () {
    const ok = parseManifest('hosts:\n  web:\n    command: node web.js\n', tmpdir());
    assert.ok(!isManifestError(ok));
    assert.equal(checkRunFiles(ok), null);
    const gone = parseManifest('hosts:\n  web:\n    command: node web.js\n    cwd: ./no-such-folder-here\n', tmpdir());
    assert.ok(!isManifestError(gone));
    const e = checkRunFiles(gone);
    assert.ok(e !== null);
    assert.equal(e.field, 'hosts.web.cwd');
    assert.match(e.message, /no-such-folder-here: no such folder/);
  });

  it('a command line becomes the program in the launch, cwd defaulting to the manifest folder', function () {
    const p = hostProgram(('hosts:\n  web:\n    command: node server.js --port 3000\n'));
    assert.deepEqual(p, { argv: ['node', 'server.js', '--port', '3000'], cwd: '/srv/app', egress: 'host' });
  });

  it('a list of words, a relative cwd and egress none', function () {
    const p = hostProgram(("hosts:\n  web:\n    command: [node, 'my server.js']\n    cwd: api\n    egress: none\n"));
    assert.deepEqual(p, { argv: ['node', 'my server.js'], cwd: '/srv/app/api', egress: 'none' });
  });

  it('quotes group words', function () {
    assert.deepEqual(splitCommand(`node -e "console.log(1 + 2)" 'a b'c`), ['node', '-e', 'console.log(1 + 2)', 'a bc']);
    assert.equal(splitCommand(`node "open`), 'unbalanced quotes');
  });

  it('any program, not only node (the preload library runs it)', function () {
    const p = hostProgram('hosts:\n  kv:\n    command: redis-server --port 6379\n');
    assert.deepEqual(p, { argv: ['redis-server', '--port', '6379'], cwd: '/srv/app', egress: 'host' });
  });

  it('names the field for bad values', function () {
    assert.match(errorOf('hosts:\n  web:\n    command: node a.js\n    run: ./a.js\n'), /^hosts\.web\.run: .*either run or command/);
    assert.match(errorOf('hosts:\n  web:\n    command: node a.js\n    egress: maybe\n'), /^hosts\.web\.egress: /);
    assert.match(errorOf('hosts:\n  web:\n    command: 42\n'), /^hosts\.web\.command: /);
    assert.match(errorOf('hosts:\n  web:\n    run: ./a.js\n    egress: none\n'), /^hosts\.web\.egress: .*only for a host with a command/);
  });

  it('the program is the launch\'s own field, validated by parseLaunch', function () {
    const base = { host: 'web', relay: 'ws://127.0.0.1:7000', token: 't', env: {}, idleMs: null };
    const program = { argv: ['node', 'a.js'], cwd: '/x', egress: 'host' };
    const launch = parseLaunch(JSON.stringify({ ...base, program }));
    assert.ok(!isProtocolError(launch));
    assert.equal(launch.run, '');
    assert.deepEqual(launch.program, program);
    const plain = parseLaunch({ ...base, run: '/srv/app/a.js' });
    assert.ok(!isProtocolError(plain));
    assert.equal(plain.program, undefined);
    const field = (v: unknown): string => {
      const r = parseLaunch(v);
      assert.ok(isProtocolError(r), `expected a protocol error for ${JSON.stringify(v)}`);
      return r.field;
    };
    assert.equal(field({ ...base, program: { ...program, argv: [] } }), 'program.argv');
    assert.equal(field({ ...base, program: { ...program, argv: new Array(257).fill('x') } }), 'program.argv');
    assert.equal(field({ ...base, program: { ...program, cwd: 7 } }), 'program.cwd');
    assert.equal(field({ ...base, program: { ...program, egress: 'all' } }), 'program.egress');
    assert.equal(field({ ...base, program: 'program:{}' }), 'program');
    assert.equal(field({ ...base, run: '/a.js', program }), 'run');
    assert.equal(field({ ...base, run: '' }), 'run');
    // The hack this replaces: a program smuggled in `run` is now just a module path.
    const old = parseLaunch({ ...base, run: 'program:{"argv":["node"],"cwd":"/x","egress":"host"}' });
    assert.ok(!isProtocolError(old) && old.program === undefined);
  });

});
