// The WebSocket join's HTTP upgrade: path, subprotocol, token, host name, limits; then the
// WebSocket handshake and the session (the relay's onJoin).

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { acceptUpgrade, isUpgradeRefusal, refuseUpgrade as refuseWebSocket } from '../transport/handshake.js';
import type { WebSocketConnection } from '../transport/websocket.js';
import { isTokenError, verifyToken } from './auth.js';
import type { HostEntry } from './host.js';
import { isDnsLabel } from './manifest.js';
import { ADMIN_HOST, DEFAULT_MTU, ERROR_HEADER, JOIN_PATH, MAX_CONTROL_CHARS, SUBPROTOCOL, maxFrameBytes } from './protocol.js';

/** hosts batch up to 16 packets of their MTU; accept a full-size batch whatever ours is */
export const MAX_FRAME_BYTES = maxFrameBytes(DEFAULT_MTU);
/** Control messages are at most MAX_CONTROL_CHARS UTF-16 units: at most 3 UTF-8 bytes each. */
const MAX_CONTROL_TEXT_BYTES = MAX_CONTROL_CHARS * 3;

/** What the upgrade needs from the relay. */
export interface UpgradeContext {
  readonly closing: boolean;
  readonly secret: string;
  readonly sessionCount: number;
  readonly limits: { readonly maxSessions: number };
  readonly table: { byName(name: string): HostEntry | undefined };
  readonly lifecycle: { isRetired(entry: HostEntry, nonce: string): boolean };
  count(reason: string, entry: HostEntry | null): void;
  makeDynamicRoom(now: number): boolean;
  createDynamic(name: string): HostEntry | string;
  onJoin(entry: HostEntry, ws: WebSocketConnection, nonce: string): void;
}

export function singleLine(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
}

/** Refuse an HTTP upgrade with a status and a reason in X-Imach-Error and the body. */
function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  const text = singleLine(reason);
  const phrase: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 503: 'Service Unavailable' };
  socket.end(
    `HTTP/1.1 ${status} ${phrase[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `${ERROR_HEADER}: ${text}\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`,
  );
  socket.destroy();
}

function bearer(req: IncomingMessage, url: URL): string | undefined {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1] : '';
  }
  return url.searchParams.get('token') ?? undefined;
}

export function onUpgrade(ctx: UpgradeContext, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://relay');
  } catch {
    return refuseUpgrade(socket, 400, 'bad request URL');
  }
  if (url.pathname !== JOIN_PATH) return refuseUpgrade(socket, 404, `no WebSocket endpoint at ${url.pathname}; hosts join at ${JOIN_PATH}`);
  if (ctx.closing) return refuseUpgrade(socket, 503, 'relay is closing');
  const offered = req.headers['sec-websocket-protocol'];
  if (typeof offered === 'string' && !offered.split(',').some((p) => p.trim() === SUBPROTOCOL)) {
    return refuseUpgrade(socket, 400, `unsupported subprotocol; this relay speaks ${SUBPROTOCOL}`);
  }
  const claims = verifyToken(ctx.secret, bearer(req, url), Date.now());
  if (isTokenError(claims)) {
    ctx.count(`auth-${claims.code}`, null);
    return refuseUpgrade(socket, 401, claims.message);
  }
  const name = claims.h;
  if (name === ADMIN_HOST || !isDnsLabel(name)) {
    ctx.count('auth-unknown-host', null);
    return refuseUpgrade(socket, 403, `unknown host: ${name}`);
  }
  const entry = ctx.table.byName(name);
  if (entry !== undefined && ctx.lifecycle.isRetired(entry, claims.n)) {
    ctx.count('auth-superseded', entry);
    return refuseUpgrade(socket, 403, `superseded instance of ${name}: this relay has started or admitted another`);
  }
  if ((entry === undefined || entry.session === null) && ctx.sessionCount >= ctx.limits.maxSessions) return refuseUpgrade(socket, 503, 'too many sessions');
  // a new name gets its entry only once the upgrade has succeeded (a refused or broken
  // upgrade must not use up the pool)
  if (entry === undefined && !ctx.makeDynamicRoom(Date.now())) return refuseUpgrade(socket, 503, 'dynamic address pool is full');
  const nonce = claims.n;
  const ws = acceptUpgrade(req, socket, head, { protocol: SUBPROTOCOL, maxBinaryBytes: MAX_FRAME_BYTES, maxTextBytes: MAX_CONTROL_TEXT_BYTES });
  if (isUpgradeRefusal(ws)) return refuseWebSocket(socket, ws.status, ws.message, ERROR_HEADER, ws.headers);
  let target = ctx.table.byName(name);
  if (target === undefined) {
    const created = ctx.makeDynamicRoom(Date.now()) ? ctx.createDynamic(name) : 'dynamic address pool is full';
    if (typeof created === 'string') {
      // WebSocket close code 1013 (IANA registry, RFC 6455 section 11.7): try again later
      ws.start({});
      ws.close(1013, created);
      return;
    }
    target = created;
  }
  ctx.onJoin(target, ws, nonce);
}
