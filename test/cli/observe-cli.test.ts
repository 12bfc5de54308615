import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
const COMMANDS = ['describe', 'logs', 'flows', 'capture', 'perf'];

function imach(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: tmpdir(), env: { PATH: process.env.PATH ?? '', IMACH_SECRET: 's', IMACH_RELAY: 'ws://127.0.0.1:9' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('cli: the observability commands', function () {
  this.timeout(30_000);

  it('imach --help lists them', async () => {
    const r = await imach(['--help']);
    assert.equal(r.code, 0);
    for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c}\\b`, 'm'), c);
  });

  for (const c of COMMANDS) {
    it(`${c} --help prints its usage and exits 0`, async () => {
      const r = await imach([c, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^usage: imach ${c}\\b`));
    });
  }

  it('bad flags and missing arguments exit 2 naming the problem', async () => {
    const cases: [string[], RegExp][] = [
      [['describe'], /missing host name/],
      [['logs'], /missing host name/],
      [['logs', 'web', '--since', 'soon'], /--since must be a duration/],
      [['flows', 'a', 'b'], /unexpected argument 'b'/],
      [['capture', '-w', '-', '--count', '0'], /--count must be a positive integer/],
      [['capture', '-w', '-', '--duration', 'x'], /--duration must be a duration/],
      [['perf'], /missing <host\|address>/],
      [['perf', '10.77.0.10', '--port', '70000'], /--port must be at most 65535/],
      [['perf', '10.77.0.10', '--pings', 'many'], /--pings must be a positive integer/],
    ];
    for (const [args, expected] of cases) {
      const r = await imach(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, expected, args.join(' '));
    }
  });

  it('without a relay they fail with exit 1', async () => {
    for (const args of [['describe', 'web'], ['logs', 'web'], ['flows'], ['capture', '-w', '-']]) {
      const r = await imach(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /cannot reach the relay/, args.join(' '));
    }
  });
});
