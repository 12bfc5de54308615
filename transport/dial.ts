// The client end of the opening handshake (RFC 6455 section 4.1): an HTTP(S) request with
// the upgrade, the 101 checked (status, Upgrade, Connection, Sec-WebSocket-Accept,
// subprotocol), then a WebSocketConnection on the socket. For wss:// the TLS connection is
// made and its certificate verified (system CAs, a given CA, or a pinned SHA-256
// fingerprint) before the request, so no header (the token) is sent to an unverified peer.

import { randomBytes, X509Certificate } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, checkServerIdentity, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { acceptKey, WEBSOCKET_VERSION } from './handshake.js';
import { WebSocketConnection, type MaskMode } from './websocket.js';

export interface TlsTrust {
  /** PEM CA certificate(s) to verify the server with, instead of the system's. */
  ca?: string | Buffer | (string | Buffer)[];
  /**
   * SHA-256 fingerprint of the server's certificate (hex, colons optional). When given,
   * the certificate must have it, and no CA is consulted: a self-signed relay is trusted.
   */
  certSha256?: string;
}

export interface DialOptions {
  /** ws:// or wss:// URL, path and query included */
  url: string;
  /** subprotocol to offer; the 101 must select it */
  protocol: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
  tls?: TlsTrust;
  maxBinaryBytes: number;
  maxTextBytes: number;
  /**
   * Masking of the connection's frames; default: 'zero' over TLS or to a loopback
   * address (no intermediary reads the bytes), else 'random' (see PROTOCOL.md).
   */
  mask?: MaskMode;
  /** the response header holding why the server refused (its value goes in the error) */
  errorHeader?: string;
}

export interface DialError {
  readonly dialError: true;
  kind: 'http' | 'network' | 'tls' | 'protocol' | 'timeout';
  message: string;
  /** the HTTP status of a refusal */
  status?: number;
  /** the refusal's `errorHeader` (or body text) */
  reason?: string;
}

export function isDialError(v: unknown): v is DialError {
  return typeof v === 'object' && v !== null && (v as { dialError?: unknown }).dialError === true;
}

function dialError(kind: DialError['kind'], message: string, extra: Partial<DialError> = {}): DialError {
  return { dialError: true, kind, message, ...extra };
}

/** Normalized form of a SHA-256 fingerprint (64 lowercase hex digits), or null if it is not one. */
export function normalizeCertSha256(text: string): string | null {
  const hex = text.replace(/^sha256[:/]/i, '').replace(/[:\s]/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

/** SHA-256 fingerprint of a PEM certificate, as normalizeCertSha256 writes it. */
export function certSha256(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
}

/** Whether a URL host is this machine: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

export function dialWebSocket(options: DialOptions): Promise<WebSocketConnection | DialError> {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    return Promise.resolve(dialError('network', `invalid URL ${options.url}`));
  }
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  if (!secure && url.protocol !== 'ws:' && url.protocol !== 'http:') return Promise.resolve(dialError('network', `not a ws:// or wss:// URL: ${options.url}`));
  let pin: string | null = null;
  if (options.tls?.certSha256 !== undefined) {
    pin = normalizeCertSha256(options.tls.certSha256);
    if (pin === null) return Promise.resolve(dialError('tls', `certificate fingerprint is not a SHA-256 (64 hex digits): ${options.tls.certSha256}`));
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (secure ? 443 : 80));
  const mask: MaskMode = options.mask ?? (secure || isLoopbackHost(host) ? 'zero' : 'random');
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    let settled = false;
    let socket: Socket | TLSSocket | null = null;
    const done = (r: WebSocketConnection | DialError): void => {
      if (settled) {
        if (!isDialError(r)) r.terminate();
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (isDialError(r) && socket !== null) {
        socket.on('error', () => {});
        socket.destroy();
      }
      resolve(r);
    };
    const timer = setTimeout(() => done(dialError('timeout', `no WebSocket handshake with ${url.host} within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    const onSocketError = (e: Error): void => done(dialError('network', `cannot reach ${url.host}: ${e.message}`));
    let onTlsError: (e: Error) => void = onSocketError;
    if (!secure) {
      socket = netConnect({ host, port });
      socket.once('error', onSocketError);
      socket.once('connect', () => sendRequest(socket!));
      return;
    }
    const tls = tlsConnect({
      host,
      port,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ...(options.tls?.ca !== undefined ? { ca: options.tls.ca } : {}),
      // verified below, before anything is sent, so that a pin can stand in for a CA
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    socket = tls;
    onTlsError = (e: Error): void => done(dialError('tls', `TLS with ${url.host} failed: ${e.message}`));
    tls.once('error', onTlsError);
    tls.once('secureConnect', () => {
      const cert = tls.getPeerCertificate();
      if (pin !== null) {
        const got = (cert.fingerprint256 ?? '').replace(/:/g, '').toLowerCase();
        if (got !== pin) return done(dialError('tls', `certificate of ${url.host} does not match the pinned SHA-256 fingerprint (got ${got || 'no certificate'}, pinned ${pin})`));
      } else {
        if (!tls.authorized) return done(dialError('tls', `certificate of ${url.host} is not trusted: ${String(tls.authorizationError)}`));
        const mismatch = checkServerIdentity(host, cert);
        if (mismatch !== undefined) return done(dialError('tls', `certificate of ${url.host}: ${mismatch.message}`));
      }
      sendRequest(tls);
    });

    function sendRequest(conn: Duplex): void {
      const key = randomBytes(16).toString('base64');
      const req = httpRequest({
        createConnection: () => conn as Socket,
        host: url.host,
        path: url.pathname + url.search,
        method: 'GET',
        headers: {
          ...options.headers,
          Host: url.host,
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': WEBSOCKET_VERSION,
          'Sec-WebSocket-Key': key,
          'Sec-WebSocket-Protocol': options.protocol,
        },
      });
      req.on('error', (e: Error) => done(dialError('network', `WebSocket handshake with ${url.host} failed: ${e.message}`)));
      req.on('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const header = options.errorHeader !== undefined ? res.headers[options.errorHeader.toLowerCase()] : undefined;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 1024) body += c;
        });
        const finish = (): void => {
          const reason = (typeof header === 'string' ? header : '') || body.trim().slice(0, 1024) || `HTTP ${status}`;
          done(dialError('http', `refused: ${reason}`, { status, reason }));
        };
        res.on('end', finish);
        res.on('error', finish);
      });
      req.on('upgrade', (res: IncomingMessage, upgraded: Duplex, head: Buffer) => {
        const h = res.headers;
        const fail = (why: string): void => {
          upgraded.destroy();
          done(dialError('protocol', `bad WebSocket handshake from ${url.host}: ${why}`));
        };
        if (res.statusCode !== 101) return fail(`status ${String(res.statusCode)}`);
        if ((h.upgrade ?? '').toLowerCase() !== 'websocket') return fail('Upgrade is not websocket');
        if (!(h.connection ?? '').toLowerCase().split(/\s*,\s*/).includes('upgrade')) return fail('Connection is not Upgrade');
        if (h['sec-websocket-accept'] !== acceptKey(key)) return fail('Sec-WebSocket-Accept does not match the key');
        if (h['sec-websocket-protocol'] !== options.protocol) return fail(`subprotocol ${h['sec-websocket-protocol'] ?? '(none)'} instead of ${options.protocol}`);
        if (h['sec-websocket-extensions'] !== undefined) return fail('an extension was not offered');
        upgraded.off('error', onSocketError);
        upgraded.off('error', onTlsError);
        done(new WebSocketConnection(upgraded, { role: 'client', mask, protocol: options.protocol, maxBinaryBytes: options.maxBinaryBytes, maxTextBytes: options.maxTextBytes }, head));
      });
      req.end();
    }
  });
}
