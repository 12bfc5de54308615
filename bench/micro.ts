// Micro-benchmarks of netstack/wire with Benchmark.js: the internet checksum, and IPv4
// and TCP header parse and emit, each on one packet in a loop (no I/O, one process).
// Benchmark.js runs each case until its timing is statistically stable and reports the
// relative margin of error with the rate.

import Benchmark from 'benchmark';
import { internetChecksum } from '../netstack/wire/checksum.js';
import { emitIpv4Header, parseIpv4, PROTO_TCP } from '../netstack/wire/ipv4.js';
import { ACK, buildTcpPacket, emitTcpHeader, parseTcp, PSH, type TcpSegmentOut } from '../netstack/wire/tcp.js';
import { isWireError } from '../netstack/wire/error.js';
import type { BenchRow } from './report.js';

const SRC = 0x0a4d0002;
const DST = 0x0a4d0003;

/** A 1500-byte IPv4 packet carrying a TCP segment with timestamps, as a bulk transfer sends. */
function samplePacket(): Uint8Array {
  const payload = new Uint8Array(1500 - 20 - 32);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  const seg: TcpSegmentOut = {
    srcPort: 40000,
    dstPort: 80,
    seq: 0x12345678,
    ack: 0x9abcdef0,
    flags: ACK | PSH,
    window: 4096,
    urgent: 0,
    options: { timestamp: { value: 1000, echo: 999 } },
    payload,
    payloadLength: payload.length,
  };
  return buildTcpPacket({ src: SRC, dst: DST }, seg);
}

interface Case {
  name: string;
  /** bytes the case reads or writes per operation (for a Gbit/s figure), or 0 */
  bytes: number;
  fn: () => void;
}

function cases(): Case[] {
  const packet = samplePacket();
  const big = new Uint8Array(65536).map((_, i) => (i * 7) & 0xff);
  const ip = parseIpv4(packet);
  if (isWireError(ip)) throw new Error(`micro bench: sample packet: ${ip.reason}`);
  const tcpBytes = ip.payload;
  const header = new Uint8Array(60);
  const seg: TcpSegmentOut = {
    srcPort: 40000,
    dstPort: 80,
    seq: 1,
    ack: 2,
    flags: ACK,
    window: 4096,
    urgent: 0,
    options: { timestamp: { value: 1000, echo: 999 }, sack: [{ left: 10, right: 20 }] },
    payload: tcpBytes.subarray(32),
    payloadLength: tcpBytes.length - 32,
  };
  // every case folds its result into `sink`, so that no call is dead code
  let sink = 0;
  const keep = (n: number) => (sink = (sink + n) | 0);
  return [
    { name: 'internet checksum, 1500 bytes', bytes: 1500, fn: () => keep(internetChecksum(packet)) },
    { name: 'internet checksum, 64 KiB', bytes: 65536, fn: () => keep(internetChecksum(big)) },
    {
      name: 'IPv4 header parse (checksum verified), 1500-byte packet',
      bytes: 0,
      fn: () => {
        const p = parseIpv4(packet);
        keep(isWireError(p) ? -1 : p.totalLength);
      },
    },
    {
      name: 'IPv4 header emit',
      bytes: 0,
      fn: () => {
        emitIpv4Header({ src: SRC, dst: DST, protocol: PROTO_TCP, totalLength: 1500, id: sink & 0xffff }, header, 0);
        keep(header[10]);
      },
    },
    {
      name: 'TCP parse with options, checksum not verified',
      bytes: 0,
      fn: () => {
        const t = parseTcp(tcpBytes, SRC, DST, false);
        keep(isWireError(t) ? -1 : t.seq);
      },
    },
    {
      name: 'TCP parse with options, checksum verified (1480 bytes)',
      bytes: 1480,
      fn: () => {
        const t = parseTcp(tcpBytes, SRC, DST, true);
        keep(isWireError(t) ? -1 : t.seq);
      },
    },
    {
      name: 'TCP header emit with timestamps and SACK (checksum over 1448 payload bytes)',
      bytes: 1448,
      fn: () => keep(emitTcpHeader(seg, header, 0, SRC, DST)),
    },
  ];
}

function run(c: Case, maxTime: number): Promise<Benchmark> {
  return new Promise((resolve, reject) => {
    const b = new Benchmark(c.name, c.fn, {
      maxTime,
      onComplete: () => resolve(b),
      onError: (e: { message?: string }) => reject(new Error(`micro bench ${c.name}: ${e.message ?? 'failed'}`)),
    });
    b.run();
  });
}

export async function runMicroBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const c of cases()) {
    const b = await run(c, opts.quick ? 0.5 : 3);
    if (b.error) throw new Error(`micro bench ${c.name}: ${String(b.error)}`);
    const rme = `±${b.stats.rme.toFixed(1)} %, ${b.stats.sample.length} samples`;
    rows.push({ group: 'micro', name: `${c.name} (${rme})`, metric: 'ns/op', value: 1e9 / b.hz });
    if (c.bytes > 0) rows.push({ group: 'micro', name: 'same', metric: 'Gbit/s', value: (b.hz * c.bytes * 8) / 1e9 });
  }
  return rows;
}
