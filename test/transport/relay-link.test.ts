import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createHash } from 'node:crypto';
import { RelayLink, isRelayLinkError, splitPackets } from '../../transport/relay-link.js';
import { silentLogger } from '../../hostfn/log.js';
import { silentLogger as silentStackLogger } from '../../netstack/log.js';
import { Stack } from '../../netstack/stack.js';
import type { Link, PacketHandler } from '../../netstack/link/link.js';
import type { NetSocket } from '../../netstack/api/net.js';
import {
  ACK,
  IPV4_FLAG_DF,
  IPV4_HEADER_LENGTH,
  PROTO_TCP,
  buildTcpPacket,
  emitIpv4Header,
  emitTcpHeader,
  isWireError,
  parseIpv4,
  parseTcp,
  tcpHeaderLength,
  type TcpSegmentOut,
} from '../../netstack/wire/index.js';
import { testWelcome } from '../support/welcome.js';
import { serverFrame } from '../support/ws-frames.js';

/** A minimal IPv4 packet: header with version/IHL and total length, then a payload. */
function ipv4(payloadLen: number, fill = 0): Uint8Array {
  const p = new Uint8Array(20 + payloadLen);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p.fill(fill, 20);
  return p;
}

function welcome(address = '10.77.0.5', session = 's1') {
  return testWelcome({ host: 'h', address, session });
}

interface FakeRelay {
  url: string;
  port: number;
  conns: WebSocket[];
  frames: { binary: boolean; data: Buffer }[];
  auths: string[];
  next(): Promise<WebSocket>;
  close(): Promise<void>;
}

async function startFakeRelay(
  opts: { port?: number; refuse?: (req: IncomingMessage) => number; autoPong?: boolean; afterWelcome?: Uint8Array[] } = {},
): Promise<FakeRelay> {
  const wss = new WebSocketServer({
    port: opts.port ?? 0,
    host: '127.0.0.1',
    autoPong: opts.autoPong ?? true,
    verifyClient: (info, cb) => {
      const status = opts.refuse?.(info.req) ?? 0;
      if (status) cb(false, status, 'refused', { 'X-Imach-Error': 'token expired' });
      else cb(true);
    },
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const port = (wss.address() as AddressInfo).port;
  const conns: WebSocket[] = [];
  const frames: FakeRelay['frames'] = [];
  const auths: string[] = [];
  let waiters: ((ws: WebSocket) => void)[] = [];
  wss.on('connection', (ws, req) => {
    auths.push(String(req.headers.authorization));
    assert.equal(ws.protocol, 'imach.v1');
    conns.push(ws);
    ws.on('message', (data, binary) => frames.push({ binary, data: data as Buffer }));
    ws.send(JSON.stringify(welcome('10.77.0.5', `s${conns.length}`)));
    for (const p of opts.afterWelcome ?? []) ws.send(p, { binary: true });
    const w = waiters;
    waiters = [];
    for (const f of w) f(ws);
  });
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    conns,
    frames,
    auths,
    next: () => new Promise((r) => waiters.push(r)),
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

const SRC = 0x0a4d0005;
const DST = 0x0a4d0009;

/** Bytes 0..n-1 of a pattern, as views at odd offsets of larger buffers (like send-buffer blocks). */
function payloadParts(sizes: number[], seed: number): Uint8Array[] {
  let x = seed;
  return sizes.map((n) => {
    const backing = new Uint8Array(n + 3);
    for (let i = 0; i < backing.length; i++) backing[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    return new Uint8Array(backing.buffer, 1, n);
  });
}

function segment(parts: Uint8Array[], seq: number): TcpSegmentOut {
  return {
    srcPort: 4000,
    dstPort: 80,
    seq,
    ack: 77,
    flags: ACK,
    window: 512,
    urgent: 0,
    options: { timestamp: { value: 1, echo: 2 } },
    payload: parts,
    payloadLength: parts.reduce((n, p) => n + p.length, 0),
  };
}

/** A segment as header and payload views, the way the stack hands it to Link.sendGather. */
function gathered(seg: TcpSegmentOut, id: number): { header: Uint8Array; payload: Uint8Array[]; length: number } {
  const header = new Uint8Array(IPV4_HEADER_LENGTH + tcpHeaderLength(seg.options));
  emitTcpHeader(seg, header, IPV4_HEADER_LENGTH, SRC, DST);
  const length = header.length + seg.payloadLength;
  emitIpv4Header({ src: SRC, dst: DST, protocol: PROTO_TCP, totalLength: length, ttl: 64, id, flags: IPV4_FLAG_DF }, header, 0);
  return { header, payload: seg.payload as Uint8Array[], length };
}

function contiguous(seg: TcpSegmentOut, id: number): Uint8Array {
  return buildTcpPacket({ src: SRC, dst: DST, ttl: 64, id }, seg);
}

function assertValidTcp(p: Uint8Array): void {
  const ip = parseIpv4(p, true);
  assert.ok(!isWireError(ip), 'valid IPv4 header');
  assert.ok(!isWireError(parseTcp(ip.payload, ip.src, ip.dst, true)), 'valid TCP checksum');
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('transport/relay-link', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function relay(opts?: Parameters<typeof startFakeRelay>[0]) {
    const r = await startFakeRelay(opts);
    cleanups.push(() => r.close());
    return r;
  }

  async function link(r: FakeRelay, extra: Partial<Parameters<typeof RelayLink.connect>[0]> = {}) {
    const l = await RelayLink.connect({ url: r.url, token: 'tok', logger: silentLogger, ...extra });
    if (isRelayLinkError(l)) throw new Error(l.message);
    cleanups.push(() => l.close());
    return l;
  }

  describe('splitPackets', () => {
    it('splits back-to-back packets by total length', () => {
      const a = ipv4(10, 1);
      const b = ipv4(0);
      const c = ipv4(300, 3);
      const frame = Buffer.concat([a, b, c]);
      const { packets, malformed } = splitPackets(frame);
      assert.equal(malformed, false);
      assert.deepEqual(
        packets.map((p) => p.length),
        [30, 20, 320],
      );
      assert.equal(packets[2]![20], 3);
    });

    it('keeps the packets before a malformed one and flags the rest', () => {
      const bad = ipv4(4);
      bad[0] = 0x65; // version 6
      const r = splitPackets(Buffer.concat([ipv4(1), bad, ipv4(1)]));
      assert.equal(r.packets.length, 1);
      assert.equal(r.malformed, true);
      const truncated = ipv4(50).subarray(0, 40);
      assert.equal(splitPackets(truncated).malformed, true);
      const shortTotal = ipv4(0);
      shortTotal[3] = 10;
      assert.equal(splitPackets(shortTotal).malformed, true);
    });
  });

  it('joins with the bearer token and exposes the welcome', async () => {
    const r = await relay();
    const l = await link(r);
    assert.equal(l.welcome.address, '10.77.0.5');
    assert.equal(l.welcome.gateway, '10.77.0.1');
    assert.equal(l.mtu, 65535);
    assert.equal(l.state, 'open');
    assert.deepEqual(r.auths, ['Bearer tok']);
  });

  it('sends packets queued in one tick as one binary frame', async () => {
    const r = await relay();
    const l = await link(r);
    const pkts = [ipv4(5, 1), ipv4(6, 2), ipv4(7, 3)];
    for (const p of pkts) l.send(p);
    await until(() => r.frames.length >= 1, 'a frame');
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(r.frames.length, 1);
    assert.equal(r.frames[0]!.binary, true);
    assert.deepEqual(new Uint8Array(r.frames[0]!.data), new Uint8Array(Buffer.concat(pkts)));
    assert.equal(l.counters.packetsOut, 3);
    assert.equal(l.counters.framesOut, 1);
  });

  it('bounds a batch by packet count', async () => {
    const r = await relay();
    const l = await link(r, { maxBatchPackets: 4 });
    for (let i = 0; i < 10; i++) l.send(ipv4(1, i));
    await until(() => r.frames.length >= 3, 'three frames');
    assert.deepEqual(
      r.frames.map((f) => splitPackets(f.data).packets.length),
      [4, 4, 2],
    );
  });

  it('bounds a batch by maxBatchBytes', async () => {
    const r = await relay();
    const l = await link(r, { maxBatchBytes: 250 });
    for (let i = 0; i < 5; i++) l.send(ipv4(80, i)); // 100 bytes each
    l.send(ipv4(400)); // over the batch limit: dropped
    await until(() => r.frames.length >= 3, 'three frames');
    assert.deepEqual(
      r.frames.map((f) => f.data.length),
      [200, 200, 100],
    );
    assert.equal(l.counters.drops.tooBig, 1);
  });

  it('delivers received packets and counts a malformed tail', async () => {
    const r = await relay();
    const l = await link(r);
    const got: Uint8Array[] = [];
    l.onReceive((p) => got.push(Uint8Array.from(p)));
    const garbage = new Uint8Array([0x45, 0, 0xff, 0xff, 1, 2, 3]);
    r.conns[0]!.send(Buffer.concat([ipv4(3, 7), ipv4(4, 8), garbage]), { binary: true });
    r.conns[0]!.send(Buffer.concat([ipv4(2, 9)]), { binary: true });
    await until(() => got.length >= 3, 'three packets');
    assert.deepEqual(
      got.map((p) => p[20]),
      [7, 8, 9],
    );
    assert.equal(l.counters.drops.malformed, 1);
    assert.equal(l.state, 'open');
  });

  describe('binary frames spanning socket reads (client end)', () => {
    it('delivers packets of frames cut at every kind of point, in order with control frames', async () => {
      const r = await relay();
      const l = await link(r);
      const got: Uint8Array[] = [];
      l.onReceive((p) => got.push(Uint8Array.from(p)));
      const controls: string[] = [];
      l.onControl((m) => controls.push(m.type));
      const big = [ipv4(60_000, 1), ipv4(65_515 - 20, 2), ipv4(3000, 3)];
      const small = [ipv4(1, 4), ipv4(2, 5)];
      const stream = Buffer.concat([
        serverFrame(Buffer.concat(big)),
        serverFrame(Buffer.from(JSON.stringify({ type: 'drain', reason: 'test', graceMs: 10 })), 1),
        serverFrame(Buffer.concat(small)),
      ]);
      // cuts inside the first frame's header, inside a packet header, between packets and
      // inside the text frame
      const cuts = [1, 3, 12, 25, 60_020, 60_030, 120_000, stream.length - 40, stream.length - 5];
      const sock = (r.conns[0] as unknown as { _socket: import('node:net').Socket })._socket;
      let at = 0;
      for (const c of [...cuts, stream.length]) {
        sock.write(stream.subarray(at, c));
        at = c;
        await new Promise((res) => setTimeout(res, 2));
      }
      await until(() => got.length === 5, 'five packets');
      assert.deepEqual(got.map((p) => [p.length, p[20]]), [...big, ...small].map((p) => [p.length, p[20]]));
      for (const [i, p] of [...big, ...small].entries()) assert.deepEqual(got[i], p);
      assert.deepEqual(controls, ['drain']);
      assert.equal(l.counters.framesIn, 2);
      assert.equal(l.counters.drops.malformed, 0);
    });

    it('counts a malformed packet in a frame that spans reads, keeping the packets before it', async () => {
      const r = await relay();
      const l = await link(r);
      const got: number[] = [];
      l.onReceive((p) => got.push(p[20]!));
      const bad = ipv4(10, 9);
      bad[0] = 0x65;
      const frame = serverFrame(Buffer.concat([ipv4(40_000, 7), ipv4(40_000, 8), bad, ipv4(10, 10)]));
      const sock = (r.conns[0] as unknown as { _socket: import('node:net').Socket })._socket;
      sock.write(frame.subarray(0, 30_000));
      await new Promise((res) => setTimeout(res, 5));
      sock.write(frame.subarray(30_000));
      await until(() => l.counters.drops.malformed === 1, 'malformed counted');
      assert.deepEqual(got, [7, 8]);
      assert.equal(l.counters.framesIn, 1);
    });
  });

  it('keeps packets sent right behind the welcome until a handler is set', async () => {
    const r = await relay({ afterWelcome: [ipv4(1, 11), Buffer.concat([ipv4(1, 12), ipv4(1, 13)])] });
    const l = await link(r);
    l.pauseReceive();
    await new Promise((res) => setTimeout(res, 50));
    const got: number[] = [];
    l.onReceive((p) => got.push(p[20]!));
    assert.deepEqual(got, [], 'held while paused');
    l.resumeReceive();
    assert.deepEqual(got, [11, 12, 13]);
  });

  it('passes control messages both ways and ignores bad control frames', async () => {
    const r = await relay();
    const l = await link(r);
    const got: string[] = [];
    l.onControl((m) => got.push(m.type === 'unknown' ? `unknown:${m.original}` : m.type));
    r.conns[0]!.send('not json');
    r.conns[0]!.send(JSON.stringify({ noType: 1 }));
    r.conns[0]!.send(JSON.stringify({ type: 'future-thing', x: 1 }));
    r.conns[0]!.send(JSON.stringify({ type: 'drain', reason: 'idle', graceMs: 100 }));
    await until(() => got.length >= 2, 'control messages');
    assert.deepEqual(got, ['unknown:future-thing', 'drain']);
    assert.equal(l.counters.drops.badControl, 2);
    assert.equal(l.sendControl({ type: 'released', reason: 'exited' }), true);
    await until(() => r.frames.some((f) => !f.binary), 'control frame');
    const text = r.frames.find((f) => !f.binary)!.data.toString();
    assert.deepEqual(JSON.parse(text), { type: 'released', reason: 'exited' });
  });

  it('returns a refused token as an error value with the reason', async () => {
    const r = await relay({ refuse: () => 401 });
    const l = await RelayLink.connect({ url: r.url, token: 'bad', logger: silentLogger });
    assert.ok(isRelayLinkError(l));
    assert.equal(l.kind, 'auth');
    assert.equal(l.status, 401);
    assert.match(l.message, /token expired/);
  });

  it('returns an unreachable relay as an error value', async () => {
    const r = await relay();
    const url = r.url;
    await r.close();
    const l = await RelayLink.connect({ url, token: 't', logger: silentLogger });
    assert.ok(isRelayLinkError(l));
    assert.equal(l.kind, 'network');
  });

  it('reconnects after a drop, holds packets meanwhile (bounded, oldest dropped)', async () => {
    const r = await relay();
    let n = 0;
    const l = await link(r, {
      token: () => `tok${++n}`,
      backoffInitialMs: 20,
      backoffMaxMs: 50,
      maxQueuePackets: 3,
    });
    const states: string[] = [];
    l.onStateChange((s) => states.push(s));
    const second = r.next();
    r.conns[0]!.terminate();
    await until(() => l.state === 'reconnecting', 'reconnecting');
    for (let i = 1; i <= 5; i++) l.send(ipv4(1, i));
    await second;
    await until(() => r.frames.length >= 1, 'held packets');
    const { packets } = splitPackets(r.frames[0]!.data);
    assert.deepEqual(
      packets.map((p) => p[20]),
      [3, 4, 5],
    );
    assert.equal(l.counters.drops.queueFull, 2);
    assert.equal(l.counters.reconnects, 1);
    assert.equal(l.welcome.address, '10.77.0.5');
    assert.equal(l.welcome.session, 's2');
    assert.deepEqual(r.auths, ['Bearer tok1', 'Bearer tok2']);
    assert.deepEqual(states, ['reconnecting', 'open']);
  });

  it('reconnects to a relay restarted on the same port', async () => {
    const r = await startFakeRelay();
    const l = await link(r, { backoffInitialMs: 20, backoffMaxMs: 100 });
    await r.close();
    await until(() => l.state === 'reconnecting', 'reconnecting');
    const r2 = await relay({ port: r.port });
    await until(() => l.state === 'open', 'open again');
    l.send(ipv4(2, 42));
    await until(() => r2.frames.length >= 1, 'a frame on the new relay');
    assert.equal(r2.frames[0]!.data[20], 42);
  });

  it('gives up after giveUpAfterMs and reports it', async () => {
    const r = await startFakeRelay();
    const l = await link(r, { backoffInitialMs: 20, backoffMaxMs: 40, giveUpAfterMs: 300 });
    await r.close();
    const err = await l.ended;
    assert.ok(err);
    assert.equal(err.kind, 'gaveUp');
    assert.equal(l.state, 'closed');
    l.send(ipv4(1));
    assert.equal(l.counters.drops.closed, 1);
  });

  it('detects a relay that stops answering pings', async () => {
    const r = await relay({ autoPong: false });
    const l = await link(r, { pingIntervalMs: 50, deadAfterMs: 200, backoffInitialMs: 20 });
    const second = r.next();
    await second;
    await until(() => l.counters.reconnects >= 1 && l.state === 'open', 'reconnect');
  });

  it('a blocked event loop (an app doing synchronous work) is not taken for a dead relay', async () => {
    const r = await relay();
    const l = await link(r, { pingIntervalMs: 50, deadAfterMs: 200, backoffInitialMs: 20 });
    await new Promise((res) => setTimeout(res, 120));
    const until = Date.now() + 700;
    while (Date.now() < until) {
      // busy: no timer, no socket read runs
    }
    await new Promise((res) => setTimeout(res, 400));
    assert.equal(l.counters.reconnects, 0);
    assert.equal(l.state, 'open');
    assert.equal(r.conns.length, 1);
  });

  it('ends without reconnecting when the relay says the session was replaced', async () => {
    const r = await relay();
    const l = await link(r, { backoffInitialMs: 20 });
    r.conns[0]!.close(4000, 'replaced by a new session');
    const err = await l.ended;
    assert.equal(err?.kind, 'replaced');
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(r.conns.length, 1);
  });

  describe('gathered packets (sendGather)', () => {
    it('are byte-identical on the wire to contiguous ones, with valid checksums', async () => {
      const r = await relay();
      const l = await link(r);
      // Odd part lengths put later parts at odd positions of the checksummed bytes.
      const cases = [[1460], [3, 4465, 1001], [60_001, 9], [1, 1, 2047]];
      const expected: Uint8Array[] = [];
      cases.forEach((sizes, i) => {
        const seg = segment(payloadParts(sizes, i + 1), 1000 * i);
        const g = gathered(seg, i);
        l.sendGather(g.header, g.payload, g.length);
        expected.push(contiguous(seg, i));
      });
      // One per frame as well (the path for a lone packet).
      await until(() => r.frames.length >= 1, 'a frame');
      const lone = segment(payloadParts([30000, 5], 9), 5);
      const g = gathered(lone, 9);
      l.sendGather(g.header, g.payload, g.length);
      await until(() => r.frames.length >= 2, 'two frames');
      const got = r.frames.flatMap((f) => splitPackets(f.data).packets);
      assert.equal(got.length, 5);
      [...expected, contiguous(lone, 9)].forEach((e, i) => {
        assert.ok(Buffer.from(got[i]!).equals(e), `packet ${i} as built contiguously`);
        assertValidTcp(got[i]!);
      });
      assert.equal(l.counters.packetsOut, 5);
    });

    it('batch with plain packets by count and bytes, in order, copied or gathered', async () => {
      const r = await relay();
      const l = await link(r, { maxBatchPackets: 3, maxBatchBytes: 40_000 });
      const sent: Uint8Array[] = [];
      const plain = (n: number, fill: number) => {
        const p = ipv4(n, fill);
        l.send(p);
        sent.push(p);
      };
      const gather = (sizes: number[], seq: number) => {
        const seg = segment(payloadParts(sizes, seq), seq);
        const g = gathered(seg, seq);
        l.sendGather(g.header, g.payload, g.length);
        sent.push(contiguous(seg, seq));
      };
      // Small ones share a copied frame; large ones go out as a gather list.
      plain(10, 1);
      gather([1500], 2);
      plain(20, 3);
      gather([12_000, 7], 4);
      gather([20_001], 5);
      plain(5, 6);
      gather([30_000], 7);
      gather([2000, 2000], 8);
      l.send(ipv4(50_000)); // over maxBatchBytes: dropped, and the batches go on around it
      await until(() => l.counters.packetsOut >= 8, 'every packet');
      await until(() => r.frames.reduce((n, f) => n + splitPackets(f.data).packets.length, 0) >= 8, 'every packet at the relay');
      const frames = r.frames.map((f) => splitPackets(f.data));
      assert.ok(frames.every((f) => !f.malformed));
      const lengths = sent.map((p) => p.length);
      const expectedFrames: number[][] = [];
      let cur: number[] = [];
      let bytes = 0;
      for (const len of lengths) {
        if (cur.length > 0 && (cur.length >= 3 || bytes + len > 40_000)) {
          expectedFrames.push(cur);
          cur = [];
          bytes = 0;
        }
        cur.push(len);
        bytes += len;
      }
      expectedFrames.push(cur);
      assert.deepEqual(
        frames.map((f) => f.packets.map((p) => p.length)),
        expectedFrames,
      );
      const got = frames.flatMap((f) => f.packets);
      sent.forEach((e, i) => assert.ok(Buffer.from(got[i]!).equals(e), `packet ${i}`));
      assert.equal(l.counters.drops.tooBig, 1);
      assert.equal(l.counters.framesOut, expectedFrames.length);
    });

    it('queued while reconnecting, go out intact on the new connection', async () => {
      const r = await relay();
      const l = await link(r, { backoffInitialMs: 20, backoffMaxMs: 50 });
      const second = r.next();
      r.conns[0]!.terminate();
      await until(() => l.state === 'reconnecting', 'reconnecting');
      const sent: Uint8Array[] = [];
      for (let i = 0; i < 3; i++) {
        const seg = segment(payloadParts([8000 + i, 3000], i + 20), i);
        const g = gathered(seg, i);
        l.sendGather(g.header, g.payload, g.length);
        sent.push(contiguous(seg, i));
        const small = ipv4(4, i);
        l.send(small);
        sent.push(small);
      }
      await second;
      await until(() => r.frames.length >= 1, 'held packets');
      const got = r.frames.flatMap((f) => splitPackets(f.data).packets);
      assert.equal(got.length, 6);
      sent.forEach((e, i) => assert.ok(Buffer.from(got[i]!).equals(e), `packet ${i}`));
      assert.equal(l.counters.reconnects, 1);
    });

    it('are not offered by a closed link, which counts them as dropped', async () => {
      const r = await relay();
      const l = await link(r);
      l.close();
      const g = gathered(segment(payloadParts([2000], 1), 1), 1);
      l.sendGather(g.header, g.payload, g.length);
      assert.equal(l.counters.drops.closed, 1);
    });

    it('carry a stack\'s TCP stream intact to a stack behind the relay, retransmissions too', async function () {
      this.timeout(20_000);
      const r = await relay();
      const l = await link(r);
      let gatheredCount = 0;
      const sendGather = l.sendGather.bind(l);
      l.sendGather = (header, payload, length) => {
        gatheredCount++;
        sendGather(header, payload, length);
      };
      const a = new Stack({ address: '10.77.0.5', mtu: 65535, logger: silentStackLogger, seed: 1 });
      a.attach(l);
      cleanups.push(() => a.close());
      // The peer stack lives at the relay: it gets A's packets from the frames (every 40th
      // one lost, so that some are retransmitted) and answers with frames of its own.
      const relayWs = r.conns[0]!;
      let handler: PacketHandler = () => {};
      const peerLink: Link = {
        send: (p) => relayWs.send(p, { binary: true }),
        onReceive: (h) => (handler = h),
        close: () => {},
      };
      const b = new Stack({ address: '10.77.0.9', mtu: 65535, logger: silentStackLogger, seed: 2 });
      b.attach(peerLink);
      cleanups.push(() => b.close());
      let n = 0;
      relayWs.on('message', (data, binary) => {
        if (!binary) return;
        for (const p of splitPackets(data as Buffer).packets) if (++n % 40 !== 0) handler(p);
      });
      const total = 4 << 20;
      const chunk = 100_000;
      const sentHash = createHash('sha256');
      const recvHash = createHash('sha256');
      let received = 0;
      const done = new Promise<void>((resolve) => {
        const srv = b.net.createServer((s: NetSocket) => {
          s.on('data', (d: Buffer) => {
            recvHash.update(d);
            received += d.length;
          });
          s.on('end', () => {
            s.end();
            srv.close();
            resolve();
          });
        });
        srv.listen(80);
      });
      const sock = a.net.connect(80, '10.77.0.9');
      // One buffer, refilled after every write's callback.
      const buf = new Uint8Array(chunk);
      let written = 0;
      const writeNext = (): void => {
        if (written >= total) {
          sock.end();
          return;
        }
        const len = Math.min(chunk, total - written);
        for (let i = 0; i < len; i++) buf[i] = ((written + i) * 2654435761) >>> 27;
        const view = buf.subarray(0, len);
        sentHash.update(view);
        written += len;
        sock.write(view, writeNext);
      };
      sock.once('connect', writeNext);
      await done;
      sock.destroy();
      assert.equal(received, total);
      assert.equal(recvHash.digest('hex'), sentHash.digest('hex'));
      assert.ok(gatheredCount > 0, 'segments went out as gather lists');
      assert.ok(a.counters.packetsOut > gatheredCount, 'small segments (the handshake) went out contiguous');
    });
  });

  it('close() ends the link with no error', async () => {
    const r = await relay();
    const l = await link(r);
    l.close();
    assert.equal(await l.ended, null);
    assert.equal(l.state, 'closed');
  });
});
