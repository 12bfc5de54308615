import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetNs } from '../support/join-netns.js';
import { cliPath, interopBlocker, spawnInNs, startJoin, type LineProcess } from '../support/interop-netns.js';
import { skipOrFail } from '../support/require-all.js';

interface Iperf3Report {
  end: { sum_sent: { bytes: number }; sum_received: { bytes: number; bits_per_second: number } };
}

describe('perf: true: a host answers iperf3 (Debian iperf3 -c from a joined namespace)', function () {
  this.timeout(120_000);
  let ns: NetNs | undefined;
  let up: LineProcess | undefined;
  let joined: LineProcess | undefined;
  let dir: string | undefined;

  before(async function () {
    const blocker = await interopBlocker(['iperf3']);
    if (blocker !== null) skipOrFail(this, blocker);
    const made = await NetNs.create();
    if (typeof made === 'string') skipOrFail(this, made);
    ns = made;
    dir = mkdtempSync(join(tmpdir(), 'imach-perf-'));
    writeFileSync(join(dir, 'app.mjs'), 'export default () => {};\n');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const m = join(dir, 'imach.yaml');
    writeFileSync(m, `relay:\n  listen: 127.0.0.1:${port}\nhosts:\n  web:\n    run: ./app.mjs\n    address: 10.77.0.10\n    idle: never\n    perf: true\n`);
    const state = join(dir, 'state');
    up = spawnInNs(ns, [process.execPath, cliPath, 'up', m, '--state-dir', state, '--start', 'web', '--warm', '0'], 'imach up');
    await up.waitFor((o) => typeof o.text === 'string' && /answering iperf3/.test(o.text), 'web answering iperf3', 30_000);
    const token = execFileSync(process.execPath, [cliPath, 'token', 'laptop', '--state-dir', state], { encoding: 'utf8' }).trim();
    joined = (await startJoin(ns, ['--relay', `ws://127.0.0.1:${port}`, '--token', token, '--dev', 'imperf0'])).proc;
  });

  after(async () => {
    await joined?.stop('SIGINT');
    await up?.stop('SIGTERM');
    await ns?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  for (const [what, extra] of [
    ['to the host', []],
    ['from the host (-R), two streams (-P 2)', ['-R', '-P', '2']],
  ] as const) {
    it(`iperf3 -c measures ${what}`, async () => {
      let r = await ns!.exec('iperf3', ['-c', '10.77.0.10', '-t', '1', '-J', ...extra]);
      // a silent exit 1 of the client (seen once in a full CI-like run) is tried once more
      if (r.code !== 0 && r.stdout === '' && r.stderr === '') r = await ns!.exec('iperf3', ['-c', '10.77.0.10', '-t', '1', '-J', ...extra]);
      assert.equal(r.code, 0, r.stdout.slice(-2000) + r.stderr);
      const report = JSON.parse(r.stdout) as Iperf3Report;
      assert.ok(report.end.sum_received.bytes > 1_000_000, `received ${report.end.sum_received.bytes} bytes`);
      assert.ok(report.end.sum_sent.bytes >= report.end.sum_received.bytes);
      process.stderr.write(`      iperf3 ${extra.join(' ')}: ${(report.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s received\n`);
    });
  }

  it('imach perf --json reports throughput both ways and round-trip percentiles from the joined namespace', async () => {
    const r = await ns!.exec(process.execPath, [cliPath, 'perf', '10.77.0.10', '-t', '1', '--pings', '20', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { address: string; uploadBps: number; downloadBps: number; rttMs: { samples: number; min: number; p50: number; p90: number; p99: number; max: number } };
    assert.equal(report.address, '10.77.0.10');
    assert.ok(report.uploadBps > 1e6, `upload ${report.uploadBps} bit/s`);
    assert.ok(report.downloadBps > 1e6, `download ${report.downloadBps} bit/s`);
    const q = report.rttMs;
    assert.equal(q.samples, 20);
    assert.ok(q.min > 0 && q.min <= q.p50 && q.p50 <= q.p90 && q.p90 <= q.p99 && q.p99 <= q.max, JSON.stringify(q));
    process.stderr.write(`      imach perf: up ${(report.uploadBps / 1e6).toFixed(0)} Mbit/s, down ${(report.downloadBps / 1e6).toFixed(0)} Mbit/s, rtt p50 ${q.p50} ms p99 ${q.p99} ms\n`);
  });

  it('a UDP test is refused, and the host keeps answering', async () => {
    const r = await ns!.exec('iperf3', ['-c', '10.77.0.10', '-u', '-t', '1']);
    assert.notEqual(r.code, 0);
    const again = await ns!.exec('iperf3', ['-c', '10.77.0.10', '-t', '1', '-J']);
    assert.equal(again.code, 0, again.stderr);
  });
});
