// Event (asynchronous) invocations: one bounded queue, run as concurrency allows, a
// failure retried up to the function's MaximumRetryAttempts with a doubling delay while
// younger than its MaximumEventAgeInSeconds, then discarded and counted. A throttled
// event waits without using an attempt.

import type { FunctionRecord } from './functions.js';
import type { LambdaLocalLogger } from './logger.js';

/** Lambda's defaults when a function has no event invoke config. */
export const DEFAULT_MAX_RETRY_ATTEMPTS = 2;
export const DEFAULT_MAX_EVENT_AGE_S = 21_600;

export interface QueuedEvent {
  requestId: string;
  payload: Buffer;
  clientContext?: string;
  enqueuedMs: number;
  notBeforeMs: number;
  attempts: number;
}

export interface EventQueueHost {
  /** The live function of this name (events of a deleted function are dropped). */
  lookup(name: string): FunctionRecord | undefined;
  /** Take a concurrency slot for `fn`; false when throttled. */
  acquire(fn: FunctionRecord): boolean;
  /** Run one event in the slot taken (and give the slot back); true when it succeeded. */
  run(fn: FunctionRecord, ev: QueuedEvent): Promise<boolean>;
}

export interface EventQueueOptions {
  /** Bound of queued events, all functions together. */
  limit: number;
  /** Delay before the first retry; doubled per retry. */
  retryDelayMs: number;
  logger: LambdaLocalLogger;
}

export class EventQueue {
  private readonly queues = new Map<string, QueuedEvent[]>();
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  readonly counts = { succeeded: 0, discarded: 0 };

  constructor(
    private readonly host: EventQueueHost,
    private readonly options: EventQueueOptions,
  ) {}

  get size(): number {
    return this.queued;
  }

  /** Queue an event for `functionName`; false when the queue is full. */
  enqueue(functionName: string, ev: QueuedEvent): boolean {
    if (this.closed || this.queued >= this.options.limit) return false;
    this.push(functionName, ev);
    this.pump();
    return true;
  }

  dropFunction(functionName: string): void {
    this.queued -= this.queues.get(functionName)?.length ?? 0;
    this.queues.delete(functionName);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queues.clear();
    this.queued = 0;
  }

  /** Start the events that are due, as far as concurrency allows. */
  pump(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const now = Date.now();
    let nextDue = Infinity;
    for (const [name, queue] of this.queues) {
      const fn = this.host.lookup(name);
      if (!fn) continue;
      const maxAgeMs = (fn.eventInvokeConfig?.maximumEventAgeInSeconds ?? DEFAULT_MAX_EVENT_AGE_S) * 1000;
      for (let i = 0; i < queue.length; ) {
        const ev = queue[i];
        if (now - ev.enqueuedMs > maxAgeMs) {
          queue.splice(i, 1);
          this.queued--;
          this.discard(fn, ev, 'maximum event age');
          continue;
        }
        if (ev.notBeforeMs > now) {
          nextDue = Math.min(nextDue, ev.notBeforeMs);
          i++;
          continue;
        }
        if (!this.host.acquire(fn)) {
          // throttled: pumped again when a slot frees, or after the retry delay
          nextDue = Math.min(nextDue, now + this.options.retryDelayMs);
          break;
        }
        queue.splice(i, 1);
        this.queued--;
        void this.start(fn, ev);
      }
      if (queue.length === 0) this.queues.delete(name);
    }
    if (nextDue !== Infinity) {
      this.timer = setTimeout(() => this.pump(), Math.max(0, nextDue - now));
      this.timer.unref();
    }
  }

  private async start(fn: FunctionRecord, ev: QueuedEvent): Promise<void> {
    ev.attempts++;
    let ok: boolean;
    try {
      ok = await this.host.run(fn, ev);
    } catch (err) {
      this.options.logger.error('event invocation failed in lambda-local', { function: fn.name, err: (err as Error)?.message ?? String(err) });
      ok = false;
    }
    if (ok) {
      this.counts.succeeded++;
      return;
    }
    const retries = fn.eventInvokeConfig?.maximumRetryAttempts ?? DEFAULT_MAX_RETRY_ATTEMPTS;
    if (this.closed || this.host.lookup(fn.name) !== fn || ev.attempts > retries) {
      this.discard(fn, ev, `failed ${ev.attempts} time(s)`);
      return;
    }
    ev.notBeforeMs = Date.now() + this.options.retryDelayMs * 2 ** (ev.attempts - 1);
    this.push(fn.name, ev);
    this.pump();
  }

  private push(functionName: string, ev: QueuedEvent): void {
    const queue = this.queues.get(functionName) ?? [];
    this.queues.set(functionName, queue);
    queue.push(ev);
    this.queued++;
  }

  private discard(fn: FunctionRecord, ev: QueuedEvent, why: string): void {
    this.counts.discarded++;
    this.options.logger.warn('event invocation discarded', { function: fn.name, requestId: ev.requestId, why, attempts: ev.attempts });
  }
}
