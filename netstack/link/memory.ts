// Two Links joined in memory, with seeded impairments (loss, duplication, reordering,
// delay, a rate limit with a bounded queue): smoltcp's fault-injecting link for tests and
// benchmarks. Delivery is never synchronous inside send().

import { MinHeap } from '../heap.js';
import { realClock, type Clock, type TimerHandle } from '../time.js';
import type { Link, PacketHandler } from './link.js';
import { mulberry32, type Random } from './prng.js';

export interface LinkPairOptions {
  /** PRNG seed: the same seed and traffic give the same impairments. Default 1. */
  seed?: number;
  /** probability 0..1 that a packet is dropped */
  loss?: number;
  /** probability 0..1 that a packet is delivered twice */
  duplicate?: number;
  /** probability 0..1 that a packet is held back by `reorderDelay` so later ones overtake it */
  reorder?: number;
  /** extra ms for a reordered packet; default max(1, delay) */
  reorderDelay?: number;
  /** one-way delay in ms; default 0 */
  delay?: number;
  /** bytes per second per direction; default unlimited */
  rate?: number;
  /** bytes the rate limiter may queue before it drops; default 4 * mtu */
  queueBytes?: number;
  /** packets in flight per direction before dropping; default 65536 */
  maxInFlight?: number;
  /** largest packet; larger ones are dropped. Default 65535. */
  mtu?: number;
  /** default realClock (due packets are delivered in a microtask) */
  clock?: Clock;
}

export interface LinkCounters {
  /** packets handed to send() */
  sent: number;
  /** packets handed to the peer's handler */
  delivered: number;
  bytesDelivered: number;
  duplicated: number;
  reordered: number;
  dropLoss: number;
  dropQueueFull: number;
  dropMtu: number;
  dropClosed: number;
  dropNoHandler: number;
}

interface InFlight {
  at: number;
  seq: number;
  packet: Uint8Array;
}

function earlier(a: InFlight, b: InFlight): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** One direction: packets sent on one end, delivered at the other. */
class Channel {
  private readonly heap = new MinHeap<InFlight>(earlier);
  private seq = 0;
  private busyUntil = 0;
  private timer: TimerHandle | null = null;
  private timerAt = Infinity;
  private microtaskQueued = false;
  closed = false;
  receiver: PacketHandler | null = null;

  constructor(
    private readonly opts: Required<Omit<LinkPairOptions, 'clock' | 'seed' | 'rate'>> & { rate: number },
    private readonly clock: Clock,
    private readonly useMicrotasks: boolean,
    private readonly random: Random,
    readonly counters: LinkCounters,
  ) {}

  send(packet: Uint8Array): void {
    const c = this.counters;
    const o = this.opts;
    c.sent++;
    if (this.closed) {
      c.dropClosed++;
      return;
    }
    if (packet.length > o.mtu) {
      c.dropMtu++;
      return;
    }
    if (o.loss > 0 && this.random() < o.loss) {
      c.dropLoss++;
      return;
    }
    if (this.heap.size >= o.maxInFlight) {
      c.dropQueueFull++;
      return;
    }
    const now = this.clock.now();
    let depart = now;
    if (o.rate > 0) {
      const start = Math.max(now, this.busyUntil);
      const backlog = ((start - now) * o.rate) / 1000;
      if (backlog + packet.length > o.queueBytes) {
        c.dropQueueFull++;
        return;
      }
      this.busyUntil = start + (packet.length * 1000) / o.rate;
      depart = this.busyUntil;
    }
    let at = depart + o.delay;
    if (o.reorder > 0 && this.random() < o.reorder) {
      at += o.reorderDelay;
      c.reordered++;
    }
    this.heap.push({ at, seq: this.seq++, packet });
    if (o.duplicate > 0 && this.random() < o.duplicate) {
      c.duplicated++;
      this.heap.push({ at, seq: this.seq++, packet: packet.slice() });
    }
    this.schedule(now);
  }

  close(): void {
    this.closed = true;
    this.heap.clear();
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private schedule(now: number): void {
    const first = this.heap.peek();
    if (first === undefined) return;
    const at = first.at;
    if (at <= now && this.useMicrotasks) {
      if (!this.microtaskQueued) {
        this.microtaskQueued = true;
        queueMicrotask(() => {
          this.microtaskQueued = false;
          this.flush(this.clock.now());
        });
      }
      return;
    }
    if (at >= this.timerAt) return;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimer(at, () => {
      const due = this.timerAt;
      this.timer = null;
      this.timerAt = Infinity;
      // A real timer may fire a fraction early on another clock reading; honour its time.
      this.flush(Math.max(this.clock.now(), due));
    });
  }

  private flush(now: number): void {
    const c = this.counters;
    while (!this.closed && (this.heap.peek()?.at ?? Infinity) <= now) {
      const item = this.heap.pop()!;
      const handler = this.receiver;
      if (handler === null) {
        c.dropNoHandler++;
        continue;
      }
      c.delivered++;
      c.bytesDelivered += item.packet.length;
      handler(item.packet);
    }
    if (!this.closed) this.schedule(this.clock.now());
  }
}

/** One end of a memory link pair. `counters` describe the packets this end sends. */
export class MemoryLink implements Link {
  readonly mtu: number;

  constructor(
    private readonly out: Channel,
    private readonly inbound: Channel,
    mtu: number,
  ) {
    this.mtu = mtu;
  }

  get counters(): Readonly<LinkCounters> {
    return this.out.counters;
  }

  send(packet: Uint8Array): void {
    this.out.send(packet);
  }

  onReceive(handler: PacketHandler): void {
    this.inbound.receiver = handler;
  }

  /** Closes both directions: later sends from either end are dropped and counted. */
  close(): void {
    this.out.close();
    this.inbound.close();
  }
}

function newCounters(): LinkCounters {
  return { sent: 0, delivered: 0, bytesDelivered: 0, duplicated: 0, reordered: 0, dropLoss: 0, dropQueueFull: 0, dropMtu: 0, dropClosed: 0, dropNoHandler: 0 };
}

function probability(name: string, p: number | undefined): number {
  const v = p ?? 0;
  if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be a probability in 0..1, got ${String(p)}`);
  return v;
}

/** Two connected links. With no options, a plain lossless pair. */
export function createLinkPair(options: LinkPairOptions = {}): [MemoryLink, MemoryLink] {
  const clock = options.clock ?? realClock;
  const mtu = options.mtu ?? 65535;
  const delay = Math.max(0, options.delay ?? 0);
  const opts = {
    loss: probability('loss', options.loss),
    duplicate: probability('duplicate', options.duplicate),
    reorder: probability('reorder', options.reorder),
    reorderDelay: Math.max(0, options.reorderDelay ?? Math.max(1, delay)),
    delay,
    rate: Math.max(0, options.rate ?? 0),
    queueBytes: options.queueBytes ?? 4 * mtu,
    maxInFlight: options.maxInFlight ?? 65536,
    mtu,
  };
  const seed = (options.seed ?? 1) >>> 0;
  const useMicrotasks = clock === realClock;
  const ab = new Channel(opts, clock, useMicrotasks, mulberry32(seed), newCounters());
  const ba = new Channel(opts, clock, useMicrotasks, mulberry32((seed ^ 0x9e3779b9) >>> 0), newCounters());
  return [new MemoryLink(ab, ba, mtu), new MemoryLink(ba, ab, mtu)];
}
