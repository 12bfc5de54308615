import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import { WebSocketServer, type WebSocket } from 'ws';
import { HostRuntime, type RuntimeSocketStats, type StackBundle } from '../../hostfn/runtime.js';
import { silentLogger } from '../../hostfn/log.js';
import type { Launch } from '../../hostfn/protocol.js';
import { testWelcome } from '../support/welcome.js';

/** A stack stand-in whose counters the test sets; servers count as listeners. */
class FakeStack {
  stats: RuntimeSocketStats = { established: 0, listening: 0, udp: 0, bytesIn: 0, bytesOut: 0 };
  closed = false;
  serversClosed = 0;
  readonly net = {
    createServer: () => {
      this.stats.listening++;
      let open = true;
      return {
        close: () => {
          if (open) {
            open = false;
            this.stats.listening--;
            this.serversClosed++;
          }
        },
      };
    },
  };
  readonly dgram = {};
  socketStats(): RuntimeSocketStats {
    return { ...this.stats };
  }
  close(): void {
    this.closed = true;
  }
}

interface Relay {
  url: string;
  messages: { type: string; [k: string]: unknown }[];
  conn(): Promise<WebSocket>;
  close(): Promise<void>;
}

async function fakeRelay(refuse = false): Promise<Relay> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    verifyClient: (_i, cb) => (refuse ? cb(false, 401, 'no', { 'X-Imach-Error': 'forged token' }) : cb(true)),
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const messages: Relay['messages'] = [];
  let resolveConn!: (ws: WebSocket) => void;
  const first = new Promise<WebSocket>((r) => (resolveConn = r));
  wss.on('connection', (ws) => {
    ws.on('message', (d, bin) => {
      if (!bin) messages.push(JSON.parse(String(d)));
    });
    ws.send(
      JSON.stringify(testWelcome({ host: 'app', address: '10.77.0.9', idleMs: 1000, session: 'x' })),
    );
    resolveConn(ws);
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    messages,
    conn: () => first,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('hostfn/runtime', () => {
  let dir: string;
  let relay: Relay;
  let stack: FakeStack;
  let n = 0;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'imach-rt-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    relay = await fakeRelay();
    stack = new FakeStack();
  });
  afterEach(() => relay.close());

  function app(source: string): string {
    const p = join(dir, `app${++n}.mjs`);
    writeFileSync(p, source);
    return p;
  }

  function runtime(run: string, extra: Partial<ConstructorParameters<typeof HostRuntime>[1]> = {}) {
    const launch: Launch = { host: 'app', relay: relay.url, token: 't', run, env: { GREETING: 'hi' }, idleMs: 1000, mtu: 65535 };
    return new HostRuntime(launch, {
      logger: silentLogger,
      pollMs: 10,
      createStack: (): StackBundle => ({ stack, dns: { lookup: async () => '10.77.0.2', resolve4: async () => ['10.77.0.2'] } }),
      ...extra,
    });
  }

  it('calls the app with its host, env and facades, and ends when the app returns with no sockets', async () => {
    (globalThis as Record<string, unknown>).__imachSeen = undefined;
    const run = app(`export default async (ctx) => {
      globalThis.__imachSeen = { name: ctx.host.name, address: ctx.host.address, env: ctx.env.GREETING,
        hasNet: typeof ctx.net.createServer, aborted: ctx.signal.aborted };
    };`);
    const exit = await runtime(run).run();
    assert.deepEqual(exit, { code: 0, reason: 'app exited' });
    assert.deepEqual((globalThis as Record<string, unknown>).__imachSeen, {
      name: 'app',
      address: '10.77.0.9',
      env: 'hi',
      hasNet: 'function',
      aborted: false,
    });
    await until(() => relay.messages.some((m) => m.type === 'released'), 'released');
    assert.equal(relay.messages[0]!.type, 'activity');
    assert.deepEqual(relay.messages.at(-1), { type: 'released', reason: 'app exited' });
    assert.equal(stack.closed, true);
  });

  it('keeps running while a listener is open, and drains on the relay\'s drain', async () => {
    (globalThis as Record<string, unknown>).__imachAbort = undefined;
    const run = app(`export default (ctx) => {
      ctx.net.createServer();
      ctx.signal.addEventListener('abort', () => { globalThis.__imachAbort = true; });
    };`);
    const rt = runtime(run);
    let ended = false;
    const exitP = rt.run().then((e) => ((ended = true), e));
    const ws = await relay.conn();
    await until(() => relay.messages.some((m) => m.type === 'activity' && m.listening === 1), 'activity with a listener');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(ended, false);
    stack.stats.established = 1;
    await until(() => relay.messages.some((m) => m.type === 'activity' && m.established === 1), 'activity on change');
    ws.send(JSON.stringify({ type: 'drain', reason: 'idle', graceMs: 5000 }));
    await until(() => (globalThis as Record<string, unknown>).__imachAbort === true, 'signal');
    assert.equal(stack.serversClosed, 1);
    assert.equal(ended, false, 'waits for the open connection');
    stack.stats.established = 0;
    const exit = await exitP;
    assert.equal(exit.code, 0);
    assert.match(exit.reason, /drained/);
    await until(() => relay.messages.some((m) => m.type === 'released'), 'released');
  });

  it('ends after graceMs when connections do not finish', async () => {
    const run = app(`export default (ctx) => { ctx.net.createServer(); };`);
    stack.stats.established = 2;
    const rt = runtime(run);
    const exitP = rt.run();
    const ws = await relay.conn();
    await until(() => relay.messages.length > 0, 'activity');
    ws.send(JSON.stringify({ type: 'drain', reason: 'idle', graceMs: 50 }));
    const exit = await exitP;
    assert.deepEqual(exit, { code: 0, reason: 'drained (idle)' });
  });

  it('exit(code) ends the host with that code', async () => {
    const run = app(`export default (ctx) => { ctx.net.createServer(); setTimeout(() => ctx.exit(3), 20); };`);
    assert.deepEqual(await runtime(run).run(), { code: 3, reason: 'app called exit(3)' });
  });

  it('an app that throws ends with code 1', async () => {
    const run = app(`export default async () => { throw new Error('boom'); };`);
    const exit = await runtime(run).run();
    assert.equal(exit.code, 1);
    assert.match(exit.reason, /boom/);
  });

  it('an app that throws at start, before any traffic, tells the relay its start failed', async () => {
    const run = app(`export default () => { throw new Error('boom at start'); };`);
    const exit = await runtime(run).run();
    assert.equal(exit.code, 1);
    await until(() => relay.messages.some((m) => m.type === 'released'), 'released');
    const released = relay.messages.find((m) => m.type === 'released')!;
    assert.equal(released.startFailed, true);
    assert.match(String(released.reason), /boom at start/);
  });

  it('an app that fails after it carried traffic is released as an ordinary exit, not a failed start', async () => {
    const run = app(`export default (ctx) => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 80));`);
    const rt = runtime(run);
    const done = rt.run();
    await until(() => relay.messages.some((m) => m.type === 'activity'), 'first activity');
    stack.stats.established = 1;
    stack.stats.bytesIn = 10;
    await until(() => relay.messages.some((m) => m.type === 'activity' && m.established === 1), 'activity with a connection');
    stack.stats.established = 0;
    const exit = await done;
    assert.equal(exit.code, 1);
    const released = relay.messages.find((m) => m.type === 'released')!;
    assert.match(String(released.reason), /late/);
    assert.equal(released.startFailed, undefined);
  });

  it('a module without a default export ends with code 1', async () => {
    const run = app(`export const x = 1;`);
    const exit = await runtime(run).run();
    assert.equal(exit.code, 1);
    assert.match(exit.reason, /default export/);
    const missing = await runtime(join(dir, 'nope.mjs')).run();
    assert.equal(missing.code, 1);
  });

  it('a refused join ends with code 1 and the relay\'s reason', async () => {
    await relay.close();
    relay = await fakeRelay(true);
    const exit = await runtime(app('export default () => {};')).run();
    assert.equal(exit.code, 1);
    assert.match(exit.reason, /forged token/);
  });

  it('drains itself before the invocation deadline', async () => {
    const run = app(`export default (ctx) => { ctx.net.createServer(); };`);
    const deadline = Date.now() + 400;
    const exit = await runtime(run, {
      remainingMs: () => deadline - Date.now(),
      deadlineMarginMs: 100,
      defaultGraceMs: 100,
    }).run();
    assert.equal(exit.code, 0);
    assert.match(exit.reason, /deadline/);
  });

  /** The exit, or 'still running' if it has not come within ms. */
  async function exitWithin(p: Promise<{ code: number; reason: string }>, ms: number) {
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([p, new Promise<string>((res) => (t = setTimeout(() => res('still running'), ms)))]);
    clearTimeout(t);
    return r;
  }

  it('a drain (SIGTERM) that comes while the host starts is applied once it runs, not when the app returns', async () => {
    (globalThis as Record<string, unknown>).__imachAborted = undefined;
    const run = app(`export default async (ctx) => {
      ctx.net.createServer();
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
      globalThis.__imachAborted = true;
    };`);
    const rt = runtime(run);
    const exitP = rt.run();
    rt.drain('SIGTERM', 1000);
    const exit = await exitWithin(exitP, 10_000);
    if (exit === 'still running') rt.drain('test cleanup', 0);
    await exitP;
    assert.deepEqual(exit, { code: 0, reason: 'drained (SIGTERM)' });
    assert.equal((globalThis as Record<string, unknown>).__imachAborted, true);
    await until(() => relay.messages.some((m) => m.type === 'released'), 'released');
  });

  it('forgets servers the app closed, and closes only the open ones on drain', async () => {
    let closeCalls = 0;
    class Server extends EventEmitter {
      open = true;
      close(cb?: (err?: Error) => void): this {
        closeCalls++;
        if (this.open) {
          this.open = false;
          stack.stats.listening--;
          this.emit('close');
          cb?.();
        } else {
          cb?.(Object.assign(new Error('Server is not running.'), { code: 'ERR_SERVER_NOT_RUNNING' }));
        }
        return this;
      }
    }
    (stack.net as { createServer: () => unknown }).createServer = () => {
      stack.stats.listening++;
      return new Server();
    };
    (globalThis as Record<string, unknown>).__imachJobs = false;
    const run = app(`export default async (ctx) => {
      for (let i = 0; i < 50; i++) ctx.net.createServer().close();
      ctx.net.createServer();
      globalThis.__imachJobs = true;
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
    };`);
    const rt = runtime(run);
    const exitP = rt.run();
    const ws = await relay.conn();
    await until(() => (globalThis as Record<string, unknown>).__imachJobs === true, 'the jobs');
    assert.equal(rt.openServers, 1);
    assert.equal(closeCalls, 50);
    ws.send(JSON.stringify({ type: 'drain', reason: 'idle', graceMs: 1000 }));
    const exit = await exitP;
    assert.equal(exit.code, 0);
    assert.equal(closeCalls, 51, 'drain closes the one open server, not the 50 closed ones again');
  });

  it('a lost relay ends the host with code 1', async () => {
    const run = app(`export default (ctx) => { ctx.net.createServer(); };`);
    const exitP = runtime(run, { link: { giveUpAfterMs: 200, backoffInitialMs: 20 } }).run();
    await relay.conn();
    await relay.close();
    const exit = await exitP;
    assert.equal(exit.code, 1);
    assert.match(exit.reason, /relay lost/);
  });
});
