// The README's examples run as written, through the package's own exports.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

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
