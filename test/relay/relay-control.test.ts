import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { startRelay, type Relay, type RelayOptions } from '../../relay/index.js';
import { isManifestError, parseManifest } from '../../relay/manifest.js';
import { silentLogger } from '../../relay/log.js';
import { ADMIN_HOST, JOIN_PATH, SUBPROTOCOL } from '../../relay/protocol.js';
import type { HostInstance, Launch, Provider } from '../../relay/provider.js';
import { joinRefused, joinRelay, waitFor } from '../support/relay-client.js';

const SECRET = 'relay-control-secret';

async function withRelay(opts: Partial<RelayOptions>, fn: (relay: Relay) => Promise<void>): Promise<void> {
  const relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, secret: SECRET, logger: silentLogger, ...opts });
  try {
    await fn(relay);
  } finally {
    await relay.close();
  }
}

/** A WebSocket upgrade without Sec-WebSocket-Key: the relay answers 400 and never opens a session. */
function brokenUpgrade(relay: Relay, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${relay.httpUrl}${JOIN_PATH}`, {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', Authorization: `Bearer ${relay.mintToken(name, 60)}`, 'Sec-WebSocket-Protocol': SUBPROTOCOL, 'Sec-WebSocket-Version': '13' },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error('upgrade accepted'));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Settle `p`, or say it did not within ms. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value?: T; error?: Error; pending?: true }> {
  let t: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    p.then(
      (value) => ({ value }),
      (error: Error) => ({ error }),
    ),
    new Promise<{ pending: true }>((res) => (t = setTimeout(() => res({ pending: true }), ms))),
  ]);
  clearTimeout(t);
  return r;
}

function failingProvider(): Provider & { starts: number } {
  return {
    name: 'local',
    starts: 0,
    start(_launch: Launch): Promise<HostInstance> {
      this.starts++;
      return Promise.reject(new Error('no capacity'));
    },
  };
}

describe('relay control paths', function () {
  this.timeout(20_000);

  describe('hosts joined by hand', () => {
    it('a refused or broken upgrade takes no place in the pool, and a full pool forgets the host gone longest', async () => {
      await withRelay({ limits: { maxDynamicHosts: 3, maxSessions: 1, reconnectHoldMs: 50, tickMs: 20 } }, async (relay) => {
        const names = () => relay.hosts().map((h) => h.name).sort();
        for (const name of ['a', 'b']) {
          const h = await joinRelay(relay.url, relay.mintToken(name, 60));
          await h.close();
          await waitFor(() => relay.counters().sessions === 0, 'the session to close');
        }
        assert.equal(await brokenUpgrade(relay, 'junk'), 400);
        const c = await joinRelay(relay.url, relay.mintToken('c', 60));
        try {
          const refused = await joinRefused(relay.url, relay.mintToken('d', 60));
          assert.equal(refused.status, 503);
          assert.match(refused.error, /too many sessions/);
        } finally {
          await c.close();
        }
        assert.deepEqual(names(), ['a', 'b', 'c']);
        await waitFor(() => relay.hosts().every((h) => h.state === 'cold'), 'all three gone');
        // the pool is full of hosts that have left: a new name takes the place of the oldest
        const n = await joinRelay(relay.url, relay.mintToken('newhost', 60));
        await n.close();
        assert.deepEqual(names(), ['b', 'c', 'newhost']);
        const forgotten = relay.events().find((e) => e.type === 'forgotten');
        assert.equal(forgotten?.host, 'a');
      });
    });

    it('a full pool of connected hosts still refuses a new name', async () => {
      await withRelay({ limits: { maxDynamicHosts: 1 } }, async (relay) => {
        const a = await joinRelay(relay.url, relay.mintToken('a', 60));
        try {
          const refused = await joinRefused(relay.url, relay.mintToken('b', 60));
          assert.equal(refused.status, 503);
          assert.match(refused.error, /pool is full/);
          assert.deepEqual(relay.hosts().map((h) => h.name), ['a']);
        } finally {
          await a.close();
        }
      });
    });

    it('forgets a host joined by hand that has been gone for dynamicForgetMs; its name can join again', async () => {
      await withRelay({ limits: { reconnectHoldMs: 50, tickMs: 20, dynamicForgetMs: 100 } }, async (relay) => {
        const x = await joinRelay(relay.url, relay.mintToken('x', 60));
        await x.close();
        await waitFor(() => !relay.hosts().some((h) => h.name === 'x'), 'x to be forgotten');
        assert.match(relay.events().find((e) => e.type === 'forgotten')?.reason ?? '', /gone for/);
        const again = await joinRelay(relay.url, relay.mintToken('x', 60));
        await again.close();
        assert.equal(relay.hosts().find((h) => h.name === 'x')?.provider, 'manual');
      });
    });
  });

  describe('ping', () => {
    it('ends at once with "unreachable" for a host in start-failure backoff, also through the admin API (502)', async () => {
      const m = parseManifest('hosts:\n  web: ./app.js\n', '/tmp');
      assert.ok(!isManifestError(m));
      const provider = failingProvider();
      await withRelay({ manifest: m, providers: { local: provider }, limits: { startRetryBaseMs: 60_000 } }, async (relay) => {
        const first = await within(relay.ping('web', 30_000), 10_000);
        assert.match(first.error?.message ?? String(first.pending), /host web unreachable: .*no capacity/);
        assert.equal(provider.starts, 1);
        const second = await within(relay.ping('web', 30_000), 10_000);
        assert.match(second.error?.message ?? String(second.pending), /host web unreachable: .*no capacity.*next start attempt in/);
        assert.equal(provider.starts, 1, 'no start during the backoff');
        const res = await within(adminPing(relay, 'web'), 10_000);
        assert.equal(res.value?.status, 502);
        assert.match(res.value?.body ?? '', /unreachable/);
      });
    });

    it('ends at once with "unreachable" for a host joined by hand that has left', async () => {
      await withRelay({ limits: { reconnectHoldMs: 50, tickMs: 20 } }, async (relay) => {
        const h = await joinRelay(relay.url, relay.mintToken('laptop', 60));
        await h.close();
        await waitFor(() => relay.hosts().find((x) => x.name === 'laptop')?.state === 'cold', 'laptop gone');
        const r = await within(relay.ping('laptop', 30_000), 10_000);
        assert.match(r.error?.message ?? String(r.pending), /host laptop unreachable: joined by hand and not connected/);
      });
    });
  });

  it('events?follow=1 sends its headers at once, before any event', async () => {
    await withRelay({}, async (relay) => {
      assert.equal(relay.events().length, 0);
      let req: ReturnType<typeof request> | undefined;
      const res = await within(
        new Promise<IncomingMessage>((resolve, reject) => {
          req = request(`${relay.httpUrl}/api/events?follow=1`, { headers: { authorization: `Bearer ${relay.mintToken(ADMIN_HOST, 60)}` } }, resolve);
          req.on('error', reject);
          req.end();
        }),
        5000,
      );
      req?.destroy();
      assert.equal(res.value?.statusCode, 200);
      assert.match(String(res.value?.headers['content-type']), /ndjson/);
    });
  });
});

function adminPing(relay: Relay, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ target, timeoutMs: 30_000 });
    const req = request(
      `${relay.httpUrl}/api/ping`,
      { method: 'POST', headers: { authorization: `Bearer ${relay.mintToken(ADMIN_HOST, 60)}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
