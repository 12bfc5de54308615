// Two stacks on a virtual clock over a memory link with 1 ms delay, and an events probe:
// stack-level TCP tests (connection reuse, close paths) without real time.

import { createLinkPair } from '../../netstack/link/memory.js';
import { silentLogger } from '../../netstack/log.js';
import { Stack } from '../../netstack/stack.js';
import { VirtualClock } from '../../netstack/time.js';
import type { TcpConfig } from '../../netstack/tcp/config.js';
import type { TcpConnectionEvents, TcpErrorCode } from '../../netstack/tcp/types.js';
import { isWireError, parseIpv4, parseTcp, type TcpSegment } from '../../netstack/wire/index.js';

export interface Probe extends TcpConnectionEvents {
  log: string[];
  error: TcpErrorCode | null | undefined;
  bytes: number;
}

export function probe(): Probe {
  const p: Probe = {
    log: [],
    error: undefined,
    bytes: 0,
    established: () => p.log.push('established'),
    data: (c) => {
      p.bytes += c.length;
    },
    fin: () => p.log.push('fin'),
    sendSpace: () => {},
    closed: (e) => {
      p.log.push('closed');
      p.error = e;
    },
  };
  return p;
}

export interface TracedSegment {
  from: 'a' | 'b';
  seg: TcpSegment;
}

export interface TcpStackPair {
  clock: VirtualClock;
  a: Stack;
  b: Stack;
  /** Every TCP segment either stack sent, in order. */
  trace: TracedSegment[];
  close(): void;
}

/** Stack a (10.77.0.2) and b (10.77.0.3) on one virtual clock. */
export function tcpStackPair(tcp: Partial<TcpConfig> = {}, opts: { mtu?: number; ephemeralPorts?: readonly [number, number] } = {}): TcpStackPair {
  const mtu = opts.mtu ?? 1500;
  const clock = new VirtualClock(0);
  const [la, lb] = createLinkPair({ clock, delay: 1, mtu });
  const trace: TracedSegment[] = [];
  const tap = (from: 'a' | 'b', send: (p: Uint8Array) => void) => (p: Uint8Array) => {
    const ip = parseIpv4(p);
    if (!isWireError(ip)) {
      const seg = parseTcp(ip.payload.slice(), ip.src, ip.dst, false);
      if (!isWireError(seg)) trace.push({ from, seg });
    }
    send(p);
  };
  la.send = tap('a', la.send.bind(la));
  lb.send = tap('b', lb.send.bind(lb));
  const a = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, seed: 1, mtu, tcp, ephemeralPorts: opts.ephemeralPorts });
  const b = new Stack({ address: '10.77.0.3', clock, logger: silentLogger, seed: 2, mtu, tcp });
  a.attach(la);
  b.attach(lb);
  return {
    clock,
    a,
    b,
    trace,
    close() {
      a.close();
      b.close();
      la.close();
    },
  };
}
