// The published package: what `npm pack` puts in the tarball must run the CLI and every export.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(fileURLToPath(new URL('..', import.meta.url)), '..', '..');

interface PackEntry { path: string }

describe('ci: the npm package', function () {
  this.timeout(60_000);
  let packed: Set<string>;

  before(() => {
    // --ignore-scripts: `prepare` would rebuild dist/ under the running suite
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const [info] = JSON.parse(out) as [{ files: PackEntry[] }];
    packed = new Set(info.files.map((f) => f.path));
  });

  it('holds the bin, every export target and what install and run read from the source tree', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { bin: Record<string, string>; exports: Record<string, string> };
    const wanted = [
      ...Object.values(pkg.bin),
      ...Object.values(pkg.exports),
      'dist/cli/main.js', 'dist/hostfn/main.js', 'dist/hostfn/preload-host.js',
      'scripts/build-native.mjs', 'native/preload/preload.c', 'native/tun/tun.c', 'native/tun/binding.gyp',
      'relay/dashboard/index.html', 'relay/dashboard/app.js', 'examples/demo/imach.yaml',
    ].map((p) => p.replace(/^\.\//, ''));
    for (const p of wanted) assert.ok(packed.has(p), `${p} is missing from the package`);
  });

  it('leaves out tests, benches, secrets and build output of this machine', () => {
    for (const p of packed) {
      assert.doesNotMatch(p, /^dist\/(test|bench)\//, p);
      assert.doesNotMatch(p, /(^|\/)\.imach\//, `${p}: a local secret`);
      assert.doesNotMatch(p, /\/build\//, `${p}: built on this machine, rebuilt on install`);
      assert.doesNotMatch(p, /^node_modules\//, p);
    }
  });
});
