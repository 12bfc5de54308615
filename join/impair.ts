// `imach join --impair`: seeded loss, duplication, reordering and delay on the path between
// the TUN device (or the userspace stack) and the relay, for tests and debugging. It reuses
// netstack's fault-injecting memory link pair: one end faces the device, the other the relay.

import { createLinkPair, type LinkCounters, type MemoryLink } from '../netstack/link/memory.js';
import type { Link, PacketHandler } from '../netstack/link/link.js';

export interface ImpairSpec {
  /** probability 0..1 that a packet is dropped */
  loss: number;
  /** probability 0..1 that a packet is held back so later ones overtake it */
  reorder: number;
  /** probability 0..1 that a packet is delivered twice */
  duplicate: number;
  /** one-way delay in ms, each direction */
  delay: number;
  /** extra ms a reordered packet waits (default max(1, delay)) */
  reorderDelay?: number;
  /** PRNG seed: the same seed and traffic give the same faults */
  seed: number;
}

const KEYS = ['loss', 'reorder', 'duplicate', 'delay', 'reorderDelay', 'seed'] as const;
const PROBABILITIES = new Set(['loss', 'reorder', 'duplicate']);
/** Longest delay accepted (ms): more would only fill the bounded in-flight queue. */
const MAX_DELAY_MS = 10_000;

/**
 * `loss=0.01,reorder=0.02,duplicate=0.01,delay=20,seed=7` (any subset; `reorder-delay`
 * also accepted as `reorderDelay`). Never throws: a string says what is wrong.
 */
export function parseImpair(text: string): ImpairSpec | string {
  const spec: ImpairSpec = { loss: 0, reorder: 0, duplicate: 0, delay: 0, seed: 1 };
  if (text.trim() === '') return '--impair wants key=value pairs, e.g. loss=0.01,delay=20,seed=7';
  const seen = new Set<string>();
  for (const part of text.split(',')) {
    const m = /^\s*([A-Za-z-]+)\s*=\s*([0-9.eE+-]+)\s*$/.exec(part);
    if (!m) return `--impair: ${JSON.stringify(part)} is not key=value`;
    const key = m[1]!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(KEYS as readonly string[]).includes(key)) return `--impair: unknown key ${JSON.stringify(m[1])} (have ${KEYS.join(', ')})`;
    if (seen.has(key)) return `--impair: ${key} given twice`;
    seen.add(key);
    const v = Number(m[2]);
    if (!Number.isFinite(v)) return `--impair: ${key} must be a number, not ${JSON.stringify(m[2])}`;
    if (PROBABILITIES.has(key)) {
      if (v < 0 || v > 1) return `--impair: ${key} is a probability in 0..1, not ${m[2]}`;
    } else if (key === 'seed') {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) return `--impair: seed must be an integer 0..4294967295, not ${m[2]}`;
    } else if (v < 0 || v > MAX_DELAY_MS) {
      return `--impair: ${key} must be 0..${MAX_DELAY_MS} ms, not ${m[2]}`;
    }
    (spec as unknown as Record<string, number>)[key] = v;
  }
  return spec;
}

export function formatImpair(s: ImpairSpec): string {
  const parts = [`loss=${s.loss}`, `reorder=${s.reorder}`, `duplicate=${s.duplicate}`, `delay=${s.delay}`];
  if (s.reorderDelay !== undefined) parts.push(`reorderDelay=${s.reorderDelay}`);
  parts.push(`seed=${s.seed}`);
  return parts.join(',');
}

export interface ImpairCounters {
  /** packets from the device towards the relay */
  toRelay: Readonly<LinkCounters>;
  /** packets from the relay towards the device */
  fromRelay: Readonly<LinkCounters>;
}

/**
 * A Link that behaves like `inner` with the faults of `spec` added in both directions.
 * Closing it closes `inner` too.
 */
export class ImpairedLink implements Link {
  readonly mtu: number | undefined;
  private readonly near: MemoryLink;
  private readonly far: MemoryLink;

  constructor(
    private readonly inner: Link,
    readonly spec: ImpairSpec,
  ) {
    this.mtu = inner.mtu;
    [this.near, this.far] = createLinkPair({
      loss: spec.loss,
      reorder: spec.reorder,
      duplicate: spec.duplicate,
      delay: spec.delay,
      ...(spec.reorderDelay !== undefined ? { reorderDelay: spec.reorderDelay } : {}),
      seed: spec.seed,
      // size limits are the inner link's business
      mtu: 65535,
    });
    this.far.onReceive((p) => inner.send(p));
    inner.onReceive((p) => this.far.send(p));
  }

  get counters(): ImpairCounters {
    return { toRelay: this.near.counters, fromRelay: this.far.counters };
  }

  send(packet: Uint8Array): void {
    this.near.send(packet);
  }

  onReceive(handler: PacketHandler): void {
    this.near.onReceive(handler);
  }

  close(): void {
    this.near.close();
    this.inner.close();
  }
}

/** `inner` itself when spec adds no fault, else an ImpairedLink around it. */
export function impairLink(inner: Link, spec: ImpairSpec | undefined): Link {
  if (!spec || (spec.loss === 0 && spec.reorder === 0 && spec.duplicate === 0 && spec.delay === 0)) return inner;
  return new ImpairedLink(inner, spec);
}
