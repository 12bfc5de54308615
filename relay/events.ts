// The bounded ring log of lifecycle events served by the admin API.

export type HostState = 'cold' | 'starting' | 'running' | 'draining' | 'failed';

export interface RelayEvent {
  /** ISO time */
  time: string;
  host: string;
  /** e.g. 'started', 'joined', 'drain', 'released', 'failed', 'disconnected', 'reconnected' */
  type: string;
  reason: string;
  /** the host's state after the event */
  state: HostState;
}

export type EventListener = (event: RelayEvent) => void;

export class EventLog {
  private readonly ring: RelayEvent[] = [];
  private next = 0;
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly capacity: number) {}

  push(event: RelayEvent): void {
    if (this.ring.length < this.capacity) this.ring.push(event);
    else this.ring[this.next] = event;
    this.next = (this.next + 1) % this.capacity;
    for (const fn of [...this.listeners]) {
      try {
        fn(event);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  /** Oldest first. */
  list(): RelayEvent[] {
    if (this.ring.length < this.capacity) return [...this.ring];
    return [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }

  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }
}
