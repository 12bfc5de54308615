// The WebSocket codec's cost per frame, and what masking with random keys adds: parsing
// (unmask in place) and writing (a masked copy instead of a gather write) of binary frames
// with the zero key against fresh random keys. Micro-benchmarks with `benchmark`.

import { createRequire } from 'node:module';
import type BenchmarkModule from 'benchmark';
import { FrameParser } from '../transport/frame-parser.js';
import { frameHeader, frameHeaderLength, writeFrameHeader, xorMask } from '../transport/frame.js';
import { MaskPool } from '../transport/mask-pool.js';
import type { BenchRow } from './report.js';

const Benchmark = createRequire(import.meta.url)('benchmark') as typeof BenchmarkModule;

/** One masked client frame of `size` bytes with `key`. */
function maskedFrame(size: number, key: Uint8Array): Buffer {
  const h = frameHeader(2, size, key);
  const body = Buffer.alloc(size, 0x5a);
  for (let i = 0; i < size; i++) body[i] ^= key[i & 3]!;
  return Buffer.concat([h, body]);
}

/** Operations per second of each case, measured for about `secs` each. */
function run(cases: Record<string, () => void>, secs: number): Map<string, number> {
  const hz = new Map<string, number>();
  const suite = new Benchmark.Suite();
  for (const [name, fn] of Object.entries(cases)) suite.add(name, fn, { maxTime: secs });
  suite.on('cycle', (e: BenchmarkModule.Event) => hz.set(String(e.target.name), e.target.hz ?? 0));
  suite.run({ async: false });
  return hz;
}

export async function runCodecBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const secs = opts.quick ? 0.5 : 2;
  for (const size of [1500, 65535]) {
    const zero = maskedFrame(size, new Uint8Array(4));
    const random = maskedFrame(size, Uint8Array.from([0x12, 0x34, 0x56, 0x78]));
    let delivered = 0;
    const parser = (): FrameParser =>
      new FrameParser(
        { binary: (_v, n) => (delivered += n), text() {}, ping() {}, pong() {}, close() {}, fail: (c, r) => { throw new Error(`${c} ${r}`); } },
        { role: 'server', maxBinaryBytes: 1 << 20, maxTextBytes: 1 << 16 },
      );
    const pz = parser();
    const pr = parser();
    // parsing unmasks the payload in place and leaves the header: parsing the same bytes
    // again masks them back, the same XOR work, so one buffer serves every cycle
    const parse = run({ zero: () => pz.push(zero), random: () => pr.push(random) }, secs);
    const randomParseHz = parse.get('random')!;
    // what sendBinary does before the socket: the header alone (the views go out as they
    // are), or a key from the pool and a masked copy of the views
    const payload = [Buffer.alloc(40, 1), Buffer.alloc(size - 40, 2)];
    const pool = new MaskPool();
    const zeroKey = new Uint8Array(4);
    let written = 0;
    const write = run(
      {
        zero: () => {
          written += frameHeader(2, size, zeroKey).length;
        },
        random: () => {
          const key = pool.next();
          const hl = frameHeaderLength(size, true);
          const out = Buffer.allocUnsafe(hl + size);
          writeFrameHeader(out, 2, size, key);
          let at = hl;
          let k = 0;
          for (const v of payload) {
            k = xorMask(v, out.subarray(at, at + v.length), key, k);
            at += v.length;
          }
          written += out.length;
        },
      },
      secs,
    );
    const gbit = (hz: number): number => (hz * size * 8) / 1e9;
    rows.push({ group: 'codec', name: `parse a ${size}-byte binary frame, zero mask key`, metric: 'Gbit/s', value: gbit(parse.get('zero')!) });
    rows.push({ group: 'codec', name: `same, random mask key (unmasked in place)`, metric: 'Gbit/s', value: gbit(randomParseHz), ratio: randomParseHz / parse.get('zero')! });
    rows.push({ group: 'codec', name: `frame a ${size}-byte payload (2 views) for writing, zero mask key (header only, gather write)`, metric: 'Gbit/s', value: gbit(write.get('zero')!) });
    // no ratio: with the zero key nothing is done per payload byte, so the masked copy's
    // rate is the cost itself
    rows.push({ group: 'codec', name: `same, random mask key (key from the pool, masked copy of every byte)`, metric: 'Gbit/s', value: gbit(write.get('random')!) });
    if (delivered === 0 || written === 0) throw new Error('codec bench: no frame parsed');
  }
  return rows;
}
