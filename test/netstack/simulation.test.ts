import assert from 'node:assert/strict';
import { runTransfer, type TransferCase } from '../support/sim-transfer.js';

const MiB = 1024 * 1024;

// MTU 1500 keeps segment counts realistic (about 11,500 per direction); one case uses the
// overlay's large MTU.
const cases: TransferCase[] = [
  { name: 'clean link, MTU 65535', link: { delay: 1 }, bytes: 16 * MiB, mtu: 65535 },
  { name: 'clean link, MTU 1500', link: { delay: 1 }, bytes: 16 * MiB },
  { name: '1% loss', link: { seed: 11, delay: 1, loss: 0.01 }, bytes: 16 * MiB },
  { name: '5% loss', link: { seed: 12, delay: 1, loss: 0.05 }, bytes: 16 * MiB },
  { name: '10% loss', link: { seed: 13, delay: 1, loss: 0.1 }, bytes: 16 * MiB, maxTimeMs: 1_800_000 },
  { name: '2% loss with reordering and duplication', link: { seed: 14, delay: 2, loss: 0.02, reorder: 0.05, duplicate: 0.02 }, bytes: 16 * MiB },
  { name: '1% loss, both ends closing at once', link: { seed: 16, delay: 1, loss: 0.01 }, bytes: 16 * MiB, simultaneousClose: true },
  { name: 'bandwidth limited to 20 MB/s with a 64 KiB queue', link: { seed: 15, delay: 5, rate: 20e6, queueBytes: 64 * 1024 }, bytes: 16 * MiB },
];

describe('simulation: TCP over impaired memory links in virtual time', function () {
  this.timeout(120_000);
  for (const c of cases) {
    it(`transfers 16 MiB both ways intact: ${c.name}`, () => {
      const r = runTransfer({ mtu: 1500, ...c });
      assert.ok(r.ok, r.reason);
      assert.equal(r.client.error, null);
      assert.equal(r.server.error, null);
      assert.equal(r.aToB.bytes, c.bytes);
      assert.equal(r.bToA.bytes, c.bytes);
      assert.equal(r.aToB.received, r.aToB.sent);
      assert.equal(r.bToA.received, r.bToA.sent);
      if ((c.link.loss ?? 0) > 0 || c.link.rate !== undefined) assert.ok(r.linkDrops > 0 && r.retransmits > 0, 'losses were repaired');
      if (c.link.rate !== undefined) {
        // It cannot beat the link: 2 x 16 MiB share nothing, each direction has the rate.
        assert.ok(r.virtualMs >= (c.bytes / c.link.rate) * 1000, `finished in ${r.virtualMs} ms`);
      }
      assert.ok(r.closedCleanly, `close handshake did not finish: ${r.states}`);
      for (const stack of r.stacks) {
        assert.equal(stack.counters.internalErrors, 0);
        assert.equal(stack.counters['egress-too-big'] ?? 0, 0, 'every segment fit the MTU');
        assert.equal(stack.counters.dropped, 0, `drops: ${JSON.stringify(stack.counters)}`);
      }
    });
  }
});
