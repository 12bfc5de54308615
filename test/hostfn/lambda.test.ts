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

  it('answers a bad event with code 2, without throwing', async () => {
    const handler = createHandler({ logger: silentLogger });
    const r = await handler({ host: 'x' }, { getRemainingTimeInMillis: () => 10_000 });
    assert.equal(r.code, 2);
    assert.equal(r.host, null);
    assert.match(r.reason, /bad launch/);
  });
});
