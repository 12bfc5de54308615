import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineSplitter, LocalProvider, MAX_LINE } from '../../hostfn/local-provider.js';
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

  it('passes on a line longer than MAX_LINE cut, as soon as it reaches the cap, and drops its rest', async () => {
    // 4 MiB without a newline, then nothing until SIGTERM: the cut line must not wait for a newline
    const mainPath = script(
      'noline.mjs',
      `process.stdout.write('x'.repeat(4 << 20));
       process.on('SIGTERM', () => process.stdout.write('y'.repeat(100) + '\\nafter\\n', () => process.exit(0)));
       setInterval(() => {}, 1000);`,
    );
    const lines: string[] = [];
    const p = new LocalProvider({ mainPath, logger: silentLogger, output: (_h, _s, l) => lines.push(l) });
    const inst = await p.start(launch);
    try {
      const end = Date.now() + 10_000;
      while (lines.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      assert.equal(lines.length, 1, 'the cut line is passed on before any newline');
      assert.equal(lines[0], 'x'.repeat(MAX_LINE) + '…');
      assert.equal(p.truncatedLines, 1);
    } finally {
      await inst.stop();
    }
    // the child has exited; its last output may still be on its way through the pipe
    const end = Date.now() + 5000;
    while (lines.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(lines.slice(1), ['after']);
    assert.equal(p.truncatedLines, 1);
  });

  it('LineSplitter: LF and CRLF across chunks, split UTF-8, cut lines, and a last line without newline', () => {
    const out: string[] = [];
    const s = new LineSplitter(8, (line, cut) => out.push(cut ? `${line}|cut` : line));
    const bytes = Buffer.from('ab\r\ncd\né€x\n12345678\r\n123456789abc\nend');
    // one byte at a time: every boundary (inside CRLF, inside a UTF-8 sequence) is crossed
    for (let i = 0; i < bytes.length; i++) s.push(bytes.subarray(i, i + 1));
    assert.deepEqual(out, ['ab', 'cd', 'é€x', '12345678', '12345678|cut']);
    s.end();
    assert.deepEqual(out.at(-1), 'end');
    s.push(Buffer.from('late\n'));
    assert.equal(out.length, 6);
  });

  it('maxInstances holds for concurrent starts: the slot is taken before the spawn', async () => {
    const mainPath = script('sleep.mjs', `setInterval(() => {}, 1000);`);
    const p = new LocalProvider({ mainPath, logger: silentLogger, maxInstances: 2, stopGraceMs: 2000, output: () => {} });
    try {
      const r = await Promise.allSettled(['a', 'b', 'c', 'd', 'e'].map((host) => p.start({ ...launch, host })));
      assert.equal(r.filter((x) => x.status === 'fulfilled').length, 2);
      assert.equal(p.running, 2);
      for (const x of r) if (x.status === 'rejected') assert.match(String(x.reason), /already running/);
    } finally {
      await p.stopAll();
    }
    assert.equal(p.running, 0);
    // a spawn that fails (a NUL byte in the environment) gives its slot back
    const env: Record<string, string> = { BAD: 'a\0b' };
    const one = new LocalProvider({ mainPath, logger: silentLogger, maxInstances: 1, env, output: () => {} });
    await assert.rejects(one.start(launch));
    delete env.BAD;
    const inst = await one.start(launch);
    await inst.stop();
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

    it('ready() resolves once every spare has loaded: starts after it take a loaded spare, and refills load one at a time', async () => {
      // The cold-start bug: `imach up` announced the relay while its spare was still
      // loading, and the first start waited for it (about 0.5 s).
      const p = new LocalProvider({ logger: silentLogger, output: () => {}, warm: 2 });
      try {
        assert.equal(p.readySpareCount, 0, 'spares have not loaded yet right after construction');
        assert.equal(await p.ready(20_000), 2);
        assert.equal(p.readySpareCount, 2);
        const a = await p.start({ ...launch, host: 'a', relay: 'not a url' });
        const b = await p.start({ ...launch, host: 'b', relay: 'not a url' });
        assert.equal(p.startsOnLoadingSpareCount, 0, 'no start waited for a spare still loading');
        assert.equal(p.spareCount, 1, 'one refill loads at a time, not one per start');
        assert.equal((await a.exited).code, 2);
        assert.equal((await b.exited).code, 2);
        const c = await p.start({ ...launch, host: 'c', relay: 'not a url' });
        assert.equal(p.startsOnLoadingSpareCount, 1, 'a start on the refill still loading is counted');
        assert.equal((await c.exited).code, 2);
        assert.equal(await p.ready(20_000), 2, 'the pool fills up again');
      } finally {
        await p.close();
      }
    });

    it('ready() does not wait for a spare that ended while loading', async () => {
      const mainPath = script('dies.mjs', 'process.exit(1);');
      const p = new LocalProvider({ mainPath, logger: silentLogger, output: () => {}, warm: 1 });
      try {
        const t0 = Date.now();
        assert.equal(await p.ready(30_000), 0);
        assert.ok(Date.now() - t0 < 15_000, 'ready() returned once nothing was loading, not at its timeout');
        assert.equal(p.spareCount, 0);
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
