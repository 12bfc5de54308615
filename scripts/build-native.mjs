#!/usr/bin/env node
// Builds the optional native parts: the preload library (native/preload, with the system C
// compiler) and the TUN addon (native/tun, with the node-gyp that npm ships).
// It never fails the install: on any problem it prints one line saying why a part is
// unavailable and exits 0, so everything else still works.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addonDir = path.join(root, 'native', 'tun');

buildPreload();

/** native/preload/build/imach_preload.so: non-Node `command:` hosts need it. */
function buildPreload() {
  const why = (reason) => console.log(`imach: preload library unavailable (${reason}); only Node programs can be \`command:\` hosts, everything else works without it`);
  if (process.env.IMACH_SKIP_NATIVE === '1') return why('IMACH_SKIP_NATIVE=1');
  if (process.platform !== 'linux') return why(`it is Linux only, this is ${process.platform}`);
  const dir = path.join(root, 'native', 'preload');
  const out = path.join(dir, 'build', 'imach_preload.so');
  mkdirSync(path.dirname(out), { recursive: true });
  const cc = process.env.CC || 'cc';
  const res = spawnSync(cc, ['-O2', '-Wall', '-shared', '-fPIC', '-o', out, path.join(dir, 'preload.c'), '-ldl'], { encoding: 'utf8', timeout: 120_000 });
  if (res.error) return why(`${cc} did not run: ${res.error.message}`);
  if (res.status !== 0) return why(`build failed: ${failureReason(`${res.stderr ?? ''}\n${res.stdout ?? ''}`, res.status)}`);
  console.log('imach: preload library built (native/preload/build/imach_preload.so)');
}

function unavailable(why) {
  console.log(`imach: TUN addon unavailable (${why}); \`imach join\` needs it, everything else works without it`);
  process.exit(0);
}

function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  if (process.env.npm_execpath) {
    // npm_execpath is .../npm/bin/npm-cli.js
    const npmRoot = path.resolve(path.dirname(process.env.npm_execpath), '..');
    candidates.push(path.join(npmRoot, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  return candidates.find((c) => existsSync(c));
}

if (process.env.IMACH_SKIP_NATIVE === '1') unavailable('IMACH_SKIP_NATIVE=1');
if (process.platform !== 'linux') unavailable(`TUN devices are Linux only, this is ${process.platform}`);

const nodeGyp = findNodeGyp();
if (!nodeGyp) unavailable('node-gyp not found: set npm_config_node_gyp or install npm');

const args = [nodeGyp, 'rebuild', '--directory', addonDir];
// Use local Node headers when npm does not say where they are, so the build needs no download.
if (!process.env.npm_config_nodedir) {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
}

const res = spawnSync(process.execPath, args, { cwd: addonDir, encoding: 'utf8', timeout: 300_000 });
if (res.error) unavailable(`node-gyp did not run: ${res.error.message}`);
if (res.status !== 0) unavailable(`build failed: ${failureReason(`${res.stderr ?? ''}\n${res.stdout ?? ''}`, res.status)}`);
if (!existsSync(path.join(addonDir, 'build', 'Release', 'imach_tun.node'))) unavailable('build produced no imach_tun.node');
console.log('imach: TUN addon built (native/tun/build/Release/imach_tun.node)');

/** The most telling line of node-gyp's output, most specific first. */
function failureReason(output, status) {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.some((l) => /find Python .*install/i.test(l))) return 'python3 not found (node-gyp needs it)';
  const patterns = [/fatal error:|\berror:/, /No such file or directory|not found|command not found/i, /^gyp ERR! stack Error:/];
  for (const re of patterns) {
    const hit = lines.find((l) => re.test(l));
    if (hit) return hit.replace(/^gyp ERR! (stack )?/, '').slice(0, 200);
  }
  return `node-gyp exited with ${status}`;
}
