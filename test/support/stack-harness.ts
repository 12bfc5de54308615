// Test helpers for the stack: a link that captures what a stack sends, and two stacks
// joined by a memory link pair.

import type { Link, PacketHandler } from '../../netstack/link/link.js';
import { createLinkPair, type LinkPairOptions, type MemoryLink } from '../../netstack/link/memory.js';
import { Stack } from '../../netstack/stack.js';
import type { StackOptions } from '../../netstack/options.js';
import { silentLogger } from '../../netstack/log.js';

/** Records every packet sent; `inject` plays packets into the attached stack. */
export class CaptureLink implements Link {
  readonly sent: Uint8Array[] = [];
  private handler: PacketHandler | null = null;
  closed = false;

  send(packet: Uint8Array): void {
    this.sent.push(packet);
  }

  onReceive(handler: PacketHandler): void {
    this.handler = handler;
  }

  close(): void {
    this.closed = true;
  }

  inject(packet: Uint8Array): void {
    this.handler?.(packet);
  }

  take(): Uint8Array[] {
    return this.sent.splice(0, this.sent.length);
  }
}

export interface StackPair {
  a: Stack;
  b: Stack;
  links: [MemoryLink, MemoryLink];
  close(): void;
}

export const ADDR_A = '10.77.0.2';
export const ADDR_B = '10.77.0.3';

/** Two stacks, 10.77.0.2 and 10.77.0.3, over a memory link pair. */
export function stackPair(options: Partial<StackOptions> = {}, link: LinkPairOptions = {}): StackPair {
  const links = createLinkPair({ clock: options.clock, ...link });
  const a = new Stack({ logger: silentLogger, ...options, address: ADDR_A });
  const b = new Stack({ logger: silentLogger, ...options, address: ADDR_B });
  a.attach(links[0]);
  b.attach(links[1]);
  return {
    a,
    b,
    links,
    close() {
      a.close();
      b.close();
      links[0].close();
    },
  };
}

/** Resolve when `pred` holds, polling on macrotasks; reject after `ms`. */
export async function waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

export function once<T extends unknown[]>(emitter: { once(event: string, fn: (...args: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (...args: T) => resolve(args)));
}
