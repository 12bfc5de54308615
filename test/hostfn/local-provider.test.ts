import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProvider } from '../../hostfn/local-provider.js';
import { silentLogger } from '../../hostfn/log.js';
import type { Launch } from '../../hostfn/protocol.js';

const launch: Launch = {
  host: 'web',
  relay: 'ws://127.0.0.1:1',
  token: 't',
  run: '/x.js',
  env: {},
  idleMs: null,
  mtu: 65535,
};

describe('hostfn/local-provider', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'imach-lp-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function script(name: string, source: string): string {
    const p = join(dir, name);
    writeFileSync(p, source);
    return p;
  }

  it('passes the launch in IMACH_LAUNCH, prefixes output with the host, and reports the exit', async () => {
    const mainPath = script(
      'echo.mjs',
      `const l = JSON.parse(process.env.IMACH_LAUNCH); console.log('host=' + l.host); console.error('err line'); process.exit(7);`,
    );
    const lines: string[] = [];
    const p = new LocalProvider({ mainPath, logger: silentLogger, output: (h, s, l) => lines.push(`${h}|${s}|${l}`) });
    const inst = await p.start(launch);
    const exit = await inst.exited;
    assert.deepEqual(exit, { code: 7, reason: 'exited with code 7' });
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(lines.includes('web|stdout|host=web'), lines.join('\n'));
    assert.ok(lines.includes('web|stderr|err line'));
    assert.equal(p.running, 0);
  });

  it('stop() sends SIGTERM and the child drains', async () => {
    const mainPath = script(
      'term.mjs',
      `process.on('SIGTERM', () => { console.log('drain'); process.exit(0); }); console.log('up'); setInterval(() => {}, 1000);`,
    );
    const lines: string[] = [];
    const p = new LocalProvider({ mainPath, logger: silentLogger, output: (_h, _s, l) => lines.push(l) });
    const inst = await p.start(launch);
    const started = Date.now();
    while (!lines.includes('up') && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10));
    await inst.stop();
    assert.deepEqual(await inst.exited, { code: 0, reason: 'exited' });
    assert.ok(lines.includes('drain'));
  });

  it('stop() kills a child that ignores SIGTERM after the grace time', async () => {
    const mainPath = script('stubborn.mjs', `process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000);`);
    const lines: string[] = [];
    const p = new LocalProvider({ mainPath, logger: silentLogger, stopGraceMs: 100, output: (_h, _s, l) => lines.push(l) });
    const inst = await p.start(launch);
    const started = Date.now();
    while (!lines.includes('up') && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 10));
    await p.stopAll();
    assert.deepEqual(await inst.exited, { code: null, reason: 'killed by SIGKILL' });
  });

  it('main.js refuses a bad launch with exit code 2 (in IMACH_LAUNCH, and over IPC to a spare)', async () => {
    for (const warm of [0, 1]) {
      const p = new LocalProvider({ logger: silentLogger, output: () => {}, warm });
      try {
        const inst = await p.start({ ...launch, relay: 'not a url' });
        const exit = await inst.exited;
        assert.equal(exit.code, 2, `warm ${warm}`);
      } finally {
        await p.close();
      }
    }
  });

  describe('warm pool', () => {
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
      const end = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    it('a start takes the pre-started child, which runs the launch as its host, and a new spare is started', async () => {
      const lines: string[] = [];
      const p = new LocalProvider({ logger: silentLogger, output: (h, s, l) => lines.push(`${h}|${s}|${l}`) });
      try {
        assert.equal(p.spareCount, 1, 'one spare by default');
        await until(() => p.warmReady, 'the spare to load');
        const [sparePid] = p.sparePids;
        // an app that cannot load: the host says so under its name and ends with code 1
        const inst = await p.start({ ...launch, run: join(dir, 'missing.mjs') });
        assert.equal((inst as unknown as { pid: number }).pid, sparePid);
        assert.equal(p.spareCount, 1);
        assert.notEqual(p.sparePids[0], sparePid);
        const exit = await inst.exited;
        assert.equal(exit.code, 1);
        await until(() => lines.some((l) => l.startsWith('web|stderr|') && l.includes('cannot load the app module')), 'the host output');
        assert.equal(p.running, 0);
      } finally {
        await p.close();
      }
    });

    it('close() kills the spares, and none are started after it', async () => {
      const p = new LocalProvider({ logger: silentLogger, output: () => {}, warm: 2 });
      const pids = p.sparePids;
      assert.equal(pids.length, 2);
      await p.close();
      assert.equal(p.spareCount, 0);
      for (const pid of pids) assert.equal(alive(pid), false, `spare ${pid} still running`);
      const inst = await p.start({ ...launch, relay: 'not a url' });
      assert.equal(p.spareCount, 0);
      assert.equal((await inst.exited).code, 2);
    });

    it('a spare does not keep its provider\'s process alive, and ends with it', async () => {
      const providerUrl = new URL('../../hostfn/local-provider.js', import.meta.url).href;
      const child = spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { LocalProvider } from ${JSON.stringify(providerUrl)};
           const p = new LocalProvider({ output: () => {} });
           const t = setInterval(() => { if (p.warmReady) { clearInterval(t); console.log(p.sparePids[0]); } }, 10);`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      assert.equal(code, 0);
      const pid = Number(out.trim());
      assert.ok(pid > 0, `spare pid in ${JSON.stringify(out)}`);
      await until(() => !alive(pid), 'the orphaned spare to end');
    });
  });
});
