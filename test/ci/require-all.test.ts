// IMACH_REQUIRE_ALL: suites that cannot run skip with a reason, or fail where CI requires them.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REQUIRE_ALL_ENV, skipOrFail } from '../support/require-all.js';

const distTest = fileURLToPath(new URL('..', import.meta.url));
const repo = join(distTest, '..', '..');

class Skipped extends Error {}
const fakeContext = { skip: (): never => { throw new Skipped(); } } as unknown as Mocha.Context;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.js') ? [p] : [];
  });
}

describe('ci: IMACH_REQUIRE_ALL', () => {
  it('without it a suite skips (with its reason); with it the suite fails naming the reason', () => {
    const stderrWrite = process.stderr.write.bind(process.stderr);
    let said = '';
    process.stderr.write = ((s: string) => ((said += s), true)) as typeof process.stderr.write;
    try {
      assert.throws(() => skipOrFail(fakeContext, 'the TUN addon is not built', {}), Skipped);
    } finally {
      process.stderr.write = stderrWrite;
    }
    assert.match(said, /skipped: the TUN addon is not built/);
    assert.throws(
      () => skipOrFail(fakeContext, 'the TUN addon is not built', { [REQUIRE_ALL_ENV]: '1' }),
      (e: Error) => !(e instanceof Skipped) && /IMACH_REQUIRE_ALL=1 and this suite cannot run: the TUN addon is not built/.test(e.message),
    );
  });

  it('.ci/run sets it before the tests', () => {
    const run = readFileSync(join(repo, '.ci', 'run'), 'utf8');
    const set = run.indexOf('export IMACH_REQUIRE_ALL=1');
    assert.ok(set >= 0, '.ci/run does not export IMACH_REQUIRE_ALL=1');
    assert.ok(set < run.indexOf('npm test'), 'it is set after npm test');
  });

  it('no test skips other than through skipOrFail', () => {
    const own = fileURLToPath(import.meta.url);
    const offenders: string[] = [];
    for (const f of files(distTest)) {
      if (f === own || f.endsWith(join('support', 'require-all.js'))) continue;
      const text = readFileSync(f, 'utf8');
      if (/\b(?:this|ctx|context)\.skip\(|\b(?:it|describe)\.skip\(|\bxit\(|\bxdescribe\(/.test(text)) offenders.push(f.slice(distTest.length));
    }
    assert.deepEqual(offenders, []);
  });
});
