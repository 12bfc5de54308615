// `imach perf <host|address>`: throughput both ways and round-trip percentiles between this
// machine (joined: `imach join`) and a host answering iperf3 (`perf: true`). Throughput is
// measured with iperf3's own protocol (so the figures compare with `iperf3 -c`), the round
// trip as the time of TCP handshakes to the host's port 5201.

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { getHosts } from './admin-client.js';
import { CliError, EXIT, UsageError, flag, parseCommand, parseDuration, parsePositiveInt, str } from './args.js';
import { adminTarget } from './config.js';
import { USAGE } from './usage.js';

const IPERF3_PORT = 5201;
const TEST_START = 1;
const TEST_RUNNING = 2;
const TEST_END = 4;
const PARAM_EXCHANGE = 9;
const CREATE_STREAMS = 10;
const SERVER_TERMINATE = 11;
const EXCHANGE_RESULTS = 13;
const DISPLAY_RESULTS = 14;
const IPERF_DONE = 16;
const ACCESS_DENIED = 0xff;
const SERVER_ERROR = 0xfe;
const BLOCK_BYTES = 128 * 1024;
const MAX_JSON_BYTES = 64 * 1024;

export interface PerfReport {
  target: string;
  address: string;
  port: number;
  seconds: number;
  /** bits per second, this machine to the host (as the host counted) and back */
  uploadBps: number;
  downloadBps: number;
  rttMs: { samples: number; min: number; p50: number; p90: number; p99: number; max: number };
}

/** Exact reads from a socket, with a deadline. */
class Reader {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private error: Error | null = null;

  constructor(socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    const end = (e?: Error): void => {
      this.error ??= e ?? new Error('the host closed the connection');
      this.wake?.();
    };
    socket.on('close', () => end());
    socket.on('error', end);
  }

  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.error !== null) throw this.error;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

function connect(address: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: address, port, noDelay: true });
    const t = setTimeout(() => {
      s.destroy();
      reject(new CliError(`no answer from ${address}:${port} within ${timeoutMs} ms (is this machine joined, and the host's manifest entry perf: true?)`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      reject(new CliError(`cannot connect to ${address}:${port}: ${e.code ?? e.message}`));
    });
  });
}

function json(socket: net.Socket, v: unknown): void {
  const body = Buffer.from(JSON.stringify(v));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  socket.write(Buffer.concat([len, body]));
}

/** One iperf3 TCP test of one stream; the bytes the receiving side counted, per second, in bits. */
export async function iperf3Test(address: string, port: number, seconds: number, reverse: boolean): Promise<number> {
  const cookie = Buffer.concat([Buffer.from(randomBytes(27).toString('base64url').slice(0, 36).toLowerCase(), 'latin1'), Buffer.from([0])]);
  const control = await connect(address, port, 10_000);
  const reader = new Reader(control);
  let data: net.Socket | null = null;
  let sent = 0;
  let received = 0;
  let startedAt = 0;
  let elapsed = 0;
  let running = false;
  try {
    control.write(cookie);
    for (;;) {
      const [state] = await reader.read(1);
      switch (state) {
        case PARAM_EXCHANGE:
          json(control, { tcp: true, omit: 0, time: seconds, num: 0, blockcount: 0, parallel: 1, len: BLOCK_BYTES, pacing_timer: 1000, client_version: '3.12', ...(reverse ? { reverse: true } : {}) });
          break;
        case CREATE_STREAMS: {
          data = await connect(address, port, 10_000);
          data.write(cookie);
          const d = data;
          d.on('data', (c: Buffer) => {
            if (running) received += c.length;
          });
          d.on('error', () => {});
          break;
        }
        case TEST_START:
          break;
        case TEST_RUNNING: {
          running = true;
          startedAt = performance.now();
          const d = data!;
          const block = Buffer.alloc(BLOCK_BYTES, 0x62);
          const deadline = startedAt + seconds * 1000;
          await new Promise<void>((done) => {
            const pump = (): void => {
              while (!reverse && performance.now() < deadline && !d.destroyed) {
                sent += block.length;
                if (!d.write(block)) {
                  d.once('drain', pump);
                  return;
                }
              }
              if (!reverse) done();
            };
            if (reverse) setTimeout(done, seconds * 1000);
            else pump();
          });
          running = false;
          elapsed = (performance.now() - startedAt) / 1000;
          control.write(Buffer.from([TEST_END]));
          break;
        }
        case EXCHANGE_RESULTS: {
          json(control, {
            cpu_util_total: 0,
            cpu_util_user: 0,
            cpu_util_system: 0,
            sender_has_retransmits: reverse ? -1 : 0,
            streams: [{ id: 1, bytes: reverse ? received : sent, retransmits: reverse ? -1 : 0, jitter: 0, errors: 0, packets: 0, start_time: 0, end_time: elapsed }],
          });
          const n = (await reader.read(4)).readUInt32BE(0);
          if (n > MAX_JSON_BYTES) throw new CliError('the host sent results larger than 64 KiB');
          const theirs = JSON.parse((await reader.read(n)).toString('utf8')) as { streams?: { bytes?: unknown }[] };
          const serverBytes = typeof theirs.streams?.[0]?.bytes === 'number' ? theirs.streams[0].bytes : 0;
          const bytes = reverse ? received : serverBytes;
          if (elapsed <= 0) throw new CliError('the test did not run');
          return (bytes * 8) / elapsed;
        }
        case DISPLAY_RESULTS:
          break;
        case ACCESS_DENIED:
          throw new CliError('the host refused the test (busy, or it does not take this kind of test)');
        case SERVER_ERROR:
        case SERVER_TERMINATE:
          throw new CliError('the host ended the test with an error');
        default:
          throw new CliError(`the host sent an unknown iperf3 state ${state}`);
      }
    }
  } finally {
    try {
      control.write(Buffer.from([IPERF_DONE]));
    } catch {
      // already closed
    }
    control.end();
    data?.destroy();
    setTimeout(() => control.destroy(), 1000).unref();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Round trips as TCP handshake times to address:port, `count` of them one after another. */
export async function handshakeRtts(address: string, port: number, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const s = await connect(address, port, 5000);
    out.push(performance.now() - t0);
    s.destroy();
  }
  return out;
}

export async function perf(argv: string[]): Promise<number> {
  const p = parseCommand(
    'perf',
    argv,
    { relay: { type: 'string' }, manifest: { type: 'string' }, 'state-dir': { type: 'string' }, time: { type: 'string', short: 't' }, pings: { type: 'string' }, port: { type: 'string' }, json: { type: 'boolean' } },
    1,
  );
  if (p.help) {
    process.stdout.write(USAGE.perf!);
    return EXIT.ok;
  }
  const target = p.positionals[0];
  if (target === undefined) throw new UsageError('missing <host|address>', 'perf');
  const seconds = str(p, 'time') !== undefined ? parseDuration(str(p, 'time')!, '--time', 'perf') : 3;
  const pings = parsePositiveInt(str(p, 'pings') ?? '50', '--pings', 'perf');
  const port = parsePositiveInt(str(p, 'port') ?? String(IPERF3_PORT), '--port', 'perf');
  if (port > 65535) throw new UsageError('--port must be at most 65535', 'perf');
  let address = target;
  if (net.isIPv4(target) === false) {
    const hosts = await getHosts(await adminTarget({ relay: str(p, 'relay'), manifest: str(p, 'manifest'), stateDir: str(p, 'state-dir') }));
    const h = hosts.find((x) => x.name === target);
    if (h === undefined) throw new CliError(`unknown host ${target}`);
    address = h.address;
  }
  // the first handshake may start a cold host: it is not a round trip
  await handshakeRtts(address, port, 1);
  const rtts = (await handshakeRtts(address, port, pings)).sort((a, b) => a - b);
  const uploadBps = await iperf3Test(address, port, seconds, false);
  const downloadBps = await iperf3Test(address, port, seconds, true);
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  const report: PerfReport = {
    target,
    address,
    port,
    seconds,
    uploadBps: Math.round(uploadBps),
    downloadBps: Math.round(downloadBps),
    rttMs: { samples: rtts.length, min: r3(rtts[0]!), p50: r3(percentile(rtts, 50)), p90: r3(percentile(rtts, 90)), p99: r3(percentile(rtts, 99)), max: r3(rtts[rtts.length - 1]!) },
  };
  if (flag(p, 'json')) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return EXIT.ok;
  }
  const mbps = (bps: number): string => `${(bps / 1e6).toFixed(1)} Mbit/s`;
  process.stdout.write(
    `perf ${target} (${address}:${port}), ${seconds}s each way\n` +
      `  upload   (this machine -> ${target}): ${mbps(report.uploadBps)}\n` +
      `  download (${target} -> this machine): ${mbps(report.downloadBps)}\n` +
      `  round trip (TCP handshake, ${rtts.length} samples): p50 ${report.rttMs.p50} ms, p90 ${report.rttMs.p90} ms, p99 ${report.rttMs.p99} ms (min ${report.rttMs.min}, max ${report.rttMs.max})\n`,
  );
  return EXIT.ok;
}
