import assert from 'node:assert/strict';
import { buildIcmpEchoRequest, buildIcmpUnreachable, parseIcmp, parseIcmpQuote, ICMP_DEST_UNREACHABLE, ICMP_UNREACH_HOST } from '../../netstack/wire/icmp.js';
import { parseIpv4, ipv4ToString, PROTO_ICMP, PROTO_TCP } from '../../netstack/wire/ipv4.js';
import { ACK, RST, parseTcp, tcpFlagsToString } from '../../netstack/wire/tcp.js';
import { buildUdpPacket } from '../../netstack/wire/udp.js';
import { buildDnsQuery } from '../../netstack/wire/dns.js';
import { isWireError } from '../../netstack/wire/error.js';
import { isTokenError, verifyToken } from '../../relay/auth.js';
import { startRelay, type Relay, type RelayLimits } from '../../relay/index.js';
import { silentLogger } from '../../relay/log.js';
import { isAllocationSignal } from '../../relay/packet.js';
import { isManifestError, parseManifest } from '../../relay/manifest.js';
import type { Launch } from '../../relay/protocol.js';
import type { HostInstance, Provider } from '../../relay/provider.js';
import { joinRefused, joinRelay, waitFor, type TestHost } from '../support/relay-client.js';
import { addr, rawPacket, tcpPacket, tcpSegment } from '../support/relay-packets.js';

const SECRET = 'lifecycle-test-secret';

type Behaviour = 'join' | 'exit-before-join' | 'never-join' | 'reject';

/** A provider whose "host function" is a raw ws client in this process. */
class FakeProvider implements Provider {
  readonly name = 'local';
  readonly launches: Launch[] = [];
  readonly hosts: TestHost[] = [];
  behaviour: Behaviour = 'join';
  /** how long a host takes between drain and released */
  drainDelayMs = 0;
  private readonly live = new Set<() => void>();
  private waiters: (() => void)[] = [];

  async start(launch: Launch): Promise<HostInstance> {
    this.launches.push(launch);
    if (this.behaviour === 'reject') throw new Error('no capacity');
    let finish!: (r: { code: number | null; reason: string }) => void;
    const exited = new Promise<{ code: number | null; reason: string }>((r) => (finish = r));
    let host: TestHost | null = null;
    let ended = false;
    const end = (code: number | null, reason: string): void => {
      if (ended) return;
      ended = true;
      this.live.delete(kill);
      finish({ code, reason });
    };
    const kill = (): void => {
      if (host !== null) host.ws.terminate();
      end(null, 'SIGTERM');
    };
    this.live.add(kill);
    if (this.behaviour === 'exit-before-join') {
      setTimeout(() => end(1, 'exit'), 20);
    } else if (this.behaviour === 'join') {
      void joinRelay(launch.relay, launch.token).then((h) => {
        host = h;
        this.hosts.push(h);
        // like a host runtime: drain -> released -> end
        h.ws.on('message', (data: Buffer, isBinary: boolean) => {
          if (isBinary) return;
          const msg = JSON.parse(data.toString()) as { type: string; reason?: string };
          if (msg.type === 'drain') {
            const done = (): void => {
              h.sendControl({ type: 'released', reason: `drained: ${msg.reason}` });
              h.ws.close();
            };
            if (this.drainDelayMs > 0) setTimeout(done, this.drainDelayMs);
            else done();
          }
        });
        h.ws.on('close', () => end(0, 'exit'));
        this.wake();
      });
    }
    return { exited, stop: async () => kill() };
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  /** The n-th host that joined (0-based), once it has. */
  async joined(n: number): Promise<TestHost> {
    while (this.hosts.length <= n) await new Promise<void>((r) => this.waiters.push(r));
    return this.hosts[n];
  }

  get liveCount(): number {
    return this.live.size;
  }

  stopAll(): void {
    for (const k of [...this.live]) k();
  }
}

const MANIFEST = `
hosts:
  web:
    run: ./web.js
    address: 10.77.0.10
    idle: 400ms
    startTimeout: 2s
    env: { PORT: "8080" }
  pinned:
    run: ./pinned.js
    idle: never
`;

async function withLifecycle(
  limits: Partial<RelayLimits>,
  fn: (relay: Relay, provider: FakeProvider, client: TestHost) => Promise<void>,
  manifestText = MANIFEST,
): Promise<void> {
  const manifest = parseManifest(manifestText, '/apps/demo');
  if (isManifestError(manifest)) throw new Error(manifest.message);
  const provider = new FakeProvider();
  const relay = await startRelay({ manifest, listen: { host: '127.0.0.1', port: 0 }, secret: SECRET, providers: { local: provider }, logger: silentLogger, limits: { tickMs: 50, ...limits } });
  const client = await joinRelay(relay.url, relay.mintToken('client', 60));
  try {
    await fn(relay, provider, client);
  } finally {
    await client.close();
    await relay.close();
    provider.stopAll();
    await Promise.all(provider.hosts.map((h) => h.close()));
  }
}

function state(relay: Relay, name: string): string | undefined {
  return relay.hosts().find((h) => h.name === name)?.state;
}

function eventText(relay: Relay, name: string): string[] {
  return relay.events().filter((e) => e.host === name).map((e) => `${e.type}: ${e.reason}`);
}

/** The next TCP segment the client gets is a RST from `from`:`fromPort` with these numbers. */
async function expectReset(client: TestHost, from: string, fromPort: number, seq: number, ack: number, flags: number): Promise<void> {
  const p = parseIpv4(await client.nextPacket((x) => x[9] === PROTO_TCP));
  assert.ok(!isWireError(p));
  assert.equal(ipv4ToString(p.src), from);
  assert.equal(ipv4ToString(p.dst), client.address);
  const seg = parseTcp(p.payload, p.src, p.dst);
  assert.ok(!isWireError(seg), 'checksum and header of the RST');
  assert.equal(seg.srcPort, fromPort);
  assert.equal(tcpFlagsToString(seg.flags), tcpFlagsToString(flags));
  assert.equal(seg.seq, seq);
  assert.equal(seg.ack, ack);
  assert.equal(seg.payload.length, 0);
}

async function expectUnreachable(client: TestHost, dst: string, dstPort: number): Promise<void> {
  const p = parseIpv4(await client.nextPacket((x) => x[9] === PROTO_ICMP));
  assert.ok(!isWireError(p));
  assert.equal(ipv4ToString(p.src), '10.77.0.1');
  const icmp = parseIcmp(p.payload);
  assert.ok(!isWireError(icmp));
  assert.equal(icmp.type, ICMP_DEST_UNREACHABLE);
  assert.equal(icmp.code, ICMP_UNREACH_HOST);
  const q = parseIcmpQuote(icmp.data);
  assert.ok(!isWireError(q));
  assert.equal(ipv4ToString(q.dst), dst);
  assert.equal(q.dstPort, dstPort);
}

describe('relay lifecycle', function () {
  this.timeout(20000);

  it('lists declared hosts cold with their addresses before anything starts', async () => {
    await withLifecycle({}, async (relay, provider) => {
      const web = relay.hosts().find((h) => h.name === 'web');
      assert.equal(web?.state, 'cold');
      assert.equal(web?.address, '10.77.0.10');
      assert.equal(web?.declared, true);
      assert.equal(web?.provider, 'local');
      assert.equal(provider.launches.length, 0);
    });
  });

  it('starts a cold host on a SYN and delivers the held packet once it joins', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      const syn = tcpPacket(client.address, '10.77.0.10', 40112, 8080, 0x02);
      client.send(syn);
      const web = await provider.joined(0);
      const got = await web.nextPacket();
      assert.deepEqual(got, syn);
      assert.equal(web.welcome.address, '10.77.0.10');
      assert.equal(web.welcome.idleMs, 400);
      const launch = provider.launches[0];
      assert.equal(launch.host, 'web');
      assert.equal(launch.relay, relay.url);
      assert.equal(launch.run, '/apps/demo/web.js');
      assert.deepEqual(launch.env, { PORT: '8080' });
      assert.equal(launch.idleMs, 400);
      const claims = verifyToken(SECRET, launch.token);
      assert.ok(!isTokenError(claims) && claims.h === 'web');
      await waitFor(() => state(relay, 'web') === 'running', 'running');
      const events = eventText(relay, 'web');
      assert.equal(events[0], `started: SYN ${client.address}:40112 -> 10.77.0.10:8080`);
      assert.match(events[1], /^joined: joined in \d+ms$/);
      assert.equal(relay.hosts().find((h) => h.name === 'web')?.starts, 1);
    });
  });

  it('drains an idle host, records the release, and starts it again on the next packet', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      client.send(rawPacket(client.address, '10.77.0.10', 40, 1));
      const web = await provider.joined(0);
      const drain = await web.nextControl('drain');
      assert.equal(drain.reason, 'idle 400ms');
      assert.equal(typeof drain.graceMs, 'number');
      await waitFor(() => state(relay, 'web') === 'cold', 'cold');
      const events = eventText(relay, 'web');
      assert.ok(events.includes('drain: idle 400ms'), events.join('\n'));
      assert.ok(events.includes('released: drained: idle 400ms'), events.join('\n'));
      client.send(rawPacket(client.address, '10.77.0.10', 40, 2));
      const again = await provider.joined(1);
      const p = await again.nextPacket();
      assert.equal(p[20], 2);
      assert.equal(relay.hosts().find((h) => h.name === 'web')?.starts, 2);
    });
  });

  it('holds a new connection to a draining host and starts the host again once it has gone', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      provider.drainDelayMs = 300;
      client.send(rawPacket(client.address, '10.77.0.10', 40, 1));
      const web = await provider.joined(0);
      await web.nextControl('drain');
      assert.equal(state(relay, 'web'), 'draining');
      // an old connection's segment still reaches the draining host; a SYN waits
      client.send(tcpPacket(client.address, '10.77.0.10', 5555, 8080, 0x10));
      client.send(tcpPacket(client.address, '10.77.0.10', 5556, 8080, 0x02));
      const ack = await web.nextPacket((p) => p[9] === 6);
      assert.equal((ack[20] << 8) | ack[21], 5555);
      const again = await provider.joined(1);
      const syn = await again.nextPacket((p) => p[9] === 6);
      assert.equal((syn[20] << 8) | syn[21], 5556);
      assert.equal(web.packets.filter((p) => p[9] === 6).length, 0);
      const events = eventText(relay, 'web');
      assert.deepEqual(events.slice(-3, -1), ['released: drained: idle 400ms', `started: SYN ${client.address}:5556 -> 10.77.0.10:8080`]);
    });
  });

  it('keeps a host with established connections and a pinned host running past the idle window', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      client.send(rawPacket(client.address, '10.77.0.10', 40, 1));
      const web = await provider.joined(0);
      web.sendControl({ type: 'activity', established: 1, listening: 1, bytesIn: 10, bytesOut: 10, idleMs: 0 });
      const pinnedAddr = relay.hosts().find((h) => h.name === 'pinned')!.address;
      client.send(rawPacket(client.address, pinnedAddr, 40, 1));
      await provider.joined(1);
      await waitFor(() => relay.hosts().find((h) => h.name === 'web')?.connections === 1, 'activity seen');
      // three idle windows without traffic
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(state(relay, 'web'), 'running');
      assert.equal(state(relay, 'pinned'), 'running');
      assert.equal(web.controls.filter((c) => c.type === 'drain').length, 0);
      web.sendControl({ type: 'activity', established: 0, listening: 1, bytesIn: 10, bytesOut: 10, idleMs: 1200 });
      await web.nextControl('drain');
      await waitFor(() => state(relay, 'web') === 'cold', 'cold');
      assert.equal(state(relay, 'pinned'), 'running');
    });
  });

  it('sends ICMP host unreachable to held senders when the host exits before joining', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      provider.behaviour = 'exit-before-join';
      client.send(tcpPacket(client.address, '10.77.0.10', 40112, 8080, 0x02));
      await expectUnreachable(client, '10.77.0.10', 8080);
      assert.equal(state(relay, 'web'), 'failed');
      assert.ok(eventText(relay, 'web').includes('failed: exited with code 1 before joining'));
      assert.equal(relay.counters()['hosts.web.start-failed'], 1);
      // in backoff, the next packet is refused at once without another start
      client.send(tcpPacket(client.address, '10.77.0.10', 40113, 8080, 0x02));
      await expectUnreachable(client, '10.77.0.10', 8080);
      assert.equal(provider.launches.length, 1);
    });
  });

  it('fails a start that does not join within the deadline, and one the provider rejects', async () => {
    await withLifecycle({ startRetryBaseMs: 10 }, async (relay, provider, client) => {
      provider.behaviour = 'never-join';
      client.send(tcpPacket(client.address, '10.77.0.10', 1000, 80, 0x02));
      await expectUnreachable(client, '10.77.0.10', 80);
      assert.ok(eventText(relay, 'web').includes('failed: did not join within 2s'), eventText(relay, 'web').join('\n'));
      provider.behaviour = 'reject';
      await new Promise((r) => setTimeout(r, 30));
      client.send(tcpPacket(client.address, '10.77.0.10', 1001, 80, 0x02));
      await expectUnreachable(client, '10.77.0.10', 80);
      assert.ok(eventText(relay, 'web').includes('failed: provider local: no capacity'), eventText(relay, 'web').join('\n'));
      // a later signal retries and succeeds
      provider.behaviour = 'join';
      await new Promise((r) => setTimeout(r, 50));
      client.send(rawPacket(client.address, '10.77.0.10', 40, 3));
      const web = await provider.joined(0);
      assert.equal((await web.nextPacket())[20], 3);
    });
  });

  it('holds a bounded number of packets for a starting host and counts the overflow', async () => {
    await withLifecycle({ heldPackets: 2 }, async (relay, provider, client) => {
      const frame = new Uint8Array(4 * 40);
      for (let i = 0; i < 4; i++) frame.set(rawPacket(client.address, '10.77.0.10', 40, i), i * 40);
      client.send(frame);
      const web = await provider.joined(0);
      await web.until(() => web.packets.length >= 2, 'held packets');
      assert.deepEqual(web.packets.map((p) => p[20]), [0, 1]);
      assert.equal(relay.counters()['hosts.web.held-overflow'], 2);
    });
  });

  it('starts a host on a DNS query for its name', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      const q = buildDnsQuery({ id: 9, name: 'web.imach' });
      assert.ok(!isWireError(q));
      client.send(buildUdpPacket({ src: addr(client.address), dst: addr('10.77.0.1'), srcPort: 5000, dstPort: 53, payload: q }));
      await client.nextPacket();
      await provider.joined(0);
      assert.equal(eventText(relay, 'web')[0], `started: DNS query web.imach from ${client.address}`);
    });
  });

  it('releases a host whose app exits, with its reason', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      client.send(rawPacket(client.address, '10.77.0.10', 40, 1));
      const web = await provider.joined(0);
      await waitFor(() => state(relay, 'web') === 'running', 'running');
      web.sendControl({ type: 'released', reason: 'app exited with code 0' });
      await waitFor(() => state(relay, 'web') === 'cold', 'cold');
      assert.ok(eventText(relay, 'web').includes('released: app exited with code 0'));
    });
  });

  it('holds packets for a running host while its session reconnects', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      client.send(rawPacket(client.address, '10.77.0.10', 40, 1));
      const web = await provider.joined(0);
      web.sendControl({ type: 'activity', established: 1, listening: 1, bytesIn: 0, bytesOut: 0, idleMs: 0 });
      await waitFor(() => relay.hosts().find((h) => h.name === 'web')?.connections === 1, 'activity');
      // the socket drops without the process ending (a network blip)
      web.ws.removeAllListeners('close');
      web.ws.terminate();
      await waitFor(() => eventText(relay, 'web').some((e) => e.startsWith('disconnected')), 'disconnected');
      client.send(rawPacket(client.address, '10.77.0.10', 40, 2));
      const back = await joinRelay(relay.url, provider.launches[0].token);
      try {
        assert.equal(back.address, '10.77.0.10');
        assert.equal((await back.nextPacket())[20], 2);
        assert.ok(eventText(relay, 'web').includes('reconnected: session restored'));
        assert.equal(provider.launches.length, 1);
      } finally {
        await back.close();
      }
    });
  });

  it('after a relay restart, lets a surviving host reconnect before starting another', async () => {
    await withLifecycle({ startGraceMs: 600 }, async (relay, provider, client) => {
      client.send(rawPacket(client.address, '10.77.0.10', 40, 1));
      const pinnedAddr = relay.hosts().find((h) => h.name === 'pinned')!.address;
      client.send(rawPacket(client.address, pinnedAddr, 40, 2));
      // web was running before the restart and reconnects with its token
      const web = await joinRelay(relay.url, relay.mintToken('web', 60));
      try {
        assert.equal((await web.nextPacket())[20], 1);
        assert.ok(eventText(relay, 'web').includes('joined: joined without a start'));
        // pinned does not come back: it is started once the grace is over
        const pinned = await provider.joined(0);
        assert.equal((await pinned.nextPacket())[20], 2);
        assert.deepEqual(provider.launches.map((l) => l.host), ['pinned']);
      } finally {
        await web.close();
      }
    });
  });

  it('stops running hosts when the relay closes', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      client.send(rawPacket(client.address, '10.77.0.10', 40, 1));
      const web = await provider.joined(0);
      await waitFor(() => state(relay, 'web') === 'running', 'running');
      await relay.close();
      await web.until(() => web.closed, 'host session closed');
      assert.equal(provider.liveCount, 0);
    });
  });

  it('a gateway ping of a cold host starts it, repeats a lost request and measures the reply', async () => {
    await withLifecycle({}, async (relay, provider) => {
      const pinnedAddr = relay.hosts().find((h) => h.name === 'pinned')!.address;
      const pending = relay.ping('pinned', 5000);
      const pinned = await provider.joined(0);
      // the first request is lost (as if the host's stack were not up yet); the relay sends another
      const first = parseIpv4(await pinned.nextPacket());
      assert.ok(!isWireError(first));
      const p = parseIpv4(await pinned.nextPacket());
      assert.ok(!isWireError(p));
      const icmp = parseIcmp(p.payload);
      assert.ok(!isWireError(icmp) && icmp.type === 8);
      const reply = buildIcmpEchoRequest({ src: p.dst, dst: p.src, identifier: icmp.identifier, sequence: icmp.sequence, payload: icmp.data });
      reply[20] = 0;
      const sum = ((reply[22] << 8) | reply[23]) + 0x0800;
      const folded = (sum & 0xffff) + (sum >>> 16);
      reply[22] = folded >>> 8;
      reply[23] = folded & 0xff;
      // the reply must come from the host's own address
      assert.equal(ipv4ToString(p.dst), pinnedAddr);
      pinned.send(reply);
      const r = await pending;
      assert.equal(r.address, pinnedAddr);
      assert.equal(eventText(relay, 'pinned')[0], `started: ICMP echo 10.77.0.1 -> ${pinnedAddr}`);
    });
  });
});

/** Resolves once the relay has handled everything `client` sent before (a gateway echo round trip). */
async function barrier(client: TestHost, seq: number): Promise<void> {
  client.send(buildIcmpEchoRequest({ src: addr(client.address), dst: addr('10.77.0.1'), identifier: 77, sequence: seq, payload: new Uint8Array(4) }));
  await client.nextPacket((p) => {
    const ip = parseIpv4(p);
    if (isWireError(ip) || ip.protocol !== PROTO_ICMP) return false;
    const icmp = parseIcmp(ip.payload);
    return !isWireError(icmp) && icmp.type === 0 && icmp.sequence === seq;
  });
}

function tcpPorts(p: Uint8Array): [number, number] {
  return [(p[20] << 8) | p[21], (p[22] << 8) | p[23]];
}

describe('relay lifecycle across a relay restart', function () {
  this.timeout(20000);

  it('classifies allocation signals: a SYN, UDP, an ICMP query, other protocols; not other TCP segments or ICMP errors and replies', () => {
    const c = '10.77.0.5';
    const w = '10.77.0.10';
    assert.equal(isAllocationSignal(tcpPacket(c, w, 1, 2, 0x02)), true);
    for (const flags of [0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x00]) assert.equal(isAllocationSignal(tcpPacket(c, w, 1, 2, flags)), false, `flags ${flags}`);
    assert.equal(isAllocationSignal(buildUdpPacket({ src: addr(c), dst: addr(w), srcPort: 1, dstPort: 2, payload: new Uint8Array(1) })), true);
    const echo = buildIcmpEchoRequest({ src: addr(c), dst: addr(w), identifier: 1, sequence: 1, payload: new Uint8Array(0) });
    assert.equal(isAllocationSignal(echo), true);
    const reply = new Uint8Array(echo);
    reply[20] = 0; // echo reply (the relay does not read the ICMP checksum)
    assert.equal(isAllocationSignal(reply), false);
    assert.equal(isAllocationSignal(buildIcmpUnreachable(tcpPacket(w, c, 2, 1, 0x02), ICMP_UNREACH_HOST, addr(c))), false);
    assert.equal(isAllocationSignal(rawPacket(c, w, 40)), true);
  });

  it('does not start a cold host for a TCP segment that is not a SYN; holds it for the host from before the restart', async () => {
    await withLifecycle({ reconnectHoldMs: 3000 }, async (relay, provider, client) => {
      // an open connection's data segment and its FIN, arriving before the host has reconnected
      const data = tcpPacket(client.address, '10.77.0.10', 40112, 9000, 0x18, new Uint8Array([1, 2, 3]));
      const fin = tcpPacket(client.address, '10.77.0.10', 40112, 9000, 0x11);
      client.send(data);
      client.send(fin);
      await barrier(client, 1);
      assert.equal(state(relay, 'web'), 'cold');
      assert.equal(provider.launches.length, 0);
      // the surviving instance reconnects with the token it was launched with by the old relay
      const web = await joinRelay(relay.url, relay.mintToken('web', 60));
      try {
        assert.deepEqual(await web.nextPacket(), data);
        assert.deepEqual(await web.nextPacket(), fin);
        assert.equal(state(relay, 'web'), 'running');
        assert.ok(eventText(relay, 'web').includes('joined: joined without a start'), eventText(relay, 'web').join('\n'));
        // and it is routed: the next segment goes straight to it
        client.send(tcpPacket(client.address, '10.77.0.10', 40112, 9000, 0x10));
        assert.equal(tcpPorts(await web.nextPacket())[0], 40112);
        assert.equal(provider.launches.length, 0);
        assert.equal(relay.counters()['hosts.web.stale-packet'], undefined);
      } finally {
        await web.close();
      }
    });
  });

  it('after the reconnect window, answers stale segments for a cold host with RST (RFC 9293 section 3.10.7.1) and counts them, without a start', async () => {
    await withLifecycle({ reconnectHoldMs: 150 }, async (relay, provider, client) => {
      // held during the window, refused at its end: the segment has ACK, so <SEQ=SEG.ACK><CTL=RST>
      client.send(tcpSegment(client.address, '10.77.0.10', 40112, 9000, ACK, new Uint8Array(0), 1000, 777_000));
      await expectReset(client, '10.77.0.10', 9000, 777_000, 0, RST);
      assert.equal(relay.counters()['hosts.web.stale-packet'], 1);
      assert.equal(relay.counters()['hosts.web.stale-rst'], 1);
      // after it, refused at once: a FIN with data and no ACK gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
      client.send(tcpSegment(client.address, '10.77.0.10', 40113, 9001, 0x01, new Uint8Array(5), 0xfffffffe));
      await expectReset(client, '10.77.0.10', 9001, 0, 4, RST | ACK); // (0xfffffffe + 5 + FIN) mod 2^32
      // a RST and an ICMP error get no answer (RFC 9293 section 3.10.7.1, RFC 1122 section 3.2.2)
      client.send(tcpSegment(client.address, '10.77.0.10', 40114, 9001, RST | ACK));
      client.send(buildIcmpUnreachable(tcpPacket('10.77.0.10', client.address, 9000, 40112, 0x10), 3, addr(client.address)));
      await barrier(client, 2);
      assert.equal(relay.counters()['hosts.web.stale-packet'], 4);
      assert.equal(relay.counters()['hosts.web.stale-rst'], 2);
      assert.equal(client.packets.filter((p) => p[9] === PROTO_ICMP).length, 0);
      assert.equal(client.packets.filter((p) => p[9] === PROTO_TCP).length, 0);
      assert.equal(state(relay, 'web'), 'cold');
      assert.equal(provider.launches.length, 0);
      // a SYN is an allocation signal
      const syn = tcpPacket(client.address, '10.77.0.10', 40114, 9000, 0x02);
      client.send(syn);
      const web = await provider.joined(0);
      assert.deepEqual(await web.nextPacket(), syn);
      assert.equal(provider.launches.length, 1);
    });
  });

  it('does not start a host again for segments held for its lost session; refuses them instead', async () => {
    await withLifecycle({ reconnectHoldMs: 200 }, async (relay, provider, client) => {
      client.send(rawPacket(client.address, '10.77.0.10', 40, 1));
      const web = await provider.joined(0);
      web.sendControl({ type: 'activity', established: 1, listening: 1, bytesIn: 0, bytesOut: 0, idleMs: 0 });
      await waitFor(() => relay.hosts().find((h) => h.name === 'web')?.connections === 1, 'activity');
      // the host's socket drops for good (the process hangs on, then is stopped)
      web.ws.removeAllListeners('close');
      web.ws.terminate();
      await waitFor(() => eventText(relay, 'web').some((e) => e.startsWith('disconnected')), 'disconnected');
      client.send(tcpSegment(client.address, '10.77.0.10', 40112, 8080, ACK, new Uint8Array(0), 5, 9));
      await expectReset(client, '10.77.0.10', 8080, 9, 0, RST);
      assert.equal(state(relay, 'web'), 'cold');
      assert.equal(relay.counters()['hosts.web.stale-packet'], 1);
      assert.equal(provider.launches.length, 1);
      // its token is retired: the lost instance cannot come back as the host
      const refused = await joinRefused(relay.url, provider.launches[0].token);
      assert.equal(refused.status, 403);
      assert.match(refused.error, /superseded instance of web/);
    });
  });

  it('adopts a host from before the restart that joins while a fresh instance starts, stops the fresh one, and delivers the held packets', async () => {
    await withLifecycle({ reconnectHoldMs: 3000 }, async (relay, provider, client) => {
      provider.behaviour = 'never-join';
      const ack = tcpPacket(client.address, '10.77.0.10', 40112, 9000, 0x10);
      const syn = tcpPacket(client.address, '10.77.0.10', 40113, 9000, 0x02);
      client.send(ack);
      client.send(syn);
      await waitFor(() => state(relay, 'web') === 'starting' && provider.liveCount === 1, 'starting');
      const web = await joinRelay(relay.url, relay.mintToken('web', 60));
      try {
        assert.deepEqual(await web.nextPacket(), ack);
        assert.deepEqual(await web.nextPacket(), syn);
        assert.equal(state(relay, 'web'), 'running');
        assert.ok(eventText(relay, 'web').includes('joined: joined without a start; stopped the instance that was starting'), eventText(relay, 'web').join('\n'));
        await waitFor(() => provider.liveCount === 0, 'the fresh instance stopped');
        // a late join of the stopped instance is refused; the adopted host keeps its session
        const refused = await joinRefused(relay.url, provider.launches[0].token);
        assert.equal(refused.status, 403);
        assert.equal(relay.counters()['hosts.web.auth-superseded'], 1);
        client.send(tcpPacket(client.address, '10.77.0.10', 40112, 9000, 0x10));
        assert.equal(tcpPorts(await web.nextPacket())[0], 40112);
        assert.equal(web.closed, false);
        assert.equal(state(relay, 'web'), 'running');
      } finally {
        await web.close();
      }
    });
  });

  it('when a fresh instance exits after the host from before the restart replaced it, closes only the fresh session', async () => {
    await withLifecycle({}, async (relay, provider, client) => {
      client.send(tcpPacket(client.address, '10.77.0.10', 40113, 9000, 0x02));
      const fresh = await provider.joined(0);
      await waitFor(() => state(relay, 'web') === 'running', 'running');
      const survivor = await joinRelay(relay.url, relay.mintToken('web', 60));
      try {
        // the fresh instance is replaced (4000) and ends
        await fresh.until(() => fresh.closed, 'fresh session closed');
        await waitFor(() => provider.liveCount === 0, 'fresh instance exited');
        const seg = tcpPacket(client.address, '10.77.0.10', 40112, 9000, 0x18, new Uint8Array([7]));
        client.send(seg);
        assert.deepEqual(await survivor.nextPacket(), seg);
        assert.equal(survivor.closed, false);
        assert.equal(state(relay, 'web'), 'running');
        assert.equal(provider.launches.length, 1);
      } finally {
        await survivor.close();
      }
    });
  });
});
