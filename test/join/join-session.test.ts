// JoinSession without root: a FakeRelay on loopback, an in-memory TUN device and a
// recording command runner in place of iproute2.

import assert from 'node:assert/strict';
import { silentLogger } from '../../hostfn/log.js';
import { JoinSession, isJoinError, type JoinOptions } from '../../join/join-session.js';
import { FakeRelay } from '../support/join-fake-relay.js';
import { MemoryTun, eventually, recordingRunner } from '../support/join-memory-tun.js';
import { buildIcmpEcho, parseIcmpEcho } from '../support/join-packets.js';

describe('join: JoinSession', function () {
  let relay: FakeRelay;
  let session: JoinSession | null = null;
  let tun: MemoryTun | null = null;

  beforeEach(async function () {
    relay = await FakeRelay.start({ token: 'good' });
  });

  afterEach(async function () {
    if (session) await session.stop();
    session = null;
    tun = null;
    await relay.close();
  });

  function options(over: Partial<JoinOptions> = {}): JoinOptions {
    return {
      relay: relay.url,
      token: 'good',
      dev: 'imtest0',
      logger: silentLogger,
      openTun: (name, o) => (tun = new MemoryTun(name, o?.mtu)),
      ...over,
    };
  }

  async function start(over: Partial<JoinOptions> = {}): Promise<JoinSession> {
    const s = await JoinSession.start(options(over));
    if (isJoinError(s)) throw new Error(`join failed: ${s.stage} ${s.message}`);
    session = s;
    return s;
  }

  it('configures the device from the welcome and pumps packets both ways', async function () {
    const r = recordingRunner();
    const s = await start({ run: r.run });
    assert.equal(s.welcome.address, '10.77.0.200');
    assert.deepEqual(r.calls, [
      'ip link set dev imtest0 mtu 65535',
      // a burst of 5,000 connects fits in the device's queue (Linux's default is 500)
      'ip link set dev imtest0 txqueuelen 10000',
      'ip addr add 10.77.0.200/32 dev imtest0',
      'ip link set dev imtest0 up',
      'ip route add 10.77.0.0/16 dev imtest0 src 10.77.0.200',
    ]);

    const payload = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    for (let seq = 1; seq <= 3; seq++) {
      tun!.inject(buildIcmpEcho({ src: '10.77.0.200', dst: '10.77.0.1', type: 8, id: 7, seq, payload }));
    }
    await eventually(() => tun!.written.length === 3, 'three replies written to the device');
    const replies = tun!.written.map((p) => parseIcmpEcho(p));
    assert.deepEqual(
      replies.map((e) => e && { src: e.src, dst: e.dst, type: e.type, seq: e.seq }),
      [1, 2, 3].map((seq) => ({ src: '10.77.0.1', dst: '10.77.0.200', type: 0, seq })),
    );
    assert.equal(relay.echoed, 3);
  });

  it('drops what the kernel sends that is not IPv4, and counts it', async function () {
    await start({ run: recordingRunner().run });
    const ipv6 = new Uint8Array(48);
    ipv6[0] = 0x60;
    tun!.inject(ipv6);
    tun!.inject(new Uint8Array([0x45, 0, 0]));
    tun!.inject(buildIcmpEcho({ src: '10.77.0.200', dst: '10.77.0.1', type: 8, id: 1, seq: 1, payload: new Uint8Array(0) }));
    await eventually(() => relay.packetsIn === 1 && tun!.written.length === 1, 'the IPv4 packet went through');
    assert.equal(session!.drops.notIPv4, 1);
    assert.equal(session!.drops.tooShort, 1);
    assert.equal(relay.packetsIn, 1);
  });

  it('stop() removes the route, closes the device and the relay session', async function () {
    const r = recordingRunner();
    const s = await start({ run: r.run });
    await s.stop();
    const end = await s.ended;
    assert.equal(end.reason, 'stopped');
    assert.ok(r.calls.includes('ip route del 10.77.0.0/16 dev imtest0'));
    assert.equal(tun!.closed, true);
    await eventually(() => relay.sockets.size === 0, 'the relay saw the session close');
  });

  it('leaves when the relay drains it', async function () {
    const r = recordingRunner();
    const s = await start({ run: r.run });
    relay.drain('relay shutting down');
    const end = await s.ended;
    assert.equal(end.reason, 'drained');
    assert.match(end.message, /relay shutting down/);
    assert.equal(tun!.closed, true);
    assert.ok(r.calls.includes('ip route del 10.77.0.0/16 dev imtest0'));
  });

  it('leaves and cleans up when the relay is gone for good', async function () {
    const r = recordingRunner();
    const s = await start({ run: r.run, giveUpAfterMs: 300 });
    await relay.close();
    const end = await s.ended;
    assert.equal(end.reason, 'relay-gone');
    assert.equal(tun!.closed, true);
    assert.ok(r.calls.includes('ip route del 10.77.0.0/16 dev imtest0'));
    relay = await FakeRelay.start({ token: 'good' });
  });

  it('a refused token is a relay error of kind auth, and nothing is created', async function () {
    const r = recordingRunner();
    const s = await JoinSession.start(options({ token: 'forged', run: r.run }));
    assert.ok(isJoinError(s));
    assert.equal(s.stage, 'relay');
    assert.equal(s.kind, 'auth');
    assert.match(s.message, /forged token/);
    assert.equal(tun, null);
    assert.deepEqual(r.calls, []);
  });

  it('a device that cannot be created is a device error with its errno code', async function () {
    const s = await JoinSession.start(
      options({
        run: recordingRunner().run,
        openTun: () => {
          throw Object.assign(new Error('open /dev/net/tun: EPERM (Operation not permitted)'), { code: 'EPERM' });
        },
      }),
    );
    assert.ok(isJoinError(s));
    assert.equal(s.stage, 'device');
    assert.equal(s.code, 'EPERM');
    await eventually(() => relay.sockets.size === 0, 'the relay session was closed');
  });

  it('a route that cannot be added undoes the device and the session', async function () {
    const r = recordingRunner(/route add/);
    const s = await JoinSession.start(options({ run: r.run }));
    assert.ok(isJoinError(s));
    assert.equal(s.stage, 'interface');
    assert.match(s.message, /File exists/);
    assert.equal(tun!.closed, true);
    assert.ok(r.calls.includes('ip route del 10.77.0.0/16 dev imtest0'));
    await eventually(() => relay.sockets.size === 0, 'the relay session was closed');
  });

  it('a welcome with an address that is not IPv4 is refused before any command runs', async function () {
    await relay.close();
    relay = await FakeRelay.start({ token: 'good', welcome: { address: '10.77.0.200; reboot' } });
    const r = recordingRunner();
    const s = await JoinSession.start(options({ run: r.run }));
    assert.ok(isJoinError(s));
    assert.equal(s.stage, 'interface');
    assert.match(s.message, /invalid address/);
    assert.deepEqual(r.calls.filter((c) => c.includes('add')), []);
    assert.equal(tun!.closed, true);
  });
});
