// Deterministic TCP transfers between two stacks over an impaired memory link, in
// VirtualClock time, using stack.tcp directly.

import { createHash, type Hash } from 'node:crypto';
import { createLinkPair, type LinkPairOptions } from '../../netstack/link/memory.js';
import { silentLogger } from '../../netstack/log.js';
import { Stack } from '../../netstack/stack.js';
import { VirtualClock } from '../../netstack/time.js';
import type { TcpConfig } from '../../netstack/tcp/config.js';
import type { TcpConnectionApi, TcpConnectionEvents, TcpErrorCode } from '../../netstack/tcp/types.js';

const CHUNK = 64 * 1024;

/** A seeded byte source (xorshift32 words), so both ends can name the bytes they expect. */
class ByteSource {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(n: number): Uint8Array {
    const words = new Uint32Array(Math.ceil(n / 4));
    let s = this.s;
    for (let i = 0; i < words.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      words[i] = s;
    }
    this.s = s;
    return new Uint8Array(words.buffer, 0, n);
  }
}

/** One side of a transfer: sends `total` bytes, hashes what it sends and receives. */
class Side {
  conn: TcpConnectionApi | null = null;
  sent = 0;
  received = 0;
  finReceived = false;
  closed = false;
  error: TcpErrorCode | null = null;
  shutdownDone = false;
  readonly sentHash: Hash = createHash('sha256');
  readonly receivedHash: Hash = createHash('sha256');
  private pending: Uint8Array | null = null;
  private source: ByteSource;
  private scheduled = false;
  private toConsume = 0;

  constructor(
    private readonly stack: Stack,
    readonly total: number,
    seed: number,
    private readonly expectIn: number,
    /** close only after the peer's FIN (the passive closer) */
    private readonly passiveClose: boolean,
  ) {
    this.source = new ByteSource(seed);
  }

  events(): TcpConnectionEvents {
    return {
      established: () => this.kick(),
      data: (chunk) => {
        this.receivedHash.update(chunk);
        this.received += chunk.length;
        this.toConsume += chunk.length;
        this.kick();
      },
      fin: () => {
        this.finReceived = true;
        this.kick();
      },
      sendSpace: () => this.kick(),
      closed: (err) => {
        this.closed = true;
        this.error = err;
      },
    };
  }

  /** Act on events later, off the stack's timer, never inside the connection's call. */
  kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.stack.schedule(this.stack.now(), () => {
      this.scheduled = false;
      this.work();
    });
  }

  private work(): void {
    const conn = this.conn;
    if (conn === null || this.closed) return;
    const now = this.stack.now();
    if (this.toConsume > 0) {
      const n = this.toConsume;
      this.toConsume = 0;
      conn.consume(n, now);
    }
    while (this.sent < this.total) {
      if (this.pending === null) {
        this.pending = this.source.next(Math.min(CHUNK, this.total - this.sent));
        this.sentHash.update(this.pending);
      }
      const n = conn.send(this.pending, now);
      this.sent += n;
      if (n === this.pending.length) this.pending = null;
      else {
        this.pending = this.pending.subarray(n);
        if (n === 0) break;
        break;
      }
    }
    if (this.sent >= this.total && this.received >= this.expectIn && (this.finReceived || !this.passiveClose) && !this.shutdownDone) {
      this.shutdownDone = true;
      conn.shutdown(now);
    }
  }
}

export interface TransferCase {
  name: string;
  link: LinkPairOptions;
  bytes: number;
  mtu?: number;
  tcp?: Partial<TcpConfig>;
  /** both ends shut down as soon as their own work is done (RFC 9293 section 3.6 case 3) */
  simultaneousClose?: boolean;
  /** virtual ms before the case is declared stalled */
  maxTimeMs?: number;
}

export interface TransferResult {
  /** all bytes and both FINs arrived */
  ok: boolean;
  /** both connections then reached CLOSED with no error */
  closedCleanly: boolean;
  states: string;
  reason: string;
  /** virtual time the data transfer took */
  virtualMs: number;
  aToB: { sent: string; received: string; bytes: number };
  bToA: { sent: string; received: string; bytes: number };
  client: Side;
  server: Side;
  retransmits: number;
  linkDrops: number;
  stacks: [Stack, Stack];
}

/** Run one bidirectional transfer to completion or stall. */
export function runTransfer(c: TransferCase): TransferResult {
  const clock = new VirtualClock(0);
  const [la, lb] = createLinkPair({ ...c.link, clock });
  const mtu = c.mtu ?? 65535;
  const a = new Stack({ address: '10.77.0.2', clock, mtu, tcp: c.tcp, logger: silentLogger, seed: 1 });
  const b = new Stack({ address: '10.77.0.3', clock, mtu, tcp: c.tcp, logger: silentLogger, seed: 2 });
  a.attach(la);
  b.attach(lb);
  const client = new Side(a, c.bytes, 0x1234, c.bytes, false);
  const server = new Side(b, c.bytes, 0xabcd, c.bytes, !(c.simultaneousClose ?? false));
  const listener = b.tcp.listen(80, {}, (conn) => {
    server.conn = conn;
    conn.events = server.events();
    server.kick();
  });
  if (typeof listener === 'string') throw new Error(listener);
  const conn = a.tcp.connect(b.localAddress, 80, client.events());
  if (typeof conn === 'string') throw new Error(conn);
  client.conn = conn;
  const maxTime = c.maxTimeMs ?? 600_000;
  const transferred = (): boolean =>
    client.received === c.bytes && server.received === c.bytes && client.finReceived && server.finReceived;
  const ok = clock.runUntil(transferred, maxTime);
  const transferMs = clock.now();
  // RFC 9293 section 3.6: then the close handshake; TIME-WAIT (2*MSL) ends the active side.
  const closedCleanly = ok && clock.runUntil(() => client.closed && server.closed, transferMs + 300_000);
  const states = `client ${client.conn.state} server ${server.conn?.state ?? 'none'}`;
  listener.close();
  let retransmits = 0;
  for (const s of [a, b]) {
    for (const cn of (s as unknown as { tcpEndpoints: { connections(): Iterable<{ stats: { retransmits: number } }> } }).tcpEndpoints.connections()) {
      retransmits += cn.stats.retransmits;
    }
  }
  const result: TransferResult = {
    ok,
    reason: ok ? '' : `stalled at ${clock.now().toFixed(0)} ms: client sent ${client.sent} got ${client.received}, server sent ${server.sent} got ${server.received}, timers ${clock.pending}, ${states}`,
    virtualMs: transferMs,
    closedCleanly,
    states,
    aToB: { sent: client.sentHash.digest('hex'), received: server.receivedHash.digest('hex'), bytes: server.received },
    bToA: { sent: server.sentHash.digest('hex'), received: client.receivedHash.digest('hex'), bytes: client.received },
    client,
    server,
    retransmits,
    linkDrops: la.counters.dropLoss + lb.counters.dropLoss + la.counters.dropQueueFull + lb.counters.dropQueueFull,
    stacks: [a, b],
  };
  a.close();
  b.close();
  la.close();
  return result;
}
