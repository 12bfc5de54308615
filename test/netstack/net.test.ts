// The same socket scenarios on Node's own `net` (127.0.0.1) and on the facade; the facade
// must observe what Node observes.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import {
  fakeEnvFactory,
  listen,
  nodeEnvFactory,
  patternBytes,
  PatternChecker,
  recordEvents,
  runScenario,
  type NetEnv,
  type NetEnvFactory,
  type Resources,
  type TestSocket,
  closed,
} from '../support/net-harness.js';
import { stackEnvFactories } from '../support/net-stack-env.js';

type Scenario = (env: NetEnv, res: Resources) => Promise<unknown>;

const SOCKET_EVENTS = ['connect', 'ready', 'data', 'end', 'finish', 'close', 'error', 'timeout'] as const;

function errorShape(err: unknown, host: string, port: number): Record<string, unknown> {
  const e = err as { code?: string; errno?: number; syscall?: string; address?: string; port?: number; message: string };
  const norm = (s: string): string => s.split(`${host}:${port}`).join('HOST:PORT');
  return {
    code: e.code,
    errno: e.errno,
    syscall: e.syscall,
    address: e.address === host ? 'HOST' : e.address,
    port: e.port === port ? 'PORT' : e.port,
    message: norm(e.message),
  };
}

const scenarios: Record<string, Scenario> = {
  async 'connect, data, end and close come in Node order on both sides'(env, res) {
    const serverEvents: string[] = [];
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        recordEvents(s, SOCKET_EVENTS, serverEvents);
        s.end('hello from the server');
      }),
    );
    const port = await listen(env, server);
    const clientEvents: string[] = [];
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    recordEvents(c, SOCKET_EVENTS, clientEvents);
    let text = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (text += d));
    assert.equal(c.connecting, true);
    await closed(c);
    while (serverEvents[serverEvents.length - 1] !== 'close:false') await res.sleep(5);
    return { clientEvents, serverEvents, text };
  },

  async 'pipe through an echo server carries every byte in order'(env, res) {
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        s.pipe(s);
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    const total = 1 << 20;
    async function* source(): AsyncGenerator<Buffer> {
      for (let off = 0; off < total; off += 16384) yield patternBytes(off, 16384);
    }
    Readable.from(source()).pipe(c);
    const hash = createHash('sha256');
    let received = 0;
    c.on('data', (d: Buffer) => {
      hash.update(d);
      received += d.length;
    });
    await closed(c);
    const expected = createHash('sha256');
    for (let off = 0; off < total; off += 16384) expected.update(patternBytes(off, 16384));
    return { received, sameBytes: hash.digest('hex') === expected.digest('hex') };
  },

  async 'async iteration reads every chunk and ends'(env, res) {
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        s.write('one,');
        s.write('two,');
        s.end('three');
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    let text = '';
    for await (const chunk of c) text += String(chunk);
    await res.sleep(0);
    return { text, destroyed: c.destroyed };
  },

  async 'breaking out of async iteration destroys the socket'(env, res) {
    const serverEvents: string[] = [];
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        recordEvents(s, ['end', 'close'], serverEvents);
        s.write('first');
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    let first = '';
    for await (const chunk of c) {
      first = String(chunk);
      break;
    }
    while (!serverEvents.includes('close:false')) await res.sleep(5);
    return { first, destroyed: c.destroyed, serverEvents };
  },

  async 'end() then close: the server ends its side too when allowHalfOpen is false'(env, res) {
    const serverEvents: string[] = [];
    let serverText = '';
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        recordEvents(s, SOCKET_EVENTS, serverEvents);
        s.on('data', (d: Buffer) => (serverText += d.toString()));
      }),
    );
    const port = await listen(env, server);
    const clientEvents: string[] = [];
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    recordEvents(c, SOCKET_EVENTS, clientEvents);
    c.on('connect', () => c.end('bye'));
    c.resume();
    await closed(c);
    while (serverEvents[serverEvents.length - 1] !== 'close:false') await res.sleep(5);
    return { clientEvents, serverEvents, serverText, readyState: c.readyState };
  },

  async 'destroy(err) emits error then close(true); the peer sees an orderly end'(env, res) {
    const serverEvents: string[] = [];
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        recordEvents(s, SOCKET_EVENTS, serverEvents);
      }),
    );
    const port = await listen(env, server);
    const clientEvents: string[] = [];
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    recordEvents(c, SOCKET_EVENTS, clientEvents);
    let message = '';
    c.on('error', (e: Error) => (message = e.message));
    c.on('connect', () => c.destroy(new Error('boom')));
    await closed(c);
    while (serverEvents[serverEvents.length - 1] !== 'close:false') await res.sleep(5);
    return { clientEvents, serverEvents, message, destroyed: c.destroyed };
  },

  async 'half-open: a server with allowHalfOpen answers after the client has ended'(env, res) {
    const serverEvents: string[] = [];
    let serverText = '';
    const server = res.server(
      env.server.createServer({ allowHalfOpen: true }, (s) => {
        res.socket(s);
        recordEvents(s, SOCKET_EVENTS, serverEvents);
        s.on('data', (d: Buffer) => (serverText += d.toString()));
        s.on('end', () => {
          s.write('late ');
          setImmediate(() => s.end('reply'));
        });
      }),
    );
    const port = await listen(env, server);
    const clientEvents: string[] = [];
    let clientText = '';
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    recordEvents(c, SOCKET_EVENTS, clientEvents);
    c.on('data', (d: Buffer) => (clientText += d.toString()));
    c.on('connect', () => c.end('request'));
    await closed(c);
    while (serverEvents[serverEvents.length - 1] !== 'close:false') await res.sleep(5);
    return { clientEvents, serverEvents, serverText, clientText };
  },

  async 'half-open: a client with allowHalfOpen writes after the server has ended'(env, res) {
    const serverEvents: string[] = [];
    let serverText = '';
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        recordEvents(s, SOCKET_EVENTS, serverEvents);
        s.on('data', (d: Buffer) => (serverText += d.toString()));
        s.end('server done');
      }),
    );
    const port = await listen(env, server);
    const clientEvents: string[] = [];
    let clientText = '';
    const c = res.socket(env.client.connect({ port, host: env.serverHost, allowHalfOpen: true }));
    recordEvents(c, SOCKET_EVENTS, clientEvents);
    c.on('data', (d: Buffer) => (clientText += d.toString()));
    let writableAfterEnd = false;
    c.on('end', () => {
      writableAfterEnd = c.writable;
      c.write('client after ');
      setImmediate(() => c.end('end'));
    });
    await closed(c);
    while (serverEvents[serverEvents.length - 1] !== 'close:false') await res.sleep(5);
    return { clientEvents, serverEvents, serverText, clientText, writableAfterEnd };
  },

  async 'writing after the other party ended is EPIPE'(env, res) {
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        s.resume();
        s.end();
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    c.resume();
    const events: string[] = [];
    recordEvents(c, ['end', 'error', 'close'], events);
    let cbError = '';
    c.on('end', () =>
      process.nextTick(() => {
        const ok = c.write('too late', (err) => (cbError = String((err as { code?: string } | null)?.code)));
        events.push(`write:${ok}`);
      }),
    );
    let message = '';
    c.on('error', (e: Error) => (message = e.message));
    await closed(c);
    return { events, cbError, message };
  },

  async 'ECONNREFUSED on a port without a listener'(env, res) {
    const probe = res.server(env.server.createServer({}));
    const port = await listen(env, probe);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const events: string[] = [];
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    recordEvents(c, SOCKET_EVENTS, events);
    const closing = closed(c);
    const [err] = await once(c, 'error');
    await closing;
    return { events, error: errorShape(err, env.serverHost, port) };
  },

  async 'EADDRINUSE when a second server listens on the same port'(env, res) {
    const first = res.server(env.server.createServer({}));
    const port = await listen(env, first);
    const second = res.server(env.server.createServer({}));
    second.listen(port, env.serverHost);
    const [err] = await once(second, 'error');
    return { error: errorShape(err, env.serverHost, port), listening: second.listening };
  },

  async 'server.close waits for open connections before close'(env, res) {
    const events: string[] = [];
    let serverSocket: TestSocket | undefined;
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        serverSocket = s;
        s.resume();
        s.on('close', () => events.push('server socket close'));
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    c.resume();
    await once(c, 'connect');
    while (serverSocket === undefined) await res.sleep(5);
    server.on('close', () => events.push('server close'));
    server.close(() => events.push('close callback'));
    events.push(`listening:${server.listening}`);
    const count = await new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n)));
    events.push(`connections:${count}`);
    const refused = res.socket(env.client.connect({ port, host: env.serverHost }));
    const [err] = await once(refused, 'error');
    events.push(`new connection:${(err as { code: string }).code}`);
    events.push('client end');
    c.end();
    while (!events.includes('server socket close') || !events.includes('close callback')) await res.sleep(5);
    return { events };
  },

  async 'setTimeout emits timeout on an idle socket and 0 disables it'(env, res) {
    const server = res.server(env.server.createServer({}, (s) => void res.socket(s).resume()));
    const port = await listen(env, server);
    const events: string[] = [];
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    recordEvents(c, SOCKET_EVENTS, events);
    await once(c, 'connect');
    let callbackRan = false;
    c.setTimeout(30, () => (callbackRan = true));
    await once(c, 'timeout');
    const afterTimeout = { destroyed: c.destroyed, readyState: c.readyState, callbackRan };
    c.setTimeout(0);
    await res.sleep(80);
    c.destroy();
    await closed(c);
    return { events, afterTimeout };
  },

  async 'connect({timeout}) arms the idle timeout'(env, res) {
    const server = res.server(env.server.createServer({}, (s) => void res.socket(s).resume()));
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost, timeout: 20 }));
    const events: string[] = [];
    recordEvents(c, ['connect', 'timeout'], events);
    await once(c, 'timeout');
    return { events };
  },

  async 'writes before connect are buffered and sent in order'(env, res) {
    let serverText = '';
    const done = new Promise<void>((resolve) => {
      const server = res.server(
        env.server.createServer({}, (s) => {
          res.socket(s);
          s.on('data', (d: Buffer) => (serverText += d.toString()));
          s.on('end', () => resolve());
          s.end();
        }),
      );
      void listen(env, server).then((port) => {
        const c = res.socket(env.client.connect({ port, host: env.serverHost }));
        c.resume();
        const pendingBefore = c.pending;
        c.write('early ');
        c.write('and ');
        c.end('ordered');
        bytesWrittenBefore = c.bytesWritten;
        pending = pendingBefore;
      });
    });
    let bytesWrittenBefore = -1;
    let pending = false;
    await done;
    return { serverText, bytesWrittenBefore, pending };
  },

  async 'write() returns false under load and drain follows'(env, res) {
    const checker = new PatternChecker();
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        s.on('data', (d: Buffer) => checker.push(d));
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    await once(c, 'connect');
    let offset = 0;
    let sawFalse = false;
    const limit = env.bulkBytes;
    while (offset < limit) {
      const ok = c.write(patternBytes(offset, 1024));
      offset += 1024;
      if (!ok) {
        sawFalse = true;
        break;
      }
    }
    await once(c, 'drain');
    c.end();
    while (checker.received < offset) await res.sleep(5);
    return { sawFalse, drained: true, intact: checker.mismatches === 0, allArrived: checker.received === offset, bytesWritten: c.bytesWritten === offset };
  },

  async 'a receiver that stops reading stalls the sender until it reads'(env, res) {
    const checker = new PatternChecker();
    let serverSocket: TestSocket | undefined;
    const server = res.server(
      env.server.createServer({ pauseOnConnect: true }, (s) => {
        res.socket(s);
        serverSocket = s;
        s.on('data', (d: Buffer) => checker.push(d));
        s.pause();
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    await once(c, 'connect');
    const total = env.bulkBytes;
    const chunk = 65536;
    let offset = 0;
    let stalled = false;
    let receivedWhenStalled = -1;
    while (offset < total) {
      const ok = c.write(patternBytes(offset, chunk));
      offset += chunk;
      if (ok) continue;
      if (stalled) {
        await once(c, 'drain');
        continue;
      }
      // Wait for 'drain'; if none comes for a while, the paused reader has stopped us.
      const drained = await Promise.race([once(c, 'drain').then(() => true), res.sleep(300).then(() => false)]);
      if (drained) continue;
      stalled = true;
      receivedWhenStalled = checker.received;
      serverSocket!.resume();
      await once(c, 'drain');
    }
    c.end();
    while (checker.received < total) await res.sleep(5);
    return {
      stalled,
      stalledBeforeEverything: receivedWhenStalled >= 0 && receivedWhenStalled < total,
      allArrived: checker.received === total,
      intact: checker.mismatches === 0,
    };
  },

  async 'write then destroy(), and destroySoon(), still deliver what was written'(env, res) {
    const big = 1 << 20;
    let mode = 0;
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        s.resume();
        if (mode === 0) {
          s.write('small response');
          s.destroy();
        } else {
          s.write(patternBytes(0, big));
          (s as unknown as { destroySoon(): void }).destroySoon();
        }
      }),
    );
    const port = await listen(env, server);
    const results: Record<string, unknown>[] = [];
    for (mode = 0; mode < 2; mode++) {
      const events: string[] = [];
      const checker = new PatternChecker();
      let text = '';
      const c = res.socket(env.client.connect({ port, host: env.serverHost }));
      recordEvents(c, ['end', 'error', 'close'], events);
      c.on('data', (d: Buffer) => (mode === 0 ? (text += d.toString()) : checker.push(d)));
      await closed(c);
      results.push({ events, text, received: checker.received, intact: checker.mismatches === 0 });
    }
    return results;
  },

  async 'destroy() with received data left unread resets the connection'(env, res) {
    const serverEvents: string[] = [];
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        recordEvents(s, ['end', 'error', 'close'], serverEvents);
        s.write('never read');
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    c.pause();
    await once(c, 'connect');
    await res.sleep(100);
    c.destroy();
    await closed(c);
    while (!serverEvents.some((e) => e.startsWith('close'))) await res.sleep(5);
    return { serverEvents };
  },

  async 'resetAndDestroy makes the peer see ECONNRESET'(env, res) {
    const serverEvents: string[] = [];
    let serverError: unknown;
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        recordEvents(s, ['end', 'error', 'close'], serverEvents);
        s.on('error', (e) => (serverError = e));
        s.write('hi');
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    const clientEvents: string[] = [];
    recordEvents(c, ['error', 'close'], clientEvents);
    c.once('data', () => c.resetAndDestroy());
    await closed(c);
    while (!serverEvents.some((e) => e.startsWith('close'))) await res.sleep(5);
    const e = serverError as { code?: string; errno?: number; syscall?: string; message?: string } | undefined;
    return { clientEvents, serverEvents, error: { code: e?.code, errno: e?.errno, syscall: e?.syscall, message: e?.message } };
  },

  async 'socket properties follow the connection'(env, res) {
    let serverSide: Record<string, unknown> = {};
    const server = res.server(
      env.server.createServer({}, (s) => {
        res.socket(s);
        serverSide = {
          remoteIsClient: typeof s.remoteAddress === 'string',
          remoteFamily: s.remoteFamily,
          readyState: s.readyState,
          connecting: s.connecting,
        };
        s.resume();
        s.end('12345');
      }),
    );
    const port = await listen(env, server);
    const c = res.socket(env.client.connect({ port, host: env.serverHost }));
    const before = { readyState: c.readyState, remotePort: c.remotePort, pending: c.pending };
    await once(c, 'connect');
    const connected = {
      readyState: c.readyState,
      remoteAddress: c.remoteAddress === env.serverHost,
      remotePort: c.remotePort === port,
      remoteFamily: c.remoteFamily,
      localPort: typeof c.localPort,
      family: (c.address() as { family?: string }).family,
      pending: c.pending,
    };
    c.write('abc');
    c.resume();
    await once(c, 'end');
    const ended = { readyState: c.readyState, bytesRead: c.bytesRead, bytesWritten: c.bytesWritten };
    await closed(c);
    return { before, connected, ended, after: { readyState: c.readyState }, serverSide };
  },
};

const only = process.env['NET_FACADES'];
const facades: NetEnvFactory[] = [...(only === undefined || only === 'model' ? [fakeEnvFactory] : []), ...stackEnvFactories()];

for (const facade of facades) {
  describe(`net facade on ${facade.name} behaves like node:net`, function () {
    for (const [name, scenario] of Object.entries(scenarios)) {
      it(name, async function () {
        const expected = await runScenario(nodeEnvFactory, scenario);
        const actual = await runScenario(facade, scenario);
        assert.deepEqual(actual, expected);
      });
    }
  });
}
