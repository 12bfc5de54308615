// `imach join --userspace --expose`: a host on the real relay (netstack on a RelayLink)
// connects to the joined machine's overlay address and reaches a kernel TCP server on
// 127.0.0.1 through the userspace session's stack.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { silentLogger } from '../../hostfn/log.js';
import { formatExposeTarget, parseExpose, type ExposeOptions, type ExposeSpec } from '../../join/expose.js';
import { isJoinError } from '../../join/join-session.js';
import { UserspaceSession } from '../../join/userspace.js';
import { startRelay, type Relay } from '../../relay/index.js';
import { silentLogger as relaySilentLogger } from '../../relay/log.js';
import { eventually } from '../support/join-memory-tun.js';
import { endOf, readAll, sha256, startOverlayHost, type OverlayHost } from '../support/join-overlay-host.js';

const MiB = 1 << 20;

describe('join: --expose parsing', function () {
  for (const [text, want] of [
    ['5432', { overlayPort: 5432, host: '127.0.0.1', port: 5432 }],
    ['15432=5432', { overlayPort: 15432, host: '127.0.0.1', port: 5432 }],
    ['8080=192.168.1.20:80', { overlayPort: 8080, host: '192.168.1.20', port: 80 }],
    ['localhost:6379', { overlayPort: 6379, host: 'localhost', port: 6379 }],
    ['80=db.local:5432', { overlayPort: 80, host: 'db.local', port: 5432 }],
    ['[::1]:5432', { overlayPort: 5432, host: '::1', port: 5432 }],
  ] as [string, ExposeSpec][]) {
    it(`reads ${text}`, function () {
      assert.deepEqual(parseExpose(text), want);
    });
  }

  for (const text of ['', 'abc', '0', '70000', '5432=0', '=5432', '5432=', 'a=5432', '1:2:3', 'host:', ':5432', 'bad host:5432', '[nope]:5432', '5432=99999', '-1']) {
    it(`refuses ${JSON.stringify(text)} with a message naming --expose`, function () {
      const r = parseExpose(text);
      assert.equal(typeof r, 'string', JSON.stringify(r));
      assert.match(r as string, /--expose/);
    });
  }

  it('formats IPv6 targets in brackets', function () {
    assert.equal(formatExposeTarget({ host: '::1', port: 5432 }), '[::1]:5432');
    assert.equal(formatExposeTarget({ host: '127.0.0.1', port: 5432 }), '127.0.0.1:5432');
  });
});

describe('join: --userspace --expose through the real relay', function () {
  this.timeout(60_000);
  let relay: Relay;
  let host: OverlayHost;
  const servers: net.Server[] = [];
  const kernelSockets = new Set<net.Socket>();
  let session: UserspaceSession | null = null;

  /** A kernel TCP server on 127.0.0.1 (half-open allowed). */
  async function kernelServer(onConnection: (s: net.Socket) => void): Promise<number> {
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      kernelSockets.add(s);
      s.once('close', () => kernelSockets.delete(s));
      s.on('error', () => {});
      onConnection(s);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as net.AddressInfo).port;
  }

  async function freePort(): Promise<number> {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }

  async function expose(exposes: ExposeSpec[], options?: ExposeOptions): Promise<UserspaceSession> {
    const s = await UserspaceSession.start({
      relay: relay.url,
      token: relay.mintToken('laptop'),
      socks: null,
      forwards: [],
      exposes,
      ...(options ? { expose: options } : {}),
      logger: silentLogger,
    });
    assert.ok(!isJoinError(s), isJoinError(s) ? s.message : '');
    session = s;
    return s;
  }

  beforeEach(async function () {
    relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, logger: relaySilentLogger });
    host = await startOverlayHost(relay.url, relay.mintToken('web'));
  });

  afterEach(async function () {
    if (session) await session.stop();
    session = null;
    host.close();
    for (const s of kernelSockets) s.destroy();
    for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
    await relay.close();
  });

  it('a host sends 1 MiB to a kernel echo server and gets the same bytes back (SHA-256 equal)', async function () {
    const port = await kernelServer((s) => s.pipe(s));
    const s = await expose([{ overlayPort: 5432, host: '127.0.0.1', port }]);
    assert.deepEqual(
      s.exposed.map((e) => e.spec),
      [{ overlayPort: 5432, host: '127.0.0.1', port }],
    );
    const c = await host.connect(s.welcome.address, 5432);
    const payload = randomBytes(MiB);
    const back = readAll(c);
    c.end(payload);
    const r = await back;
    assert.equal(r.error, null);
    assert.equal(r.data.length, MiB);
    assert.equal(sha256(r.data), sha256(payload));
    assert.equal(s.exposed[0]!.accepted, 1);
  });

  it('half-close passes through: the host ends first and still gets the reply', async function () {
    const port = await kernelServer((k) => {
      void readAll(k).then((r) => k.end(`got ${r.data.length} ${sha256(r.data)}`));
    });
    const s = await expose([{ overlayPort: 7000, host: '127.0.0.1', port }]);
    const c = await host.connect(s.welcome.address, 7000);
    const payload = randomBytes(200_000);
    const back = readAll(c);
    c.end(payload);
    const r = await back;
    assert.equal(r.error, null);
    assert.equal(r.data.toString(), `got ${payload.length} ${sha256(payload)}`);
  });

  it('half-close passes through: the kernel server ends first and still gets the host\'s data', async function () {
    let gotOnKernel!: Promise<string>;
    const port = await kernelServer((k) => {
      k.end('hello, then FIN');
      gotOnKernel = readAll(k).then((r) => (r.error ? `error ${r.error.code}` : r.data.toString()));
    });
    const s = await expose([{ overlayPort: 7001, host: '127.0.0.1', port }]);
    const c = await host.connect(s.welcome.address, 7001);
    const r = await readAll(c);
    assert.equal(r.error, null);
    assert.equal(r.data.toString(), 'hello, then FIN');
    assert.equal(c.writable, true, 'the host can still write after the server\'s FIN');
    c.end('after your FIN');
    await eventually(() => gotOnKernel !== undefined, 'the kernel connection');
    assert.equal(await gotOnKernel, 'after your FIN');
  });

  it('a refused local port resets the host\'s connection and is counted', async function () {
    const s = await expose([{ overlayPort: 5433, host: '127.0.0.1', port: await freePort() }]);
    const c = await host.connect(s.welcome.address, 5433).catch((e: NodeJS.ErrnoException) => e);
    const code = c instanceof Error ? c.code : await endOf(c);
    assert.equal(code, 'ECONNRESET');
    assert.equal(s.exposed[0]!.drops['connect-failed'], 1);
    await eventually(() => s.exposed[0]!.connections === 0, 'the pair forgotten');
  });

  it('a reset on either side resets the other', async function () {
    const kernelEnds: Promise<string>[] = [];
    const port = await kernelServer((k) => {
      kernelEnds.push(endOf(k));
      k.once('data', (d: Buffer) => {
        if (d.toString() === 'reset me') k.resetAndDestroy();
      });
    });
    const s = await expose([{ overlayPort: 7002, host: '127.0.0.1', port }]);

    const a = await host.connect(s.welcome.address, 7002);
    const aEnd = endOf(a);
    a.write('reset me');
    assert.equal(await aEnd, 'ECONNRESET', 'the kernel server\'s RST reaches the host');

    const b = await host.connect(s.welcome.address, 7002);
    b.write('hello');
    await eventually(() => kernelEnds.length === 2, 'the second kernel connection');
    b.resetAndDestroy();
    assert.equal(await kernelEnds[1], 'ECONNRESET', 'the host\'s RST reaches the kernel server');
    await eventually(() => s.exposed[0]!.connections === 0, 'both pairs forgotten');
  });

  it('over the connection limit a connection is reset and counted; a freed slot is used again', async function () {
    const port = await kernelServer((k) => k.pipe(k));
    const s = await expose([{ overlayPort: 7003, host: '127.0.0.1', port }], { maxConnections: 1 });
    const e = s.exposed[0]!;
    const first = await host.connect(s.welcome.address, 7003);
    first.write('ping');
    await new Promise<void>((r) => first.once('data', () => r()));

    const second = await host.connect(s.welcome.address, 7003).catch((err: NodeJS.ErrnoException) => err);
    assert.equal(second instanceof Error ? second.code : await endOf(second), 'ECONNRESET');
    assert.equal(e.drops['over-limit'], 1);

    first.end();
    await eventually(() => e.connections === 0, 'the first pair forgotten');
    const third = await host.connect(s.welcome.address, 7003);
    const back = readAll(third);
    third.end('again');
    assert.equal((await back).data.toString(), 'again');
    assert.equal(e.drops['over-limit'], 1);
  });

  it('two exposes on one session, and stop ends their kernel connections', async function () {
    const a = await kernelServer((k) => k.end('from a'));
    const held: net.Socket[] = [];
    const b = await kernelServer((k) => void held.push(k));
    const s = await expose([
      { overlayPort: 8001, host: '127.0.0.1', port: a },
      { overlayPort: 8002, host: '127.0.0.1', port: b },
    ]);
    const ca = await host.connect(s.welcome.address, 8001);
    assert.equal((await readAll(ca)).data.toString(), 'from a');
    const cb = await host.connect(s.welcome.address, 8002);
    cb.on('error', () => {});
    await eventually(() => held.length === 1, 'the held kernel connection');
    const heldEnd = readAll(held[0]!);
    await s.stop();
    const r = await heldEnd;
    assert.equal(r.error, null, 'the kernel server sees the connection end');
    assert.equal(r.data.length, 0);
  });
});
