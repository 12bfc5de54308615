// The connection's protocol timer as a tagged union (after smoltcp's Timer): which timer
// is armed is in `kind`, not implied by the state and a number. Timers are lazy: `at` is
// "wake me no later than"; restarting a timer only moves `base`, and when `at` comes the
// handler re-arms itself for the real expiry. So the deadline the stack sees changes
// rarely, not on every segment. The delayed-ACK and keepalive timers run beside it.

export type ConnectionTimer =
  | { readonly kind: 'idle' }
  /** RFC 6298: data (or our SYN) outstanding; expires at base + RTO with backoff. */
  | { readonly kind: 'retransmit'; at: number; base: number }
  /**
   * RFC 8985 section 7: data outstanding with SACK; a tail loss probe is due at
   * probeBase + PTO, unless the RTO (base + RTO) comes first.
   */
  | { readonly kind: 'probe'; at: number; base: number; probeBase: number }
  /** RFC 9293 section 3.8.6.1: data waits on a zero window; probes from base on. */
  | { readonly kind: 'persist'; at: number; base: number }
  /** RFC 9293 section 3.10.7.4: 2MSL from base (restarted by a retransmitted FIN). */
  | { readonly kind: 'time-wait'; at: number; base: number }
  /** An orphaned FIN-WAIT-2 ends with a RST at `expires` (Linux tcp_fin_timeout). */
  | { readonly kind: 'fin-wait-2'; at: number; readonly expires: number };

export type ArmedTimer = Exclude<ConnectionTimer, { kind: 'idle' }>;

export const TIMER_IDLE: ConnectionTimer = Object.freeze({ kind: 'idle' });

/** When the timer next wants a poll, or Infinity. */
export function timerAt(timer: ConnectionTimer): number {
  return timer.kind === 'idle' ? Infinity : timer.at;
}
