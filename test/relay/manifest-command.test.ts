// The manifest's `command:` hosts: words, cwd, egress, and clear errors for bad values.

import assert from 'node:assert/strict';
import { isManifestError, parseManifest, splitCommand } from '../../relay/manifest.js';
import { decodeProgramRun, encodeProgramRun, isProtocolError, parseLaunch } from '../../relay/protocol.js';

function hostRun(yaml: string): string {
  const m = parseManifest(yaml, '/srv/app');
  if (isManifestError(m)) throw new Error(m.message);
  return m.hosts[0]!.run;
}

function errorOf(yaml: string): string {
  const m = parseManifest(yaml, '/srv/app');
  assert.ok(isManifestError(m), 'expected a manifest error');
  return `${m.field}: ${m.message}`;
}

describe('manifest: command hosts', function () {
  it('a command line becomes the program in the launch, cwd defaulting to the manifest folder', function () {
    const p = decodeProgramRun(hostRun('hosts:\n  web:\n    command: node server.js --port 3000\n'));
    assert.deepEqual(p, { argv: ['node', 'server.js', '--port', '3000'], cwd: '/srv/app', egress: 'host' });
  });

  it('a list of words, a relative cwd and egress none', function () {
    const p = decodeProgramRun(hostRun("hosts:\n  web:\n    command: [node, 'my server.js']\n    cwd: api\n    egress: none\n"));
    assert.deepEqual(p, { argv: ['node', 'my server.js'], cwd: '/srv/app/api', egress: 'none' });
  });

  it('quotes group words', function () {
    assert.deepEqual(splitCommand(`node -e "console.log(1 + 2)" 'a b'c`), ['node', '-e', 'console.log(1 + 2)', 'a bc']);
    assert.equal(splitCommand(`node "open`), 'unbalanced quotes');
  });

  it('any program, not only node (the preload library runs it)', function () {
    const p = decodeProgramRun(hostRun('hosts:\n  kv:\n    command: redis-server --port 6379\n'));
    assert.deepEqual(p, { argv: ['redis-server', '--port', '6379'], cwd: '/srv/app', egress: 'host' });
  });

  it('names the field for bad values', function () {
    assert.match(errorOf('hosts:\n  web:\n    command: node a.js\n    run: ./a.js\n'), /^hosts\.web\.run: .*either run or command/);
    assert.match(errorOf('hosts:\n  web:\n    command: node a.js\n    egress: maybe\n'), /^hosts\.web\.egress: /);
    assert.match(errorOf('hosts:\n  web:\n    command: 42\n'), /^hosts\.web\.command: /);
    assert.match(errorOf('hosts:\n  web:\n    run: ./a.js\n    egress: none\n'), /^hosts\.web\.egress: .*only for a host with a command/);
  });

  it('the program survives the launch and a damaged one is a protocol error', function () {
    const run = encodeProgramRun({ argv: ['node', 'a.js'], cwd: '/x', egress: 'host' });
    const launch = parseLaunch({ host: 'web', relay: 'ws://127.0.0.1:7000', token: 't', run, env: {}, idleMs: null });
    assert.ok(!isProtocolError(launch));
    assert.deepEqual(decodeProgramRun(launch.run), { argv: ['node', 'a.js'], cwd: '/x', egress: 'host' });
    assert.equal(decodeProgramRun('/srv/app/a.js'), null);
    assert.ok(isProtocolError(decodeProgramRun('program:{"argv":[],"cwd":"/x","egress":"host"}')));
    assert.ok(isProtocolError(decodeProgramRun('program:nope')));
  });
});
