// Deployment packages: lambda-local's zip reader and writer, against Python's zipfile
// and against hostile archives.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractZip, isZipError, readZip, writeZip, type ZipEntry } from '../../lambda-local/zip.js';
import { skipOrFail } from '../support/require-all.js';

function hasPython(): boolean {
  try {
    execFileSync('python3', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function expectError(r: ZipEntry[] | ReturnType<typeof readZip>, pattern: RegExp): void {
  assert.ok(isZipError(r), 'expected a zip error');
  assert.match(r.message, pattern);
}

describe('lambda-local: zip packages', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'imach-zip-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads back what it writes: names, bytes, unix modes and directories, and extracts them', () => {
    const big = Buffer.alloc(300_000, 'abc');
    const zip = writeZip([
      { name: 'bootstrap', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      { name: 'lib/', data: new Uint8Array(0) },
      { name: 'lib/big.txt', data: big },
      { name: 'empty', data: new Uint8Array(0) },
    ]);
    assert.ok(zip.length < 10_000, 'deflated');
    const entries = readZip(zip);
    assert.ok(!isZipError(entries));
    assert.deepEqual(entries.map((e) => [e.name, e.data.length, e.mode]), [
      ['bootstrap', 10, 0o755],
      ['lib/', 0, 0o755],
      ['lib/big.txt', 300_000, 0o644],
      ['empty', 0, 0o644],
    ]);
    const out = join(dir, 'x');
    execFileSync('mkdir', ['-p', out]);
    extractZip(entries, out);
    assert.equal(statSync(join(out, 'bootstrap')).mode & 0o777, 0o755);
    assert.ok(readFileSync(join(out, 'lib/big.txt')).equals(big));
  });

  it('reads a zip made by Python\'s zipfile (deflated, with an executable), and Python reads ours', function () {
    if (!hasPython()) {
      skipOrFail(this, "python3 is missing: the test checks our zips against Python's zipfile");
    }
    const file = join(dir, 'py.zip');
    execFileSync('python3', [
      '-c',
      `import zipfile
z = zipfile.ZipFile(${JSON.stringify(file)}, 'w', zipfile.ZIP_DEFLATED)
i = zipfile.ZipInfo('bootstrap'); i.external_attr = 0o100755 << 16; i.create_system = 3; i.compress_type = zipfile.ZIP_DEFLATED
z.writestr(i, '#!/bin/sh\\necho hi\\n' * 100)
z.writestr('src/index.mjs', 'export const handler = async () => 1;\\n')
z.close()`,
    ]);
    const entries = readZip(readFileSync(file));
    assert.ok(!isZipError(entries), isZipError(entries) ? entries.message : '');
    const boot = entries.find((e) => e.name === 'bootstrap');
    assert.equal(boot?.mode, 0o755);
    assert.equal(Buffer.from(boot!.data).toString(), '#!/bin/sh\necho hi\n'.repeat(100));
    assert.equal(Buffer.from(entries.find((e) => e.name === 'src/index.mjs')!.data).toString(), 'export const handler = async () => 1;\n');
    const ours = join(dir, 'ours.zip');
    execFileSync('sh', ['-c', `cat > ${ours}`], { input: writeZip([{ name: 'a/b.txt', data: Buffer.from('hello'), mode: 0o600 }]) });
    const seen = execFileSync('python3', [
      '-c',
      `import zipfile
z = zipfile.ZipFile(${JSON.stringify(ours)})
assert z.testzip() is None
i = z.getinfo('a/b.txt')
print(z.read('a/b.txt').decode(), oct(i.external_attr >> 16))`,
    ]).toString();
    assert.equal(seen.trim(), 'hello 0o100600');
  });

  it('refuses hostile archives with an error value: traversal, absolute names, symlinks, bad CRC, too large, garbage', () => {
    expectError(readZip(writeZip([{ name: '../evil', data: Buffer.from('x') }])), /unsafe entry name/);
    expectError(readZip(writeZip([{ name: 'a/../../evil', data: Buffer.from('x') }])), /unsafe entry name/);
    expectError(readZip(writeZip([{ name: '/etc/passwd', data: Buffer.from('x') }])), /unsafe entry name/);
    expectError(readZip(writeZip([{ name: 'link', data: Buffer.from('/etc'), mode: 0o120777 }])), /symlink/);
    const good = writeZip([{ name: 'f', data: Buffer.from('hello hello hello') }]);
    const corrupt = Buffer.from(good);
    corrupt[30 + 1 + 2] ^= 0xff; // a byte of the deflated data
    assert.ok(isZipError(readZip(corrupt)));
    expectError(readZip(writeZip([{ name: 'bomb', data: Buffer.alloc(1_000_000) }]), 100_000), /exceeds 100000 bytes/);
    expectError(readZip(Buffer.from('not a zip at all')), /not a zip/);
    expectError(readZip(new Uint8Array(0)), /not a zip/);
  });

  it('never throws on a mutated archive (2000 random corruptions)', () => {
    const base = writeZip([
      { name: 'a.txt', data: Buffer.from('a'.repeat(1000)) },
      { name: 'b/c.bin', data: Buffer.from(Array.from({ length: 500 }, (_, i) => i & 0xff)) },
    ]);
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed);
    let errors = 0;
    for (let i = 0; i < 2000; i++) {
      const z = Buffer.from(base);
      for (let k = 0; k < 1 + (rnd() % 4); k++) z[rnd() % z.length] = rnd() & 0xff;
      const cut = rnd() % 5 === 0 ? z.subarray(0, rnd() % z.length) : z;
      const r = readZip(cut);
      if (isZipError(r)) errors++;
    }
    assert.ok(errors > 1000, `most corruptions are detected (${errors})`);
  });
});
