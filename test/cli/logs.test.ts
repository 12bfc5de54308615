import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostLogs } from '../../relay/host-logs.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

function run(args: string[], env: Record<string, string>): { child: ChildProcess; out: () => string; done: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const done = new Promise<number | null>((r) =>
    child.on('close', (c) => {
      clearTimeout(kill);
      r(c);
    }),
  );
  return { child, out: () => out, done };
}

async function until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('imach logs', function () {
  this.timeout(40_000);

  it('HostLogs keeps the last lines per host, cut to the line limit, and filters by time', () => {
    const logs = new HostLogs({ linesPerHost: 3, maxLineChars: 5 });
    for (let i = 0; i < 5; i++) logs.push('web', 'stdout', `line${i}-long`, i * 1000);
    logs.push('db', 'stderr', 'x', 0);
    assert.deepEqual(logs.list('web').map((l) => l.line), ['line2', 'line3', 'line4']);
    assert.deepEqual(logs.list('web', 3000).map((l) => l.line), ['line3', 'line4']);
    assert.equal(logs.list('db')[0]!.stream, 'stderr');
    logs.forget('web');
    assert.deepEqual(logs.list('web'), []);
  });

  it('collects a local host\'s output under imach up; logs prints it, -f follows new lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'imach-logs-'));
    const state = join(dir, 'state');
    writeFileSync(
      join(dir, 'app.mjs'),
      `export default ({ signal }) => {
  console.log('hello from web');
  console.error('a warning from web');
  let n = 0;
  const t = setInterval(() => console.log('tick ' + ++n), 300);
  return new Promise((r) => signal.addEventListener('abort', () => { clearInterval(t); r(); }));
};\n`,
    );
    const m = join(dir, 'imach.yaml');
    writeFileSync(m, 'relay:\n  listen: 127.0.0.1:0\nhosts:\n  web:\n    run: ./app.mjs\n    idle: never\n');
    const up = run(['up', m, '--state-dir', state, '--start', 'web', '--warm', '0'], {});
    try {
      await until(() => /hello from web/.test(up.out()), 'web to print');
      const url = /relay on (ws:\/\/\S+),/.exec(up.out())![1]!;
      const env = { IMACH_RELAY: url, IMACH_STATE_DIR: state };
      const once = run(['logs', 'web'], env);
      assert.equal(await once.done, 0, once.out());
      assert.match(once.out(), /^\d\d:\d\d:\d\d\.\d{3}   hello from web$/m);
      assert.match(once.out(), /^\d\d:\d\d:\d\d\.\d{3} E a warning from web$/m);

      const json = run(['logs', 'web', '--json', '--since', '1h'], env);
      assert.equal(await json.done, 0);
      const lines = json.out().trim().split('\n').map((l) => JSON.parse(l) as { time: string; host: string; stream: string; line: string });
      const hello = lines.find((l) => l.line === 'hello from web');
      assert.ok(hello !== undefined, json.out());
      assert.equal(hello.host, 'web');
      assert.equal(hello.stream, 'stdout');
      assert.ok(Math.abs(Date.parse(hello.time) - Date.now()) < 60_000);

      const follow = run(['logs', 'web', '-f'], env);
      const seen = (): number => Math.max(0, ...[...follow.out().matchAll(/tick (\d+)/g)].map((x) => Number(x[1])));
      await until(() => seen() > 0, 'a first tick');
      const firstSeen = seen();
      await until(() => seen() >= firstSeen + 2, 'new ticks while following');
      follow.child.kill('SIGINT');
      assert.equal(await follow.done, 0);

      const unknown = run(['logs', 'nosuch'], env);
      assert.equal(await unknown.done, 1);
      assert.match(unknown.out(), /404.*unknown host nosuch/);
    } finally {
      up.child.kill('SIGTERM');
      await up.done;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
