// An in-memory TunDevice and a recording CommandRunner, so JoinSession and `imach join` can
// be tested without root: the test plays the kernel.

import { CommandError, type CommandRunner } from '../../join/iproute.js';
import { newTunStats, type TunDevice, type TunStats } from '../../join/tun-device.js';
import type { PacketHandler } from '../../netstack/link/link.js';

export class MemoryTun implements TunDevice {
  /** what the session wrote to the "kernel" */
  readonly written: Uint8Array[] = [];
  closed = false;
  refed = true;
  private handler: PacketHandler = () => {};
  private errorHandler: ((err: Error) => void) | undefined;
  readonly stats: TunStats = newTunStats();
  constructor(readonly name: string, readonly mtu?: number) {}

  /** The kernel routes a packet into the device. */
  inject(packet: Uint8Array): void {
    this.stats.packetsIn++;
    this.handler(packet);
  }
  fail(err: Error): void {
    this.close();
    this.errorHandler?.(err);
  }
  send(packet: Uint8Array): void {
    if (this.closed) {
      this.stats.drops.closed++;
      return;
    }
    this.stats.packetsOut++;
    this.written.push(Uint8Array.from(packet));
  }
  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }
  onReceive(handler: PacketHandler): void {
    this.handler = handler;
  }
  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }
  ref(on: boolean): void {
    this.refed = on;
  }
  close(): void {
    this.closed = true;
  }
}

export interface RecordingRunner {
  run: CommandRunner;
  calls: string[];
}

/** Records `file arg arg...`; a call matching failOn rejects like a failed command. */
export function recordingRunner(failOn?: RegExp): RecordingRunner {
  const calls: string[] = [];
  const run: CommandRunner = async (file, args) => {
    const line = [file, ...args].join(' ');
    calls.push(line);
    if (failOn && failOn.test(line)) {
      throw new CommandError(file, args, 'RTNETLINK answers: File exists\n', 2);
    }
    return { stdout: '', stderr: '' };
  };
  return { run, calls };
}

/** Resolve once cond() holds, polling on the event loop; rejects after `limit` tries. */
export async function eventually(cond: () => boolean, what: string, limit = 500): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never happened: ${what}`);
}
