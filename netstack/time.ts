// Time is injected: protocol code takes `now` (milliseconds, a float) and never reads a
// clock. The Node layer owns one timer per stack through a Clock.

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
