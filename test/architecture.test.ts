// The folder import rules (README.md, Layout): every .ts file's imports of our own code,
// checked against what its folder may import.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * What each folder may import besides itself, as path prefixes under the root ('*': all).
 * A prefix ending in '.ts' is one file.
 */
const MAY_IMPORT: Record<string, string[]> = {
  netstack: [],
  transport: ['netstack/wire/', 'relay/protocol.ts'],
  relay: ['netstack/wire/', 'transport/'],
  hostfn: ['netstack/', 'transport/', 'relay/protocol.ts', 'relay/provider.ts'],
  // bent: join shares the hosts' logger and their default stack (Stack + net facade +
  // resolver) rather than keeping copies; both would move to netstack if they grow
  join: ['netstack/', 'transport/', 'relay/protocol.ts', 'hostfn/log.ts', 'hostfn/netstack-bundle.ts'],
  // a development tool: Node built-ins only (it starts hostfn/lambda-runtime.js by path)
  'lambda-local': [],
  cli: ['*'],
  bench: ['*'],
  test: ['*'],
};

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...tsFiles(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Module specifiers of static imports, re-exports and dynamic imports. */
export function importSpecifiers(source: string): string[] {
  const text = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const patterns = [/\b(?:import|export)\s[^'";]*?\sfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The root-relative .ts path an import of ours names (dist's .js written as the source .ts). */
function target(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  return relative(ROOT, resolve(ROOT, dirname(from), spec)).split(sep).join('/').replace(/\.js$/, '.ts');
}

function allowed(folder: string, to: string): boolean {
  if (to.startsWith(`${folder}/`)) return true;
  const rules = MAY_IMPORT[folder] ?? [];
  return rules.some((r) => r === '*' || (r.endsWith('.ts') ? to === r : to.startsWith(r)));
}

describe('architecture: folder import rules', () => {
  it('finds imports of every form', () => {
    const src = `import a from './a.js';\nimport type { B } from '../b.js';\nexport { c } from "./c.js";\nimport './side.js';\nconst d = await import('./d.js');\n// import x from './commented.js';\nimport {\n  e,\n  f,\n} from './ef.js';`;
    assert.deepEqual(importSpecifiers(src).sort(), ['../b.js', './a.js', './c.js', './d.js', './ef.js', './side.js']);
  });

  it('every folder imports only what the table allows', () => {
    const violations: string[] = [];
    let checked = 0;
    for (const folder of Object.keys(MAY_IMPORT)) {
      for (const file of tsFiles(folder)) {
        for (const spec of importSpecifiers(readFileSync(join(ROOT, file), 'utf8'))) {
          const to = target(file, spec);
          if (to === null) continue;
          checked++;
          if (!allowed(folder, to)) violations.push(`${file} -> ${to}`);
        }
      }
    }
    assert.ok(checked > 300, `checked ${checked} imports`);
    assert.deepEqual(violations, []);
  });

  it('every top-level folder with TypeScript has a rule', () => {
    const folders = readdirSync(ROOT, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !['node_modules', 'dist', 'examples', 'native', 'scripts', 'bin'].includes(e.name) && !e.name.startsWith('.'))
      .map((e) => e.name)
      .filter((d) => tsFiles(d).length > 0);
    assert.deepEqual(folders.filter((d) => !(d in MAY_IMPORT)), []);
  });

  it('a rule that is broken is found (the check can fail)', () => {
    assert.equal(allowed('netstack', 'relay/protocol.ts'), false);
    assert.equal(allowed('transport', 'relay/index.ts'), false);
    assert.equal(allowed('transport', 'relay/protocol.ts'), true);
    assert.equal(allowed('relay', 'hostfn/runtime.ts'), false);
    assert.equal(allowed('join', 'relay/manifest.ts'), false);
    assert.equal(allowed('hostfn', 'relay/provider.ts'), true);
  });
});
