import assert from 'node:assert/strict';
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

  it('main.js refuses a bad launch with exit code 2', async () => {
    const p = new LocalProvider({ logger: silentLogger, output: () => {} });
    const inst = await p.start({ ...launch, relay: 'not a url' });
    const exit = await inst.exited;
    assert.equal(exit.code, 2);
  });
});
