import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import net from 'node:net';
import { startIperf3Server, type PerfServer } from '../../hostfn/iperf3-server.js';
import { isManifestError, parseManifest } from '../../relay/manifest.js';
import { parseLaunch } from '../../relay/protocol.js';
import { skipOrFail } from '../support/require-all.js';

/**
 * Debian's iperf3 client once exited 1 with nothing on stdout or stderr in a full CI-like
 * run (not reproduced since): such a silent exit is tried once more; any failure that says
 * something is reported as it is.
 */
async function iperf3(args: string[]): Promise<{ code: number; stdout: string }> {
  const first = await iperf3Once(args);
  return first.code !== 0 && first.stdout.trim() === 'stderr:' ? iperf3Once(args) : first;
}

function iperf3Once(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile('iperf3', args, { timeout: 20_000 }, (err, stdout, stderr) =>
      // a failure's message carries what iperf3 said on both streams
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout: `${String(stdout)}${err ? `\nstderr: ${String(stderr)}` : ''}` }),
    );
  });
}

describe('iperf3 server (perf: true)', function () {
  this.timeout(30_000);
  let server: PerfServer | undefined;
  let port = 0;

  before(async function () {
    if (spawnSync('iperf3', ['--version']).error !== undefined) skipOrFail(this, 'iperf3 is not installed (Debian package iperf3)');
    server = await startIperf3Server(net, 0, '127.0.0.1');
    port = ((server as net.Server).address() as net.AddressInfo).port;
  });
  after(() => (server as net.Server | undefined)?.close());

  it('answers iperf3 -c over node:net, forward and reverse with parallel streams, and reports the bytes it got', async () => {
    const fwd = await iperf3(['-c', '127.0.0.1', '-p', String(port), '-t', '1', '-J']);
    assert.equal(fwd.code, 0, fwd.stdout.slice(-1000));
    const f = JSON.parse(fwd.stdout) as { end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } };
    assert.ok(f.end.sum_received.bytes > 1_000_000);
    // what the server counted comes back as the receiver's figure: at most what was sent
    assert.ok(f.end.sum_received.bytes <= f.end.sum_sent.bytes);
    const rev = await iperf3(['-c', '127.0.0.1', '-p', String(port), '-t', '1', '-R', '-P', '3', '-J']);
    assert.equal(rev.code, 0, rev.stdout.slice(-1000));
    const r = JSON.parse(rev.stdout) as { end: { streams: unknown[]; sum_received: { bytes: number } } };
    assert.equal(r.end.streams.length, 3);
    assert.ok(r.end.sum_received.bytes > 1_000_000);
  });

  it('refuses UDP and bidirectional tests and survives garbage on the control connection', async () => {
    assert.notEqual((await iperf3(['-c', '127.0.0.1', '-p', String(port), '-u', '-t', '1'])).code, 0);
    assert.notEqual((await iperf3(['-c', '127.0.0.1', '-p', String(port), '--bidir', '-t', '1'])).code, 0);
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(Buffer.alloc(37, 0x41));
        // a parameter block claiming 4 GB
        s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
      });
      s.on('error', () => {});
      s.on('close', () => resolve());
      s.resume();
    });
    const ok = await iperf3(['-c', '127.0.0.1', '-p', String(port), '-t', '1']);
    assert.equal(ok.code, 0);
  });

  it('the manifest\'s perf flag reaches the launch; anything but a boolean is refused', () => {
    const m = parseManifest('hosts:\n  web:\n    run: ./web.js\n    perf: true\n  db:\n    run: ./db.js\n', '/tmp');
    if (isManifestError(m)) throw new Error(m.message);
    assert.equal(m.hosts[0]!.perf, true);
    assert.equal(m.hosts[1]!.perf, undefined);
    const bad = parseManifest('hosts:\n  web:\n    run: ./web.js\n    perf: yes please\n', '/tmp');
    assert.ok(isManifestError(bad));
    assert.match(bad.message, /hosts\.web\.perf/);
    const launch = parseLaunch(JSON.stringify({ host: 'web', relay: 'ws://r', token: 't', run: '/x.js', env: {}, idleMs: null, mtu: 1500, perf: true }));
    assert.ok(!('message' in launch) && launch.perf === true);
    assert.ok('message' in parseLaunch(JSON.stringify({ host: 'web', relay: 'ws://r', token: 't', run: '/x.js', env: {}, idleMs: null, mtu: 1500, perf: 'yes' })));
  });
});
