// A small client for the relay's admin HTTP API (bearer token for '@admin').

import type { FlowRecord, HostDetails, HostStatus, LogLine, RelayEvent } from '../relay/index.js';
import { CliError } from './args.js';

export interface AdminTarget {
  http: string;
  token: string;
}

async function call(t: AdminTarget, path: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(t.http + path, {
      ...init,
      headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', ...init.headers },
      signal: init.signal ?? AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new CliError(`cannot reach the relay at ${t.http}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  if (!res.ok) {
    const why = res.headers.get('x-imach-error') ?? errorFromBody(await res.text().catch(() => ''));
    throw new CliError(`relay answered ${res.status} for ${path}${why ? `: ${why}` : ''}`);
  }
  return res;
}

function errorFromBody(text: string): string {
  try {
    const o: unknown = JSON.parse(text);
    if (o && typeof o === 'object' && typeof (o as { error?: unknown }).error === 'string') return (o as { error: string }).error;
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 500);
}

function listOf<T>(body: unknown, key: string): T[] {
  if (Array.isArray(body)) return body as T[];
  if (body && typeof body === 'object' && Array.isArray((body as Record<string, unknown>)[key])) {
    return (body as Record<string, T[]>)[key]!;
  }
  throw new CliError(`unexpected answer from the relay (no ${key})`);
}

export async function getHosts(t: AdminTarget): Promise<HostStatus[]> {
  const res = await call(t, '/api/hosts');
  return listOf<HostStatus>(await res.json(), 'hosts');
}

export async function getHost(t: AdminTarget, name: string): Promise<HostDetails> {
  const res = await call(t, `/api/hosts/${encodeURIComponent(name)}`);
  const body = (await res.json()) as unknown;
  if (typeof body !== 'object' || body === null || typeof (body as { name?: unknown }).name !== 'string') throw new CliError('unexpected answer from the relay (no host)');
  return body as HostDetails;
}

export async function getFlows(t: AdminTarget, host?: string): Promise<FlowRecord[]> {
  const res = await call(t, host === undefined ? '/api/flows' : `/api/flows?host=${encodeURIComponent(host)}`);
  return listOf<FlowRecord>(await res.json(), 'flows');
}

export async function getMetrics(t: AdminTarget): Promise<string> {
  const res = await call(t, '/metrics');
  return res.text();
}

export async function getEvents(t: AdminTarget): Promise<RelayEvent[]> {
  const res = await call(t, '/api/events');
  return listOf<RelayEvent>(await res.json(), 'events');
}

export async function getLogs(t: AdminTarget, host: string, since: number): Promise<LogLine[]> {
  const res = await call(t, `/api/logs/${encodeURIComponent(host)}?since=${since}`);
  return listOf<LogLine>(await res.json(), 'lines');
}

/** Stream a host's output lines (NDJSON) until the signal fires or the relay ends the stream. */
export function followLogs(t: AdminTarget, host: string, since: number, onLine: (l: LogLine) => void, signal: AbortSignal): Promise<void> {
  return followNdjson<LogLine>(t, `/api/logs/${encodeURIComponent(host)}?since=${since}&follow=1`, onLine, signal, 'log stream');
}

/** Stream events (NDJSON) until the signal fires or the relay ends the stream. */
export function followEvents(t: AdminTarget, onEvent: (e: RelayEvent) => void, signal: AbortSignal): Promise<void> {
  return followNdjson<RelayEvent>(t, '/api/events?follow=1', onEvent, signal, 'event stream');
}

async function followNdjson<T>(t: AdminTarget, path: string, onEvent: (e: T) => void, signal: AbortSignal, what: string): Promise<void> {
  let res: Response;
  try {
    res = await call(t, path, { signal });
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  }
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        try {
          onEvent(JSON.parse(line) as T);
        } catch {
          // a line that is not JSON (keep-alive or garbage) is skipped
        }
      }
      if (buf.length > 1 << 20) buf = '';
    }
  } catch (e) {
    if (!signal.aborted) throw new CliError(`${what} ended: ${(e as Error).message}`);
  }
}

export interface PingReply {
  address: string;
  rttMs: number;
}

export async function ping(t: AdminTarget, target: string, timeoutMs: number): Promise<PingReply | { error: string }> {
  let res: Response;
  try {
    res = await fetch(t.http + '/api/ping', {
      method: 'POST',
      headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ target, timeoutMs }),
      signal: AbortSignal.timeout(timeoutMs + 5000),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    throw new CliError(`cannot reach the relay at ${t.http}: ${cause?.code ?? (e as Error).message}`);
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  const o = (body ?? {}) as Record<string, unknown>;
  if (res.ok && typeof o.rttMs === 'number' && typeof o.address === 'string') {
    return { address: o.address, rttMs: o.rttMs };
  }
  if (res.status === 401 || res.status === 403) {
    throw new CliError(`relay refused the admin token: ${res.headers.get('x-imach-error') ?? res.status}`);
  }
  const msg = typeof o.error === 'string' ? o.error : typeof o.message === 'string' ? o.message : text.trim() || `HTTP ${res.status}`;
  return { error: msg };
}
