// A host's answer to iperf3 (`perf: true` in the manifest): the server side of iperf3's
// TCP test protocol on port 5201, over any node:net-like `createServer` (the host's
// netstack, or node:net in tests). Covers TCP tests, forward and reverse (-R), parallel
// streams (-P); UDP and bidirectional tests are refused (ACCESS_DENIED).
//
// The protocol (iperf3's iperf_api.h states, one signed byte each on the control
// connection): the client sends a 37-byte cookie; server PARAM_EXCHANGE, client sends
// its parameters (4-byte big-endian length, JSON); server CREATE_STREAMS, the client
// opens `parallel` data connections, each starting with the cookie; server TEST_START
// and TEST_RUNNING; data flows until the client sends TEST_END; server EXCHANGE_RESULTS,
// the client sends its results and the server its own (length, JSON); server
// DISPLAY_RESULTS; the client ends with IPERF_DONE.

import type { Duplex } from 'node:stream';

export const IPERF3_PORT = 5201;
const COOKIE_BYTES = 37;
const TEST_START = 1;
const TEST_RUNNING = 2;
const TEST_END = 4;
const PARAM_EXCHANGE = 9;
const CREATE_STREAMS = 10;
const CLIENT_TERMINATE = 12;
const EXCHANGE_RESULTS = 13;
const DISPLAY_RESULTS = 14;
const IPERF_DONE = 16;
const ACCESS_DENIED = 0xff; // -1
/** largest JSON message accepted (parameters or results) */
const MAX_JSON_BYTES = 64 * 1024;
/** largest block size (`len`) a reverse test may ask for */
const MAX_BLOCK_BYTES = 1024 * 1024;
const MAX_PARALLEL = 128;
/** tests waiting for their data connections at once */
const MAX_PENDING_TESTS = 16;

/** A connection as node:net and the netstack's net facade give it. */
export type Socket = Duplex & { setNoDelay?(noDelay?: boolean): unknown };

/** The listening server: node:net's Server or the netstack's NetServer. */
export interface PerfServer {
  listen(port: number, listeningListener: () => void): unknown;
  listen(port: number, host: string, listeningListener: () => void): unknown;
  once(event: 'error', fn: (e: Error) => void): unknown;
  off(event: 'error', fn: (e: Error) => void): unknown;
  close(): unknown;
}

export interface NetLike {
  createServer(listener: (socket: Socket) => void): PerfServer;
}

/** Reads exact byte counts from a socket. */
class SocketReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended: Error | null = null;
  /** bytes handed to `onData` instead once the reader is released */
  private sink: ((chunk: Buffer) => void) | null = null;

  constructor(socket: Socket) {
    socket.on('data', (c: Buffer) => {
      if (this.sink !== null) return this.sink(c);
      this.chunks.push(c);
      this.have += c.length;
      this.pump();
    });
    const end = (): void => {
      this.ended ??= new Error('connection closed');
      this.pump();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.want = { n, resolve, reject };
      this.pump();
    });
  }

  /** From now on every byte (those already read included) goes to `fn`. */
  release(fn: (chunk: Buffer) => void): void {
    this.sink = fn;
    for (const c of this.chunks) fn(c);
    this.chunks = [];
    this.have = 0;
  }

  private pump(): void {
    const w = this.want;
    if (w === null) return;
    if (this.have >= w.n) {
      const all = Buffer.concat(this.chunks);
      this.chunks = [all.subarray(w.n)];
      this.have -= w.n;
      this.want = null;
      w.resolve(all.subarray(0, w.n));
    } else if (this.ended !== null) {
      this.want = null;
      w.reject(this.ended);
    }
  }
}

interface Test {
  cookie: string;
  parallel: number;
  reverse: boolean;
  blockBytes: number;
  streams: { socket: Socket; bytes: number }[];
  allConnected: () => void;
  running: boolean;
  startedAt: number;
}

/** Answer iperf3 clients on `port` of `net`; resolves with the listening server. */
export function startIperf3Server(net: NetLike, port = IPERF3_PORT, host?: string): Promise<PerfServer> {
  const pending = new Map<string, Test>();
  const server = net.createServer((socket) => {
    socket.setNoDelay?.(true);
    const reader = new SocketReader(socket);
    socket.on('error', () => {});
    void reader
      .read(COOKIE_BYTES)
      .then((cookieBytes) => {
        const cookie = cookieBytes.toString('latin1');
        const test = pending.get(cookie);
        if (test !== undefined) return dataStream(test, socket, reader);
        return control(cookie, socket, reader, pending);
      })
      .catch(() => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const ready = (): void => {
      server.off('error', reject);
      resolve(server);
    };
    if (host !== undefined) server.listen(port, host, ready);
    else server.listen(port, ready);
  });
}

function dataStream(test: Test, socket: Socket, reader: SocketReader): void {
  if (test.streams.length >= test.parallel) {
    socket.destroy();
    return;
  }
  const stream = { socket, bytes: 0 };
  test.streams.push(stream);
  reader.release((c) => {
    if (test.running) stream.bytes += c.length;
  });
  if (test.streams.length === test.parallel) test.allConnected();
}

function state(socket: Socket, s: number): void {
  socket.write(Buffer.from([s]));
}

async function readJson(reader: SocketReader): Promise<Record<string, unknown>> {
  const n = (await reader.read(4)).readUInt32BE(0);
  if (n > MAX_JSON_BYTES) throw new Error('JSON message too large');
  const v: unknown = JSON.parse((await reader.read(n)).toString('utf8'));
  if (typeof v !== 'object' || v === null) throw new Error('JSON message is not an object');
  return v as Record<string, unknown>;
}

function writeJson(socket: Socket, v: unknown): void {
  const body = Buffer.from(JSON.stringify(v), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length, 0);
  socket.write(Buffer.concat([len, body]));
}

async function control(cookie: string, socket: Socket, reader: SocketReader, pending: Map<string, Test>): Promise<void> {
  state(socket, PARAM_EXCHANGE);
  const params = await readJson(reader);
  const parallel = typeof params.parallel === 'number' ? params.parallel : 1;
  const bad = params.udp === true || params.sctp === true || params.bidirectional === true || !(parallel >= 1 && parallel <= MAX_PARALLEL) || pending.size >= MAX_PENDING_TESTS;
  if (bad) {
    state(socket, ACCESS_DENIED);
    socket.end();
    return;
  }
  const blockBytes = typeof params.len === 'number' && params.len > 0 && params.len <= MAX_BLOCK_BYTES ? params.len : 128 * 1024;
  let allConnected!: () => void;
  const connected = new Promise<void>((r) => (allConnected = r));
  const test: Test = { cookie, parallel, reverse: params.reverse === true, blockBytes, streams: [], allConnected, running: false, startedAt: 0 };
  pending.set(cookie, test);
  const cleanup = (): void => {
    pending.delete(cookie);
    test.running = false;
    for (const s of test.streams) s.socket.destroy();
  };
  socket.once('close', cleanup);
  try {
    state(socket, CREATE_STREAMS);
    await Promise.race([connected, new Promise<never>((_, reject) => socket.once('close', () => reject(new Error('control closed'))))]);
    pending.delete(cookie);
    test.running = true;
    test.startedAt = performance.now();
    state(socket, TEST_START);
    state(socket, TEST_RUNNING);
    if (test.reverse) for (const s of test.streams) send(test, s);
    for (;;) {
      const [s] = await reader.read(1);
      if (s === TEST_END) break;
      if (s === CLIENT_TERMINATE) throw new Error('client terminated');
    }
    test.running = false;
    const seconds = (performance.now() - test.startedAt) / 1000;
    state(socket, EXCHANGE_RESULTS);
    const theirs = await readJson(reader);
    const ids = Array.isArray(theirs.streams) ? theirs.streams.map((x, i) => (typeof (x as { id?: unknown }).id === 'number' ? (x as { id: number }).id : i + 1)) : [];
    writeJson(socket, {
      cpu_util_total: 0,
      cpu_util_user: 0,
      cpu_util_system: 0,
      sender_has_retransmits: test.reverse ? 0 : -1,
      streams: test.streams.map((s, i) => ({ id: ids[i] ?? i + 1, bytes: s.bytes, retransmits: test.reverse ? 0 : -1, jitter: 0, errors: 0, packets: 0, start_time: 0, end_time: seconds })),
    });
    state(socket, DISPLAY_RESULTS);
    const [done] = await reader.read(1);
    if (done !== IPERF_DONE) throw new Error('no IPERF_DONE');
    socket.end();
  } finally {
    cleanup();
  }
}

/** A reverse test: write blocks to the stream as fast as it takes them, until the test ends. */
function send(test: Test, s: { socket: Socket; bytes: number }): void {
  const block = Buffer.alloc(test.blockBytes, 0x61);
  const pump = (): void => {
    while (test.running && !s.socket.destroyed) {
      s.bytes += block.length;
      if (!s.socket.write(block)) {
        s.socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}
