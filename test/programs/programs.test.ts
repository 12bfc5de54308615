// Unmodified Linux programs as hosts through the preload library (native/preload,
// hostfn/preload-host.ts): each server starts cold on the first connect from a test host
// joined to the relay, and no process of a program is left after its test.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRELOAD_LIB_PATH } from '../../hostfn/preload-host.js';
import { startE2eApp, joinTestHost, waitFor, type E2eApp, type TestHost } from '../support/e2e-harness.js';
import { skipOrFail } from '../support/require-all.js';
import type { NetApi } from '../../netstack/api/net.js';

function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** The newest PostgreSQL's bin folder (Debian's layout), or null. */
function pgBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, 'bin') : null;
}

/** Pids of processes whose command line contains `marker`. */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'latin1').includes(marker)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** One request on a fresh connection; the whole response (the server closes). */
function exchange(net: NetApi, host: string, port: number, request: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, host, () => s.write(request));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('data', (d: Uint8Array) => chunks.push(Buffer.from(d)));
    s.on('error', (e: Error) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('end', () => {
      clearTimeout(timer);
      s.end();
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

describe('programs: unmodified Linux programs as hosts (LD_PRELOAD)', function () {
  this.timeout(90_000);
  let app: E2eApp | undefined;
  let me: TestHost | undefined;
  let dir: string;

  before(function () {
    if (process.platform !== 'linux') skipOrFail(this, 'the preload library is Linux only');
    if (!existsSync(PRELOAD_LIB_PATH)) skipOrFail(this, `the preload library is not built (${PRELOAD_LIB_PATH}; node scripts/build-native.mjs)`);
    if (!hasTool('python3')) skipOrFail(this, 'python3 is not installed');
    if (!hasTool('curl')) skipOrFail(this, 'curl is not installed');
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'imach-programs-'));
  });

  afterEach(async () => {
    me?.close();
    me = undefined;
    await app?.close();
    app = undefined;
    // nothing of any program is left (every command line below names `dir`)
    await waitFor(() => processesWith(dir).length === 0, `no process left of ${dir}: ${processesWith(dir).join(',')}`, 10_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('python3 -m http.server serves a file, started cold, and its access log shows the overlay peer (getpeername)', async () => {
    writeFileSync(join(dir, 'hello.txt'), 'hello from python\n');
    app = await startE2eApp(
      `
hosts:
  web:
    command: python3 -u -m http.server 8000 --bind 0.0.0.0 --directory ${dir}
    address: 10.77.0.40
    idle: 60s
`,
      {},
    );
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    const response = await exchange(me.net, '10.77.0.40', 8000, 'GET /hello.txt HTTP/1.0\r\nHost: web\r\n\r\n');
    assert.match(response, /^HTTP\/1\.0 200 OK\r\n/);
    assert.ok(response.endsWith('\r\n\r\nhello from python\n'), response);
    await waitFor(() => app!.output.some((l) => l.includes('"GET /hello.txt HTTP/1.0" 200')), 'the access log line');
    const line = app.output.find((l) => l.includes('"GET /hello.txt'))!;
    assert.ok(line.startsWith(`web: ${me.address} - - [`), line);
  });

  it('redis-server started cold: PING/SET/GET from a test host, then redis-cli and redis-benchmark -c 50 -n 100000 -t get,set inside another host with no errors', async function () {
    if (!hasTool('redis-server') || !hasTool('redis-benchmark')) skipOrFail(this, 'redis-server / redis-benchmark are not installed (apt-get install redis-server)');
    this.timeout(240_000);
    app = await startE2eApp(
      `
hosts:
  kv:
    command: redis-server --port 6379 --bind 0.0.0.0 --save "" --appendonly no --protected-mode no --dir ${dir}
    address: 10.77.0.44
    idle: 120s
  bench:
    command: [sh, -c, "redis-cli -h kv SET greeting hello-${'$'}{HOSTNAME:-x} >/dev/null && redis-cli -h kv GET greeting && redis-benchmark -h kv -p 6379 -c 50 -n 100000 -t get,set -q 2>&1 | tr '\\r' '\\n'; echo bench done ${dir}"]
    address: 10.77.0.45
    idle: 120s
`,
      {},
    );
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    const resp = await new Promise<string>((resolve, reject) => {
      let got = '';
      const s = me!.net.connect(6379, '10.77.0.44', () => s.write('PING\r\nSET k v1\r\nGET k\r\n'));
      s.on('data', (d: Uint8Array) => {
        got += Buffer.from(d).toString('latin1');
        if (got.endsWith('$2\r\nv1\r\n')) {
          s.end();
          resolve(got);
        }
      });
      s.on('error', reject);
    });
    assert.equal(resp, '+PONG\r\n+OK\r\n$2\r\nv1\r\n');
    await me.ping('10.77.0.45', 10_000).catch(() => 0);
    await waitFor(() => app!.output.some((l) => l.startsWith('bench: bench done')), `redis-benchmark: ${app!.output.join('\n')}`, 200_000);
    const lines = app.output.filter((l) => l.startsWith('bench: '));
    assert.ok(lines.some((l) => /^bench: hello-/.test(l)), lines.join('\n'));
    const rates = lines.map((l) => /^bench: (SET|GET): ([\d.]+) requests per second/.exec(l)).filter((m) => m !== null);
    assert.deepEqual(rates.map((m) => m![1]).sort(), ['GET', 'SET'], lines.join('\n'));
    assert.ok(!lines.some((l) => /error|refused|reset/i.test(l)), lines.join('\n'));
    process.stderr.write(`      redis-benchmark through two preloaded hosts: ${rates.map((m) => `${m![1]} ${m![2]}/s`).join(', ')}\n`);
  });

  it('a client socket stays a real fd: non-blocking connect, select/poll/epoll, SO_ERROR, dup, dup2, fork, ECONNREFUSED', async () => {
    const fixture = fileURLToPath(new URL('../../../test/fixtures/programs/fd-checks.py', import.meta.url));
    app = await startE2eApp(
      `
hosts:
  echo:
    run: ./echo.js
    idle: 60s
  checker:
    command: [sh, -c, "python3 ${fixture} echo; echo checker done ${dir}"]
    address: 10.77.0.46
    idle: 60s
`,
      { 'echo.js': `export default function ({ net }) { net.createServer((s) => s.pipe(s)).listen(7); }` },
    );
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    await me.ping('10.77.0.46', 10_000).catch(() => 0);
    await waitFor(() => app!.output.some((l) => l.startsWith('checker: checker done')), `the checks: ${app!.output.join('\n')}`, 40_000);
    assert.ok(app.output.includes('checker: fd checks ok'), app.output.join('\n'));
  });

  it('nginx (master and 2 workers, sendfile) serves a 64 MiB file, SHA-256 equal', async function () {
    if (!hasTool('nginx')) skipOrFail(this, 'nginx is not installed (apt-get install nginx-light)');
    const www = join(dir, 'www');
    chmodSync(dir, 0o755); // nginx's workers run as nobody
    mkdirSync(www);
    mkdirSync(join(dir, 'tmp'));
    const file = randomBytes(64 << 20);
    writeFileSync(join(www, 'big.bin'), file);
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off; master_process on; worker_processes 2; pid ${dir}/nginx.pid; error_log stderr warn;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log; sendfile on;
  client_body_temp_path ${dir}/tmp/b; proxy_temp_path ${dir}/tmp/p; fastcgi_temp_path ${dir}/tmp/f; uwsgi_temp_path ${dir}/tmp/u; scgi_temp_path ${dir}/tmp/s;
  server { listen 8080; root ${www}; }
}
`,
    );
    app = await startE2eApp(
      `
hosts:
  static:
    command: nginx -c ${dir}/nginx.conf -p ${dir}
    address: 10.77.0.47
    idle: 60s
`,
      {},
    );
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    const body = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = me!.net.connect(8080, '10.77.0.47', () => s.write('GET /big.bin HTTP/1.0\r\nHost: static\r\n\r\n'));
      s.on('data', (d: Uint8Array) => chunks.push(Buffer.from(d)));
      s.on('error', reject);
      s.on('end', () => {
        s.end();
        resolve(Buffer.concat(chunks));
      });
    });
    const head = body.subarray(0, body.indexOf('\r\n\r\n') + 4).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/, head);
    const payload = body.subarray(head.length);
    assert.equal(payload.length, file.length);
    assert.equal(createHash('sha256').update(payload).digest('hex'), createHash('sha256').update(file).digest('hex'));
    assert.match(readFileSync(join(dir, 'access.log'), 'latin1'), new RegExp(`^${me.address.replace(/\./g, '\\.')} - - .*"GET /big.bin HTTP/1.0" 200 ${file.length}`, 'm'));
  });

  it('PostgreSQL started cold (initdb on first start, forked backends): psql creates and reads a table, pgbench -i then -c 8 -T 10 with no failed transactions', async function () {
    const bin = pgBin();
    if (bin === null || !hasTool('runuser')) skipOrFail(this, 'PostgreSQL is not installed (apt-get install postgresql)');
    this.timeout(180_000);
    chmodSync(dir, 0o777); // initdb and postgres run as the postgres user
    const pg = `${dir}/pg`;
    const start = `test -f ${pg}/PG_VERSION || { ${bin}/initdb -D ${pg} -U postgres --auth=trust >/dev/null && echo 'host all all 10.77.0.0/16 trust' >> ${pg}/pg_hba.conf; }; exec ${bin}/postgres -D ${pg} -c listen_addresses=0.0.0.0 -c unix_socket_directories=${dir} -c fsync=off`;
    // the first connect starts db; postgres refuses logins while it starts up ("the database system is starting up"), as on any machine
    const client = `for i in $(seq 40); do ${bin}/pg_isready -q -h db -U postgres && break; sleep 0.5; done; ${bin}/psql -h db -U postgres -Atc 'create table t (n int); insert into t values (41), (1); select sum(n) from t' postgres && ${bin}/pgbench -h db -U postgres -i -q postgres 2>&1 | tail -1 && ${bin}/pgbench -h db -U postgres -c 8 -T 10 postgres 2>&1; echo pg done ${dir}`;
    app = await startE2eApp(
      `
hosts:
  db:
    command: [runuser, -u, postgres, --, sh, -c, ${JSON.stringify(start)}]
    address: 10.77.0.48
    idle: 120s
    startTimeout: 60s
  pgclient:
    command: [sh, -c, ${JSON.stringify(client)}]
    address: 10.77.0.49
    idle: 120s
`,
      {},
    );
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    await me.ping('10.77.0.49', 10_000).catch(() => 0);
    await waitFor(() => app!.output.some((l) => l.startsWith('pgclient: pg done')), `pgbench: ${app!.output.join('\n')}`, 150_000);
    const lines = app.output.filter((l) => l.startsWith('pgclient: '));
    assert.ok(lines.includes('pgclient: 42'), app.output.join('\n'));
    assert.ok(lines.some((l) => /number of failed transactions: 0 /.test(l)) || !lines.some((l) => /failed transactions/.test(l)), lines.join('\n'));
    const tx = lines.map((l) => /number of transactions actually processed: (\d+)/.exec(l)).find((m) => m !== null);
    assert.ok(tx !== undefined && Number(tx[1]) > 0, lines.join('\n'));
    assert.ok(!lines.some((l) => /error|FATAL/i.test(l)), lines.join('\n'));
    const tps = lines.find((l) => /^pgclient: tps = /.test(l));
    process.stderr.write(`      pgbench -c 8 -T 10 through two preloaded hosts: ${tps?.slice('pgclient: '.length) ?? '?'}\n`);
  });

  it('a program as a client: curl inside a host reaches a Node host by its overlay name', async () => {
    app = await startE2eApp(
      `
hosts:
  api:
    run: ./api.js
    idle: 60s
  fetcher:
    command: [sh, -c, "curl -sS --max-time 20 http://api:8080/x; echo; echo fetched ${dir}"]
    address: 10.77.0.41
    idle: 60s
`,
      {
        'api.js': `export default function ({ net }) {
  net.createServer((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\\r\\ncontent-length: 12\\r\\nconnection: close\\r\\n\\r\\nhello, curl!'))).listen(8080);
}`,
      },
    );
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    await me.ping('10.77.0.41', 10_000).catch(() => 0);
    await waitFor(() => app!.output.some((l) => l.startsWith('fetcher: fetched')), `curl's output: ${app!.output.join('\n')}`, 40_000);
    assert.ok(app.output.includes('fetcher: hello, curl!'), app.output.join('\n'));
    // the program ended, so the host was released
    await waitFor(() => app!.relay.hosts().find((h) => h.name === 'fetcher')!.state !== 'running', 'fetcher released');
  });

  it('a program that exits at start is failed with backoff, not restarted on every SYN', async () => {
    app = await startE2eApp(
      `
hosts:
  broken:
    command: [sh, -c, "echo cannot start ${dir} >&2; exit 3"]
    address: 10.77.0.42
`,
      {},
    );
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    const end = Date.now() + 4000;
    while (Date.now() < end) {
      await exchange(me.net, '10.77.0.42', 80, '', 2000).catch(() => '');
      await new Promise((r) => setTimeout(r, 100));
    }
    const h = app.relay.hosts().find((x) => x.name === 'broken')!;
    assert.equal(h.state, 'failed');
    assert.ok(h.starts >= 1 && h.starts <= 3, `${h.starts} starts in 4 s`);
    assert.match(h.lastReason, /program exited with code 3/);
  });

  it('a program that ignores SIGTERM is killed with its process group after the grace time', async () => {
    app = await startE2eApp(
      `
hosts:
  stubborn:
    command: [sh, -c, "trap '' TERM; sleep 300 & python3 -c 'import signal,socket,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); s=socket.socket(); s.bind((\\"0.0.0.0\\", 7)); s.listen(); print(\\"listening\\", flush=True); time.sleep(300)' ${dir}"]
    address: 10.77.0.43
`,
      {},
    );
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
    await me.ping('10.77.0.43', 10_000).catch(() => 0);
    await waitFor(() => app!.output.includes('stubborn: listening'), `the program listens: ${app!.output.join('\n')}`);
    assert.ok(processesWith(dir).length >= 1);
    const t0 = Date.now();
    await app.provider.stopAll();
    await waitFor(() => processesWith(dir).length === 0, 'the program and its children killed', 15_000);
    // SIGTERM was ignored: it took the program's grace time (1.5 s of the provider's 2 s)
    assert.ok(Date.now() - t0 >= 1400, `${Date.now() - t0} ms`);
  });
});
