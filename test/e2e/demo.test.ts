import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
const DEMO = fileURLToPath(new URL('../../../examples/demo/imach.yaml', import.meta.url));

describe('e2e: imach up with the demo', function () {
  it('is made of ordinary programs: command hosts, none importing imach', function () {
    const dir = dirname(DEMO);
    const manifest = readFileSync(DEMO, 'utf8');
    assert.doesNotMatch(manifest, /^\s+run:/m);
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
      assert.match(manifest, new RegExp(`command: node ${f.replace('.', '\\.')}`), f);
      assert.doesNotMatch(readFileSync(join(dir, f), 'utf8'), /from ['"]imach|require\(['"]imach|export default/, f);
    }
  });

  this.timeout(60_000);
  let state: string;
  before(() => {
    state = mkdtempSync(join(tmpdir(), 'imach-demo-'));
  });
  after(() => rmSync(state, { recursive: true, force: true }));

  it('starts hosts by signals, serves the client through web, kv and worker, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'up', DEMO, '--start', 'client', '--listen', '127.0.0.1:0', '--state-dir', state], {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    const kill = setTimeout(() => child.kill('SIGKILL'), 55_000);
    try {
      const end = Date.now() + 45_000;
      while (!/GET \/primes\?n=200000 -> 200/.test(out) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      assert.match(out, /client\s+started\s+starting\s+ICMP echo/);
      assert.match(out, /web\s+started\s+starting\s+DNS query web\.imach from 10\.77\.0\.20/);
      assert.match(out, /kv\s+started\s+starting\s+DNS query kv\.imach from 10\.77\.0\.11/);
      assert.match(out, /GET \/ -> 200 hello from web \(10\.77\.0\.11\)/);
      assert.match(out, /GET \/count -> 200 count=1/);
      // pi(200000) = 17984
      assert.match(out, /GET \/primes\?n=200000 -> 200 primes below 200000: 17984/);
      // the hosts are the ordinary programs themselves
      assert.match(out, /web listening on 80/);
      assert.match(out, /kv listening on 6379/);
      assert.match(out, /worker listening on 9000/);
    } finally {
      child.kill('SIGTERM');
      const code = await exited;
      clearTimeout(kill);
      assert.equal(code, 0, out.slice(-2000));
    }
  });
});
