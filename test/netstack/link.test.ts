import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLinkPair, type LinkPairOptions, type MemoryLink } from '../../netstack/link/memory.js';
import { createPcapTap } from '../../netstack/link/pcap.js';
import { VirtualClock } from '../../netstack/time.js';

function packet(i: number, size = 100): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = i >>> 8;
  p[1] = i & 0xff;
  return p;
}

function idOf(p: Uint8Array): number {
  return (p[0] << 8) | p[1];
}

/** Send n packets from a to b in virtual time, one per ms; return the ids received in order. */
function run(options: LinkPairOptions, n: number): { ids: number[]; a: MemoryLink; b: MemoryLink; times: number[] } {
  const clock = new VirtualClock();
  const [a, b] = createLinkPair({ ...options, clock });
  const ids: number[] = [];
  const times: number[] = [];
  b.onReceive((p) => {
    ids.push(idOf(p));
    times.push(clock.now());
  });
  for (let i = 0; i < n; i++) {
    clock.advanceTo(i);
    a.send(packet(i, options.mtu !== undefined ? 100 : 100));
  }
  clock.advanceBy(1e6);
  a.close();
  return { ids, a, b, times };
}

describe('memory link', () => {
  it('delivers everything in order with no impairments, never inside send()', async () => {
    const [a, b] = createLinkPair();
    const got: number[] = [];
    b.onReceive((p) => got.push(idOf(p)));
    for (let i = 0; i < 10; i++) a.send(packet(i));
    assert.deepEqual(got, [], 'nothing delivered synchronously');
    await Promise.resolve();
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(a.counters.delivered, 10);
    a.close();
  });

  it('batches zero-delay deliveries at the same virtual time', () => {
    const clock = new VirtualClock(50);
    const [a, b] = createLinkPair({ clock });
    const got: number[] = [];
    b.onReceive((p) => got.push(idOf(p)));
    a.send(packet(1));
    a.send(packet(2));
    assert.deepEqual(got, []);
    clock.advanceTo(50);
    assert.deepEqual(got, [1, 2]);
    a.close();
    assert.equal(clock.pending, 0);
  });

  it('applies loss, duplication and reordering near their probabilities', () => {
    const n = 5000;
    const lossy = run({ seed: 7, loss: 0.1 }, n);
    assert.equal(lossy.a.counters.dropLoss + lossy.ids.length, n);
    assert.ok(Math.abs(lossy.a.counters.dropLoss / n - 0.1) < 0.02, `loss ${lossy.a.counters.dropLoss}`);
    const dup = run({ seed: 7, duplicate: 0.05 }, n);
    assert.equal(dup.ids.length, n + dup.a.counters.duplicated);
    assert.ok(Math.abs(dup.a.counters.duplicated / n - 0.05) < 0.015);
    const re = run({ seed: 7, reorder: 0.05, reorderDelay: 3 }, n);
    assert.equal(re.ids.length, n);
    let inversions = 0;
    for (let i = 1; i < re.ids.length; i++) if (re.ids[i] < re.ids[i - 1]) inversions++;
    assert.ok(inversions > 0 && re.a.counters.reordered > 0);
    assert.deepEqual([...re.ids].sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
  });

  it('is repeatable for a seed and differs across seeds', () => {
    const opts = { loss: 0.2, duplicate: 0.1, reorder: 0.1 };
    const r1 = run({ seed: 42, ...opts }, 500).ids;
    const r2 = run({ seed: 42, ...opts }, 500).ids;
    const r3 = run({ seed: 43, ...opts }, 500).ids;
    assert.deepEqual(r1, r2);
    assert.notDeepEqual(r1, r3);
  });

  it('delays packets by the configured one-way delay', () => {
    const r = run({ delay: 25 }, 10);
    assert.deepEqual(r.times, r.ids.map((i) => i + 25));
  });

  it('limits the rate and drops when its queue is full', () => {
    const clock = new VirtualClock();
    // 100 kB/s and room for 10 packets of 1000 bytes.
    const [a, b] = createLinkPair({ clock, rate: 100_000, queueBytes: 10_000 });
    const times: number[] = [];
    b.onReceive(() => times.push(clock.now()));
    for (let i = 0; i < 30; i++) a.send(new Uint8Array(1000));
    clock.advanceBy(10_000);
    assert.equal(times.length, 10);
    assert.equal(a.counters.dropQueueFull, 20);
    // Each 1000-byte packet takes 10 ms on the wire.
    assert.deepEqual(times, Array.from({ length: 10 }, (_, i) => (i + 1) * 10));
    a.close();
  });

  it('drops packets over the MTU and after close, and counts them', () => {
    const clock = new VirtualClock();
    const [a, b] = createLinkPair({ clock, mtu: 1500 });
    b.onReceive(() => {});
    a.send(new Uint8Array(1501));
    assert.equal(a.counters.dropMtu, 1);
    b.close();
    a.send(new Uint8Array(10));
    assert.equal(a.counters.dropClosed, 1);
    assert.equal(clock.pending, 0);
  });

  it('rejects impossible probabilities', () => {
    assert.throws(() => createLinkPair({ loss: 1.5 }), RangeError);
    assert.throws(() => createLinkPair({ reorder: -0.1 }), RangeError);
  });
});

describe('pcap tap', () => {
  it('writes a LINKTYPE_RAW file with one record per packet in each direction', async () => {
    const clock = new VirtualClock(1500);
    const [a, b] = createLinkPair({ clock });
    const chunks: Uint8Array[] = [];
    const tap = createPcapTap(a, { write: (c) => chunks.push(c) }, { clock, epochMs: 1_000_000 });
    tap.onReceive(() => {});
    b.onReceive((p) => b.send(p.slice(0, 10)));
    tap.send(packet(1, 60));
    clock.advanceBy(1);
    tap.close();
    const file = Buffer.concat(chunks);
    assert.equal(file.readUInt32LE(0), 0xa1b2c3d4);
    assert.equal(file.readUInt32LE(20), 101);
    const first = 24;
    assert.equal(file.readUInt32LE(first), 1001);
    assert.equal(file.readUInt32LE(first + 4), 500_000);
    assert.equal(file.readUInt32LE(first + 8), 60);
    const second = first + 16 + 60;
    assert.equal(file.readUInt32LE(second + 8), 10);
    assert.equal(file.length, second + 16 + 10);
  });
});

describe('pcap tap to a file', () => {
  it('writes the file and closes it with the link', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imach-pcap-'));
    try {
      const path = join(dir, 'cap.pcap');
      const [a, b] = createLinkPair();
      const tap = createPcapTap(a, path);
      b.onReceive(() => {});
      tap.send(packet(1, 40));
      tap.send(packet(2, 50));
      tap.close();
      await tap.finished;
      const data = await readFile(path);
      assert.equal(data.length, 24 + 16 + 40 + 16 + 50);
      assert.equal(data.readUInt32LE(24 + 8), 40);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('VirtualClock', () => {
  it('runs timers in time order, same-time timers in insertion order, and skips cleared ones', () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimer(10, () => log.push('a10'));
    clock.setTimer(5, () => log.push('b5'));
    const c = clock.setTimer(7, () => log.push('c7'));
    clock.setTimer(10, () => {
      log.push('d10');
      clock.setTimer(10, () => log.push('e10-nested'));
    });
    clock.clearTimer(c);
    assert.equal(clock.pending, 3);
    clock.advanceTo(10);
    assert.deepEqual(log, ['b5', 'a10', 'd10', 'e10-nested']);
    assert.equal(clock.now(), 10);
    assert.equal(clock.pending, 0);
  });

  it('runUntil stops when the predicate holds, at a stall, or past maxTime', () => {
    const clock = new VirtualClock();
    let n = 0;
    const tick = (): void => {
      n++;
      clock.setTimer(clock.now() + 1, tick);
    };
    clock.setTimer(1, tick);
    assert.equal(clock.runUntil(() => n >= 5), true);
    assert.equal(clock.now(), 5);
    assert.equal(clock.runUntil(() => false, 20), false);
    assert.ok(clock.now() <= 20);
    const idle = new VirtualClock();
    assert.equal(idle.runUntil(() => false), false);
  });
});
