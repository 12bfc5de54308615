import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { joinTestHost, startE2eApp, waitFor, type E2eApp, type TestHost } from '../support/e2e-harness.js';

const ECHO = `export default ({ net, dgram, log }) => {
  net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(7);
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(m, r.port, r.address));
  u.bind(7);
  log.info('echo up');
};
`;

// Hashes everything it receives on port 9000 and answers with the hex SHA-256 at the end.
const SINK = `import { createHash } from 'node:crypto';
export default ({ net }) => {
  net.createServer((s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d) => { h.update(d); n += d.length; });
    s.on('end', () => s.end(h.digest('hex') + ' ' + n + '\\n'));
    s.on('error', () => {});
  }).listen(9000);
};
`;

// Serves one connection, then closes its server: with no handles left, the host ends.
const ONESHOT = `export default ({ net }) => {
  const srv = net.createServer((s) => {
    srv.close();
    s.on('error', () => {});
    s.end('bye\\n');
  });
  srv.listen(5);
};
`;

const MANIFEST = `network: 10.77.0.0/16
hosts:
  oneshot:
    run: ./oneshot.mjs
    address: 10.77.0.12
    idle: 60s
  echo:
    run: ./echo.mjs
    address: 10.77.0.7
    idle: 1500ms
  named:
    run: ./echo.mjs
    address: 10.77.0.8
    idle: 1500ms
  broken:
    run: ./does-not-exist.mjs
    address: 10.77.0.9
    startTimeout: 10s
  idler:
    run: ./echo.mjs
    address: 10.77.0.11
    idle: 1500ms
  sink:
    run: ./sink.mjs
    address: 10.77.0.10
    idle: 30s
`;

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

function tcpRoundTrip(h: TestHost, host: string, port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = h.net.connect({ host, port });
    const chunks: Buffer[] = [];
    let got = 0;
    s.on('connect', () => s.write(payload));
    s.on('data', (d: Buffer) => {
      chunks.push(Buffer.from(d));
      got += d.length;
      if (got >= payload.length) s.end();
    });
    // 'end' (the peer's FIN after our own): the bytes are all there.
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

function connectError(h: TestHost, host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = h.net.connect({ host, port });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

function udpRoundTrip(h: TestHost, address: string, port: number, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const u = h.dgram.createSocket('udp4');
    const t = setTimeout(() => {
      u.close();
      reject(new Error('no UDP reply'));
    }, 20_000);
    u.on('message', (m: Buffer) => {
      clearTimeout(t);
      u.close();
      resolve(Buffer.from(m));
    });
    u.send(msg, port, address);
  });
}

describe('e2e: relay + local host functions + test hosts on loopback', function () {
  this.timeout(90_000);
  let app: E2eApp;
  let me: TestHost;

  before(async () => {
    app = await startE2eApp(MANIFEST, { 'echo.mjs': ECHO, 'sink.mjs': SINK, 'oneshot.mjs': ONESHOT });
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600), { backoffMaxMs: 500, giveUpAfterMs: 30_000 });
  });
  after(async () => {
    me?.close();
    await app?.close();
  });

  const host = (name: string) => app.relay.hosts().find((h) => h.name === name)!;

  it('all declared hosts start cold', () => {
    for (const h of ['echo', 'named', 'broken', 'sink']) assert.equal(host(h).state, 'cold', h);
    assert.equal(host('echo').starts, 0);
  });

  it('a TCP connect to a cold host starts it and succeeds (echo through the relay)', async () => {
    const payload = randomBytes(200_000);
    const back = await tcpRoundTrip(me, '10.77.0.7', 7, payload);
    assert.equal(back.length, payload.length);
    assert.ok(back.equals(payload));
    assert.equal(host('echo').starts, 1);
    assert.equal(host('echo').state, 'running');
  });

  it('UDP between hosts', async () => {
    const msg = Buffer.from('hello over udp ' + Math.random());
    const r = await udpRoundTrip(me, '10.77.0.7', 7, msg);
    assert.ok(r.equals(msg));
  });

  it('ping between hosts, and from the gateway', async () => {
    const before = host('echo');
    const rtt = await me.ping('10.77.0.7', 10_000);
    const after = host('echo');
    assert.ok(Number.isFinite(rtt) && rtt > 0 && rtt < 10_000, String(rtt));
    // the request reached echo and echo sent the reply (20 + 8 + 32 bytes each way)
    assert.ok(after.bytesIn - before.bytesIn >= 60, `echo received ${after.bytesIn - before.bytesIn} bytes`);
    assert.ok(after.bytesOut - before.bytesOut >= 60, `echo sent ${after.bytesOut - before.bytesOut} bytes`);
    const g = await app.relay.ping('echo', 10_000);
    assert.equal(g.address, '10.77.0.7');
    assert.ok(Number.isFinite(g.rttMs) && g.rttMs > 0 && g.rttMs < 10_000, String(g.rttMs));
  });

  it('a finished TCP transfer leaves no established connection behind', async () => {
    await tcpRoundTrip(me, '10.77.0.7', 7, randomBytes(300_000));
    await waitFor(() => me.stats().established === 0, 'the connection to close on both sides', 10_000);
  });

  it('imach ping and imach ps reach the relay through the admin API', async () => {
    const env = { PATH: process.env.PATH ?? '', IMACH_SECRET: app.secret, IMACH_RELAY: app.relay.url };
    const ping = await runCli(['ping', 'echo', '--count', '2', '--interval', '100'], env);
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(ping.stdout, /reply from 10\.77\.0\.7 \(echo\): seq=1/);
    assert.match(ping.stdout, /2 sent, 2 received, 0% loss/);
    const ps = await runCli(['ps', '--json'], env);
    assert.equal(ps.code, 0, ps.stderr);
    // the ping started echo: ps shows that start and the traffic (its state may already be
    // past running when the machine is slow and its idle window has passed)
    const echo = (JSON.parse(ps.stdout) as { name: string; state: string; address: string; starts: number; bytesIn: number }[]).find((h) => h.name === 'echo');
    assert.equal(echo?.address, '10.77.0.7');
    assert.ok(echo.starts >= 1, `echo starts ${echo.starts}`);
    assert.ok(echo.bytesIn > 0, 'the relay delivered bytes to echo');
    assert.ok(['running', 'draining', 'cold'].includes(echo.state), echo.state);
  });

  it('an idle host is released, and the next connect starts it again', async () => {
    const first = await tcpRoundTrip(me, 'idler', 7, Buffer.from('first'));
    assert.equal(first.toString(), 'first');
    assert.equal(host('idler').starts, 1);
    await waitFor(() => host('idler').state === 'cold', 'idler released after its idle window', 30_000);
    assert.ok(app.relay.events().some((e) => e.host === 'idler' && e.type === 'released'));
    const back = await tcpRoundTrip(me, 'idler', 7, Buffer.from('again'));
    assert.equal(back.toString(), 'again');
    assert.equal(host('idler').starts, 2);
  });

  it('a host whose app has no sockets left ends by itself and is released', async () => {
    const back = await tcpRoundTrip(me, 'oneshot', 5, Buffer.alloc(0));
    assert.equal(back.toString(), 'bye\n');
    await waitFor(() => host('oneshot').state === 'cold', 'oneshot released', 20_000);
    const ev = app.relay.events().filter((e) => e.host === 'oneshot').map((e) => e.type);
    assert.ok(ev.includes('released'), ev.join(','));
    assert.ok(!ev.includes('drain'), 'released without a drain');
  });

  it('a DNS lookup starts a host', async () => {
    assert.equal(host('named').state, 'cold');
    assert.equal(await me.dns.lookup('named'), '10.77.0.8');
    await waitFor(() => host('named').state === 'running', 'named started by the lookup');
    assert.equal(host('named').starts, 1);
  });

  it('a start that fails gives the client EHOSTUNREACH', async () => {
    const code = await connectError(me, '10.77.0.9', 80);
    assert.equal(code, 'EHOSTUNREACH');
    assert.ok(app.relay.events().some((e) => e.host === 'broken' && e.type === 'failed'));
  });

  it('a relay restart of a few seconds does not break an open TCP transfer', async () => {
    const total = 16 * 1024 * 1024;
    const chunk = 64 * 1024;
    const hash = createHash('sha256');
    const result = new Promise<string>((resolve, reject) => {
      const s = me.net.connect({ host: '10.77.0.10', port: 9000 });
      let reply = '';
      let sent = 0;
      let restarted = false;
      const pump = () => {
        while (sent < total) {
          const buf = randomBytes(chunk);
          hash.update(buf);
          sent += buf.length;
          if (!restarted && sent >= total / 4) {
            restarted = true;
            app.restartRelay(2000).catch(reject);
          }
          if (!s.write(buf)) return void s.once('drain', pump);
        }
        s.end();
      };
      s.on('connect', pump);
      s.setEncoding('utf8');
      s.on('data', (d: string) => (reply += d));
      s.on('end', () => resolve(reply.trim()));
      s.on('error', reject);
    });
    const reply = await result;
    assert.equal(reply, `${hash.digest('hex')} ${total}`);
    assert.equal(me.link.counters.reconnects >= 1, true);
  });
});
