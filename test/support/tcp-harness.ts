// Segment-by-segment test harness for the sans-IO TCP connection and listener: a
// recording env, a virtual clock, segment builders and field matchers.

import assert from 'node:assert/strict';
import { ACK, FIN, PSH, RST, SYN, type SackBlock, type TcpOptions, type TcpSegment, type TcpSegmentOut } from '../../netstack/wire/tcp.js';
import { tcpConfig, type TcpConfig } from '../../netstack/tcp/config.js';
import { TcpConnection } from '../../netstack/tcp/connection.js';
import { TcpListener } from '../../netstack/tcp/listener.js';
import type { FourTuple, TcpConnectionEvents, TcpConnectionLike, TcpEnv, TcpErrorCode } from '../../netstack/tcp/types.js';

export { ACK, FIN, PSH, RST, SYN };

export const LOCAL_ADDR = 0x0a4d0002;
export const REMOTE_ADDR = 0x0a4d0003;
export const LOCAL_PORT = 40000;
export const REMOTE_PORT = 80;

export function flagNames(flags: number): string {
  const names: string[] = [];
  if (flags & SYN) names.push('SYN');
  if (flags & ACK) names.push('ACK');
  if (flags & FIN) names.push('FIN');
  if (flags & RST) names.push('RST');
  if (flags & PSH) names.push('PSH');
  return names.join('|') || 'none';
}

/** Concatenated payload of an outgoing segment. */
export function payloadOf(seg: TcpSegmentOut): Uint8Array {
  if (seg.payload instanceof Uint8Array) return seg.payload;
  const out = new Uint8Array(seg.payloadLength);
  let off = 0;
  for (const c of seg.payload) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

export interface Recorded {
  tuple: FourTuple;
  seg: TcpSegmentOut;
}

export class RecordingEnv implements TcpEnv {
  readonly out: Recorded[] = [];
  readonly removedConns: TcpConnectionLike[] = [];
  deadlineChanges = 0;
  output(tuple: FourTuple, seg: TcpSegmentOut): void {
    // The stack serialises at once: snapshot the payload so later buffer reuse cannot matter.
    // The record and its options are reused by the connection after output() returns.
    const o = seg.options;
    const options = {
      ...o,
      ...(o.timestamp !== undefined ? { timestamp: { ...o.timestamp } } : {}),
      ...(o.sack !== undefined ? { sack: o.sack.map((b) => ({ ...b })) } : {}),
    };
    const copy: TcpSegmentOut = { ...seg, options, payload: payloadOf(seg).slice() };
    this.out.push({ tuple, seg: copy });
  }
  deadlineChanged(): void {
    this.deadlineChanges++;
  }
  removed(conn: TcpConnectionLike): void {
    this.removedConns.push(conn);
  }
}

export type EventRecord =
  | { type: 'established' }
  | { type: 'data'; data: Uint8Array }
  | { type: 'fin' }
  | { type: 'sendSpace' }
  | { type: 'closed'; error: TcpErrorCode | null };

/** Events recorder; consumes delivered data at once unless `autoConsume` is false. */
export class RecordingEvents implements TcpConnectionEvents {
  readonly log: EventRecord[] = [];
  received: Uint8Array[] = [];
  conn: TcpConnection | null = null;
  autoConsume = true;
  now = 0;
  established(): void {
    this.log.push({ type: 'established' });
  }
  data(chunk: Uint8Array): void {
    const copy = chunk.slice();
    this.log.push({ type: 'data', data: copy });
    this.received.push(copy);
    if (this.autoConsume && this.conn !== null) this.conn.consume(chunk.length, this.now);
  }
  fin(): void {
    this.log.push({ type: 'fin' });
  }
  sendSpace(): void {
    this.log.push({ type: 'sendSpace' });
  }
  closed(error: TcpErrorCode | null): void {
    this.log.push({ type: 'closed', error });
  }
  types(): string[] {
    return this.log.map((e) => e.type);
  }
  receivedBytes(): Uint8Array {
    return Buffer.concat(this.received);
  }
  closedError(): TcpErrorCode | null | undefined {
    for (const e of this.log) if (e.type === 'closed') return e.error;
    return undefined;
  }
}

export interface SegSpec {
  flags: number;
  seq: number;
  ack?: number;
  window?: number;
  data?: Uint8Array | string;
  options?: TcpOptions;
}

export interface SegMatch {
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  len?: number;
  data?: Uint8Array | string;
  mss?: number;
  windowScale?: number | null;
  sackPermitted?: boolean;
  timestamp?: boolean | { value?: number; echo?: number };
  sack?: SackBlock[] | null;
}

function bytes(d: Uint8Array | string | undefined): Uint8Array {
  if (d === undefined) return new Uint8Array(0);
  return typeof d === 'string' ? new TextEncoder().encode(d) : d;
}

/** Check an outgoing segment against the given fields; returns the segment. */
export function matchSeg(seg: TcpSegmentOut, m: SegMatch): TcpSegmentOut {
  const where = `segment ${flagNames(seg.flags)} seq=${seg.seq} ack=${seg.ack} len=${seg.payloadLength}`;
  if (m.flags !== undefined) assert.equal(flagNames(seg.flags & ~PSH), flagNames(m.flags & ~PSH), `flags of ${where}`);
  if (m.seq !== undefined) assert.equal(seg.seq, m.seq >>> 0, `seq of ${where}`);
  if (m.ack !== undefined) assert.equal(seg.ack, m.ack >>> 0, `ack of ${where}`);
  if (m.window !== undefined) assert.equal(seg.window, m.window, `window of ${where}`);
  if (m.len !== undefined) assert.equal(seg.payloadLength, m.len, `length of ${where}`);
  if (m.data !== undefined) assert.deepEqual(Buffer.from(payloadOf(seg)), Buffer.from(bytes(m.data)), `payload of ${where}`);
  const o = seg.options;
  if (m.mss !== undefined) assert.equal(o.mss, m.mss, `mss of ${where}`);
  if (m.windowScale !== undefined) assert.equal(o.windowScale, m.windowScale ?? undefined, `wscale of ${where}`);
  if (m.sackPermitted !== undefined) assert.equal(o.sackPermitted === true, m.sackPermitted, `sackPermitted of ${where}`);
  if (m.timestamp !== undefined) {
    if (m.timestamp === false) assert.equal(o.timestamp, undefined, `timestamp of ${where}`);
    else {
      assert.ok(o.timestamp, `timestamp of ${where}`);
      if (typeof m.timestamp === 'object') {
        if (m.timestamp.value !== undefined) assert.equal(o.timestamp.value, m.timestamp.value, `TSval of ${where}`);
        if (m.timestamp.echo !== undefined) assert.equal(o.timestamp.echo, m.timestamp.echo, `TSecr of ${where}`);
      }
    }
  }
  if (m.sack !== undefined) {
    if (m.sack === null) assert.equal(o.sack, undefined, `sack of ${where}`);
    else assert.deepEqual(o.sack?.map((b) => ({ left: b.left >>> 0, right: b.right >>> 0 })), m.sack.map((b) => ({ left: b.left >>> 0, right: b.right >>> 0 })), `sack of ${where}`);
  }
  return seg;
}

/** One connection (or listener) driven by hand, with a virtual clock. */
export class TcpHarness {
  readonly env = new RecordingEnv();
  readonly events = new RecordingEvents();
  now = 0;
  conn!: TcpConnection;
  listener: TcpListener | null = null;
  readonly config: TcpConfig;
  /** Ports of the peer (the test). */
  readonly peerPort: number;
  readonly localPort: number;

  constructor(overrides: Partial<TcpConfig> = {}, localPort = LOCAL_PORT, peerPort = REMOTE_PORT) {
    this.config = tcpConfig(overrides);
    this.localPort = localPort;
    this.peerPort = peerPort;
  }

  get tuple(): FourTuple {
    return { localAddress: LOCAL_ADDR, localPort: this.localPort, remoteAddress: REMOTE_ADDR, remotePort: this.peerPort };
  }

  /** Active open: the harness's connection sends a SYN (returned). */
  connect(noDelay = false): TcpSegmentOut {
    this.conn = TcpConnection.connect(this.env, this.config, this.tuple, this.events, this.now, noDelay);
    this.events.conn = this.conn;
    return this.expect({ flags: SYN });
  }

  /** Passive side: a listener on localPort. */
  listen(backlog = 16): TcpListener {
    this.listener = new TcpListener(this.env, this.config, LOCAL_ADDR, this.localPort, backlog, (c) => {
      c.events = this.events;
      this.events.conn = c;
    });
    return this.listener;
  }

  /** Deliver a SYN (or anything) to the listener; a created connection becomes `conn`. */
  toListener(spec: SegSpec): TcpConnection | null {
    const c = this.listener!.input(this.seg(spec), REMOTE_ADDR, this.peerPort, this.now);
    if (c !== null) this.conn = c;
    return c;
  }

  seg(spec: SegSpec): TcpSegment {
    return {
      srcPort: this.peerPort,
      dstPort: this.localPort,
      seq: spec.seq >>> 0,
      ack: (spec.ack ?? 0) >>> 0,
      flags: spec.flags,
      window: spec.window ?? 0xffff,
      urgent: 0,
      options: spec.options ?? {},
      payload: bytes(spec.data),
    };
  }

  /** The peer sends a segment to the connection. */
  send(spec: SegSpec): boolean {
    this.events.now = this.now;
    return this.conn.input(this.seg(spec), this.now);
  }

  /** The next emitted segment must match. */
  expect(m: SegMatch): TcpSegmentOut {
    const r = this.env.out.shift();
    assert.ok(r, `expected a segment ${JSON.stringify({ ...m, flags: m.flags !== undefined ? flagNames(m.flags) : undefined })}, got nothing`);
    return matchSeg(r.seg, m);
  }

  /** Nothing was emitted. */
  expectNothing(): void {
    const r = this.env.out[0];
    assert.equal(r, undefined, r ? `expected nothing, got ${flagNames(r.seg.flags)} seq=${r.seg.seq} ack=${r.seg.ack} len=${r.seg.payloadLength}` : '');
  }

  /** Drop whatever was emitted; returns it. */
  drain(): TcpSegmentOut[] {
    return this.env.out.splice(0).map((r) => r.seg);
  }

  /** Advance virtual time to `t`, running the connection's timers as they fall due. */
  advanceTo(t: number): void {
    this.events.now = this.now;
    for (let guard = 0; guard < 10000; guard++) {
      const d = this.conn.deadline;
      if (!(d <= t) || this.conn.state === 'CLOSED') break;
      if (d > this.now) this.now = d;
      this.events.now = this.now;
      this.conn.poll(this.now);
    }
    if (t > this.now) this.now = t;
  }

  advance(ms: number): void {
    this.advanceTo(this.now + ms);
  }

  /** Complete an active open against a peer with the given ISN and options. */
  establishActive(opts: { peerIss?: number; options?: TcpOptions; window?: number; noDelay?: boolean } = {}): { iss: number; irs: number } {
    const syn = this.connect(opts.noDelay);
    const irs = (opts.peerIss ?? 5000) >>> 0;
    this.send({ flags: SYN | ACK, seq: irs, ack: syn.seq + 1, window: opts.window ?? 0xffff, options: opts.options ?? { mss: 1460 } });
    this.expect({ flags: ACK, seq: syn.seq + 1, ack: irs + 1 });
    return { iss: syn.seq, irs };
  }

  /** Complete a passive open: peer SYN, our SYN-ACK, peer ACK. */
  establishPassive(opts: { peerIss?: number; options?: TcpOptions; window?: number } = {}): { iss: number; irs: number } {
    if (this.listener === null) this.listen();
    const irs = (opts.peerIss ?? 7000) >>> 0;
    this.toListener({ flags: SYN, seq: irs, window: opts.window ?? 0xffff, options: opts.options ?? { mss: 1460 } });
    const synAck = this.expect({ flags: SYN | ACK, ack: irs + 1 });
    this.send({ flags: ACK, seq: irs + 1, ack: synAck.seq + 1, window: opts.window ?? 0xffff });
    return { iss: synAck.seq, irs };
  }
}
