import assert from 'node:assert/strict';
import { request } from 'node:http';
import { buildIcmpEchoRequest, parseIcmp, parseIcmpQuote, ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_UNREACH_HOST } from '../../netstack/wire/icmp.js';
import { parseIpv4, ipv4ToString, PROTO_ICMP } from '../../netstack/wire/ipv4.js';
import { buildUdpPacket, parseUdp } from '../../netstack/wire/udp.js';
import { buildDnsQuery, parseDns, DNS_RCODE_NOERROR, DNS_RCODE_NXDOMAIN, DNS_TYPE_AAAA } from '../../netstack/wire/dns.js';
import { isWireError } from '../../netstack/wire/error.js';
import { loadOrCreateSecret, mintToken } from '../../relay/auth.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, type Relay, type RelayOptions } from '../../relay/index.js';
import { isManifestError, parseManifest } from '../../relay/manifest.js';
import { silentLogger } from '../../relay/log.js';
import { ADMIN_HOST } from '../../relay/protocol.js';
import { joinRefused, joinRelay, waitFor, type TestHost } from '../support/relay-client.js';
import { addr, concat, rawPacket, tcpPacket } from '../support/relay-packets.js';

const SECRET = 'relay-test-secret';

async function withRelay(opts: Partial<RelayOptions>, fn: (relay: Relay, hosts: (name: string) => Promise<TestHost>) => Promise<void>): Promise<void> {
  const relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, secret: SECRET, logger: silentLogger, ...opts });
  const opened: TestHost[] = [];
  const join = async (name: string): Promise<TestHost> => {
    const h = await joinRelay(relay.url, relay.mintToken(name, 60));
    opened.push(h);
    return h;
  };
  try {
    await fn(relay, join);
  } finally {
    await Promise.all(opened.map((h) => h.close()));
    await relay.close();
  }
}

interface HttpResult {
  status: number;
  body: string;
  error: string | undefined;
}

function http(url: string, method: string, token: string | null, body?: unknown): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, error: res.headers['x-imach-error'] as string | undefined }));
    });
    req.on('error', reject);
    req.end(body !== undefined ? JSON.stringify(body) : undefined);
  });
}

describe('relay', function () {
  this.timeout(15000);

  it('welcomes a host with its address and the network parameters', async () => {
    await withRelay({}, async (relay, join) => {
      const a = await join('alpha');
      assert.equal(a.welcome.type, 'welcome');
      assert.equal(a.welcome.version, 1);
      assert.equal(a.welcome.host, 'alpha');
      assert.equal(a.welcome.network, '10.77.0.0/16');
      assert.equal(a.welcome.gateway, '10.77.0.1');
      assert.equal(a.welcome.dns, '10.77.0.1');
      assert.equal(a.welcome.idleMs, null);
      assert.ok(addr(a.address) > addr('10.77.0.1') && addr(a.address) < addr('10.77.255.255'));
      const status = relay.hosts().find((h) => h.name === 'alpha');
      assert.equal(status?.state, 'running');
      assert.equal(status?.declared, false);
      assert.equal(status?.address, a.address);
    });
  });

  it('routes packets between two hosts, a batched frame forwarded whole', async () => {
    await withRelay({}, async (_relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      assert.notEqual(a.address, b.address);
      const p1 = tcpPacket(a.address, b.address, 40000, 80, 0x02);
      a.send(p1);
      const got = await b.nextPacket();
      assert.deepEqual(got, p1);
      const batch = concat(rawPacket(a.address, b.address, 100, 1), rawPacket(a.address, b.address, 300, 2), rawPacket(a.address, b.address, 60, 3));
      a.send(batch);
      await b.until(() => b.packets.length === 3, 'three packets');
      assert.deepEqual(b.frames[b.frames.length - 1], batch);
      assert.deepEqual(b.packets.map((p) => p.length), [100, 300, 60]);
      // and back
      b.send(rawPacket(b.address, a.address, 40, 9));
      const back = await a.nextPacket();
      assert.equal(back[20], 9);
    });
  });

  it('splits a frame by destination and drops spoofed sources, counting them', async () => {
    await withRelay({}, async (relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      const c = await join('gamma');
      a.send(concat(rawPacket(a.address, b.address, 50, 1), rawPacket(c.address, b.address, 50, 2), rawPacket(a.address, c.address, 50, 3), rawPacket(a.address, b.address, 50, 4)));
      await b.until(() => b.packets.length === 2, 'two packets at beta');
      await c.until(() => c.packets.length === 1, 'one packet at gamma');
      assert.deepEqual(b.packets.map((p) => p[20]), [1, 4]);
      assert.equal(c.packets[0][20], 3);
      assert.equal(relay.counters()['spoofed-source'], 1);
      assert.equal(relay.counters()['hosts.alpha.spoofed-source'], 1);
      assert.equal(relay.hosts().find((h) => h.name === 'alpha')?.drops['spoofed-source'], 1);
    });
  });

  it('drops malformed packets and the rest of their frame, keeping every session open', async () => {
    await withRelay({}, async (relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      const good = rawPacket(a.address, b.address, 40, 7);
      const badChecksum = rawPacket(a.address, b.address, 40, 8);
      badChecksum[10] ^= 0xff;
      const badVersion = rawPacket(a.address, b.address, 40, 8);
      badVersion[0] = 0x65;
      const tooLong = rawPacket(a.address, b.address, 40, 8).subarray(0, 30);
      a.send(concat(good, badChecksum, rawPacket(a.address, b.address, 40, 8)));
      a.send(badVersion);
      a.send(tooLong);
      a.send(new Uint8Array([1, 2, 3]));
      a.send(rawPacket(a.address, b.address, 40, 9));
      await b.until(() => b.packets.length === 2, 'good packets');
      assert.deepEqual(b.packets.map((p) => p[20]), [7, 9]);
      const k = relay.counters();
      assert.equal(k['malformed-checksum'], 1);
      assert.equal(k['malformed-version'], 1);
      assert.equal(k['malformed-length'], 1);
      assert.equal(k['malformed-short'], 1);
      assert.equal(a.closed, false);
      assert.equal(b.closed, false);
    });
  });

  it('refuses missing, malformed, forged, expired and admin tokens at the upgrade', async () => {
    await withRelay({}, async (relay) => {
      const missing = await joinRefused(relay.url, null);
      assert.equal(missing.status, 401);
      assert.match(missing.error, /missing/);
      const malformed = await joinRefused(relay.url, 'not-a-token');
      assert.equal(malformed.status, 401);
      assert.match(malformed.error, /malformed/);
      const forged = await joinRefused(relay.url, mintToken('another-secret', 'alpha', 60));
      assert.equal(forged.status, 401);
      assert.match(forged.error, /forged/);
      const expired = await joinRefused(relay.url, mintToken(SECRET, 'alpha', 10, Date.now() - 60_000));
      assert.equal(expired.status, 401);
      assert.match(expired.error, /expired/);
      const admin = await joinRefused(relay.url, relay.mintToken(ADMIN_HOST, 60));
      assert.equal(admin.status, 403);
      assert.match(admin.error, /unknown host/);
      // a valid token also works in the query string
      const viaQuery = await joinRelay(relay.url, relay.mintToken('alpha', 60), { query: true });
      assert.equal(viaQuery.welcome.host, 'alpha');
      await viaQuery.close();
      assert.equal(relay.counters()['auth-forged'], 1);
    });
  });

  it('gives a declared host its address whatever it claims, and the same address on reconnect', async () => {
    const manifest = {
      path: '',
      baseDir: '/',
      network: '10.77.0.0/16',
      prefixLength: 16,
      gateway: '10.77.0.1',
      relay: { listen: { host: '127.0.0.1', port: 0 } },
      hosts: [{ name: 'web', run: '/x/web.js', address: '10.77.0.10', provider: 'local' as const, idleMs: null, env: {}, startTimeoutMs: 5000 }],
    };
    await withRelay({ manifest }, async (relay, join) => {
      const w1 = await join('web');
      assert.equal(w1.address, '10.77.0.10');
      const w2 = await join('web');
      assert.equal(w2.address, '10.77.0.10');
      await w1.until(() => w1.closed, 'old session closed');
      const other = await join('other');
      other.send(rawPacket(other.address, '10.77.0.10', 40, 5));
      const p = await w2.nextPacket();
      assert.equal(p[20], 5);
      assert.ok(relay.events().some((e) => e.host === 'web' && e.type === 'reconnected'));
    });
  });

  it('answers ping at the gateway and sends host unreachable for unknown addresses', async () => {
    await withRelay({}, async (relay, join) => {
      const a = await join('alpha');
      a.send(buildIcmpEchoRequest({ src: addr(a.address), dst: addr('10.77.0.1'), identifier: 77, sequence: 3, payload: new Uint8Array([1, 2, 3]) }));
      const reply = parseIpv4(await a.nextPacket());
      assert.ok(!isWireError(reply));
      assert.equal(ipv4ToString(reply.src), '10.77.0.1');
      const icmp = parseIcmp(reply.payload);
      assert.ok(!isWireError(icmp));
      assert.equal(icmp.type, ICMP_ECHO_REPLY);
      assert.equal(icmp.identifier, 77);
      assert.equal(icmp.sequence, 3);

      const syn = tcpPacket(a.address, '10.77.3.3', 40112, 8080, 0x02);
      a.send(syn);
      const un = parseIpv4(await a.nextPacket());
      assert.ok(!isWireError(un));
      assert.equal(un.protocol, PROTO_ICMP);
      const msg = parseIcmp(un.payload);
      assert.ok(!isWireError(msg));
      assert.equal(msg.type, ICMP_DEST_UNREACHABLE);
      assert.equal(msg.code, ICMP_UNREACH_HOST);
      const quote = parseIcmpQuote(msg.data);
      assert.ok(!isWireError(quote));
      assert.equal(ipv4ToString(quote.dst), '10.77.3.3');
      assert.equal(quote.dstPort, 8080);
      assert.equal(relay.counters()['no-route'], 1);
    });
  });

  it('answers DNS for host names (bare and .imach), NODATA for AAAA and NXDOMAIN otherwise', async () => {
    await withRelay({}, async (_relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      const ask = async (id: number, name: string, type?: number) => {
        const q = buildDnsQuery({ id, name, type });
        assert.ok(!isWireError(q));
        a.send(buildUdpPacket({ src: addr(a.address), dst: addr('10.77.0.1'), srcPort: 5353, dstPort: 53, payload: q }));
        const p = parseIpv4(await a.nextPacket());
        assert.ok(!isWireError(p));
        const u = parseUdp(p.payload, p.src, p.dst);
        assert.ok(!isWireError(u));
        assert.equal(u.srcPort, 53);
        assert.equal(u.dstPort, 5353);
        const m = parseDns(u.payload);
        assert.ok(!isWireError(m));
        assert.equal(m.id, id);
        assert.equal(m.qr, true);
        return m;
      };
      const bare = await ask(1, 'beta');
      assert.equal(bare.rcode, DNS_RCODE_NOERROR);
      assert.deepEqual(bare.answers.map((r) => r.address), [b.address]);
      const full = await ask(2, 'BETA.imach');
      assert.deepEqual(full.answers.map((r) => r.address), [b.address]);
      const aaaa = await ask(3, 'beta.imach', DNS_TYPE_AAAA);
      assert.equal(aaaa.rcode, DNS_RCODE_NOERROR);
      assert.equal(aaaa.answers.length, 0);
      const none = await ask(4, 'nowhere.imach');
      assert.equal(none.rcode, DNS_RCODE_NXDOMAIN);
      assert.equal(none.answers.length, 0);
      const outside = await ask(5, 'example.com');
      assert.equal(outside.rcode, DNS_RCODE_NXDOMAIN);
    });
  });

  it('rate-limits a flooding host and counts the drops, while another host still gets through', async () => {
    await withRelay({ mtu: 1500, limits: { rateBytesPerSec: 1000, rateBurstBytes: 3000 } }, async (relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      const c = await join('gamma');
      for (let i = 0; i < 40; i++) a.send(rawPacket(a.address, b.address, 1000, i));
      c.send(rawPacket(c.address, b.address, 100, 200));
      await b.until(() => b.packets.some((p) => p.length === 100), 'gamma packet');
      await b.until(() => (relay.counters()['rate-limited'] ?? 0) + b.packets.filter((p) => p.length === 1000).length >= 40, 'all flood packets accounted');
      const delivered = b.packets.filter((p) => p.length === 1000).length;
      assert.ok(delivered >= 3 && delivered < 40, `delivered ${delivered}`);
      assert.equal(relay.counters()['hosts.alpha.rate-limited'], 40 - delivered);
    });
  });

  it("takes the rate limit from the manifest's relay.rate and relay.burst", async () => {
    const manifest = parseManifest('relay:\n  rate: 1000B/s\n  burst: 3000\n', '/tmp');
    assert.ok(!isManifestError(manifest), JSON.stringify(manifest));
    await withRelay({ mtu: 1500, manifest }, async (relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      for (let i = 0; i < 20; i++) a.send(rawPacket(a.address, b.address, 1000, i));
      await b.until(() => (relay.counters()['rate-limited'] ?? 0) + b.packets.length >= 20, 'all flood packets accounted');
      assert.ok(b.packets.length >= 3 && b.packets.length < 20, `delivered ${b.packets.length}`);
    });
  });

  it('serves the admin API only with an @admin token', async () => {
    await withRelay({}, async (relay, join) => {
      await join('alpha');
      const health = await http(`${relay.httpUrl}/healthz`, 'GET', null);
      assert.equal(health.status, 200);
      const none = await http(`${relay.httpUrl}/api/hosts`, 'GET', null);
      assert.equal(none.status, 401);
      assert.match(JSON.parse(none.body).error, /missing/);
      const forged = await http(`${relay.httpUrl}/api/hosts`, 'GET', mintToken('x', ADMIN_HOST, 60));
      assert.equal(forged.status, 401);
      assert.match(forged.error ?? '', /forged/);
      const hostToken = await http(`${relay.httpUrl}/api/hosts`, 'GET', relay.mintToken('alpha', 60));
      assert.equal(hostToken.status, 403);
      const admin = relay.mintToken(ADMIN_HOST, 60);
      const hosts = await http(`${relay.httpUrl}/api/hosts`, 'GET', admin);
      assert.equal(hosts.status, 200);
      const list = JSON.parse(hosts.body).hosts as { name: string; state: string }[];
      assert.deepEqual(list.map((h) => [h.name, h.state]), [['alpha', 'running']]);
      const events = await http(`${relay.httpUrl}/api/events`, 'GET', admin);
      assert.equal(events.status, 200);
      assert.ok((JSON.parse(events.body).events as { type: string }[]).some((e) => e.type === 'joined'));
      const ping = await http(`${relay.httpUrl}/api/ping`, 'POST', admin, { target: 'nosuch' });
      assert.equal(ping.status, 404);
      const badBody = await http(`${relay.httpUrl}/api/ping`, 'POST', admin, { nope: 1 });
      assert.equal(badBody.status, 400);
      const wrongMethod = await http(`${relay.httpUrl}/api/hosts`, 'DELETE', admin);
      assert.equal(wrongMethod.status, 405);
      const unknown = await http(`${relay.httpUrl}/api/nothing`, 'GET', admin);
      assert.equal(unknown.status, 404);
    });
  });

  it('pings a connected host from the gateway through the admin API', async () => {
    await withRelay({}, async (relay, join) => {
      const a = await join('alpha');
      // the test host answers echo requests like a stack would
      let answered = 0;
      a.ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) return;
        const p = parseIpv4(new Uint8Array(data));
        if (isWireError(p) || p.protocol !== PROTO_ICMP) return;
        const icmp = parseIcmp(p.payload);
        if (isWireError(icmp) || icmp.type !== 8) return;
        const reply = buildIcmpEchoRequest({ src: p.dst, dst: p.src, identifier: icmp.identifier, sequence: icmp.sequence, payload: icmp.data });
        // turn the request into a reply: type 0, fix the ICMP checksum by the difference
        reply[20] = 0;
        const sum = ((reply[22] << 8) | reply[23]) + 0x0800;
        const folded = (sum & 0xffff) + (sum >>> 16);
        reply[22] = folded >>> 8;
        reply[23] = folded & 0xff;
        answered++;
        a.send(reply);
      });
      const res = await http(`${relay.httpUrl}/api/ping`, 'POST', relay.mintToken(ADMIN_HOST, 60), { target: 'alpha' });
      assert.equal(res.status, 200, res.body);
      const body = JSON.parse(res.body) as { address: string; rttMs: number };
      assert.equal(body.address, a.address);
      assert.equal(answered, 1, 'the echo request reached the host, and its reply made the answer');
      assert.ok(Number.isFinite(body.rttMs) && body.rttMs > 0 && body.rttMs < 30_000, String(body.rttMs));
    });
  });

  it('streams events with follow=1 until the client goes', async () => {
    await withRelay({}, async (relay, join) => {
      const lines: string[] = [];
      const req = request(`${relay.httpUrl}/api/events?follow=1`, { headers: { authorization: `Bearer ${relay.mintToken(ADMIN_HOST, 60)}` } });
      const got = new Promise<void>((resolve, reject) => {
        req.on('response', (res) => {
          assert.equal(res.statusCode, 200);
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buf += c;
            const parts = buf.split('\n');
            buf = parts.pop() ?? '';
            lines.push(...parts);
            if (lines.some((l) => (JSON.parse(l) as { host: string }).host === 'late')) resolve();
          });
          res.on('error', () => {});
        });
        req.on('error', reject);
      });
      req.end();
      await new Promise((r) => setTimeout(r, 100));
      await join('late');
      await got;
      req.destroy();
      const ev = JSON.parse(lines.find((l) => l.includes('"late"'))!) as { type: string; state: string };
      assert.equal(ev.type, 'joined');
      assert.equal(ev.state, 'running');
    });
  });

  it('drops packets to a destination whose queue is full, counting them there', async () => {
    await withRelay({ limits: { queueBytes: 500 } }, async (relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      a.send(rawPacket(a.address, b.address, 400, 1));
      a.send(rawPacket(a.address, b.address, 800, 2));
      a.send(rawPacket(a.address, b.address, 100, 3));
      await b.until(() => b.packets.length === 2, 'small packets');
      assert.deepEqual(b.packets.map((p) => p[20]), [1, 3]);
      assert.equal(relay.counters()['hosts.beta.queue-full'], 1);
    });
  });

  it('forwards a burst (one frame for two destinations, then frames sent in one tick), all in order', async () => {
    await withRelay({}, async (relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      const c = await join('gamma');
      const to = (i: number) => rawPacket(a.address, i % 2 === 0 ? b.address : c.address, 60 + i, i);
      a.send(concat(...Array.from({ length: 10 }, (_, i) => to(i))));
      for (let i = 10; i < 40; i++) a.send(to(i));
      await b.until(() => b.packets.length === 20, 'packets at beta');
      await c.until(() => c.packets.length === 20, 'packets at gamma');
      assert.deepEqual(b.packets.map((p) => p[20]), Array.from({ length: 20 }, (_, k) => 2 * k));
      assert.deepEqual(c.packets.map((p) => p[20]), Array.from({ length: 20 }, (_, k) => 2 * k + 1));
      assert.equal(relay.counters()['packets-delivered'], 40);
    });
  });

  it('ignores unknown control types and counts malformed control frames', async () => {
    await withRelay({}, async (relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      a.sendControl({ type: 'from-the-future', x: 1 });
      a.ws.send('not json');
      a.ws.send('[1,2]');
      a.sendControl({ type: 'activity', established: -1 });
      a.send(rawPacket(a.address, b.address, 40, 4));
      await b.nextPacket();
      assert.equal(relay.counters()['hosts.alpha.control-malformed'], 3);
      assert.equal(a.closed, false);
    });
  });

  it('closes a session whose peer stops answering pings', async () => {
    await withRelay({ limits: { pingIntervalMs: 100, tickMs: 20 } }, async (relay) => {
      const mute = await joinRelay(relay.url, relay.mintToken('mute', 60), { autoPong: false });
      try {
        await mute.until(() => mute.closed, 'session closed', 5000);
        assert.equal(relay.counters()['hosts.mute.session-timeout'], 1);
      } finally {
        await mute.close();
      }
    });
  });

  it('holds packets for a host joined by hand while it reconnects, then refuses them once it is gone', async () => {
    await withRelay({ limits: { reconnectHoldMs: 300, tickMs: 20 } }, async (relay, join) => {
      const a = await join('alpha');
      const b1 = await joinRelay(relay.url, relay.mintToken('beta', 60));
      const bAddr = b1.address;
      await b1.close();
      await waitFor(() => relay.events().some((e) => e.host === 'beta' && e.type === 'disconnected'), 'disconnected');
      a.send(rawPacket(a.address, bAddr, 40, 1));
      const b2 = await joinRelay(relay.url, relay.mintToken('beta', 60));
      try {
        assert.equal(b2.address, bAddr);
        assert.equal((await b2.nextPacket())[20], 1);
      } finally {
        await b2.close();
      }
      await waitFor(() => relay.events().some((e) => e.host === 'beta' && e.type === 'released' && e.reason === 'session lost'), 'released');
      assert.equal(relay.hosts().find((h) => h.name === 'beta')?.state, 'cold');
      a.send(tcpPacket(a.address, bAddr, 1234, 80, 0x02));
      const un = parseIpv4(await a.nextPacket());
      assert.ok(!isWireError(un));
      const msg = parseIcmp(un.payload);
      assert.ok(!isWireError(msg));
      assert.equal(msg.type, ICMP_DEST_UNREACHABLE);
      assert.equal(relay.counters()['hosts.beta.host-down'], 1);
    });
  });

  it('loads the secret from the state directory, so tokens minted from it are accepted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imach-relay-state-'));
    const saved = process.env.IMACH_SECRET;
    delete process.env.IMACH_SECRET;
    try {
      const relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, stateDir: dir, logger: silentLogger });
      try {
        const secret = await loadOrCreateSecret(dir);
        const h = await joinRelay(relay.url, mintToken(secret, 'alpha', 60));
        assert.equal(h.welcome.host, 'alpha');
        await h.close();
        const refused = await joinRefused(relay.url, mintToken('not-the-secret', 'alpha', 60));
        assert.equal(refused.status, 401);
      } finally {
        await relay.close();
      }
    } finally {
      if (saved !== undefined) process.env.IMACH_SECRET = saved;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('survives random and mutated frames (seeded) with every session still routing', async () => {
    await withRelay({}, async (relay, join) => {
      const a = await join('alpha');
      const b = await join('beta');
      let seed = 12345;
      const rand = (n: number): number => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed % n;
      };
      const targets = [b.address, '10.77.0.1', '10.77.9.9', '8.8.8.8'];
      for (let i = 0; i < 300; i++) {
        let frame: Uint8Array;
        if (i % 3 === 0) {
          frame = new Uint8Array(rand(200));
          for (let j = 0; j < frame.length; j++) frame[j] = rand(256);
        } else {
          frame = rawPacket(a.address, targets[rand(targets.length)], 20 + rand(100), rand(256), [1, 6, 17, 253][rand(4)]);
          for (let k = rand(3); k > 0; k--) frame[rand(frame.length)] = rand(256);
        }
        a.send(frame);
      }
      a.send(rawPacket(a.address, b.address, 40, 0xee));
      await b.nextPacket((p) => p.length === 40 && p[20] === 0xee);
      assert.equal(a.closed, false);
      const k = relay.counters();
      assert.ok(Object.keys(k).some((key) => key.startsWith('malformed-')), JSON.stringify(k));
      assert.equal(k['internal-error'] ?? 0, 0);
    });
  });
});
