// The opening handshake (RFC 6455 section 4): the server's check of an upgrade request and
// its 101 answer, the key/accept computation both ends use, and HTTP refusals.

import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketConnection } from './websocket.js';

/** RFC 6455 section 1.3: the GUID appended to the key. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** RFC 6455 section 4.1: the only version defined. */
export const WEBSOCKET_VERSION = '13';

/** RFC 6455 section 4.2.2: Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}

/** RFC 6455 section 4.1: the key is 16 random bytes, base64: 24 characters. */
export function isValidKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(key);
}

export interface UpgradeRefusal {
  readonly refused: true;
  status: number;
  message: string;
  /** extra response headers (426 names the version) */
  headers?: Record<string, string>;
}

export function isUpgradeRefusal(v: unknown): v is UpgradeRefusal {
  return typeof v === 'object' && v !== null && (v as { refused?: unknown }).refused === true;
}

export interface AcceptOptions {
  /** The subprotocol this server speaks: chosen when offered; a request offering others only is refused. */
  protocol: string;
  maxBinaryBytes: number;
  maxTextBytes: number;
  closeTimeoutMs?: number;
}

function headerTokens(v: string | string[] | undefined): string[] {
  const text = Array.isArray(v) ? v.join(',') : (v ?? '');
  return text
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0);
}

/**
 * Check an upgrade request (RFC 6455 section 4.2.1). Returns the subprotocol to answer
 * with ('' when none was offered) or why the request is refused. Writes nothing.
 */
export function checkUpgrade(req: IncomingMessage, protocol: string): string | UpgradeRefusal {
  const refuse = (status: number, message: string, headers?: Record<string, string>): UpgradeRefusal => ({ refused: true, status, message, ...(headers ? { headers } : {}) });
  if (req.method !== 'GET') return refuse(400, 'a WebSocket upgrade is a GET');
  if (!headerTokens(req.headers.upgrade).includes('websocket')) return refuse(400, 'Upgrade: websocket missing');
  if (!headerTokens(req.headers.connection).includes('upgrade')) return refuse(400, 'Connection: Upgrade missing');
  // RFC 6455 section 4.2.2: an unsupported version gets 426 naming the supported one
  if (req.headers['sec-websocket-version'] !== WEBSOCKET_VERSION) return refuse(426, `WebSocket version ${WEBSOCKET_VERSION} required`, { 'Sec-WebSocket-Version': WEBSOCKET_VERSION });
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !isValidKey(key.trim())) return refuse(400, 'Sec-WebSocket-Key missing or not 16 bytes of base64');
  const offered = req.headers['sec-websocket-protocol'];
  if (offered === undefined) return '';
  if (!headerTokens(offered).includes(protocol.toLowerCase())) return refuse(400, `unsupported subprotocol; this server speaks ${protocol}`);
  return protocol;
}

/**
 * Accept an upgrade: check it (checkUpgrade), write the 101, and return the connection
 * that now owns `socket`. A refusal is returned, not written: answer it with refuseUpgrade.
 */
export function acceptUpgrade(req: IncomingMessage, socket: Duplex, head: Uint8Array, options: AcceptOptions): WebSocketConnection | UpgradeRefusal {
  const protocol = checkUpgrade(req, options.protocol);
  if (isUpgradeRefusal(protocol)) return protocol;
  const key = (req.headers['sec-websocket-key'] as string).trim();
  // extensions offered (permessage-deflate, ...) are declined by not naming them
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n` +
      (protocol !== '' ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
      '\r\n',
  );
  return new WebSocketConnection(
    socket,
    { role: 'server', protocol, maxBinaryBytes: options.maxBinaryBytes, maxTextBytes: options.maxTextBytes, ...(options.closeTimeoutMs !== undefined ? { closeTimeoutMs: options.closeTimeoutMs } : {}) },
    head,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  426: 'Upgrade Required',
  503: 'Service Unavailable',
};

/** Answer an upgrade request with an HTTP error; `errorHeader` carries the message too. */
export function refuseUpgrade(socket: Duplex, status: number, message: string, errorHeader: string, headers: Record<string, string> = {}): void {
  const text = message.replace(/[\r\n]+/g, ' ').slice(0, 1024);
  let extra = '';
  for (const [k, v] of Object.entries(headers)) extra += `${k}: ${v}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `${errorHeader}: ${text}\r\n${extra}Content-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`,
  );
  socket.destroy();
}
