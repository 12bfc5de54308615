// Network secret and HMAC tokens (format in relay/PROTOCOL.md).

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_TOKEN_TTL_S, SECRET_ENV, TOKEN_PREFIX, type TokenClaims } from './protocol.js';

export type TokenErrorCode = 'missing' | 'malformed' | 'forged' | 'expired';

export interface TokenError {
  readonly tokenError: true;
  code: TokenErrorCode;
  message: string;
}

export function isTokenError(v: unknown): v is TokenError {
  return typeof v === 'object' && v !== null && (v as { tokenError?: unknown }).tokenError === true;
}

function terr(code: TokenErrorCode, detail?: string): TokenError {
  return { tokenError: true, code, message: detail ? `${code} token: ${detail}` : `${code} token` };
}

const SECRET_FILE = 'secret';
const MAX_TOKEN_CHARS = 4096;

/** The network secret: IMACH_SECRET, else `<stateDir>/secret`, created (mode 0600) if absent. */
export async function loadOrCreateSecret(stateDir: string): Promise<string> {
  const fromEnv = process.env[SECRET_ENV];
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  const file = join(stateDir, SECRET_FILE);
  try {
    const text = (await readFile(file, 'utf8')).trim();
    if (text.length > 0) return text;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  try {
    await writeFile(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    // Another process created it first: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(file, 'utf8')).trim();
    throw e;
  }
  await chmod(file, 0o600);
  return secret;
}

function mac(secret: string, signed: string): Buffer {
  return createHmac('sha256', secret).update(signed, 'ascii').digest();
}

/** A fresh token nonce (the claims' `n`). */
export function newNonce(): string {
  return randomBytes(12).toString('base64url');
}

/** Mint a token for `host` valid for ttlSeconds from `now` (ms since the epoch). */
export function mintToken(
  secret: string,
  host: string,
  ttlSeconds: number = DEFAULT_TOKEN_TTL_S,
  now: number = Date.now(),
  nonce: string = newNonce(),
): string {
  const iat = Math.floor(now / 1000);
  const claims: TokenClaims = { h: host, iat, exp: iat + Math.max(1, Math.floor(ttlSeconds)), n: nonce };
  const signed = `${TOKEN_PREFIX}.${Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url')}`;
  return `${signed}.${mac(secret, signed).toString('base64url')}`;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Verify a token at `now` (ms since the epoch). Never throws. */
export function verifyToken(secret: string, token: string | undefined | null, now: number = Date.now()): TokenClaims | TokenError {
  if (token === undefined || token === null || token.length === 0) return terr('missing');
  if (token.length > MAX_TOKEN_CHARS) return terr('malformed', 'too long');
  const parts = token.split('.');
  if (parts.length !== 3) return terr('malformed', 'expected imach1.<claims>.<mac>');
  if (parts[0] !== TOKEN_PREFIX) return terr('malformed', `unknown prefix ${JSON.stringify(parts[0].slice(0, 16))}`);
  if (!B64URL.test(parts[1]) || !B64URL.test(parts[2])) return terr('malformed', 'not base64url');
  const given = Buffer.from(parts[2], 'base64url');
  const expected = mac(secret, `${parts[0]}.${parts[1]}`);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return terr('forged', 'signature mismatch');
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return terr('malformed', 'claims are not JSON');
  }
  if (typeof claims !== 'object' || claims === null) return terr('malformed', 'claims are not an object');
  const c = claims as Record<string, unknown>;
  if (typeof c.h !== 'string' || c.h.length === 0 || typeof c.iat !== 'number' || typeof c.exp !== 'number' || typeof c.n !== 'string') {
    return terr('malformed', 'claims need h, iat, exp, n');
  }
  if (c.exp * 1000 <= now) return terr('expired', `expired at ${new Date(c.exp * 1000).toISOString()}`);
  return { h: c.h, iat: c.iat, exp: c.exp, n: c.n };
}
