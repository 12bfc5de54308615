// The lifecycle and its admission in virtual time: a fake provider, fake sessions, a clock
// the test moves. No sockets, no sleeps: every transition of the state table, one by one.

import assert from 'node:assert/strict';
import { buildIcmpUnreachable } from '../../netstack/wire/icmp.js';
import { ACK, FIN, RST, SYN } from '../../netstack/wire/tcp.js';
import { buildUdpPacket } from '../../netstack/wire/udp.js';
import { HostEntry } from '../../relay/host.js';
import { HostTable } from '../../relay/host-table.js';
import { LifecycleController, type Admission, type LifecycleLimits, type Refusal } from '../../relay/lifecycle.js';
import { silentLogger } from '../../relay/log.js';
import type { HostSpec } from '../../relay/manifest.js';
import type { Launch, RelayToHostMessage } from '../../relay/protocol.js';
import type { HostInstance, Provider } from '../../relay/provider.js';
import { TokenBucket, type RelaySession } from '../../relay/session.js';
import { addr, tcpSegment as tcpPacket } from '../support/relay-packets.js';

const T0 = 1_000_000;
const PEER = '10.77.0.5';
const WEB = '10.77.0.10';

const LIMITS: LifecycleLimits = {
  drainGraceMs: 5000,
  reconnectHoldMs: 5000,
  startRetryBaseMs: 1000,
  startRetryMaxMs: 8000,
  stopLingerMs: 2000,
  startGraceMs: 0,
};

class FakeInstance implements HostInstance {
  readonly exited: Promise<{ code: number | null; reason: string }>;
  stops = 0;
  private finish!: (r: { code: number | null; reason: string }) => void;
  constructor() {
    this.exited = new Promise((r) => (this.finish = r));
  }
  exit(code: number | null, reason = 'exit'): void {
    this.finish({ code, reason });
  }
  stop(): Promise<void> {
    this.stops++;
    this.exit(null, 'SIGTERM');
    return Promise.resolve();
  }
}

class FakeProvider implements Provider {
  readonly name = 'local';
  readonly launches: Launch[] = [];
  readonly instances: FakeInstance[] = [];
  reject = false;
  start(launch: Launch): Promise<HostInstance> {
    this.launches.push(launch);
    if (this.reject) return Promise.reject(new Error('no capacity'));
    const i = new FakeInstance();
    this.instances.push(i);
    return Promise.resolve(i);
  }
}

/** What the lifecycle does to a session: controls sent, close codes. */
class FakeSession {
  readonly controls: RelayToHostMessage[] = [];
  closed: { code: number; reason: string } | null = null;
  constructor(readonly nonce: string) {}
  sendControl(m: RelayToHostMessage): void {
    this.controls.push(m);
  }
  close(code: number, reason: string): void {
    this.closed ??= { code, reason };
  }
}

interface Event {
  type: string;
  reason: string;
  state: string;
  at: number;
}

function spec(over: Partial<HostSpec> = {}): HostSpec {
  return { name: 'web', run: '/app/web.mjs', address: WEB, provider: 'local', idleMs: 1000, env: {}, startTimeoutMs: 15_000, ...over };
}

/** One lifecycle on a virtual clock, with the relay's part (carrying out admissions) done here. */
class World {
  now = T0;
  readonly provider = new FakeProvider();
  readonly table = new HostTable({ heldPackets: 4, heldBytes: 1 << 20 });
  readonly events: Event[] = [];
  readonly delivered: Uint8Array[] = [];
  readonly refused: { reason: Refusal; packets: Uint8Array[] }[] = [];
  readonly lc: LifecycleController;
  private nonces = 0;

  constructor(limits: Partial<LifecycleLimits> = {}) {
    this.lc = new LifecycleController(
      {
        providers: { local: this.provider },
        mtu: 65535,
        limits: { ...LIMITS, ...limits },
        logger: silentLogger,
        table: this.table,
        now: () => this.now,
        relayUrl: () => 'ws://relay.test',
        mintLaunchToken: () => {
          const nonce = `n${++this.nonces}`;
          return { token: `token-${nonce}`, nonce };
        },
        record: (e, type, reason, t) => this.events.push({ type, reason, state: e.state, at: t }),
        deliverHeld: (_e, packets) => this.delivered.push(...packets),
        refuseHeld: (_e, packets, reason) => this.refused.push({ reason, packets }),
      },
      T0,
    );
  }

  host(s: HostSpec | null = spec(), name = 'web', address = WEB): HostEntry {
    const e = new HostEntry(name, addr(address), address, s, new TokenBucket(1e9, 1e9, this.now), this.now);
    this.table.add(e);
    return e;
  }

  /** admit, then carry the decision out as the router does. */
  send(e: HostEntry, packet: Uint8Array): Admission {
    const a = this.lc.admit(e, packet, this.now);
    if (a.action === 'deliver') this.delivered.push(packet);
    else if (a.action === 'hold') this.table.hold(e, packet);
    else if (a.action === 'hold-and-start') {
      this.table.hold(e, packet);
      this.lc.signal(e, a.reason, this.now);
    }
    return a;
  }

  join(e: HostEntry, nonce: string): FakeSession {
    const s = new FakeSession(nonce);
    const kind = e.session !== null ? 'replaced' : e.state === 'running' && e.deadline > 0 ? 'reconnect' : 'new';
    this.table.attach(e, s as unknown as RelaySession);
    this.lc.onJoin(e, kind, nonce, this.now);
    return s;
  }

  closeSession(e: HostEntry, why = 'session closed (1006)'): void {
    assert.ok(e.session !== null);
    this.table.detach(e, e.session);
    this.lc.onSessionClosed(e, why, this.now);
  }

  advance(ms: number): void {
    this.now += ms;
    this.lc.tick(this.table.entries(), this.now);
  }

  last(): Event {
    return this.events[this.events.length - 1];
  }

  /** a running web host: started by a SYN, joined with its launch token */
  async running(e: HostEntry): Promise<FakeSession> {
    this.send(e, syn());
    await settle();
    return this.join(e, 'n' + this.nonces);
  }
}

/** Let provider promises settle (no time passes). */
async function settle(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

const syn = (port = 40000): Uint8Array => tcpPacket(PEER, WEB, port, 80, SYN, new Uint8Array(0), 100);
const ackSeg = (port = 40000): Uint8Array => tcpPacket(PEER, WEB, port, 80, ACK, new Uint8Array(3), 101, 5000);

describe('relay lifecycle in virtual time', () => {
  describe('admission', () => {
    it('decides deliver, hold, hold-and-start or refuse (with how to answer) by state and packet', async () => {
      const w = new World();
      const web = w.host();
      const hand = w.host(null, 'laptop', '10.77.128.5');
      // cold, just after the relay started: a SYN starts the host, a segment of a connection waits
      assert.deepEqual(w.lc.admit(web, syn(), w.now), { action: 'hold-and-start', reason: `SYN ${PEER}:40000 -> ${WEB}:80` });
      assert.equal(w.lc.admit(web, buildUdpPacket({ src: addr(PEER), dst: addr(WEB), srcPort: 1, dstPort: 53, payload: new Uint8Array(1) }), w.now).action, 'hold-and-start');
      assert.deepEqual(w.lc.admit(web, ackSeg(), w.now), { action: 'hold' });
      // after the reconnect window, no instance can own that connection: RST, as a rebooted machine
      w.advance(LIMITS.reconnectHoldMs);
      assert.deepEqual(w.lc.admit(web, ackSeg(), w.now), { action: 'refuse', reason: 'stale-packet', answer: 'rst' });
      assert.deepEqual(w.lc.admit(web, tcpPacket(PEER, WEB, 1, 80, RST | ACK), w.now), { action: 'refuse', reason: 'stale-packet', answer: 'none' });
      const icmpError = buildIcmpUnreachable(tcpPacket(WEB, PEER, 80, 1, ACK), 3, addr(PEER));
      assert.deepEqual(w.lc.admit(web, icmpError, w.now), { action: 'refuse', reason: 'stale-packet', answer: 'none' });
      // a host joined by hand that is gone: unreachable (its laptop's kernel may still have the connection)
      assert.deepEqual(w.lc.admit(hand, ackSeg(), w.now), { action: 'refuse', reason: 'host-down', answer: 'icmp-unreachable' });
      // starting: everything waits for the join
      w.send(web, syn());
      assert.equal(web.state, 'starting');
      assert.deepEqual(w.lc.admit(web, syn(2), w.now), { action: 'hold' });
      assert.deepEqual(w.lc.admit(web, ackSeg(), w.now), { action: 'hold' });
      // running with a session: deliver (the fast path normally takes these)
      await settle();
      const s = w.join(web, 'n1');
      assert.deepEqual(w.lc.admit(web, ackSeg(), w.now), { action: 'deliver' });
      // draining: a new connection waits for the next start, the others still reach it
      w.lc.drain(web, 'test', w.now);
      assert.equal(web.state, 'draining');
      assert.deepEqual(w.lc.admit(web, syn(3), w.now), { action: 'hold-and-start', reason: `SYN ${PEER}:3 -> ${WEB}:80` });
      assert.deepEqual(w.lc.admit(web, ackSeg(), w.now), { action: 'deliver' });
      assert.equal(s.controls.at(-1)?.type, 'drain');
    });

    it('refuses during a failed start backoff: ICMP unreachable for a SYN, RST for a segment', async () => {
      const w = new World();
      const web = w.host();
      w.advance(LIMITS.reconnectHoldMs);
      w.provider.reject = true;
      w.send(web, syn());
      await settle();
      assert.equal(web.state, 'failed');
      assert.deepEqual(w.lc.admit(web, syn(), w.now), { action: 'refuse', reason: 'start-failed', answer: 'icmp-unreachable' });
      assert.deepEqual(w.lc.admit(web, ackSeg(), w.now), { action: 'refuse', reason: 'start-failed', answer: 'rst' });
      w.advance(1000);
      assert.equal(w.lc.admit(web, syn(), w.now).action, 'hold-and-start');
    });
  });

  describe('transitions', () => {
    it('cold -> starting on a signal -> running on the join, delivering the held packets', async () => {
      const w = new World();
      const web = w.host();
      const p = syn();
      w.send(web, p);
      assert.equal(web.state, 'starting');
      assert.deepEqual(w.last(), { type: 'started', reason: `SYN ${PEER}:40000 -> ${WEB}:80`, state: 'starting', at: T0 });
      assert.equal(w.provider.launches.length, 1);
      assert.equal(w.provider.launches[0].token, 'token-n1');
      assert.equal(w.provider.launches[0].run, '/app/web.mjs');
      await settle();
      w.now += 37;
      w.join(web, 'n1');
      assert.equal(web.state, 'running');
      assert.deepEqual(w.last(), { type: 'joined', reason: 'joined in 37ms', state: 'running', at: T0 + 37 });
      assert.deepEqual(w.delivered, [p]);
      assert.equal(w.table.route(web.address), web);
    });

    it('starting -> failed when the instance exits before joining; held senders refused; retried after the backoff', async () => {
      const w = new World();
      const web = w.host();
      w.send(web, syn());
      await settle();
      w.provider.instances[0].exit(1);
      await settle();
      assert.equal(web.state, 'failed');
      assert.equal(w.last().reason, 'exited with code 1 before joining');
      assert.equal(w.refused.length, 1);
      assert.equal(w.refused[0].reason, 'start-failed');
      assert.equal(web.retryAt, T0 + 1000);
      assert.equal(w.lc.signal(web, 'again', T0 + 999), false);
      assert.equal(w.lc.signal(web, 'again', T0 + 1000), true);
      assert.equal(web.state, 'starting');
      assert.equal(w.provider.launches.length, 2);
    });

    it('starting -> failed when the provider rejects', async () => {
      const w = new World();
      const web = w.host();
      w.provider.reject = true;
      w.send(web, syn());
      await settle();
      assert.equal(web.state, 'failed');
      assert.equal(w.last().reason, 'provider local: no capacity');
    });

    it('starting -> failed at the start deadline, not a millisecond before; the instance is stopped', async () => {
      const w = new World();
      const web = w.host(spec({ startTimeoutMs: 3000 }));
      w.send(web, syn());
      await settle();
      w.advance(2999);
      assert.equal(web.state, 'starting');
      w.advance(1);
      assert.equal(web.state, 'failed');
      assert.equal(w.last().reason, 'did not join within 3s');
      assert.equal(w.provider.instances[0].stops, 1);
      // a late join with its token is refused
      assert.equal(w.lc.isRetired(web, 'n1'), true);
    });

    it('backoff doubles with each failure in a row and stops at startRetryMaxMs', async () => {
      const w = new World();
      const web = w.host();
      w.provider.reject = true;
      const backoffs: number[] = [];
      for (let i = 0; i < 6; i++) {
        w.now = web.state === 'failed' ? web.retryAt : w.now;
        assert.equal(w.lc.signal(web, 'try', w.now), true);
        await settle();
        assert.equal(web.state, 'failed');
        backoffs.push(web.retryAt - w.now);
      }
      assert.deepEqual(backoffs, [1000, 2000, 4000, 8000, 8000, 8000]);
    });

    it('running -> draining when idle with no connections; connections and host-reported traffic keep it', async () => {
      const w = new World();
      const web = w.host();
      const s = await w.running(web);
      w.lc.onActivity(web, 1, 1, 0, w.now);
      w.advance(5000);
      assert.equal(web.state, 'running', 'an established connection keeps it');
      w.lc.onActivity(web, 0, 1, 200, w.now);
      w.advance(799);
      assert.equal(web.state, 'running', 'the host saw traffic 200 ms before its report');
      w.advance(1);
      assert.equal(web.state, 'draining');
      assert.deepEqual(w.last(), { type: 'drain', reason: 'idle 1s', state: 'draining', at: w.now });
      assert.deepEqual(s.controls.at(-1), { type: 'drain', reason: 'idle 1s', graceMs: 5000 });
      assert.equal(w.table.route(web.address), undefined, 'a draining host is off the fast path');
    });

    it('a pinned host (idle: null) is never drained', async () => {
      const w = new World();
      const web = w.host(spec({ idleMs: null }));
      await w.running(web);
      w.advance(3_600_000);
      assert.equal(web.state, 'running');
    });

    it('draining -> cold when the session closes; the instance is stopped only after stopLingerMs, by tick', async () => {
      const w = new World();
      const web = w.host();
      await w.running(web);
      w.advance(1000);
      assert.equal(web.state, 'draining');
      w.closeSession(web);
      assert.equal(web.state, 'cold');
      assert.deepEqual(w.last(), { type: 'released', reason: 'idle 1s', state: 'cold', at: w.now });
      const inst = w.provider.instances[0];
      w.advance(1999);
      assert.equal(inst.stops, 0);
      w.advance(1);
      assert.equal(inst.stops, 1);
      await settle();
      assert.equal(w.lc.lingeringCount, 0);
    });

    it('draining: the drain deadline closes a session that does not go', async () => {
      const w = new World();
      const web = w.host();
      const s = await w.running(web);
      w.advance(1000);
      w.advance(LIMITS.drainGraceMs + LIMITS.stopLingerMs - 1);
      assert.equal(s.closed, null);
      w.advance(1);
      assert.deepEqual(s.closed, { code: 1000, reason: 'drain deadline' });
    });

    it('draining: a SYN is held and starts the host again once it has gone', async () => {
      const w = new World();
      const web = w.host();
      await w.running(web);
      w.advance(1000);
      const again = syn(41000);
      assert.equal(w.send(web, again).action, 'hold-and-start');
      assert.equal(web.state, 'draining');
      assert.equal(w.provider.launches.length, 1);
      w.closeSession(web);
      assert.equal(web.state, 'starting');
      assert.deepEqual(w.events.slice(-2).map((e) => `${e.type}: ${e.reason}`), ['released: idle 1s', `started: SYN ${PEER}:41000 -> ${WEB}:80`]);
      await settle();
      w.delivered.length = 0;
      w.join(web, 'n2');
      assert.deepEqual(w.delivered, [again]);
    });

    it('released: the app exited; cold when its session closes, with the reason', async () => {
      const w = new World();
      const web = w.host();
      const s = await w.running(web);
      w.lc.onReleased(web, 'app exited', false, w.now);
      assert.equal(web.state, 'draining');
      assert.deepEqual(s.closed, { code: 1000, reason: 'released' });
      w.closeSession(web, 'session closed (1000 released)');
      assert.equal(web.state, 'cold');
      assert.equal(w.last().reason, 'app exited');
    });

    it('released with startFailed: failed with the backoff of a failed start, and it doubles', async () => {
      const w = new World();
      const web = w.host();
      w.advance(LIMITS.reconnectHoldMs);
      let s = await w.running(web);
      w.lc.onReleased(web, 'app threw: boom', true, w.now);
      assert.equal(web.state, 'failed');
      assert.equal(web.lastReason, 'failed: app failed at start: app threw: boom');
      assert.deepEqual(s.closed, { code: 1011, reason: 'start failed' });
      assert.equal(web.retryAt - w.now, 1000);
      assert.equal(w.provider.instances[0].stops, 1);
      w.closeSession(web, 'session closed (1011 start failed)');
      assert.equal(web.state, 'failed');
      // the SYN retransmission within the backoff starts nothing
      assert.equal(w.send(web, syn()).action, 'refuse');
      assert.equal(w.provider.launches.length, 1);
      w.now = web.retryAt;
      s = await w.running(web);
      w.lc.onReleased(web, 'app threw: boom', true, w.now);
      w.closeSession(web);
      assert.equal(web.retryAt - w.now, 2000, 'joining did not forgive the failure');
      // a host that carried a connection is forgiven
      w.now = web.retryAt;
      await w.running(web);
      w.lc.onActivity(web, 1, 1, 0, w.now);
      assert.equal(web.failures, 0);
    });

    it('running: a dropped session holds packets for reconnectHoldMs; a reconnect delivers them', async () => {
      const w = new World();
      const web = w.host();
      await w.running(web);
      w.closeSession(web);
      assert.equal(web.state, 'running');
      assert.equal(w.last().type, 'disconnected');
      const seg = ackSeg();
      assert.equal(w.send(web, seg).action, 'hold');
      w.advance(4999);
      w.delivered.length = 0;
      w.join(web, 'n1');
      assert.deepEqual(w.last(), { type: 'reconnected', reason: 'session restored', state: 'running', at: w.now });
      assert.deepEqual(w.delivered, [seg]);
    });

    it('running -> cold when the reconnect window passes; held segments refused (answered with RST by the relay)', async () => {
      const w = new World();
      const web = w.host();
      w.advance(LIMITS.reconnectHoldMs);
      await w.running(web);
      w.closeSession(web);
      w.send(web, ackSeg());
      w.advance(4999);
      assert.equal(web.state, 'running');
      w.advance(1);
      assert.equal(web.state, 'cold');
      assert.equal(w.last().reason, 'session lost');
      assert.deepEqual(w.refused.map((r) => [r.reason, r.packets.length]), [['stale-packet', 1]]);
      assert.equal(w.lc.isRetired(web, 'n1'), true);
      assert.equal(w.provider.launches.length, 1, 'a segment starts nothing');
    });

    it('running: the instance exits with its session open -> draining, then cold when the session closes', async () => {
      const w = new World();
      const web = w.host();
      const s = await w.running(web);
      w.provider.instances[0].exit(3);
      await settle();
      assert.equal(web.state, 'draining');
      assert.deepEqual(s.closed, { code: 1000, reason: 'instance exited' });
      w.closeSession(web);
      assert.equal(web.state, 'cold');
      assert.equal(w.last().reason, 'exited with code 3');
    });

    it('after a relay (re)start: startGraceMs holds a SYN before starting; stale segments wait max(grace, reconnectHoldMs)', async () => {
      const w = new World({ startGraceMs: 2000, reconnectHoldMs: 3000 });
      const web = w.host();
      assert.equal(w.send(web, syn()).action, 'hold-and-start');
      assert.equal(w.send(web, ackSeg(5)).action, 'hold');
      assert.equal(web.state, 'cold');
      w.advance(1999);
      assert.equal(web.state, 'cold');
      w.advance(1);
      assert.equal(web.state, 'starting');
      const w2 = new World({ startGraceMs: 2000, reconnectHoldMs: 3000 });
      const web2 = w2.host();
      w2.send(web2, ackSeg());
      w2.advance(2999);
      assert.equal(w2.refused.length, 0);
      w2.advance(1);
      assert.deepEqual(w2.refused.map((r) => r.reason), ['stale-packet']);
      assert.equal(w2.provider.launches.length, 0);
    });

    it('a join with another nonce supersedes the instance this relay started, which is stopped and whose exit ends nothing', async () => {
      const w = new World();
      const web = w.host();
      w.send(web, syn());
      await settle();
      const s = w.join(web, 'from-before-restart');
      assert.equal(web.state, 'running');
      assert.equal(w.last().reason, 'joined without a start; stopped the instance that was starting');
      assert.equal(w.provider.instances[0].stops, 1);
      assert.equal(w.lc.isRetired(web, 'n1'), true);
      await settle();
      assert.equal(web.state, 'running');
      assert.equal(s.closed, null);
    });

    it('a host joined by hand: running on the join, cold (host-down) when its reconnect window passes', () => {
      const w = new World();
      const laptop = w.host(null, 'laptop', '10.77.128.5');
      w.join(laptop, 'x');
      assert.deepEqual(w.last(), { type: 'joined', reason: 'joined by hand', state: 'running', at: T0 });
      w.closeSession(laptop);
      w.send(laptop, tcpPacket(PEER, '10.77.128.5', 1, 2, ACK | FIN));
      w.advance(5000);
      assert.equal(laptop.state, 'cold');
      assert.deepEqual(w.refused.map((r) => r.reason), ['host-down']);
    });

    it('the held queue is bounded', () => {
      const w = new World();
      const web = w.host();
      for (let i = 0; i < 6; i++) w.send(web, ackSeg(i));
      assert.equal(web.held.length, 4);
    });
  });
});
