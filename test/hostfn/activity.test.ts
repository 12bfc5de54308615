// The activity reporter every kind of host uses: what it sends, and when.

import assert from 'node:assert/strict';
import { ActivityReporter, type ActivityCounts } from '../../hostfn/activity.js';
import type { ActivityMessage } from '../../hostfn/protocol.js';

const counts = (c: Partial<ActivityCounts> = {}): ActivityCounts => ({ established: 0, listening: 0, udp: 0, bytesIn: 0, bytesOut: 0, ...c });

describe('hostfn: ActivityReporter', () => {
  it('reports at once when connections or listeners change, else once per interval', () => {
    const sent: ActivityMessage[] = [];
    const r = new ActivityReporter((m) => (sent.push(m), true), 5000, 0);
    r.update(counts({ listening: 1, udp: 1 }), 10);
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0], { type: 'activity', established: 0, listening: 2, bytesIn: 0, bytesOut: 0, idleMs: 0 });
    r.update(counts({ listening: 1, udp: 1 }), 20);
    assert.equal(sent.length, 1, 'nothing changed within the interval');
    r.update(counts({ listening: 1, udp: 1, established: 1, bytesIn: 100 }), 30);
    assert.equal(sent.length, 2);
    assert.equal(sent[1]!.established, 1);
    assert.equal(sent[1]!.idleMs, 0, 'traffic just now');
    r.update(counts({ listening: 1, udp: 1, established: 1, bytesIn: 100 }), 5030);
    assert.equal(sent.length, 3, 'the interval passed');
    assert.equal(sent[2]!.idleMs, 5000, 'no traffic since 30');
    assert.equal(r.reportedEstablished, 1);
  });

  it('a report that could not go out (link down) is tried again on the next update', () => {
    let up = false;
    const sent: ActivityMessage[] = [];
    const r = new ActivityReporter((m) => up && (sent.push(m), true), 5000, 0);
    r.update(counts({ established: 2 }), 1);
    assert.equal(sent.length, 0);
    assert.equal(r.reportedEstablished, -1);
    up = true;
    r.update(counts({ established: 2 }), 2);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.established, 2);
  });
});
