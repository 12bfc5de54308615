// The live dashboard at the admin port's `/`: the page and its script (relay/dashboard/,
// plain HTML and JavaScript, read once) and GET /api/stream, the server-sent events it
// draws from: `hello` (network and past events), `event` (each lifecycle event as it
// happens) and `state` (hosts, flows and counters, every second).

import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayEvent } from './events.js';
import type { FlowRecord } from './flows.js';

/** What the stream reads from the relay. */
export interface DashboardSource {
  hosts(): unknown[];
  events(): RelayEvent[];
  onEvent(fn: (event: RelayEvent) => void): () => void;
  counters(): Record<string, number>;
  flows(host?: string): FlowRecord[] | undefined;
  readonly network: string;
  readonly gateway: string;
}

/** How often the stream sends hosts, flows and counters. */
export const DASHBOARD_STATE_INTERVAL_MS = 1000;
/** flows sent per state message (the most recently active) */
const MAX_FLOWS = 100;
/** bytes a stream's reader may leave unread before it is cut off */
const MAX_BUFFERED = 1024 * 1024;

// from dist/relay/ (built) and relay/ (sources): the assets stay in the source tree
const ASSET_DIRS = [new URL('../../relay/dashboard/', import.meta.url), new URL('./dashboard/', import.meta.url)];

function readAsset(name: string): string | null {
  for (const dir of ASSET_DIRS) {
    try {
      return readFileSync(new URL(name, dir), 'utf8');
    } catch {
      // try the next place
    }
  }
  return null;
}

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
};

const cache = new Map<string, string | null>();

/** Serve a dashboard asset for `path`; false if `path` is not one. */
export function serveDashboardAsset(path: string, res: ServerResponse): boolean {
  const asset = ASSETS[path];
  if (asset === undefined) return false;
  if (!cache.has(asset.file)) cache.set(asset.file, readAsset(asset.file));
  const body = cache.get(asset.file) ?? null;
  if (body === null) {
    res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`dashboard asset ${asset.file} is missing from this installation\n`);
    return true;
  }
  res.writeHead(200, {
    'Content-Type': asset.type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-cache',
    'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'",
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(body);
  return true;
}

/** Stream server-sent events to `res` until the client goes. */
export function streamDashboard(src: DashboardSource, req: IncomingMessage, res: ServerResponse, done: () => void): void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
  const send = (type: string, data: unknown): void => {
    // a reader that cannot keep up is cut off rather than buffered without bound
    if (res.writableLength > MAX_BUFFERED) res.destroy();
    else res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const state = (): void => send('state', { hosts: src.hosts(), flows: (src.flows() ?? []).slice(0, MAX_FLOWS), counters: src.counters() });
  send('hello', { network: src.network, gateway: src.gateway, events: src.events() });
  state();
  const off = src.onEvent((e) => {
    send('event', e);
    // the hosts' states change with the event: draw them now, not at the next tick
    state();
  });
  const timer = setInterval(state, DASHBOARD_STATE_INTERVAL_MS);
  res.once('close', () => {
    clearInterval(timer);
    off();
    done();
  });
  req.on('error', () => res.destroy());
}
