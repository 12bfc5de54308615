// `imach join --impair`: the flag's parser and the seeded fault-injecting wrapper around
// the relay link (here a memory link stands in for the relay).

import assert from 'node:assert/strict';
import { parseJoinArgs } from '../../cli/join.js';
import { ImpairedLink, formatImpair, impairLink, parseImpair, type ImpairSpec } from '../../join/impair.js';
import { silentLogger } from '../../hostfn/log.js';
import { JoinSession, isJoinError } from '../../join/join-session.js';
import { createLinkPair } from '../../netstack/link/memory.js';
import { FakeRelay } from '../support/join-fake-relay.js';
import { MemoryTun, eventually, recordingRunner } from '../support/join-memory-tun.js';
import { buildIcmpEcho } from '../support/join-packets.js';

function packet(i: number): Uint8Array {
  const p = new Uint8Array(24);
  p[0] = 0x45;
  new DataView(p.buffer).setUint32(20, i);
  return p;
}

const idOf = (p: Uint8Array): number => new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(20);

/** Send n packets device -> relay through an ImpairedLink; resolves with the ids that arrived, in order. */
async function throughImpaired(spec: ImpairSpec, n: number): Promise<{ got: number[]; link: ImpairedLink }> {
  const [relaySide, far] = createLinkPair();
  const link = new ImpairedLink(relaySide, spec);
  const got: number[] = [];
  far.onReceive((p) => got.push(idOf(p)));
  for (let i = 0; i < n; i++) link.send(packet(i));
  // every packet is either delivered or dropped once the in-flight heap drains
  for (let spins = 0; spins < 1000; spins++) {
    const c = link.counters.toRelay;
    if (c.delivered + c.dropLoss >= c.sent + c.duplicated && relaySide.counters.delivered >= c.delivered) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  link.close();
  far.close();
  return { got, link };
}

describe('interop: --impair fault injection', function () {
  describe('parseImpair', function () {
    it('takes any subset of the keys, with defaults for the rest', function () {
      assert.deepEqual(parseImpair('loss=0.01,reorder=0.02,duplicate=0.01,delay=20,seed=7'), {
        loss: 0.01,
        reorder: 0.02,
        duplicate: 0.01,
        delay: 20,
        seed: 7,
      });
      assert.deepEqual(parseImpair('loss=0.5'), { loss: 0.5, reorder: 0, duplicate: 0, delay: 0, seed: 1 });
      const s = parseImpair('reorder-delay=3,reorder=1');
      assert.ok(typeof s !== 'string');
      assert.equal(s.reorderDelay, 3);
      assert.deepEqual(parseImpair(formatImpair(s)), s);
    });

    for (const [text, pattern] of [
      ['', /key=value/],
      ['loss', /not key=value/],
      ['loss=2', /probability/],
      ['duplicate=-0.1', /probability/],
      ['jitter=3', /unknown key "jitter"/],
      ['seed=1.5', /seed must be an integer/],
      ['delay=99999', /delay must be 0\.\.10000/],
      ['loss=0.1,loss=0.2', /given twice/],
      ['loss=abc', /not key=value/],
    ] as const) {
      it(`refuses ${JSON.stringify(text)}`, function () {
        const r = parseImpair(text);
        assert.equal(typeof r, 'string');
        assert.match(r as string, pattern);
      });
    }

    it('is an `imach join` flag for TUN and --userspace', function () {
      const a = parseJoinArgs(['--relay', 'ws://r:1', '--token', 't', '--impair', 'loss=0.02,seed=9'], {});
      assert.ok(typeof a !== 'string');
      assert.equal(a.impair?.loss, 0.02);
      assert.equal(a.impair?.seed, 9);
      const u = parseJoinArgs(['--relay', 'ws://r:1', '--token', 't', '--userspace', '--impair', 'delay=5'], {});
      assert.ok(typeof u !== 'string');
      assert.equal(u.impair?.delay, 5);
      const bad = parseJoinArgs(['--relay', 'ws://r:1', '--token', 't', '--impair', 'loss=7'], {});
      assert.match(String(bad), /--impair: loss/);
    });
  });

  describe('ImpairedLink', function () {
    it('adds nothing when every fault is zero', function () {
      const [a, b] = createLinkPair();
      assert.equal(impairLink(a, { loss: 0, reorder: 0, duplicate: 0, delay: 0, seed: 3 }), a);
      assert.equal(impairLink(a, undefined), a);
      a.close();
      b.close();
    });

    it('drops about the given share, the same packets for the same seed, others for another', async function () {
      const spec = { loss: 0.2, reorder: 0, duplicate: 0, delay: 0, seed: 7 };
      const one = await throughImpaired(spec, 2000);
      const two = await throughImpaired(spec, 2000);
      const other = await throughImpaired({ ...spec, seed: 8 }, 2000);
      const dropped = 2000 - one.got.length;
      assert.equal(one.link.counters.toRelay.dropLoss, dropped);
      assert.ok(dropped > 300 && dropped < 500, `dropped ${dropped} of 2000 at 20 %`);
      assert.deepEqual(two.got, one.got);
      assert.notDeepEqual(other.got, one.got);
      // what arrives keeps its order when nothing is reordered
      assert.deepEqual(one.got, [...one.got].sort((x, y) => x - y));
    });

    it('duplicates and reorders, and every packet still arrives', async function () {
      const { got, link } = await throughImpaired({ loss: 0, reorder: 0.3, duplicate: 0.1, delay: 0, reorderDelay: 2, seed: 5 }, 500);
      const c = link.counters.toRelay;
      assert.ok(c.duplicated > 20, `duplicated ${c.duplicated}`);
      assert.ok(c.reordered > 80, `reordered ${c.reordered}`);
      assert.equal(got.length, 500 + c.duplicated);
      assert.deepEqual([...new Set(got)].sort((x, y) => x - y), Array.from({ length: 500 }, (_, i) => i));
      assert.ok(got.some((id, i) => i > 0 && id < got[i - 1]!), 'some packet was overtaken');
    });

    it('impairs the direction from the relay as well', async function () {
      const [relaySide, far] = createLinkPair();
      const link = new ImpairedLink(relaySide, { loss: 1, reorder: 0, duplicate: 0, delay: 0, seed: 1 });
      let got = 0;
      link.onReceive(() => got++);
      for (let i = 0; i < 10; i++) far.send(packet(i));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(got, 0);
      assert.equal(link.counters.fromRelay.dropLoss, 10);
      link.close();
      far.close();
    });
  });

  describe('JoinSession with impair', function () {
    let relay: FakeRelay | null = null;
    let session: JoinSession | null = null;

    afterEach(async function () {
      if (session) await session.stop();
      session = null;
      if (relay) await relay.close();
      relay = null;
    });

    it('sends the device\'s packets through the faults, both ways', async function () {
      relay = await FakeRelay.start({ token: 'good' });
      let tun: MemoryTun | null = null;
      const s = await JoinSession.start({
        relay: relay.url,
        token: 'good',
        dev: 'imtest0',
        logger: silentLogger,
        run: recordingRunner().run,
        openTun: (name, o) => (tun = new MemoryTun(name, o?.mtu)),
        impair: { loss: 0, reorder: 0, duplicate: 1, delay: 0, seed: 1 },
      });
      if (isJoinError(s)) throw new Error(s.message);
      session = s;
      assert.ok(s.data instanceof ImpairedLink);
      for (let seq = 1; seq <= 3; seq++) {
        tun!.inject(buildIcmpEcho({ src: '10.77.0.200', dst: '10.77.0.1', type: 8, id: 7, seq, payload: new Uint8Array(8) }));
      }
      // every request reaches the relay twice, and every reply the device twice
      await eventually(() => relay!.packetsIn === 6 && tun!.written.length === 12, 'duplicates both ways');
      const c = s.data.counters;
      assert.equal(c.toRelay.duplicated, 3);
      assert.equal(c.fromRelay.duplicated, 6);
    });
  });
});
