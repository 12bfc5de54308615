// The Event queue on its own, with a fake service: age limits, the bound, retry delays,
// and throttling without using attempts.

import assert from 'node:assert/strict';
import { EventQueue, type EventQueueHost, type QueuedEvent } from '../../lambda-local/event-queue.js';
import type { FunctionRecord } from '../../lambda-local/functions.js';
import { silentLogger } from '../../lambda-local/logger.js';

function fakeFunction(retries: number, maxAgeS: number): FunctionRecord {
  return { name: 'f', eventInvokeConfig: { maximumRetryAttempts: retries, maximumEventAgeInSeconds: maxAgeS, lastModified: 0 } } as FunctionRecord;
}

function event(id: string, ageMs = 0): QueuedEvent {
  const now = Date.now();
  return { requestId: id, payload: Buffer.from('{}'), enqueuedMs: now - ageMs, notBeforeMs: now, attempts: 0 };
}

interface Fake extends EventQueueHost {
  runs: { id: string; at: number; attempt: number }[];
  allow: boolean;
  succeed: boolean;
}

function fakeHost(fn: FunctionRecord): Fake {
  const host: Fake = {
    runs: [],
    allow: true,
    succeed: false,
    lookup: (name) => (name === fn.name ? fn : undefined),
    acquire: () => host.allow,
    run: async (_fn, ev) => {
      host.runs.push({ id: ev.requestId, at: Date.now(), attempt: ev.attempts });
      return host.succeed;
    },
  };
  return host;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lambda-local: the Event queue', () => {
  let queue: EventQueue | undefined;
  afterEach(() => queue?.close());

  it('discards an event older than MaximumEventAgeInSeconds without running it', () => {
    const fn = fakeFunction(2, 60);
    const host = fakeHost(fn);
    queue = new EventQueue(host, { limit: 10, retryDelayMs: 10, logger: silentLogger });
    assert.equal(queue.enqueue('f', event('old', 61_000)), true);
    assert.equal(host.runs.length, 0);
    assert.equal(queue.counts.discarded, 1);
    assert.equal(queue.size, 0);
  });

  it('refuses events beyond its bound', () => {
    const host = fakeHost(fakeFunction(2, 60));
    host.allow = false;
    queue = new EventQueue(host, { limit: 2, retryDelayMs: 1000, logger: silentLogger });
    assert.equal(queue.enqueue('f', event('a')), true);
    assert.equal(queue.enqueue('f', event('b')), true);
    assert.equal(queue.enqueue('f', event('c')), false);
    assert.equal(queue.size, 2);
  });

  it('retries a failing event MaximumRetryAttempts times, the delay doubling, then discards it', async () => {
    const host = fakeHost(fakeFunction(2, 60));
    queue = new EventQueue(host, { limit: 10, retryDelayMs: 50, logger: silentLogger });
    queue.enqueue('f', event('e'));
    const end = Date.now() + 3000;
    while (queue.counts.discarded === 0 && Date.now() < end) await sleep(10);
    assert.deepEqual(host.runs.map((r) => r.attempt), [1, 2, 3]);
    assert.ok(host.runs[1].at - host.runs[0].at >= 45, 'first retry after the delay');
    assert.ok(host.runs[2].at - host.runs[1].at >= 95, 'second retry after twice the delay');
    assert.equal(queue.counts.discarded, 1);
  });

  it('a throttled event waits without using an attempt and runs once a slot frees', async () => {
    const host = fakeHost(fakeFunction(0, 60));
    host.allow = false;
    host.succeed = true;
    queue = new EventQueue(host, { limit: 10, retryDelayMs: 20, logger: silentLogger });
    queue.enqueue('f', event('t'));
    await sleep(100);
    assert.equal(host.runs.length, 0);
    assert.equal(queue.size, 1);
    host.allow = true;
    queue.pump();
    await sleep(10);
    assert.deepEqual(host.runs.map((r) => [r.id, r.attempt]), [['t', 1]]);
    assert.equal(queue.counts.succeeded, 1);
  });

  it('drops the queued events of a deleted function', () => {
    const host = fakeHost(fakeFunction(2, 60));
    host.allow = false;
    queue = new EventQueue(host, { limit: 10, retryDelayMs: 1000, logger: silentLogger });
    queue.enqueue('f', event('a'));
    queue.enqueue('f', event('b'));
    queue.dropFunction('f');
    assert.equal(queue.size, 0);
  });
});
