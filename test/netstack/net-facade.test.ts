// Facade behaviour that has no loopback twin in Node (name lookups over the stack, host
// unreachable, the receive window seen from the TCP side) and the API's argument forms.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { constants } from 'node:os';
import { createNetApi, type NetSocket } from '../../netstack/api/net.js';
import { ipv4ToString } from '../../netstack/wire/ipv4.js';
import type { FakeConn } from '../support/net-fake-tcp.js';
import { closed, createFakeEnv, patternBytes, PatternChecker, SERVER_ADDRESS, type FakeEnv } from '../support/net-harness.js';
import { createStackEnv } from '../support/net-stack-env.js';

describe('net facade', function () {
  let env: FakeEnv;
  const open: Array<NetSocket | { close(): unknown; listening: boolean }> = [];

  beforeEach(function () {
    env = createFakeEnv({}, { 'db.internal': SERVER_ADDRESS });
  });

  afterEach(async function () {
    for (const o of open.splice(0)) {
      if ('destroy' in o) {
        if (!o.destroyed) {
          const c = closed(o);
          o.destroy();
          await c;
        }
      } else if (o.listening) {
        o.close();
      }
    }
    env.network.close();
  });

  function track<T extends NetSocket | { close(): unknown; listening: boolean }>(o: T): T {
    open.push(o);
    if ('destroy' in o) o.on('error', () => {});
    return o;
  }

  async function echoServer(): Promise<number> {
    const server = track(env.serverApi.createServer((s) => track(s).pipe(s)));
    server.listen(0);
    await once(server, 'listening');
    return server.address()!.port;
  }

  describe('name lookups', function () {
    it('resolves a name through the stack and emits lookup before connect', async function () {
      const port = await echoServer();
      const events: unknown[][] = [];
      const c = track(env.clientApi.connect({ port, host: 'db.internal' }));
      c.on('lookup', (...args: unknown[]) => events.push(['lookup', ...args]));
      c.on('connect', () => events.push(['connect']));
      await once(c, 'connect');
      assert.deepEqual(events, [['lookup', null, SERVER_ADDRESS, 4, 'db.internal'], ['connect']]);
      assert.equal(c.remoteAddress, SERVER_ADDRESS);
    });

    it('reports an unknown name as Node reports getaddrinfo ENOTFOUND', async function () {
      const c = track(env.clientApi.connect(80, 'nosuch.internal'));
      const lookups: unknown[] = [];
      c.on('lookup', (err: unknown) => lookups.push(err));
      const closing = closed(c);
      const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException & { hostname?: string }];
      await closing;
      assert.equal(err.message, 'getaddrinfo ENOTFOUND nosuch.internal');
      assert.equal(err.code, 'ENOTFOUND');
      assert.equal(err.syscall, 'getaddrinfo');
      assert.equal(err.hostname, 'nosuch.internal');
      assert.equal(err.errno, -3008);
      assert.equal(lookups[0], err);
    });
  });

  describe('errors', function () {
    it('EHOSTUNREACH for an address without a host, with Node fields', async function () {
      const c = track(env.clientApi.connect(8080, '10.77.9.9'));
      const closing = new Promise<boolean>((resolve) => c.once('close', resolve));
      const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException & { address?: string; port?: number }];
      assert.equal(err.message, 'connect EHOSTUNREACH 10.77.9.9:8080');
      assert.equal(err.code, 'EHOSTUNREACH');
      assert.equal(err.errno, -constants.errno.EHOSTUNREACH);
      assert.equal(err.syscall, 'connect');
      assert.equal(err.address, '10.77.9.9');
      assert.equal(err.port, 8080);
      assert.equal(await closing, true);
    });

    it('a busy localPort fails like bind EADDRINUSE', async function () {
      const port = await echoServer();
      const first = track(env.clientApi.connect({ port, host: SERVER_ADDRESS, localPort: 40000 }));
      await once(first, 'connect');
      assert.equal(first.localPort, 40000);
      const second = track(env.clientApi.connect({ port, host: SERVER_ADDRESS, localPort: 40000 }));
      const [err] = (await once(second, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.syscall, 'bind');
      assert.equal(err.errno, -constants.errno.EADDRINUSE);
    });

    it('throws ERR_SOCKET_BAD_PORT for an impossible port, as Node does', function () {
      assert.throws(() => env.clientApi.connect(70000, SERVER_ADDRESS), { code: 'ERR_SOCKET_BAD_PORT', name: 'RangeError' });
      assert.throws(() => env.clientApi.createServer().listen(-1), { code: 'ERR_SOCKET_BAD_PORT' });
    });

    it('fails the callback of a write still waiting for buffer space when destroyed', async function () {
      const server = track(env.serverApi.createServer({ pauseOnConnect: true }, (s) => void track(s)));
      server.listen(0);
      await once(server, 'listening');
      const c = track(env.clientApi.connect(server.address()!.port, SERVER_ADDRESS));
      await once(c, 'connect');
      const big = patternBytes(0, 1 << 20);
      const result = new Promise<Error | null | undefined>((resolve) => c.write(big, resolve));
      await new Promise((r) => setTimeout(r, 20));
      c.destroy();
      const err = await result;
      assert.ok(err instanceof Error);
    });
  });

  describe('flow control', function () {
    it('a paused reader closes the receive window and reading reopens it', async function () {
      let serverSocket: NetSocket | undefined;
      const server = track(
        env.serverApi.createServer((s) => {
          serverSocket = track(s);
          s.pause();
        }),
      );
      server.listen(0);
      await once(server, 'listening');
      const c = track(env.clientApi.connect(server.address()!.port, SERVER_ADDRESS));
      await once(c, 'connect');
      const total = 1 << 20;
      let offset = 0;
      while (offset < total && c.write(patternBytes(offset, 16384))) offset += 16384;
      offset += 16384;
      await new Promise((r) => setTimeout(r, 30));
      const serverConn = [...env.serverTcp.connections][0] as FakeConn;
      // Everything delivered is still unconsumed: the window is zero.
      assert.equal(serverConn.unconsumed, 64 * 1024);
      assert.equal(serverConn.consumedTotal, 0);
      assert.equal(serverSocket!.bytesRead, 64 * 1024);
      let received = 0;
      serverSocket!.on('data', (d: Buffer) => (received += d.length));
      serverSocket!.resume();
      while (offset < total) {
        if (!c.write(patternBytes(offset, 16384))) await once(c, 'drain');
        offset += 16384;
      }
      while (received < total) await new Promise((r) => setTimeout(r, 5));
      assert.equal(received, total);
      assert.ok(serverConn.consumedTotal >= total - serverSocket!.readableHighWaterMark);
    });
  });

  describe('API forms', function () {
    it('new Socket().connect(port, host, cb) and address()', async function () {
      const port = await echoServer();
      const s = track(new env.clientApi.Socket());
      assert.deepEqual(s.address(), {});
      assert.equal(s.readyState, 'open'); // as Node's new net.Socket()
      let called = false;
      const ret = s.connect(port, SERVER_ADDRESS, () => (called = true));
      assert.equal(ret, s);
      assert.equal(s.readyState, 'opening');
      await once(s, 'connect');
      assert.equal(called, true);
      const a = s.address() as { address: string; family: string; port: number };
      assert.equal(a.address, ipv4ToString(env.clientHost.localAddress));
      assert.equal(a.family, 'IPv4');
      assert.equal(a.port, s.localPort);
      assert.equal(s.ref(), s);
      assert.equal(s.unref(), s);
      assert.equal(s.setNoDelay(true), s);
      assert.equal(s.setKeepAlive(true, 1000), s);
      assert.ok(s instanceof env.clientApi.Socket);
    });

    it('server sockets are instances of the API Socket and count toward getConnections', async function () {
      const accepted: NetSocket[] = [];
      const server = track(env.serverApi.createServer((s) => void accepted.push(track(s))));
      server.listen({ port: 0, host: SERVER_ADDRESS, backlog: 8 });
      await once(server, 'listening');
      assert.deepEqual(server.address(), { address: SERVER_ADDRESS, family: 'IPv4', port: server.address()!.port });
      const c = track(env.clientApi.connect(server.address()!.port, SERVER_ADDRESS));
      await once(server, 'connection');
      assert.ok(accepted[0] instanceof env.serverApi.Socket);
      assert.equal(accepted[0]!.remotePort, c.localPort);
      const n = await new Promise<number>((resolve) => server.getConnections((_e, count) => resolve(count)));
      assert.equal(n, 1);
      assert.throws(() => server.listen(0), { code: 'ERR_SERVER_ALREADY_LISTEN' });
    });

    it('maxConnections resets connections over the limit and emits drop', async function () {
      const server = track(env.serverApi.createServer((s) => void track(s)));
      server.maxConnections = 1;
      server.listen(0);
      await once(server, 'listening');
      const port = server.address()!.port;
      const a = track(env.clientApi.connect(port, SERVER_ADDRESS));
      await once(server, 'connection');
      const drop = once(server, 'drop');
      const b = track(env.clientApi.connect(port, SERVER_ADDRESS));
      const [err] = (await once(b, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNRESET');
      await drop;
      assert.equal(a.destroyed, false);
    });

    it('close() on a server that is not listening passes ERR_SERVER_NOT_RUNNING', async function () {
      const server = env.serverApi.createServer();
      const err = await new Promise<Error | undefined>((resolve) => server.close(resolve));
      assert.equal((err as NodeJS.ErrnoException).code, 'ERR_SERVER_NOT_RUNNING');
    });

    it('listen on an address that is not ours fails with EADDRNOTAVAIL', async function () {
      const server = env.serverApi.createServer();
      server.listen(8080, '10.77.5.5');
      const [err] = (await once(server, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'EADDRNOTAVAIL');
      assert.equal(err.syscall, 'listen');
      assert.equal(server.listening, false);
    });

    it('isIP and isIPv4 behave as Node', function () {
      const api = createNetApi({ tcp: env.clientHost, lookup: async () => '', address: '10.77.0.2' });
      assert.equal(api.isIP('10.77.0.1'), 4);
      assert.equal(api.isIP('::1'), 6);
      assert.equal(api.isIP('db.internal'), 0);
      assert.equal(api.isIPv4('10.77.0.1'), true);
      assert.equal(api.isIPv4('::1'), false);
    });
  });
});

describe('net facade over two Stacks on an impaired link', function () {
  it('an echo through loss and reordering returns every byte in order', async function () {
    const env = createStackEnv({ loss: 0.02, reorder: 0.02, seed: 7, mtu: 9000 });
    const api = { client: env.client, server: env.server };
    const server = api.server.createServer({}, (s) => void s.on('error', () => {}).pipe(s));
    try {
      server.listen(0, env.serverHost);
      await once(server, 'listening');
      const c = api.client.connect({ port: (server.address() as { port: number }).port, host: env.serverHost });
      c.on('error', () => {});
      const checker = new PatternChecker();
      c.on('data', (d: Buffer) => checker.push(d));
      const total = 1 << 20;
      for (let off = 0; off < total; off += 16384) if (!c.write(patternBytes(off, 16384))) await once(c, 'drain');
      c.end();
      await closed(c);
      assert.equal(checker.received, total);
      assert.equal(checker.mismatches, 0);
    } finally {
      server.close();
      await env.close();
    }
  });
});
