// Real npm packages in unmodified programs (test/fixtures/nodeapps): the same client and
// servers run once with plain `node` on 127.0.0.1 and once as `command:` hosts (the client
// started by a ping, each server started cold by the client's first connect), and the
// client prints the same lines both times.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startE2eApp, waitFor, joinTestHost, type E2eApp, type TestHost } from '../support/e2e-harness.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/nodeapps/', import.meta.url));

/** The checks client.mjs prints, in order. */
const CHECKS = ['fetch express', 'http keep-alive', 'fastify', 'ws', 'https', 'tls', 'http2', 'pg', 'ioredis', 'dgram', 'refused'];

const manifest = (PGDATA: string): string => `
hosts:
  client:
    command: node ${FIXTURES}client.mjs
    address: 10.77.0.30
    idle: 60s
  web:
    command: node ${FIXTURES}web.mjs
    idle: 60s
  db:
    command: node ${FIXTURES}db.mjs
    idle: 60s
    startTimeout: 60s
    env:
      PGDATA_DIR: ${PGDATA}/overlay
  kv:
    command: node ${FIXTURES}kv.mjs
    idle: 60s
`;

function run(file: string, env: Record<string, string>, onLine: (line: string) => void): ChildProcess {
  const child = spawn(process.execPath, [FIXTURES + file], {
    cwd: FIXTURES,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let rest = '';
  const take = (d: Buffer): void => {
    rest += d.toString();
    const lines = rest.split('\n');
    rest = lines.pop()!;
    for (const l of lines) onLine(l);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

/** The client's lines with plain node on loopback. */
async function plainRun(pgdata: string): Promise<string[]> {
  const servers: ChildProcess[] = [];
  const ready = new Set<string>();
  const out: string[] = [];
  try {
    for (const f of ['web.mjs', 'db.mjs', 'kv.mjs']) {
      servers.push(run(f, { LISTEN_HOST: '127.0.0.1', PGDATA_DIR: join(pgdata, 'plain') }, (l) => (/ready$/.test(l) ? ready.add(l) : out.push(`${f}: ${l}`))));
    }
    await waitFor(() => ready.size === 3, `plain servers ready (${[...ready].join(', ')}) ${out.join('\n')}`, 90_000);
    const lines: string[] = [];
    const client = run('client.mjs', { WEB: '127.0.0.1', DB: '127.0.0.1', KV: '127.0.0.1' }, (l) => lines.push(l));
    await exited(client);
    return lines;
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    await Promise.all(servers.map(exited));
  }
}

describe('e2e: real packages in unmodified programs, plain node and as hosts', function () {
  this.timeout(180_000);
  let app: E2eApp;
  let me: TestHost;
  let pgdata: string;

  before(async function () {
    // PGlite's initdb blocks its process for many seconds (longer than the relay waits for
    // a pong): the data directory is made once here, and the db hosts open a copy.
    pgdata = mkdtempSync(join(tmpdir(), 'imach-pgdata-'));
    const init = spawn(process.execPath, ['-e', `import('@electric-sql/pglite').then(async (m) => { const db = await m.PGlite.create(process.argv[1]); await db.close(); })`, join(pgdata, 'plain')], {
      cwd: FIXTURES,
      stdio: 'inherit',
    });
    await exited(init);
    assert.equal(init.exitCode, 0, 'PGlite initdb');
    cpSync(join(pgdata, 'plain'), join(pgdata, 'overlay'), { recursive: true });
  });

  after(async function () {
    me?.close();
    await app?.close();
    if (pgdata !== undefined) rmSync(pgdata, { recursive: true, force: true });
  });

  it('the client prints the same lines on loopback and on the overlay (fetch, express, fastify, ws, https, tls, http2, pg, ioredis, dgram)', async function () {
    app = await startE2eApp(manifest(pgdata), {});
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    const plain = plainRun(pgdata);
    // A ping starts the client; the client's connects start web, db and kv.
    await me.ping('10.77.0.30', 10_000).catch(() => 0);
    await waitFor(() => app.output.some((l) => l.startsWith('client: refused:')), 'the client on the overlay', 120_000);
    const overlay = app.output.filter((l) => l.startsWith('client: ') && CHECKS.some((c) => l.startsWith(`client: ${c}:`))).map((l) => l.slice('client: '.length));
    const loopback = await plain;
    assert.deepEqual(
      loopback.map((l) => l.split(':')[0]),
      CHECKS,
      loopback.join('\n'),
    );
    assert.ok(!loopback.some((l) => l.includes('FAILED')), loopback.join('\n'));
    assert.deepEqual(overlay, loopback, app.output.join('\n'));
    assert.ok(app.output.some((l) => /web: .*joined/.test(l)) && app.output.some((l) => /db: .*joined/.test(l)));
  });
});
