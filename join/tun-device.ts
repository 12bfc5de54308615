// A Linux TUN device (IFF_TUN | IFF_NO_PI) backed by the native/tun addon: whole IP
// packets in and out, read without blocking the event loop.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Link, PacketHandler } from '../netstack/link/link.js';

/** What the addon exports (native/tun/tun.c). */
interface TunAddon {
  open(name: string, onPackets: (err: NodeJS.ErrnoException | null, packets: Uint8Array[] | null) => void): TunHandle;
  write(handle: TunHandle, packet: Uint8Array): number;
  close(handle: TunHandle): void;
  ref(handle: TunHandle, on: boolean): void;
}

interface TunHandle {
  readonly name: string;
  readonly fd: number;
}

export const ADDON_FILE = 'imach_tun.node';

/** Thrown by openTun when the addon was not built; `code` is 'ERR_TUN_ADDON_MISSING'. */
export class TunAddonMissingError extends Error {
  readonly code = 'ERR_TUN_ADDON_MISSING';
  constructor(readonly searched: string[], cause?: unknown) {
    super(
      `the TUN addon is not available (looked for ${searched.join(', ')}${cause instanceof Error ? `: ${cause.message}` : ''}); ` +
        'build it with `node scripts/build-native.mjs` (needs python3, make and a C compiler)',
    );
  }
}

export type TunDropReason = 'write-error' | 'closed' | 'empty';

export interface TunStats {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  drops: Record<TunDropReason, number>;
  /** write errors by errno code (EINVAL, EAGAIN, ...) */
  writeErrors: Record<string, number>;
}

export interface TunDevice extends Link {
  /** The kernel's name for the device (the requested one, or what a `%d` pattern became). */
  readonly name: string;
  /** Write one IP packet to the kernel. Never throws: failures are counted in stats. */
  send(packet: Uint8Array): void;
  /** Set the handler for packets the kernel routes into the device. */
  onPacket(handler: PacketHandler): void;
  /** Called once if reading fails for good (the device is then closed). */
  onError(handler: (err: Error) => void): void;
  /** Whether the open device keeps the Node process alive (default true). */
  ref(on: boolean): void;
  readonly closed: boolean;
  readonly stats: TunStats;
  /** Close the fd; the kernel removes the (non-persistent) device and its routes. Idempotent. */
  close(): void;
}

export interface OpenTunOptions {
  /** Path of imach_tun.node, overriding the search (also IMACH_TUN_ADDON). */
  addonPath?: string;
  mtu?: number;
}

let cachedAddon: TunAddon | undefined;

/** Where the addon is looked for, first match wins. */
export function addonCandidates(explicit?: string): string[] {
  const out: string[] = [];
  if (explicit) out.push(explicit);
  if (process.env.IMACH_TUN_ADDON) out.push(process.env.IMACH_TUN_ADDON);
  const here = path.dirname(fileURLToPath(import.meta.url));
  // from dist/join/ (compiled) and from join/ (run from source)
  for (const up of ['../..', '..']) {
    out.push(path.resolve(here, up, 'native', 'tun', 'build', 'Release', ADDON_FILE));
  }
  return [...new Set(out)];
}

/** Load the addon, or throw TunAddonMissingError saying where it was looked for. */
export function loadTunAddon(explicit?: string): TunAddon {
  if (cachedAddon && !explicit) return cachedAddon;
  const searched = addonCandidates(explicit);
  const found = searched.find((p) => existsSync(p));
  if (!found) throw new TunAddonMissingError(searched);
  try {
    const addon = createRequire(import.meta.url)(found) as TunAddon;
    if (!explicit) cachedAddon = addon;
    return addon;
  } catch (err) {
    throw new TunAddonMissingError([found], err);
  }
}

/** Whether the addon can be loaded (for tests and `imach join` to decide early). */
export function tunAddonAvailable(explicit?: string): boolean {
  try {
    loadTunAddon(explicit);
    return true;
  } catch {
    return false;
  }
}

/**
 * Open (create) a TUN device. Throws a TunAddonMissingError if the addon is missing, and
 * the system's error (code EPERM, ENOENT, EBUSY...) if the device cannot be created.
 */
/** Counters of a device that has carried nothing yet. */
export function newTunStats(): TunStats {
  return {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    drops: { 'write-error': 0, closed: 0, empty: 0 },
    writeErrors: {},
  };
}

export function openTun(name: string, options: OpenTunOptions = {}): TunDevice {
  const addon = loadTunAddon(options.addonPath);
  let packetHandler: PacketHandler = () => {};
  let errorHandler: ((err: Error) => void) | undefined;
  let closed = false;
  const stats = newTunStats();

  const handle = addon.open(name, (err, packets) => {
    if (err) {
      device.close();
      if (errorHandler) errorHandler(err);
      return;
    }
    if (!packets) return;
    for (const p of packets) {
      if (closed) return;
      stats.packetsIn++;
      stats.bytesIn += p.length;
      packetHandler(p);
    }
  });

  const device: TunDevice = {
    name: handle.name,
    mtu: options.mtu,
    stats,
    get closed() {
      return closed;
    },
    send(packet: Uint8Array): void {
      if (closed) {
        stats.drops.closed++;
        return;
      }
      if (packet.length === 0) {
        stats.drops.empty++;
        return;
      }
      try {
        addon.write(handle, packet);
        stats.packetsOut++;
        stats.bytesOut += packet.length;
      } catch (err) {
        stats.drops['write-error']++;
        const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
        stats.writeErrors[code] = (stats.writeErrors[code] ?? 0) + 1;
      }
    },
    onPacket(handler: PacketHandler): void {
      packetHandler = handler;
    },
    onReceive(handler: PacketHandler): void {
      packetHandler = handler;
    },
    onError(handler: (err: Error) => void): void {
      errorHandler = handler;
    },
    ref(on: boolean): void {
      if (!closed) addon.ref(handle, on);
    },
    close(): void {
      if (closed) return;
      closed = true;
      addon.close(handle);
    },
  };
  return device;
}
