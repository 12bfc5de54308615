// UserspaceSession wiring: relay session, SOCKS5 proxy, forwards and teardown. The stack is
// a stand-in that dials the kernel's loopback (netstack itself is covered in
// tun-netns.test.ts, against the kernel through TUN).

import assert from 'node:assert/strict';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { silentLogger } from '../../hostfn/log.js';
import { isJoinError } from '../../join/join-session.js';
import { UserspaceSession, parseForward, type UserspaceOptions, type UserspaceStackFactory } from '../../join/userspace.js';
import { FakeRelay } from '../support/join-fake-relay.js';
import { eventually } from '../support/join-memory-tun.js';
import { exchange, socksConnect } from '../support/join-socks-client.js';

describe('join: --userspace session', function () {
  let relay: FakeRelay;
  let echo: net.Server;
  let echoPort: number;
  let session: UserspaceSession | null = null;
  let stackClosed = 0;
  const dialed: string[] = [];
  const listened: number[] = [];

  const factory: UserspaceStackFactory = (welcome) => ({
    dial: ({ host, port }) => {
      dialed.push(`${host}:${port} from ${welcome.address}`);
      return new Promise<Duplex>((resolve, reject) => {
        const s = net.connect({ port: echoPort, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
        s.once('error', reject);
      });
    },
    listen: async (port) => {
      listened.push(port);
      return { close: () => {} };
    },
    close: () => void stackClosed++,
  });

  function options(over: Partial<UserspaceOptions> = {}): UserspaceOptions {
    return {
      relay: relay.url,
      token: 'good',
      socks: { host: '127.0.0.1', port: 0 },
      forwards: [],
      logger: silentLogger,
      stackFactory: factory,
      ...over,
    };
  }

  beforeEach(async function () {
    relay = await FakeRelay.start({ token: 'good' });
    echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as net.AddressInfo).port;
    stackClosed = 0;
    dialed.length = 0;
    listened.length = 0;
  });

  afterEach(async function () {
    if (session) await session.stop();
    session = null;
    await relay.close();
    await new Promise<void>((r) => echo.close(() => r()));
  });

  it('carries a SOCKS5 connection and a forward through the stack, and closes both on stop', async function () {
    const s = await UserspaceSession.start(options({ forwards: [{ bindHost: '127.0.0.1', bindPort: 0, host: 'db', port: 5432 }] }));
    assert.ok(!isJoinError(s), isJoinError(s) ? s.message : '');
    session = s;
    assert.equal(s.welcome.address, '10.77.0.200');

    const r = await socksConnect(s.socks!.address, 'web.imach', 80);
    assert.equal(r.reply, 0);
    assert.equal(await exchange(r.socket, 'through socks', r.rest), 'through socks');

    const f = net.connect(s.forwards[0]!.port, '127.0.0.1');
    f.on('error', () => {});
    await new Promise<void>((res) => f.once('connect', res));
    assert.equal(await exchange(f, 'through forward'), 'through forward');
    assert.deepEqual(dialed, ['web.imach:80 from 10.77.0.200', 'db:5432 from 10.77.0.200']);

    const socksPort = s.socks!.address.port;
    await s.stop();
    assert.equal((await s.ended).reason, 'stopped');
    assert.equal(stackClosed, 1);
    await eventually(() => relay.sockets.size === 0, 'the relay session closed');
    const refused = await new Promise<string>((res) => {
      const c = net.connect(socksPort, '127.0.0.1');
      c.on('connect', () => {
        c.destroy();
        res('connected');
      });
      c.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED');
  });

  it('leaves when the relay drains it', async function () {
    const s = await UserspaceSession.start(options());
    assert.ok(!isJoinError(s));
    session = s;
    relay.drain('maintenance');
    const end = await s.ended;
    assert.equal(end.reason, 'drained');
    assert.equal(stackClosed, 1);
  });

  it('a SOCKS port that is taken is an error, and nothing is left behind', async function () {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const s = await UserspaceSession.start(options({ socks: { host: '127.0.0.1', port } }));
      assert.ok(isJoinError(s));
      assert.match(s.message, /EADDRINUSE/);
      assert.equal(stackClosed, 1);
      await eventually(() => relay.sockets.size === 0, 'the relay session closed');
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('parses forward specs', function () {
    assert.deepEqual(parseForward('8080:web:80'), { bindHost: '127.0.0.1', bindPort: 8080, host: 'web', port: 80 });
    assert.deepEqual(parseForward('0.0.0.0:5432:10.77.0.12:5432'), { bindHost: '0.0.0.0', bindPort: 5432, host: '10.77.0.12', port: 5432 });
    assert.equal(typeof parseForward('web:80'), 'string');
    assert.equal(typeof parseForward('70000:web:80'), 'string');
    assert.equal(typeof parseForward('80:we b:80'), 'string');
  });
});
