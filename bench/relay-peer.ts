// A benchmark peer in its own process (started by bench/relay.ts with fork()): either a
// raw WebSocket client sending hand-built packets, a plain ws forwarder (the baseline
// relay), or a host with the TypeScript stack joined to the imach relay.
// Config: JSON in argv[2]; results go back over IPC.

import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { AddressInfo } from 'node:net';
import { RelayLink, isRelayLinkError, joinUrl } from '../transport/relay-link.js';
import { createNetstackBundle } from '../hostfn/netstack-bundle.js';
import type { NetApi } from '../netstack/api/net.js';
import { buildUdpPacket } from '../netstack/wire/udp.js';
import { parseIpv4Address } from '../netstack/wire/ipv4.js';
import { startBenchRelay } from './relay-setup.js';
import { dialWebSocket, isDialError } from '../transport/dial.js';
import { SUBPROTOCOL, maxFrameBytes } from '../relay/protocol.js';

export interface PeerConfig {
  mode: 'plain-relay' | 'imach-relay' | 'raw' | 'host';
  role?: 'send' | 'burst-send' | 'recv' | 'echo' | 'rr' | 'tcp-sink' | 'tcp-source' | 'tcp-echo' | 'tcp-rr' | 'connect-probe';
  url?: string;
  token?: string;
  /** for raw clients on the imach relay: the peer's overlay address */
  target?: string;
  port?: number;
  msgSize?: number;
  /** raw senders on the imach relay: packets of msgSize bytes per frame (default 1) */
  packetsPerFrame?: number;
  bytes?: number;
  seconds?: number;
  /** request/response: seconds of round trips before the measured ones (JIT warm-up) */
  warmup?: number;
  /** receivers: bytes received before the clock starts (JIT warm-up), reported as `measured` */
  warmBytes?: number;
  /** imach-relay: its MTU, and the hosts to mint join tokens for */
  mtu?: number;
  hosts?: string[];
  /** host: the link's masking (default: the zero key, the relay being on loopback) */
  mask?: 'random' | 'zero';
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as PeerConfig;
const send = (m: unknown) => process.send?.(m);
const wallNow = () => performance.timeOrigin + performance.now();

function fail(err: unknown): never {
  send({ error: String((err as Error)?.stack ?? err) });
  process.exit(1);
}

async function plainRelay(): Promise<void> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 20 });
  const clients: WebSocket[] = [];
  wss.on('connection', (ws) => {
    clients.push(ws);
    ws.on('message', (data: RawData) => {
      const other = clients[clients.indexOf(ws) ^ 1];
      if (other && other.readyState === WebSocket.OPEN) other.send(data as Buffer);
    });
  });
  await new Promise<void>((r) => wss.on('listening', () => r()));
  send({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}` });
}

/** The imach relay in a process of its own, as the plain forwarder is: it reports its URL and tokens. */
async function imachRelay(): Promise<void> {
  const relay = await startBenchRelay(cfg.mtu ?? 65535);
  const tokens = Object.fromEntries((cfg.hosts ?? []).map((h) => [h, relay.mintToken(h)]));
  send({ url: relay.url, tokens });
}

function openRaw(): Promise<{ ws: WebSocket; address: string | null }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = cfg.token ? { authorization: `Bearer ${cfg.token}` } : {};
    const ws = new WebSocket(cfg.token ? joinUrl(cfg.url!) : cfg.url!, cfg.token ? ['imach.v1'] : [], { headers, perMessageDeflate: false, generateMask: (m: Buffer) => m.fill(0) });
    ws.binaryType = 'nodebuffer';
    ws.once('error', reject);
    if (!cfg.token) {
      ws.once('open', () => resolve({ ws, address: null }));
      return;
    }
    ws.once('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return reject(new Error('expected welcome'));
      const welcome = JSON.parse(String(data)) as { address: string };
      resolve({ ws, address: welcome.address });
    });
  });
}

/** A message of msgSize bytes: an IPv4/UDP packet when on the imach relay, else plain bytes. */
function message(from: string | null, size: number): Buffer {
  if (!from) return Buffer.alloc(size, 0x61);
  const payload = new Uint8Array(Math.max(0, size - 28)).fill(0x61);
  const pkt = buildUdpPacket({
    src: parseIpv4Address(from)!,
    dst: parseIpv4Address(cfg.target!)!,
    srcPort: 9000,
    dstPort: 9000,
    payload,
  });
  return Buffer.from(pkt.buffer, pkt.byteOffset, pkt.byteLength);
}

/** Swap source and destination (checksums stay valid: one's complement sums commute). */
function swapAddresses(b: Buffer): void {
  for (let i = 0; i < 4; i++) {
    const t = b[12 + i];
    b[12 + i] = b[16 + i];
    b[16 + i] = t;
  }
}

/**
 * Counts round trips for cfg.seconds after cfg.warmup seconds of unmeasured ones (a fresh
 * process's JIT warm-up). answered() is called at each answer: true once time is up.
 */
class RoundTrips {
  private count = 0;
  private t0 = performance.now();
  private readonly warmEnd = this.t0 + (cfg.warmup ?? 0) * 1000;
  private deadline = this.warmEnd + cfg.seconds! * 1000;
  private warming = this.warmEnd > this.t0;

  answered(): boolean {
    const now = performance.now();
    if (this.warming && now >= this.warmEnd) {
      this.warming = false;
      this.count = 0;
      this.t0 = now;
      this.deadline = now + cfg.seconds! * 1000;
    } else this.count++;
    return now > this.deadline;
  }

  result(): { count: number; ms: number } {
    return { count: this.count, ms: performance.now() - this.t0 };
  }
}

/**
 * A sender that writes as a busy host does: each tick, frames of `packetsPerFrame` packets
 * in one corked write through the project's codec (zero mask key, loopback), as many as fit
 * under 1 MiB of unsent bytes; then the next tick.
 */
async function burstSend(): Promise<void> {
  const ws = await dialWebSocket({
    url: joinUrl(cfg.url!),
    protocol: SUBPROTOCOL,
    headers: { authorization: `Bearer ${cfg.token}` },
    maxBinaryBytes: maxFrameBytes(),
    maxTextBytes: 1 << 16,
    mask: 'zero',
  });
  if (isDialError(ws)) fail(new Error(`dial: ${ws.message}`));
  const address = await new Promise<string>((resolve) => ws.start({ text: (t) => resolve((JSON.parse(t) as { address: string }).address) }));
  const one = message(address, cfg.msgSize!);
  const frame = [Buffer.concat(Array.from({ length: cfg.packetsPerFrame ?? 1 }, () => one))];
  const frameBytes = frame[0].length;
  send({ ready: true, address });
  await new Promise<void>((r) => process.once('message', () => r()));
  let sent = 0;
  const pump = () => {
    if (ws.state !== 'open') return;
    for (let i = 0; i < 1024 && ws.bufferedAmount < 1 << 20 && sent < cfg.bytes!; i++) {
      ws.sendBinary(frame, frameBytes);
      sent += frameBytes;
    }
    if (sent < cfg.bytes!) setImmediate(pump);
  };
  pump();
}

async function raw(): Promise<void> {
  if (cfg.role === 'burst-send') return burstSend();
  const { ws, address } = await openRaw();
  send({ ready: true, address });
  const role = cfg.role;
  if (role === 'recv') {
    let bytes = 0;
    let t0 = 0;
    let from = -1;
    const warm = cfg.warmBytes ?? 0;
    ws.on('message', (data: Buffer) => {
      if (from < 0 && bytes >= warm) {
        t0 = wallNow();
        from = bytes;
      }
      bytes += data.length;
      if (bytes >= cfg.bytes!) {
        send({ bytes, measured: bytes - from, t0, t1: wallNow() });
        ws.close();
      }
    });
    return;
  }
  if (role === 'echo') {
    ws.on('message', (data: Buffer) => {
      if (address) swapAddresses(data);
      ws.send(data);
    });
    return;
  }
  await new Promise<void>((r) => process.once('message', () => r()));
  if (role === 'send') {
    const one = message(address, cfg.msgSize!);
    // a host batches the packets it sends in one tick, up to 16 a frame (transport/relay-link.ts)
    const msg = Buffer.concat(Array.from({ length: cfg.packetsPerFrame ?? 1 }, () => one));
    let sent = 0;
    let inflight = 0;
    const t0 = wallNow();
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (sent < cfg.bytes! && inflight < 64) {
          inflight++;
          sent += msg.length;
          ws.send(msg, () => {
            inflight--;
            if (sent < cfg.bytes!) pump();
            else if (inflight === 0) resolve();
          });
        }
      };
      pump();
    });
    send({ sent, t0, t1: wallNow() });
  } else if (role === 'rr') {
    const msg = message(address, cfg.msgSize ?? 29);
    const clock = new RoundTrips();
    await new Promise<void>((resolve) => {
      ws.on('message', () => {
        if (clock.answered()) return resolve();
        ws.send(msg);
      });
      ws.send(msg);
    });
    send(clock.result());
    ws.close();
  }
}

async function host(): Promise<void> {
  const link = await RelayLink.connect({ url: cfg.url!, token: cfg.token!, ...(cfg.mask ? { mask: cfg.mask } : {}) });
  if (isRelayLinkError(link)) fail(new Error(`join: ${link.message}`));
  const bundle = createNetstackBundle(link.welcome, link);
  const net = bundle.stack.net as NetApi;
  send({ ready: true, address: link.welcome.address });
  const role = cfg.role;
  if (role === 'tcp-sink' || role === 'tcp-echo') {
    net
      .createServer((s) => {
        let bytes = 0;
        let t0 = 0;
        let from = -1;
        const warm = cfg.warmBytes ?? 0;
        s.on('error', () => {});
        if (role === 'tcp-echo') {
          s.setNoDelay(true);
          s.on('data', (c: Buffer) => s.write(c));
          return;
        }
        s.on('data', (c: Buffer) => {
          if (from < 0 && bytes >= warm) {
            t0 = wallNow();
            from = bytes;
          }
          bytes += c.length;
        });
        s.on('end', () => {
          send({ bytes, measured: bytes - from, t0, t1: wallNow() });
          s.end();
        });
      })
      .listen(cfg.port!);
    return;
  }
  process.on('message', async (m: { go?: boolean; target?: string }) => {
    if (!m.go) return;
    try {
      if (role === 'tcp-source') {
        const sock = net.connect({ host: cfg.target!, port: cfg.port! });
        await new Promise<void>((r, j) => {
          sock.once('connect', () => r());
          sock.once('error', j);
        });
        const chunk = Buffer.alloc(256 * 1024, 0x61);
        let sent = 0;
        const pump = () => {
          while (sent < cfg.bytes!) {
            sent += chunk.length;
            if (!sock.write(chunk)) return void sock.once('drain', pump);
          }
          sock.end();
        };
        sock.on('close', () => send({ sent }));
        pump();
      } else if (role === 'tcp-rr') {
        const sock = net.connect({ host: cfg.target!, port: cfg.port!, noDelay: true });
        await new Promise<void>((r, j) => {
          sock.once('connect', () => r());
          sock.once('error', j);
        });
        const one = Buffer.from([0x2a]);
        const clock = new RoundTrips();
        sock.on('data', () => {
          if (clock.answered()) {
            send(clock.result());
            sock.destroy();
            return;
          }
          sock.write(one);
        });
        sock.write(one);
      } else if (role === 'connect-probe') {
        const t0 = performance.now();
        const sock = net.connect({ host: m.target ?? cfg.target!, port: cfg.port! });
        sock.once('connect', () => {
          send({ connectMs: performance.now() - t0 });
          sock.destroy();
        });
        sock.once('error', (e: Error) => send({ error: e.message }));
      }
    } catch (err) {
      send({ error: String(err) });
    }
  });
}

process.on('disconnect', () => process.exit(0));
const run = cfg.mode === 'plain-relay' ? plainRelay : cfg.mode === 'imach-relay' ? imachRelay : cfg.mode === 'raw' ? raw : host;
run().catch(fail);
