// Two TcpConnections back to back through an in-memory segment pipe in virtual time,
// with seeded loss, reordering (delay jitter) and duplication.

import { createHash } from 'node:crypto';
import { mulberry32 } from '../../netstack/link/prng.js';
import type { TcpSegment, TcpSegmentOut } from '../../netstack/wire/tcp.js';
import { tcpConfig, type TcpConfig } from '../../netstack/tcp/config.js';
import { TcpConnection } from '../../netstack/tcp/connection.js';
import { TcpListener } from '../../netstack/tcp/listener.js';
import type { FourTuple, TcpConnectionEvents, TcpConnectionLike, TcpEnv, TcpErrorCode } from '../../netstack/tcp/types.js';

export function prng(seed: number): () => number {
  return mulberry32(seed);
}

export function randomBytes(n: number, seed: number): Uint8Array {
  const r = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = (r() * 4294967296) >>> 0;
    out[i] = v & 0xff;
    if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = v >>> 24;
  }
  return out;
}

export function sha256(chunks: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

export interface PipeOptions {
  seed: number;
  loss: number;
  duplicate?: number;
  /** One-way delay in ms. */
  delay?: number;
  /** Extra random delay in ms, which reorders segments. */
  jitter?: number;
}

interface InFlight {
  at: number;
  order: number;
  toA: boolean;
  seg: TcpSegment;
}

/** A binary min-heap of deliveries by time (then FIFO). */
class DeliveryQueue {
  private h: InFlight[] = [];
  get size(): number {
    return this.h.length;
  }
  peek(): InFlight | undefined {
    return this.h[0];
  }
  private less(a: InFlight, b: InFlight): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }
  push(x: InFlight): void {
    const h = this.h;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): InFlight | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** An application endpoint: writes `toSend`, collects what arrives, shuts down when done. */
export class SimApp implements TcpConnectionEvents {
  conn: TcpConnection | null = null;
  received: Uint8Array[] = [];
  receivedBytes = 0;
  sentBytes = 0;
  gotFin = false;
  established_ = false;
  closedWith: TcpErrorCode | null | undefined = undefined;
  now = 0;
  /** Consume delivered bytes only this long after delivery (0: at once). */
  consumeDelay = 0;
  pendingConsume: { at: number; n: number }[] = [];
  constructor(
    readonly toSend: Uint8Array,
    readonly writeSize: number,
    readonly shutdownWhenDone = true,
  ) {}
  established(): void {
    this.established_ = true;
    this.pump();
  }
  data(chunk: Uint8Array): void {
    this.received.push(chunk.slice());
    this.receivedBytes += chunk.length;
    if (this.consumeDelay === 0) this.conn!.consume(chunk.length, this.now);
    else this.pendingConsume.push({ at: this.now + this.consumeDelay, n: chunk.length });
  }
  fin(): void {
    this.gotFin = true;
  }
  sendSpace(): void {
    this.pump();
  }
  closed(error: TcpErrorCode | null): void {
    this.closedWith = error;
  }
  pump(): void {
    const c = this.conn;
    if (c === null) return;
    while (this.sentBytes < this.toSend.length) {
      const n = Math.min(this.writeSize, this.toSend.length - this.sentBytes);
      const accepted = c.send(this.toSend.subarray(this.sentBytes, this.sentBytes + n), this.now);
      this.sentBytes += accepted;
      if (accepted < n) return;
    }
    if (this.shutdownWhenDone) c.shutdown(this.now);
  }
  runConsumes(now: number): void {
    while (this.pendingConsume.length > 0 && this.pendingConsume[0]!.at <= now) {
      this.conn!.consume(this.pendingConsume.shift()!.n, now);
    }
  }
  nextConsume(): number {
    return this.pendingConsume.length > 0 ? this.pendingConsume[0]!.at : Infinity;
  }
}

export interface SimResult {
  a: SimApp;
  b: SimApp;
  connA: TcpConnection;
  connB: TcpConnection | null;
  now: number;
  stalled: boolean;
  delivered: number;
  dropped: number;
}

/** Run A (active) and B (passive via a listener) until both are done or progress stalls. */
export function runSim(opts: {
  pipe: PipeOptions;
  configA?: Partial<TcpConfig>;
  configB?: Partial<TcpConfig>;
  a: SimApp;
  b: SimApp;
  /** Virtual ms without any delivered byte that counts as a stall. */
  stallMs?: number;
  maxTime?: number;
}): SimResult {
  const rnd = prng(opts.pipe.seed);
  const delay = opts.pipe.delay ?? 1;
  const jitter = opts.pipe.jitter ?? 0;
  const queue = new DeliveryQueue();
  let order = 0;
  let now = 0;
  let delivered = 0;
  let dropped = 0;
  const tupleA: FourTuple = { localAddress: 1, localPort: 40000, remoteAddress: 2, remotePort: 80 };
  const clone = (seg: TcpSegmentOut): TcpSegment => {
    const payload = new Uint8Array(seg.payloadLength);
    if (seg.payload instanceof Uint8Array) payload.set(seg.payload);
    else {
      let off = 0;
      for (const c of seg.payload) {
        payload.set(c, off);
        off += c.length;
      }
    }
    const o = seg.options;
    return {
      srcPort: seg.srcPort,
      dstPort: seg.dstPort,
      seq: seg.seq,
      ack: seg.ack,
      flags: seg.flags,
      window: seg.window,
      urgent: 0,
      options: {
        ...(o.mss !== undefined ? { mss: o.mss } : {}),
        ...(o.windowScale !== undefined ? { windowScale: o.windowScale } : {}),
        ...(o.sackPermitted ? { sackPermitted: true } : {}),
        ...(o.sack !== undefined ? { sack: o.sack.map((b) => ({ ...b })) } : {}),
        ...(o.timestamp !== undefined ? { timestamp: { ...o.timestamp } } : {}),
      },
      payload,
    };
  };
  const makeEnv = (toA: boolean): TcpEnv => ({
    output(_tuple: FourTuple, seg: TcpSegmentOut): void {
      if (rnd() < opts.pipe.loss) {
        dropped++;
        return;
      }
      const copies = opts.pipe.duplicate !== undefined && rnd() < opts.pipe.duplicate ? 2 : 1;
      for (let i = 0; i < copies; i++) queue.push({ at: now + delay + rnd() * jitter, order: order++, toA, seg: clone(seg) });
    },
    deadlineChanged(_c: TcpConnectionLike): void {},
    removed(_c: TcpConnectionLike): void {},
  });
  const envToB = makeEnv(false);
  const envToA = makeEnv(true);
  const cfgA = tcpConfig(opts.configA);
  const cfgB = tcpConfig(opts.configB);
  let connB: TcpConnection | null = null;
  const listener = new TcpListener(envToA, cfgB, 2, 80, 16, (c) => {
    c.events = opts.b;
    opts.b.conn = c;
    opts.b.now = now;
  });
  const a = opts.a;
  const b = opts.b;
  const connA = TcpConnection.connect(envToB, cfgA, tupleA, a, now);
  a.conn = connA;
  const stallMs = opts.stallMs ?? 60_000;
  const maxTime = opts.maxTime ?? 24 * 3600_000;
  let lastProgress = 0;
  let progressBytes = 0;
  let stalled = false;
  const done = (): boolean =>
    a.closedWith !== undefined && b.closedWith !== undefined && queue.size === 0;
  for (let steps = 0; steps < 50_000_000; steps++) {
    if (done()) break;
    const next = Math.min(
      queue.peek()?.at ?? Infinity,
      connA.deadline,
      connB !== null ? connB.deadline : Infinity,
      a.nextConsume(),
      b.nextConsume(),
    );
    if (next === Infinity || next > maxTime) break;
    if (next > now) now = next;
    a.now = now;
    b.now = now;
    a.runConsumes(now);
    b.runConsumes(now);
    const top = queue.peek();
    if (top !== undefined && top.at <= now) {
      queue.pop();
      delivered++;
      if (top.toA) connA.input(top.seg, now);
      else if (connB !== null && connB.state !== 'CLOSED') {
        if (connB.input(top.seg, now)) connB = listener.input(top.seg, 1, 40000, now) ?? connB;
      } else if (connB === null) {
        const c = listener.input(top.seg, 1, 40000, now);
        if (c !== null) connB = c;
      }
    }
    if (connA.deadline <= now) connA.poll(now);
    if (connB !== null && connB.deadline <= now) connB.poll(now);
    const progress = a.receivedBytes + b.receivedBytes;
    if (progress !== progressBytes) {
      progressBytes = progress;
      lastProgress = now;
    } else if (now - lastProgress > stallMs && !(a.gotFin && b.gotFin)) {
      stalled = true;
      break;
    }
  }
  listener.close(now);
  return { a, b, connA, connB, now, stalled, delivered, dropped };
}
