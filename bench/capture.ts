// What a running capture costs the relay (`imach capture`): the forwarding rate of small
// packets with no capture, then with a capture of all hosts read as fast as it comes (the
// reader is in the relay's process, as the admin API's client would be on a busy relay).

import { startBenchRelay } from './relay-setup.js';
import { median, startPeer } from './relay.js';
import type { BenchRow } from './report.js';

async function forwarding(seconds: number, capture: boolean): Promise<{ pps: number; captured: number }> {
  const relay = await startBenchRelay(65535);
  const ac = new AbortController();
  let captured = 0;
  let reading: Promise<void> = Promise.resolve();
  try {
    const rx = startPeer({ mode: 'raw', role: 'recv', url: relay.url, token: relay.mintToken('rx'), bytes: Number.MAX_SAFE_INTEGER });
    const { address } = (await rx.next()) as { address: string };
    const tx = startPeer({ mode: 'raw', role: 'send', url: relay.url, token: relay.mintToken('tx'), target: address, msgSize: 64, bytes: 64 * 2_000_000 });
    await tx.next();
    if (capture) {
      const res = await fetch(`${relay.httpUrl}/api/capture`, { headers: { authorization: `Bearer ${relay.mintToken('@admin')}` }, signal: ac.signal });
      reading = (async () => {
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) captured += chunk.length;
        } catch {
          // aborted at the end of the run
        }
      })();
    }
    const before = relay.counters()['packets-delivered'];
    const t0 = performance.now();
    tx.go();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const forwarded = relay.counters()['packets-delivered'] - before;
    const ms = performance.now() - t0;
    tx.stop();
    rx.stop();
    return { pps: (forwarded * 1000) / ms, captured };
  } finally {
    ac.abort();
    await reading;
    await relay.close();
  }
}

export async function runCaptureBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const secs = opts.quick ? 1 : 3;
  const rounds = opts.quick ? 1 : 3;
  const without: number[] = [];
  const withCapture: number[] = [];
  let bytes = 0;
  for (let r = 0; r < rounds; r++) {
    without.push((await forwarding(secs, false)).pps);
    const c = await forwarding(secs, true);
    withCapture.push(c.pps);
    bytes += c.captured;
  }
  const base = median(without);
  const cap = median(withCapture);
  return [
    { group: 'capture', name: `relay forwarding, 64-byte packets, no capture (median of ${rounds})`, metric: 'packets/s', value: base },
    { group: 'capture', name: `same with a capture of all hosts running (median of ${rounds}; ${(bytes / 1e6).toFixed(1)} MB of pcap read)`, metric: 'packets/s', value: cap, ratio: cap / base },
  ];
}
