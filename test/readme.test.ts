// The README's examples run as written, through the package's own exports.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';

const repo = fileURLToPath(new URL('../..', import.meta.url));

function example(heading: string): string {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `README has no section ${heading}`);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, `no ts block under ${heading}`);
  return m[1];
}

describe('README', function () {
  this.timeout(30_000);

  it('the stack example runs through imach/netstack, prints hello and exits', async () => {
    const file = join(repo, 'dist', 'readme-example.mjs');
    writeFileSync(file, example('## Using the stack on its own'));
    try {
      const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d));
        const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.on('error', reject);
        child.on('close', (c) => {
          clearTimeout(kill);
          resolve({ code: c, out });
        });
      });
      assert.equal(code, 0);
      assert.equal(out.trim(), 'hello');
    } finally {
      rmSync(file, { force: true });
    }
  });
});

/** The `sh` blocks under a heading, each as its command lines (comments and blanks dropped). */
function shellBlocks(heading: string): string[][] {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `README has no section ${heading}`);
  const section = readme.slice(at, readme.indexOf('\n## ', at + heading.length));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    m[1].split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter((l) => l !== ''),
  );
}

interface Ran {
  code: number | null;
  out: string;
}

/** Run a README command line (no quotes in them) in the repository root. */
function run(line: string, timeoutMs = 60_000): Promise<Ran> {
  const [file, ...args] = line.split(/\s+/);
  return new Promise((resolve, reject) => {
    const child = spawn(file!, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, out });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('README: the commands of Quick start, from the repository root', function () {
  this.timeout(180_000);

  // `npx --no-install`: if `imach` did not resolve to this repository, npx must fail here
  // rather than look for a package of that name on the registry.
  const npx = (line: string) => line.replace(/^npx imach /, 'npx --no-install imach ');

  it('npx imach resolves to this repository\'s command', async () => {
    const r = await run(npx('npx imach --version'));
    assert.equal(r.code, 0, r.out);
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
    assert.match(r.out, new RegExp(`^imach ${pkg.version.replace(/\./g, '\\.')} `));
  });

  it('npm start takes a port, and ps, events and ping reach the demo with the manifest', async () => {
    const [setup, demo] = shellBlocks('## Quick start');
    assert.ok(setup!.includes('npm start'), 'Quick start runs npm start');
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    assert.ok(readme.includes('`npm start -- --listen 127.0.0.1:7100`'), 'README says how npm start takes a port');
    assert.ok(readme.includes('add it: `--relay ws://127.0.0.1:7100`'), 'README says how the commands reach another port');
    assert.deepEqual(demo!.map((l) => l.split(' ').slice(0, 3).join(' ')), ['npx imach ps', 'npx imach events', 'npx imach ping']);
    // the documented port, swapped for a free one so that a demo already on 7100 does not matter
    const port = await freePort();
    const start = spawn('npm', ['start', '--', '--listen', `127.0.0.1:${port}`], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    start.stdout.on('data', (d: Buffer) => (out += d));
    start.stderr.on('data', (d: Buffer) => (out += d));
    const closed = new Promise<void>((r) => start.once('close', () => r()));
    try {
      const end = Date.now() + 120_000;
      while (!/all hosts are cold/.test(out) && start.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      assert.match(out, new RegExp(`imach: relay on ws://127\\.0\\.0\\.1:${port},`), out);
      const relay = ` --relay ws://127.0.0.1:${port}`;
      const ps = await run(npx(demo![0]!) + relay);
      assert.equal(ps.code, 0, ps.out);
      for (const h of ['client', 'web', 'kv', 'worker']) assert.match(ps.out, new RegExp(`^${h}\\s+10\\.77\\.0\\.\\d+\\s`, 'm'), ps.out);
      const ping = await run(npx(demo![2]!) + relay);
      assert.equal(ping.code, 0, ping.out);
      assert.match(ping.out, /1 sent, 1 received, 0% loss/);
      const events = await run(npx(demo![1]!) + relay);
      assert.equal(events.code, 0, events.out);
      assert.match(events.out, /\bweb\s+started\s+starting\s/, 'web was started (by the client or the ping)');
    } finally {
      if (groupAlive(start.pid!)) process.kill(-start.pid!, 'SIGTERM');
      const end = Date.now() + 20_000;
      while (groupAlive(start.pid!) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      if (groupAlive(start.pid!)) process.kill(-start.pid!, 'SIGKILL');
      await closed;
    }
  });
});
