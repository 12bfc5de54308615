// The `activity` control message (relay/PROTOCOL.md) from a host's stack counters: sent
// when the number of established connections or listeners changes, and at least every
// interval. The relay's idle rule reads it. Every kind of host (run: module, Node program,
// preloaded program) reports through one of these.

import type { SocketStats } from '../netstack/stack.js';
import { ACTIVITY_INTERVAL_MS, type ActivityMessage } from './protocol.js';

export type ActivityCounts = Pick<SocketStats, 'established' | 'listening' | 'udp' | 'bytesIn' | 'bytesOut'>;

export class ActivityReporter {
  private lastEstablished = -1;
  private lastListening = -1;
  private lastSent = 0;
  private lastBytes = -1;
  private lastTraffic: number;

  constructor(
    /** sends the message; false when it could not go (the link is down): it is tried again */
    private readonly send: (msg: ActivityMessage) => boolean,
    private readonly intervalMs: number = ACTIVITY_INTERVAL_MS,
    now: number = Date.now(),
  ) {
    this.lastTraffic = now;
  }

  /** Established connections in the last report that went out (-1 before any). */
  get reportedEstablished(): number {
    return this.lastEstablished;
  }

  /** The stack's counters now: report when something changed or the interval has passed. */
  update(s: ActivityCounts, now: number): void {
    const bytes = s.bytesIn + s.bytesOut;
    if (bytes !== this.lastBytes) {
      this.lastBytes = bytes;
      this.lastTraffic = now;
    }
    // relay/protocol.ts: listening counts TCP listeners and bound UDP sockets
    const listening = s.listening + s.udp;
    if (s.established === this.lastEstablished && listening === this.lastListening && now - this.lastSent < this.intervalMs) return;
    const sent = this.send({
      type: 'activity',
      established: s.established,
      listening,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      idleMs: now - this.lastTraffic,
    });
    if (sent) {
      this.lastEstablished = s.established;
      this.lastListening = listening;
      this.lastSent = now;
    }
  }
}
