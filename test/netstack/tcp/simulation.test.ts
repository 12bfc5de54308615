import assert from 'node:assert/strict';
import type { TcpConfig } from '../../../netstack/tcp/config.js';
import { SimApp, randomBytes, runSim, sha256, type PipeOptions } from '../../support/tcp-sim.js';

interface Case {
  name: string;
  pipe: PipeOptions;
  config?: Partial<TcpConfig>;
  up: number;
  down: number;
  consumeDelay?: number;
}

function check(c: Case): void {
  const upA = randomBytes(c.up, c.pipe.seed * 2 + 1);
  const upB = randomBytes(c.down, c.pipe.seed * 2 + 2);
  const a = new SimApp(upA, 50_000);
  const b = new SimApp(upB, 70_001);
  if (c.consumeDelay !== undefined) b.consumeDelay = c.consumeDelay;
  const r = runSim({ pipe: c.pipe, configA: c.config, configB: c.config, a, b, stallMs: 120_000 });
  const where = `${c.name}: at ${r.now.toFixed(0)} ms A got ${a.receivedBytes}/${upB.length}, B got ${b.receivedBytes}/${upA.length}`;
  assert.equal(r.stalled, false, `stalled: ${where}`);
  assert.equal(b.receivedBytes, upA.length, where);
  assert.equal(a.receivedBytes, upB.length, where);
  assert.equal(sha256(b.received), sha256([upA]), where);
  assert.equal(sha256(a.received), sha256([upB]), where);
  assert.ok(a.gotFin && b.gotFin, where);
  assert.equal(a.closedWith, null, where);
  assert.equal(b.closedWith, null, where);
  if (c.pipe.loss > 0) assert.ok(r.connA.stats.retransmits + (r.connB?.stats.retransmits ?? 0) > 0);
}

const MiB = 1 << 20;

describe('tcp connection simulation (lossy pipe, virtual time)', function () {
  this.timeout(120_000);

  for (const loss of [0, 0.01, 0.05, 0.1]) {
    it(`4 MiB each way, MSS 1460, ${loss * 100}% loss with reordering and duplication`, () =>
      check({ name: `loss ${loss}`, pipe: { seed: 42 + loss * 1000, loss, duplicate: 0.01, delay: 5, jitter: 2 }, config: { mss: 1460 }, up: 4 * MiB, down: 4 * MiB }));
  }

  for (const seed of [1, 2, 3]) {
    it(`10% loss, seed ${seed}, without SACK, timestamps or window scaling`, () =>
      check({ name: `plain seed ${seed}`, pipe: { seed, loss: 0.1, duplicate: 0.02, delay: 3, jitter: 3 }, config: { mss: 1000, sack: false, timestamps: false, windowScaling: false }, up: MiB, down: MiB / 2 }));
  }

  it('MSS 65495 bulk transfer with 1% loss', () =>
    check({ name: 'jumbo', pipe: { seed: 9, loss: 0.01, delay: 1, jitter: 0.5 }, up: 16 * MiB, down: MiB }));

  it('a slow reader closes the window and the sender probes until it reopens', () =>
    check({ name: 'slow reader', pipe: { seed: 5, loss: 0.02, delay: 2, jitter: 1 }, config: { mss: 1460, receiveBufferSize: 64 * 1024 }, up: 2 * MiB, down: 1000, consumeDelay: 200 }));

  it('small buffers and heavy reordering', () =>
    check({ name: 'small buffers', pipe: { seed: 11, loss: 0.03, duplicate: 0.05, delay: 2, jitter: 10 }, config: { mss: 536, sendBufferSize: 16 * 1024, receiveBufferSize: 8 * 1024 }, up: MiB, down: MiB }));
});
