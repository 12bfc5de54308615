// Hosts through the relay, each against a baseline measured in the same run:
// - TCP goodput between two host processes through the relay, against a plain `ws`
//   forwarder carrying the same bytes in messages of the same size (goal >= 1.0 of it at
//   MTU 65535, >= 0.8 at 1500);
// - 1-byte TCP request/response round-trip time, against a raw WebSocket ping-pong of
//   one small packet through the same relay (goal <= 1.25 times it), and the relay's CPU
//   time per round trip of each;
// - relay forwarding rate in packets per second, 64-byte packets 16 a frame (as hosts
//   batch) and one a frame, with the relay's CPU time per packet.
// Every figure has the relay in this process and each peer in a child process. Cold
// starts are the `cold` group (cold-start.ts).

import { fork, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBenchRelay } from './relay-setup.js';
import type { PeerConfig } from './relay-peer.js';
import type { BenchRow } from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
const peerScript = join(here, 'relay-peer.js');

export interface Peer {
  child: ChildProcess;
  next(): Promise<Record<string, unknown>>;
  /** start the peer's work; a connect probe connects to `target` if given */
  go(target?: string): void;
  stop(): void;
}

export function startPeer(cfg: PeerConfig): Peer {
  // e.g. IMACH_BENCH_PEER_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the peers
  const execArgv = (process.env.IMACH_BENCH_PEER_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = fork(peerScript, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const inbox: Record<string, unknown>[] = [];
  const waiters: ((m: Record<string, unknown>) => void)[] = [];
  child.on('message', (m: Record<string, unknown>) => {
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  return {
    child,
    next: () =>
      new Promise((resolve, reject) => {
        const m = inbox.shift();
        if (m) return m.error ? reject(new Error(String(m.error))) : resolve(m);
        const onExit = (code: number) => reject(new Error(`peer ${cfg.mode}/${cfg.role} exited with ${code}`));
        child.once('exit', onExit);
        waiters.push((msg) => {
          child.off('exit', onExit);
          if (msg.error) reject(new Error(String(msg.error)));
          else resolve(msg);
        });
      }),
    go: (target) => child.send(target === undefined ? { go: true } : { go: true, target }),
    stop: () => {
      if (child.exitCode !== null) return;
      if (execArgv.length > 0 && child.connected) child.disconnect();
      else child.kill('SIGKILL');
    },
  };
}

const gbps = (bytes: number, ms: number) => (bytes * 8) / (ms / 1000) / 1e9;

/**
 * Goodput of the plain ws forwarder with messages of `size` bytes, timed after the first
 * `warmBytes` (as tcpGoodput: both sides then measure their steady state, not JIT warm-up).
 */
export async function plainGoodput(size: number, bytes: number, warmBytes = 0): Promise<number> {
  const relay = startPeer({ mode: 'plain-relay' });
  const { url } = (await relay.next()) as { url: string };
  const rx = startPeer({ mode: 'raw', role: 'recv', url, bytes, warmBytes });
  await rx.next();
  const tx = startPeer({ mode: 'raw', role: 'send', url, bytes, msgSize: size });
  await tx.next();
  tx.go();
  const r = (await rx.next()) as { measured: number; t0: number; t1: number };
  for (const p of [tx, rx, relay]) p.stop();
  return gbps(r.measured, r.t1 - r.t0);
}

/**
 * TCP goodput host to host through the relay, timed after the sink has `warmBytes`. The
 * relay runs in a process of its own, as the plain forwarder does (not in this one, whose
 * heap the other benchmarks have grown).
 */
export async function tcpGoodput(mtu: number, bytes: number, warmBytes = 0, mask?: 'random'): Promise<number> {
  const relay = startPeer({ mode: 'imach-relay', mtu, hosts: ['sink', 'source'] });
  try {
    const { url, tokens } = (await relay.next()) as { url: string; tokens: Record<string, string> };
    const sink = startPeer({ mode: 'host', role: 'tcp-sink', url, token: tokens.sink, port: 5001, warmBytes, ...(mask ? { mask } : {}) });
    const { address } = (await sink.next()) as { address: string };
    const src = startPeer({ mode: 'host', role: 'tcp-source', url, token: tokens.source, target: address, port: 5001, bytes, ...(mask ? { mask } : {}) });
    await src.next();
    src.go();
    const r = (await sink.next()) as { bytes: number; measured: number; t0: number; t1: number };
    sink.stop();
    src.stop();
    if (r.bytes !== bytes) throw new Error(`tcp through relay: ${r.bytes} of ${bytes} bytes`);
    return gbps(r.measured, r.t1 - r.t0);
  } finally {
    relay.stop();
  }
}

/** The relay's CPU time (this process) per round trip in the last rawRtt() or tcpRtt() run, warm-up included. */
export let lastRelayCpuPerRoundTripUs = 0;

/** Mean round trip in µs between an echo peer and a request/response peer on one relay. */
async function roundTrip(echoCfg: PeerConfig, rrCfg: PeerConfig): Promise<number> {
  const relay = await startBenchRelay(65535);
  const framesBefore = relay.counters()['packets-delivered'] ?? 0;
  try {
    const echo = startPeer({ ...echoCfg, url: relay.url, token: relay.mintToken('echo') });
    const { address } = (await echo.next()) as { address: string };
    const rr = startPeer({ ...rrCfg, url: relay.url, token: relay.mintToken('rr'), target: address });
    await rr.next();
    const cpu0 = process.cpuUsage();
    rr.go();
    const r = (await rr.next()) as { count: number; ms: number };
    const cpu = process.cpuUsage(cpu0);
    // two packets forwarded per round trip (warm-up included)
    const trips = ((relay.counters()['packets-delivered'] ?? 0) - framesBefore) / 2;
    lastRelayCpuPerRoundTripUs = (cpu.user + cpu.system) / Math.max(1, trips);
    echo.stop();
    rr.stop();
    return (r.ms * 1000) / r.count;
  } finally {
    await relay.close();
  }
}

export function rawRtt(seconds: number, warmup = 0): Promise<number> {
  return roundTrip({ mode: 'raw', role: 'echo' }, { mode: 'raw', role: 'rr', seconds, warmup, msgSize: 29 });
}

export function tcpRtt(seconds: number, warmup = 0): Promise<number> {
  return roundTrip({ mode: 'host', role: 'tcp-echo', port: 5002 }, { mode: 'host', role: 'tcp-rr', port: 5002, seconds, warmup });
}

/** The relay's CPU time (this process) per packet in the last forwardingRate() run. */
export let lastRelayCpuPerPacketUs = 0;

/** Packets/s the relay forwards from one raw sender to one receiver, `packetsPerFrame` 64-byte packets a frame. */
export async function forwardingRate(seconds: number, packetsPerFrame = 1): Promise<number> {
  const relay = await startBenchRelay(65535);
  try {
    const rx = startPeer({ mode: 'raw', role: 'recv', url: relay.url, token: relay.mintToken('rx'), bytes: Number.MAX_SAFE_INTEGER });
    const { address } = (await rx.next()) as { address: string };
    const tx = startPeer({ mode: 'raw', role: 'burst-send', url: relay.url, token: relay.mintToken('tx'), target: address, msgSize: 64, packetsPerFrame, bytes: 64 * 20_000_000 });
    await tx.next();
    const before = relay.counters();
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    tx.go();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const after = relay.counters();
    const ms = performance.now() - t0;
    tx.stop();
    rx.stop();
    const forwarded = after['packets-delivered'] - before['packets-delivered'];
    const cpu = process.cpuUsage(cpu0);
    lastRelayCpuPerPacketUs = (cpu.user + cpu.system) / forwarded;
    return (forwarded * 1000) / ms;
  } finally {
    await relay.close();
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function runRelayBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const g = 'relay';
  // Seconds of transfer at full speed, as iperf3 measures (10 s by default): a TCP
  // connection between freshly started processes needs about a second to reach it.
  const bytes = (opts.quick ? 256 : 2048) * 1024 * 1024;
  const secs = opts.quick ? 1 : 3;
  // Each goodput figure is the median of `rounds` runs, baseline and ours alternating, so
  // that a slow spell of this shared machine weighs on both alike.
  const rounds = opts.quick ? 1 : 5;
  const runs = (xs: number[]) => (xs.length > 1 ? `; median of ${xs.length} alternating runs: ${xs.map((x) => x.toFixed(2)).join(', ')}` : '');
  for (const mtu of [65535, 1500]) {
    const n = mtu === 1500 ? bytes / 4 : bytes;
    const bases: number[] = [];
    const tcps: number[] = [];
    const masked: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // Both timed after their first quarter: a freshly started TCP stack spends its first
      // few hundred ms in JIT warm-up (as the round-trip loops below, which warm up first).
      bases.push(await plainGoodput(mtu, n, n / 4));
      tcps.push(await tcpGoodput(mtu, n, n / 4));
      // what masking costs: hosts' frames masked with a fresh random key each, as over ws://
      // to a relay that is not on loopback (relay/PROTOCOL.md)
      if (mtu === 65535) masked.push(await tcpGoodput(mtu, n, n / 4, 'random'));
    }
    const base = median(bases);
    const tcp = median(tcps);
    rows.push({ group: g, name: `baseline: plain ws forwarder, ${mtu}-byte messages (after the first quarter${runs(bases)})`, metric: 'goodput Gbit/s', value: base });
    const goal = mtu === 65535 ? 1.0 : 0.8;
    rows.push({ group: g, name: `TCP host to host through the relay, MTU ${mtu} (after the first quarter${runs(tcps)})`, metric: 'goodput Gbit/s', value: tcp, ratio: tcp / base, goal: `>= ${goal} x baseline`, pass: tcp >= goal * base });
    if (masked.length > 0) {
      const m = median(masked);
      rows.push({ group: g, name: `same, hosts' frames masked with random keys (ratio: to unmasked${runs(masked)})`, metric: 'goodput Gbit/s', value: m, ratio: m / tcp });
    }
  }
  // Both round-trip loops first run unmeasured for a while: a 1-second run of a TCP
  // stack straight after process start measures its JIT warm-up, not its round trips.
  // Round trips cross three processes on two cores, so where the scheduler puts them
  // moves single runs by a third: medians of alternating runs, as for goodput.
  const warmup = opts.quick ? 1 : 2;
  const raws: number[] = [];
  const rrs: number[] = [];
  const rawCpu: number[] = [];
  const rrCpu: number[] = [];
  for (let r = 0; r < rounds; r++) {
    raws.push(await rawRtt(secs, warmup));
    rawCpu.push(lastRelayCpuPerRoundTripUs);
    rrs.push(await tcpRtt(secs, warmup));
    rrCpu.push(lastRelayCpuPerRoundTripUs);
  }
  const rawUs = median(raws);
  const tcpUs = median(rrs);
  const us = (xs: number[]) => (xs.length > 1 ? `; median of ${xs.length} alternating runs: ${xs.map((x) => x.toFixed(0)).join(', ')}` : '');
  rows.push({ group: g, name: `baseline: raw ws ping-pong through the relay (after warm-up${us(raws)})`, metric: 'round trip µs', value: rawUs });
  rows.push({ group: g, name: `TCP 1-byte request/response through the relay (after warm-up${us(rrs)})`, metric: 'round trip µs', value: tcpUs, ratio: tcpUs / rawUs, goal: '<= 1.25 x baseline', pass: tcpUs <= 1.25 * rawUs });
  // CPU time is what a loaded, shared machine does not blur as it does wall-clock round trips
  rows.push({ group: g, name: 'baseline: relay CPU time per raw ws round trip (two frames forwarded)', metric: 'µs', value: median(rawCpu) });
  rows.push({ group: g, name: 'same for the TCP round trip', metric: 'µs', value: median(rrCpu), ratio: median(rrCpu) / median(rawCpu) });
  // The sender writes as a busy host does (one corked write per tick); hosts put up to 16
  // packets in a frame (transport/relay-link.ts), so 16 a frame is what a user's burst
  // meets, and one a frame the relay's worst case.
  for (const perFrame of [16, 1]) {
    const ppss: number[] = [];
    const cpus: number[] = [];
    for (let r = 0; r < Math.max(1, Math.ceil(rounds / 2)); r++) {
      ppss.push(await forwardingRate(secs, perFrame));
      cpus.push(lastRelayCpuPerPacketUs);
    }
    const pps = median(ppss);
    const name = `relay forwarding, 64-byte packets, ${perFrame} per frame${ppss.length > 1 ? `; median of ${ppss.length} runs: ${ppss.map((x) => x.toFixed(0)).join(', ')}` : ''}`;
    rows.push({ group: g, name, metric: 'packets/s', value: pps, ...(perFrame === 16 ? { goal: '>= 250,000', pass: pps >= 250_000 } : {}) });
    rows.push({ group: g, name: 'same: relay CPU time per forwarded packet', metric: 'µs', value: median(cpus) });
  }
  return rows;
}
