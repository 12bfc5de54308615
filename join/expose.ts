// `imach join --userspace --expose`: a port on this machine's overlay address whose
// connections are carried to a TCP server on this machine (or one it can reach), through
// the kernel's own sockets, e.g. so hosts can reach a database on the laptop.

import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../hostfn/log.js';
import { isIPv4 } from './iproute.js';

export interface ExposeSpec {
  /** the port hosts connect to, at the joined machine's overlay address */
  overlayPort: number;
  /** where the kernel connects: an IPv4 or IPv6 address or a host name (default 127.0.0.1) */
  host: string;
  port: number;
}

/** `[overlayPort=][host:]localPort`, e.g. `5432`, `15432=5432`, `8080=192.168.1.5:80`, `[::1]:5432`. */
export function parseExpose(text: string): ExposeSpec | string {
  const wants = `--expose wants [overlayPort=][host:]localPort, e.g. 5432 or 15432=127.0.0.1:5432, not ${JSON.stringify(text)}`;
  const eq = text.indexOf('=');
  const overlayText = eq >= 0 ? text.slice(0, eq) : null;
  const target = eq >= 0 ? text.slice(eq + 1) : text;
  let host = '127.0.0.1';
  let portText = target;
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(target);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (!net.isIPv6(host)) return `--expose ${text}: ${JSON.stringify(host)} is not an IPv6 address`;
  } else if (target.includes(':')) {
    const parts = target.split(':');
    if (parts.length !== 2) return wants;
    host = parts[0]!;
    portText = parts[1]!;
    if (!isIPv4(host) && !isHostName(host)) return `--expose ${text}: bad local host ${JSON.stringify(host)}`;
  }
  const port = portNumber(portText);
  if (port === null) return portText === '' || !/^\d+$/.test(portText) ? wants : `--expose ${text}: ports must be 1..65535`;
  let overlayPort = port;
  if (overlayText !== null) {
    const p = portNumber(overlayText);
    if (p === null) return overlayText === '' || !/^\d+$/.test(overlayText) ? wants : `--expose ${text}: ports must be 1..65535`;
    overlayPort = p;
  }
  return { overlayPort, host, port };
}

function portNumber(s: string): number | null {
  if (!/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
}

function isHostName(s: string): boolean {
  return /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(s) && !/^[\d.]+$/.test(s) && !s.includes('..');
}

/** `127.0.0.1:5432`, `[::1]:5432`, `db.local:5432`. */
export function formatExposeTarget(spec: Pick<ExposeSpec, 'host' | 'port'>): string {
  return net.isIPv6(spec.host) ? `[${spec.host}]:${spec.port}` : `${spec.host}:${spec.port}`;
}

/** An accepted overlay connection: a Duplex that can also be closed with a RST. */
export interface OverlaySocket extends Duplex {
  resetAndDestroy(): unknown;
}

export interface OverlayListener {
  close(): void;
}

/** Opens overlay listeners; the userspace stack's part of `--expose`. */
export type OverlayListen = (port: number, onConnection: (socket: OverlaySocket) => void) => Promise<OverlayListener>;

/** The kernel side of a splice; the default is node:net's connect. */
export type LocalConnect = (host: string, port: number) => net.Socket;

const kernelConnect: LocalConnect = (host, port) => net.connect({ host, port, allowHalfOpen: true });

export type ExposeDropReason = 'over-limit' | 'connect-failed' | 'connect-timeout';

export interface ExposeOptions {
  /** most exposed connections open at once; over it new ones are reset and counted */
  maxConnections?: number;
  /** how long the connect to the local target may take before the overlay side is reset */
  connectTimeoutMs?: number;
  connect?: LocalConnect;
}

export const EXPOSE_DEFAULTS = { maxConnections: 256, connectTimeoutMs: 10_000 } as const;

/** One `--expose`: an overlay listener whose connections are spliced to kernel TCP connections. */
export class ExposedPort {
  /** connections accepted and spliced (or connecting) */
  accepted = 0;
  readonly drops: Record<ExposeDropReason, number> = { 'over-limit': 0, 'connect-failed': 0, 'connect-timeout': 0 };
  private readonly active = new Set<{ overlay: OverlaySocket; local: net.Socket | null }>();
  private listener: OverlayListener | null = null;
  private closed = false;

  private constructor(
    readonly spec: ExposeSpec,
    private readonly log: Logger,
    private readonly max: number,
    private readonly connectTimeoutMs: number,
    private readonly connect: LocalConnect,
  ) {}

  /** Listen on the overlay port; rejects if the stack cannot (e.g. EADDRINUSE). */
  static async start(spec: ExposeSpec, listen: OverlayListen, log: Logger, options: ExposeOptions = {}): Promise<ExposedPort> {
    const e = new ExposedPort(
      spec,
      log,
      options.maxConnections ?? EXPOSE_DEFAULTS.maxConnections,
      options.connectTimeoutMs ?? EXPOSE_DEFAULTS.connectTimeoutMs,
      options.connect ?? kernelConnect,
    );
    e.listener = await listen(spec.overlayPort, (s) => e.onConnection(s));
    return e;
  }

  /** exposed connections open now */
  get connections(): number {
    return this.active.size;
  }

  private drop(reason: ExposeDropReason, overlay: OverlaySocket, fields: Record<string, unknown> = {}): void {
    const n = ++this.drops[reason];
    overlay.resetAndDestroy();
    // The 1st, 2nd, 4th, 8th... drop of a kind is logged: a flood of connections cannot flood the log.
    if ((n & (n - 1)) !== 0) return;
    const f = { port: this.spec.overlayPort, to: formatExposeTarget(this.spec), reason, drops: n, ...fields };
    if (reason === 'over-limit') this.log.warn('expose: over the connection limit; connection reset', { ...f, max: this.max });
    else this.log.warn('expose: cannot reach the local target; connection reset', f);
  }

  private onConnection(overlay: OverlaySocket): void {
    overlay.on('error', () => {});
    if (this.closed || this.active.size >= this.max) return this.drop('over-limit', overlay);
    this.accepted++;
    overlay.pause();
    const pair: { overlay: OverlaySocket; local: net.Socket | null } = { overlay, local: null };
    this.active.add(pair);
    let local: net.Socket;
    try {
      local = this.connect(this.spec.host, this.spec.port);
    } catch (err) {
      this.active.delete(pair);
      return this.drop('connect-failed', overlay, { code: (err as NodeJS.ErrnoException).code, err: (err as Error).message });
    }
    pair.local = local;
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      local.destroy();
      this.drop('connect-timeout', overlay, { ms: this.connectTimeoutMs });
    }, this.connectTimeoutMs);
    const forget = () => {
      if (!overlay.destroyed || !local.destroyed) return;
      this.active.delete(pair);
    };
    overlay.once('close', forget);
    local.once('close', forget);
    local.once('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.drop('connect-failed', overlay, { code: err.code });
    });
    overlay.once('close', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      local.destroy();
    });
    local.once('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      spliceWithReset(overlay, local);
      overlay.resume();
    });
  }

  /** Stop listening and close every exposed connection. */
  close(): void {
    this.closed = true;
    this.listener?.close();
    this.listener = null;
    for (const { overlay, local } of this.active) {
      overlay.destroy();
      local?.destroy();
    }
    this.active.clear();
  }
}

/**
 * Carry bytes both ways with backpressure. An end on one side becomes a FIN on the other
 * (half-close passes through); an error on either side resets both.
 */
export function spliceWithReset(overlay: OverlaySocket, local: net.Socket): void {
  overlay.pipe(local);
  local.pipe(overlay);
  const reset = () => {
    if (!overlay.destroyed) overlay.resetAndDestroy();
    if (!local.destroyed) local.resetAndDestroy();
  };
  overlay.on('error', reset);
  local.on('error', reset);
  // A side that closed without an error or an end (e.g. the stack shut down) ends the other.
  overlay.once('close', () => {
    if (!local.destroyed && !local.writableEnded) local.end();
  });
  local.once('close', () => {
    if (!overlay.destroyed && !overlay.writableEnded) overlay.end();
  });
}
