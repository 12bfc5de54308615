import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { createHandler } from '../../hostfn/lambda.js';
import { silentLogger } from '../../hostfn/log.js';
import type { RuntimeSocketStats, StackBundle } from '../../hostfn/runtime.js';

describe('hostfn/lambda handler', () => {
  let dir: string;
  let wss: WebSocketServer;
  let url: string;
  const released: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'imach-lambda-'));
    writeFileSync(join(dir, 'app.mjs'), 'export default (ctx) => { ctx.net.createServer(); };\n');
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    wss.on('connection', (ws) => {
      ws.on('message', (d, bin) => {
        if (bin) return;
        const m = JSON.parse(String(d));
        if (m.type === 'released') released.push(m.reason);
      });
      ws.send(
        JSON.stringify({
          type: 'welcome', version: 1, host: 'fn', address: '10.77.0.30', network: '10.77.0.0/16', prefixLength: 16,
          mtu: 65535, gateway: '10.77.0.1', dns: '10.77.0.1', domain: 'imach', idleMs: null, session: 'l1',
        }),
      );
    });
  });
  after(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  function fakeStack(): StackBundle {
    const stats: RuntimeSocketStats = { established: 0, listening: 0, udp: 0, bytesIn: 0, bytesOut: 0 };
    return {
      stack: {
        net: { createServer: () => (stats.listening++, { close: () => void stats.listening-- }) },
        dgram: {},
        socketStats: () => ({ ...stats }),
        close: () => {},
      },
      dns: { lookup: async () => '10.77.0.2', resolve4: async () => ['10.77.0.2'] },
    };
  }

  it('runs the launch in the event and returns before the invocation deadline', async () => {
    const handler = createHandler({ logger: silentLogger, createStack: fakeStack, pollMs: 10, deadlineMarginMs: 100, defaultGraceMs: 100 });
    const deadline = Date.now() + 600;
    const r = await handler(
      { host: 'fn', relay: url, token: 't', run: join(dir, 'app.mjs'), env: {}, idleMs: null, mtu: 65535 },
      { getRemainingTimeInMillis: () => deadline - Date.now() },
    );
    assert.equal(r.host, 'fn');
    assert.equal(r.code, 0);
    assert.match(r.reason, /deadline/);
    assert.ok(released.some((x) => /deadline/.test(x)));
  });

  it('a warm container does not pass one host\'s env to the next invocation: process.env is restored exactly', async () => {
    const seen: unknown[] = [];
    (globalThis as Record<string, unknown>).__imachEnvSeen = seen;
    writeFileSync(
      join(dir, 'env-app.mjs'),
      `export default (ctx) => {
        globalThis.__imachEnvSeen.push({ host: ctx.host.name, pw: process.env.IMACH_T_PW ?? null, keep: process.env.IMACH_T_KEEP ?? null, ctxPw: ctx.env.IMACH_T_PW ?? null });
        process.env.IMACH_T_BY_APP = 'app';
      };\n`,
    );
    process.env.IMACH_T_KEEP = 'before';
    try {
      const handler = createHandler({ logger: silentLogger, createStack: fakeStack, pollMs: 10 });
      const ctx = { getRemainingTimeInMillis: () => 600_000 };
      const ev = (host: string, env: Record<string, string>) => ({ host, relay: url, token: 't', run: join(dir, 'env-app.mjs'), env, idleMs: null, mtu: 65535 });
      const a = await handler(ev('a', { IMACH_T_PW: 'secret-of-a', IMACH_T_KEEP: 'changed' }), ctx);
      assert.equal(a.code, 0, a.reason);
      assert.equal(process.env.IMACH_T_PW, undefined);
      assert.equal(process.env.IMACH_T_BY_APP, undefined);
      assert.equal(process.env.IMACH_T_KEEP, 'before');
      const b = await handler(ev('b', {}), ctx);
      assert.equal(b.code, 0, b.reason);
      assert.deepEqual(seen, [
        { host: 'a', pw: 'secret-of-a', keep: 'changed', ctxPw: 'secret-of-a' },
        { host: 'b', pw: null, keep: 'before', ctxPw: null },
      ]);
    } finally {
      delete process.env.IMACH_T_KEEP;
      delete process.env.IMACH_T_PW;
      delete process.env.IMACH_T_BY_APP;
    }
  });

  it('answers a bad event with code 2, without throwing', async () => {
    const handler = createHandler({ logger: silentLogger });
    const r = await handler({ host: 'x' }, { getRemainingTimeInMillis: () => 10_000 });
    assert.equal(r.code, 2);
    assert.equal(r.host, null);
    assert.match(r.reason, /bad launch/);
  });
});
