// Time is injected: protocol code takes `now` (milliseconds, a float) and never reads a
// clock. The Node layer owns one timer per stack through a Clock.

import { MinHeap } from './heap.js';

export interface TimerHandle {
  readonly __timer: true;
}

export interface Clock {
  /** milliseconds, monotonic */
  now(): number;
  /** Run fn once at time `at` (ms, on this clock). */
  setTimer(at: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

// ---- implementations ----------------------------------------------------------------

interface RealHandle extends TimerHandle {
  timeout: ReturnType<typeof setTimeout>;
}

/**
 * The wall clock: performance.now() and setTimeout. Timers are unref'd by default so a
 * protocol timer alone never keeps a process alive (the link's socket does that).
 */
export class RealClock implements Clock {
  constructor(private readonly unref = true) {}

  now(): number {
    return performance.now();
  }

  setTimer(at: number, fn: () => void): TimerHandle {
    const timeout = setTimeout(fn, Math.max(0, at - performance.now()));
    if (this.unref) timeout.unref();
    const handle: RealHandle = { __timer: true, timeout };
    return handle;
  }

  clearTimer(handle: TimerHandle): void {
    clearTimeout((handle as RealHandle).timeout);
  }
}

export const realClock: Clock = new RealClock();

interface VirtualTimer extends TimerHandle {
  at: number;
  seq: number;
  fn: (() => void) | null;
}

function earlier(a: VirtualTimer, b: VirtualTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Deterministic simulated time for tests and simulations. Nothing happens until the
 * caller advances it; timers due at the same time run in the order they were set.
 */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private live = 0;
  private readonly heap = new MinHeap<VirtualTimer>(earlier);

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  /** Timers set and not yet run or cleared. */
  get pending(): number {
    return this.live;
  }

  /** Time of the earliest pending timer, or Infinity. */
  get nextAt(): number {
    this.dropCleared();
    return this.heap.peek()?.at ?? Infinity;
  }

  setTimer(at: number, fn: () => void): TimerHandle {
    const timer: VirtualTimer = { __timer: true, at: Math.max(at, this.t), seq: this.seq++, fn };
    this.heap.push(timer);
    this.live++;
    return timer;
  }

  clearTimer(handle: TimerHandle): void {
    const timer = handle as VirtualTimer;
    if (timer.fn !== null) {
      timer.fn = null;
      this.live--;
      // Cleared timers leave the heap lazily; rebuild when they dominate it.
      if (this.heap.size > 1024 && this.heap.size > 4 * this.live) this.heap.retain((t) => t.fn !== null);
    }
  }

  /** Run the earliest timer, moving time to it. False when none is pending. */
  runNext(): boolean {
    this.dropCleared();
    const timer = this.heap.pop();
    if (timer === undefined) return false;
    const fn = timer.fn!;
    timer.fn = null;
    this.live--;
    if (timer.at > this.t) this.t = timer.at;
    fn();
    return true;
  }

  /** Run every timer due up to `t` (including ones they set), then set the time to `t`. */
  advanceTo(t: number): void {
    while (this.nextAt <= t) this.runNext();
    if (t > this.t) this.t = t;
  }

  advanceBy(ms: number): void {
    this.advanceTo(this.t + ms);
  }

  /**
   * Run timers until `pred()` holds. Returns false if it still does not hold when no timer
   * is pending (a stall) or the next one is later than `maxTime`.
   */
  runUntil(pred: () => boolean, maxTime = Infinity): boolean {
    for (;;) {
      if (pred()) return true;
      if (this.nextAt > maxTime) return false;
      if (!this.runNext()) return false;
    }
  }

  private dropCleared(): void {
    while (this.heap.peek()?.fn === null) this.heap.pop();
  }
}
