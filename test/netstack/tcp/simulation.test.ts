import assert from 'node:assert/strict';
import { SimApp, randomBytes, runSim, sha256 } from '../../support/tcp-sim.js';

describe('tcp connection simulation (lossy pipe, virtual time)', function () {
  this.timeout(120_000);

  for (const loss of [0, 0.01, 0.05, 0.1]) {
    it(`transfers 2 MiB each way with SHA-256 equality at ${loss * 100}% loss, reordering and duplication`, () => {
      const upA = randomBytes(2 << 20, 1);
      const upB = randomBytes(2 << 20, 2);
      const a = new SimApp(upA, 50_000);
      const b = new SimApp(upB, 70_001);
      const r = runSim({
        pipe: { seed: 42 + loss * 1000, loss, duplicate: 0.01, delay: 5, jitter: 2 },
        configA: { mss: 1460 },
        configB: { mss: 1460 },
        a,
        b,
      });
      assert.equal(r.stalled, false, `stalled at ${r.now} ms: A got ${a.receivedBytes}, B got ${b.receivedBytes}`);
      assert.equal(b.receivedBytes, upA.length);
      assert.equal(a.receivedBytes, upB.length);
      assert.equal(sha256(b.received), sha256([upA]));
      assert.equal(sha256(a.received), sha256([upB]));
      assert.ok(a.gotFin && b.gotFin);
      assert.equal(a.closedWith, null);
      assert.equal(b.closedWith, null);
      if (loss > 0) assert.ok(r.connA.stats.retransmits + (r.connB?.stats.retransmits ?? 0) > 0);
    });
  }
});
