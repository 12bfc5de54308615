// The JSON admin API: GET /healthz (open); with an @admin bearer token: GET /api/hosts,
// GET /api/hosts/<name> (describe), GET /api/events (?follow=1 streams NDJSON),
// GET /api/counters, POST /api/ping {target}, GET /api/capture (pcap stream), GET /api/flows,
// GET /api/logs/<name> (?follow=1 streams NDJSON), GET /api/stream (the dashboard's
// server-sent events); GET / and /dashboard.js (the dashboard page, open),
// GET /metrics (Prometheus text).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTokenError, verifyToken } from './auth.js';
import type { RelayEvent } from './events.js';
import { serveDashboardAsset, streamDashboard } from './dashboard.js';
import type { FlowRecord } from './flows.js';
import type { HostDetails } from './host-details.js';
import type { LogLine } from './host-logs.js';
import { METRICS_CONTENT_TYPE } from './metrics.js';
import { ADMIN_HOST, ERROR_HEADER } from './protocol.js';

/** The parts of the relay the API serves. */
export interface AdminTarget {
  hosts(): unknown[];
  events(): RelayEvent[];
  onEvent(fn: (event: RelayEvent) => void): () => void;
  counters(): Record<string, number>;
  describe(name: string): HostDetails | undefined;
  metrics(): string;
  flows(host?: string): FlowRecord[] | undefined;
  logs(host: string, since?: number): LogLine[] | undefined;
  onLog(fn: (line: LogLine) => void): () => void;
  /** stream a pcap capture to `res` (null), or say why not */
  capture(res: ServerResponse, hosts: string[], count: number, durationMs: number): { status: number; error: string } | null;
  ping(target: string, timeoutMs?: number): Promise<{ address: string; rttMs: number }>;
  readonly network: string;
  readonly gateway: string;
}

const MAX_BODY = 4096;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  const headers: Record<string, string | number> = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' };
  if (status >= 400 && typeof body === 'object' && body !== null && 'error' in body) {
    headers[ERROR_HEADER] = String((body as { error: unknown }).error).replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
  }
  res.writeHead(status, headers);
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        if (!done) resolve(null);
        done = true;
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks).toString('utf8'));
      done = true;
    });
    req.on('error', () => {
      if (!done) resolve(null);
      done = true;
    });
  });
}

export class AdminApi {
  private followers = 0;

  constructor(
    private readonly relay: AdminTarget,
    private readonly secret: string,
    private readonly maxFollowers: number,
  ) {}

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, { error: `internal error: ${e instanceof Error ? e.message : String(e)}` });
      else res.destroy();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://relay');
    } catch {
      return send(res, 400, { error: 'bad request URL' });
    }
    const path = url.pathname;
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'use GET' });
      return send(res, 200, { ok: true, network: this.relay.network, gateway: this.relay.gateway });
    }
    // the page and its script hold no data: the token is asked for by the page itself
    if (req.method === 'GET' && serveDashboardAsset(path, res)) return;
    if (!path.startsWith('/api/') && path !== '/metrics') return send(res, 404, { error: `not found: ${path}` });

    const auth = req.headers.authorization;
    const m = typeof auth === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
    const claims = verifyToken(this.secret, m ? m[1] : undefined, Date.now());
    if (isTokenError(claims)) return send(res, 401, { error: claims.message });
    if (claims.h !== ADMIN_HOST) return send(res, 403, { error: `token for ${claims.h} is not an ${ADMIN_HOST} token` });

    if (path === '/metrics') {
      if (req.method !== 'GET') return send(res, 405, { error: 'use GET' });
      const text = this.relay.metrics();
      res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
      res.end(text);
      return;
    }
    const logPath = /^\/api\/logs\/([^/]+)$/.exec(path);
    if (logPath !== null) {
      if (req.method !== 'GET') return send(res, 405, { error: `method ${req.method} not allowed on ${path}` });
      let name: string;
      try {
        name = decodeURIComponent(logPath[1]!);
      } catch {
        return send(res, 400, { error: 'bad host name' });
      }
      const since = Number(url.searchParams.get('since') ?? '0');
      if (!Number.isFinite(since) || since < 0) return send(res, 400, { error: 'since must be a time in ms since the epoch' });
      const lines = this.relay.logs(name, since);
      if (lines === undefined) return send(res, 404, { error: `unknown host ${name.slice(0, 64)}` });
      const follow = url.searchParams.get('follow');
      if (follow !== '1' && follow !== 'true') return send(res, 200, { lines });
      return this.followLogs(req, res, name, lines);
    }
    const hostPath = /^\/api\/hosts\/([^/]+)$/.exec(path);
    if (hostPath !== null) {
      if (req.method !== 'GET') return send(res, 405, { error: `method ${req.method} not allowed on ${path}` });
      let name: string;
      try {
        name = decodeURIComponent(hostPath[1]!);
      } catch {
        return send(res, 400, { error: 'bad host name' });
      }
      const d = this.relay.describe(name);
      if (d === undefined) return send(res, 404, { error: `unknown host ${name.slice(0, 64)}` });
      return send(res, 200, d);
    }

    const route = `${req.method} ${path}`;
    switch (route) {
      case 'GET /api/hosts':
        return send(res, 200, { hosts: this.relay.hosts() });
      case 'GET /api/capture': {
        const hosts = url.searchParams.getAll('host');
        const count = Number(url.searchParams.get('count') ?? '0');
        const durationMs = Number(url.searchParams.get('duration') ?? '0');
        if (hosts.length > 64 || hosts.some((h) => h.length === 0 || h.length > 255)) return send(res, 400, { error: 'host: 1 to 64 host names' });
        if (!Number.isSafeInteger(count) || count < 0) return send(res, 400, { error: 'count must be a whole number >= 0' });
        if (!Number.isSafeInteger(durationMs) || durationMs < 0 || durationMs > 7 * 86_400_000) return send(res, 400, { error: 'duration must be milliseconds, 0 to 7 days' });
        const refused = this.relay.capture(res, hosts, count, durationMs);
        if (refused !== null) return send(res, refused.status, { error: refused.error });
        req.on('error', () => res.destroy());
        return;
      }
      case 'GET /api/stream': {
        if (this.followers >= this.maxFollowers) return send(res, 503, { error: 'too many followers' });
        this.followers++;
        return streamDashboard(this.relay, req, res, () => this.followers--);
      }
      case 'GET /api/flows': {
        const host = url.searchParams.get('host') ?? undefined;
        const flows = this.relay.flows(host);
        if (flows === undefined) return send(res, 404, { error: `unknown host ${(host ?? '').slice(0, 64)}` });
        return send(res, 200, { flows });
      }
      case 'GET /api/counters':
        return send(res, 200, { counters: this.relay.counters() });
      case 'GET /api/events': {
        const follow = url.searchParams.get('follow');
        if (follow === '1' || follow === 'true') return this.follow(req, res);
        return send(res, 200, { events: this.relay.events() });
      }
      case 'POST /api/ping': {
        const text = await readBody(req);
        if (text === null) return send(res, 413, { error: `body larger than ${MAX_BODY} bytes` });
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          return send(res, 400, { error: 'body is not JSON' });
        }
        const target = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).target : undefined;
        if (typeof target !== 'string' || target.length === 0 || target.length > 255) return send(res, 400, { error: 'body needs {"target": "<host name or address>"}' });
        const t = (body as Record<string, unknown>).timeoutMs;
        const timeoutMs = typeof t === 'number' && t > 0 && t <= 120_000 ? t : undefined;
        try {
          const r = await this.relay.ping(target, timeoutMs);
          return send(res, 200, r);
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          return send(res, msg.startsWith('unknown host') ? 404 : msg.includes('unreachable') ? 502 : 504, { error: msg });
        }
      }
      default:
        if (['/api/hosts', '/api/events', '/api/counters', '/api/ping', '/api/capture', '/api/flows', '/api/stream'].includes(path)) return send(res, 405, { error: `method ${req.method} not allowed on ${path}` });
        return send(res, 404, { error: `not found: ${path}` });
    }
  }

  private followLogs(req: IncomingMessage, res: ServerResponse, host: string, past: LogLine[]): void {
    if (this.followers >= this.maxFollowers) return send(res, 503, { error: 'too many followers' });
    this.followers++;
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store' });
    res.flushHeaders();
    for (const l of past) res.write(JSON.stringify(l) + '\n');
    const off = this.relay.onLog((l) => {
      if (l.host !== host) return;
      // a follower that cannot keep up is cut off rather than buffered without bound
      if (res.writableLength > 1024 * 1024) res.destroy();
      else res.write(JSON.stringify(l) + '\n');
    });
    res.once('close', () => {
      off();
      this.followers--;
    });
    req.on('error', () => res.destroy());
  }

  private follow(req: IncomingMessage, res: ServerResponse): void {
    if (this.followers >= this.maxFollowers) return send(res, 503, { error: 'too many event followers' });
    this.followers++;
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store' });
    // the client learns at once that it is following, even before the first event
    res.flushHeaders();
    for (const e of this.relay.events()) res.write(JSON.stringify(e) + '\n');
    const off = this.relay.onEvent((e) => {
      // a follower that cannot keep up is cut off rather than buffered without bound
      if (res.writableLength > 1024 * 1024) res.destroy();
      else res.write(JSON.stringify(e) + '\n');
    });
    const done = (): void => {
      off();
      this.followers--;
    };
    res.once('close', done);
    req.on('error', () => res.destroy());
  }
}
