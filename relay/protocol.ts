// The imach relay protocol, version 1 (see relay/PROTOCOL.md). Types, constants and a small
// codec for control messages. Imported by the relay, hostfn and the join pump: keep it free
// of runtime dependencies (no ws, no node:* imports).

export const PROTOCOL_VERSION = 1;
/** WebSocket subprotocol a host offers when it joins. */
export const SUBPROTOCOL = 'imach.v1';
/** HTTP path of the WebSocket upgrade. */
export const JOIN_PATH = '/v1/join';
/** Response header (and body) carrying why an upgrade or admin call was refused. */
export const ERROR_HEADER = 'X-Imach-Error';
/** First part of every token. */
export const TOKEN_PREFIX = 'imach1';
/** Host name of the admin API's tokens. Not a DNS label, so no host can carry it. */
export const ADMIN_HOST = '@admin';
/** Environment variable holding the network secret (overrides the state directory). */
export const SECRET_ENV = 'IMACH_SECRET';
/** Environment variable holding the Launch JSON for a local host function. */
export const LAUNCH_ENV = 'IMACH_LAUNCH';
/**
 * Set by `imach deploy` on a Lambda function: the manifest's folder when it was deployed,
 * which the package holds as `app/` (the handler maps launch paths under it).
 */
export const APP_BASE_ENV = 'IMACH_APP_BASE';

export const DEFAULT_NETWORK = '10.77.0.0/16';
export const DEFAULT_DOMAIN = 'imach';
/** Largest IPv4 packet on the overlay (the IPv4 total-length field's maximum). */
export const DEFAULT_MTU = 65535;
/** Packets of at most one MTU a sender may batch into one binary frame. */
export const MAX_PACKETS_PER_FRAME = 16;
/** The relay pings every session this often; two missed pongs close it. */
export const PING_INTERVAL_MS = 5000;
/** A running host sends `activity` at least this often (and on every change of `established`). */
export const ACTIVITY_INTERVAL_MS = 5000;
/** Reconnect backoff for hosts: first delay and cap. */
export const RECONNECT_MIN_MS = 100;
export const RECONNECT_MAX_MS = 3000;
/** Default token lifetime when none is given. */
export const DEFAULT_TOKEN_TTL_S = 24 * 3600;

/** Largest binary frame (bytes) a peer must accept: the maxPayload of both ends. */
export function maxFrameBytes(mtu: number = DEFAULT_MTU): number {
  return Math.max(576, Math.min(mtu, 65535)) * MAX_PACKETS_PER_FRAME;
}

// ---- control messages (text frames, JSON objects with a "type") ----

/** relay -> host, once, right after the upgrade. */
export interface WelcomeMessage {
  type: 'welcome';
  version: number;
  host: string;
  address: string;
  network: string;
  prefixLength: number;
  mtu: number;
  gateway: string;
  dns: string;
  domain: string;
  idleMs: number | null;
  session: string;
}

/** host -> relay: on change of the connection count and at least every ACTIVITY_INTERVAL_MS. */
export interface ActivityMessage {
  type: 'activity';
  /** established TCP connections */
  established: number;
  /** listening sockets (TCP listeners and bound UDP sockets) */
  listening: number;
  /** payload bytes received / sent by the host's stack since it started */
  bytesIn: number;
  bytesOut: number;
  /** ms since the host's last traffic on any connection */
  idleMs: number;
}

/** host -> relay, just before a host function ends on its own (app exited, or drained). */
export interface ReleasedMessage {
  type: 'released';
  reason: string;
  /**
   * The app failed at start (it threw, or its promise rejected) before the host carried any
   * traffic: the relay treats it as a failed start (state `failed`, retried with backoff),
   * like an app that cannot load. Absent means false.
   */
  startFailed?: boolean;
}

/** relay -> host: close listeners, give open connections graceMs to finish, then end. */
export interface DrainMessage {
  type: 'drain';
  reason: string;
  graceMs: number;
}

/** either way */
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}

export type RelayToHostMessage = WelcomeMessage | DrainMessage | ErrorMessage;
export type HostToRelayMessage = ActivityMessage | ReleasedMessage | ErrorMessage;
export type ControlMessage = RelayToHostMessage | HostToRelayMessage;

/** A well-formed message of a type this version does not know: ignore it. */
export interface UnknownControlMessage {
  type: 'unknown';
  original: string;
}

/** What a provider hands a host function (IMACH_LAUNCH for local, the event for Lambda). */
export interface Launch {
  host: string;
  /** ws://host:port of the relay (no path; the host appends JOIN_PATH) */
  relay: string;
  token: string;
  /** absolute path of the app module; '' for a `command:` host (then `program` is set) */
  run: string;
  /** a `command:` host: the program run as the host (absent for a `run:` module) */
  program?: ProgramSpec;
  env: Record<string, string>;
  idleMs: number | null;
  mtu: number;
  /**
   * SHA-256 fingerprint (hex) of the relay's TLS certificate, for a wss:// relay: the host
   * trusts exactly that certificate, with no CA (a self-signed relay).
   */
  relayCertSha256?: string;
  /** answer iperf3 on port 5201 (the manifest's `perf: true`) */
  perf?: boolean;
}

/** A `command:` host: an ordinary program run as the host (the Launch's `program`). */
export interface ProgramSpec {
  /** the program and its arguments; `node` programs get the register module, others the preload library */
  argv: string[];
  /** absolute working directory */
  cwd: string;
  /** 'host': addresses outside the overlay use the machine's network; 'none': refused */
  egress: 'host' | 'none';
}

export const MAX_PROGRAM_ARGS = 256;

function parseProgram(v: unknown): ProgramSpec | ProtocolError {
  if (!isObj(v)) return perr('program', 'program must be an object');
  const { argv, cwd, egress } = v;
  if (!Array.isArray(argv) || argv.length === 0 || argv.length > MAX_PROGRAM_ARGS || !argv.every((a) => typeof a === 'string' && a.length <= 4096)) {
    return perr('program.argv', `argv must be 1..${MAX_PROGRAM_ARGS} strings`);
  }
  if (typeof cwd !== 'string' || cwd === '' || cwd.length > 4096) return perr('program.cwd', 'cwd must be a path');
  if (egress !== 'host' && egress !== 'none') return perr('program.egress', "egress must be 'host' or 'none'");
  return { argv: argv as string[], cwd, egress };
}

/** Why bytes from a peer were not a valid message. */
export interface ProtocolError {
  readonly protocolError: true;
  field: string;
  message: string;
}

export function isProtocolError(v: unknown): v is ProtocolError {
  return typeof v === 'object' && v !== null && (v as { protocolError?: unknown }).protocolError === true;
}

function perr(field: string, message: string): ProtocolError {
  return { protocolError: true, field, message };
}

export function encodeControl(msg: ControlMessage): string {
  return JSON.stringify(msg);
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Obj, k: string, max = 4096): string | ProtocolError {
  const v = o[k];
  if (typeof v !== 'string') return perr(k, `${k} must be a string`);
  if (v.length > max) return perr(k, `${k} is longer than ${max}`);
  return v;
}

function count(o: Obj, k: string): number | ProtocolError {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return perr(k, `${k} must be a non-negative number`);
  return v;
}

function nullableMs(o: Obj, k: string): number | null | ProtocolError {
  const v = o[k];
  if (v === null) return null;
  return count(o, k);
}

/** Largest control message (characters) a peer needs to accept. */
export const MAX_CONTROL_CHARS = 64 * 1024;

/**
 * Decode one text frame. Never throws: returns the message, `unknown` for a well-formed
 * object of a type this version does not know, or a ProtocolError.
 */
export function decodeControl(text: string): ControlMessage | UnknownControlMessage | ProtocolError {
  if (text.length > MAX_CONTROL_CHARS) return perr('frame', `control message longer than ${MAX_CONTROL_CHARS}`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return perr('frame', 'control message is not JSON');
  }
  if (!isObj(v)) return perr('frame', 'control message is not a JSON object');
  const type = v.type;
  if (typeof type !== 'string') return perr('type', 'type must be a string');
  switch (type) {
    case 'activity': {
      const established = count(v, 'established');
      if (isProtocolError(established)) return established;
      const listening = count(v, 'listening');
      if (isProtocolError(listening)) return listening;
      const bytesIn = count(v, 'bytesIn');
      if (isProtocolError(bytesIn)) return bytesIn;
      const bytesOut = count(v, 'bytesOut');
      if (isProtocolError(bytesOut)) return bytesOut;
      const idleMs = count(v, 'idleMs');
      if (isProtocolError(idleMs)) return idleMs;
      return { type, established, listening, bytesIn, bytesOut, idleMs };
    }
    case 'released': {
      const reason = str(v, 'reason');
      if (isProtocolError(reason)) return reason;
      const startFailed = v.startFailed;
      if (startFailed !== undefined && typeof startFailed !== 'boolean') return perr('startFailed', 'startFailed must be a boolean');
      return startFailed === true ? { type, reason, startFailed } : { type, reason };
    }
    case 'drain': {
      const reason = str(v, 'reason');
      if (isProtocolError(reason)) return reason;
      const graceMs = count(v, 'graceMs');
      if (isProtocolError(graceMs)) return graceMs;
      return { type, reason, graceMs };
    }
    case 'error': {
      const code = str(v, 'code', 256);
      if (isProtocolError(code)) return code;
      const message = str(v, 'message');
      if (isProtocolError(message)) return message;
      return { type, code, message };
    }
    case 'welcome': {
      const out: Partial<WelcomeMessage> = { type };
      for (const k of ['host', 'address', 'network', 'gateway', 'dns', 'domain', 'session'] as const) {
        const s = str(v, k, 256);
        if (isProtocolError(s)) return s;
        out[k] = s;
      }
      for (const k of ['version', 'prefixLength', 'mtu'] as const) {
        const n = count(v, k);
        if (isProtocolError(n)) return n;
        out[k] = n;
      }
      const idleMs = nullableMs(v, 'idleMs');
      if (isProtocolError(idleMs)) return idleMs;
      out.idleMs = idleMs;
      return out as WelcomeMessage;
    }
    default:
      return { type: 'unknown', original: type };
  }
}

/** Validate a Launch (from IMACH_LAUNCH text or a Lambda event object). Never throws. */
export function parseLaunch(input: string | unknown): Launch | ProtocolError {
  let v: unknown = input;
  if (typeof input === 'string') {
    try {
      v = JSON.parse(input);
    } catch {
      return perr('launch', 'launch is not JSON');
    }
  }
  if (!isObj(v)) return perr('launch', 'launch is not a JSON object');
  const host = str(v, 'host', 256);
  if (isProtocolError(host)) return host;
  const relay = str(v, 'relay');
  if (isProtocolError(relay)) return relay;
  if (!/^wss?:\/\//.test(relay)) return perr('relay', 'relay must be a ws:// or wss:// URL');
  const token = str(v, 'token');
  if (isProtocolError(token)) return token;
  let program: ProgramSpec | undefined;
  if (v.program !== undefined) {
    const p = parseProgram(v.program);
    if (isProtocolError(p)) return p;
    program = p;
  }
  const run = program !== undefined && v.run === undefined ? '' : str(v, 'run');
  if (isProtocolError(run)) return run;
  if (program !== undefined && run !== '') return perr('run', 'a launch has either run or program, not both');
  if (program === undefined && run === '') return perr('run', 'run must be the path of the app module (or the launch has a program)');
  const envIn = v.env ?? {};
  if (!isObj(envIn)) return perr('env', 'env must be an object of strings');
  const env: Record<string, string> = {};
  for (const [k, val] of Object.entries(envIn)) {
    if (typeof val !== 'string') return perr(`env.${k}`, 'env values must be strings');
    env[k] = val;
  }
  const idleMs = nullableMs(v, 'idleMs');
  if (isProtocolError(idleMs)) return idleMs;
  const mtu = v.mtu === undefined ? DEFAULT_MTU : count(v, 'mtu');
  if (isProtocolError(mtu)) return mtu;
  if (v.perf !== undefined && typeof v.perf !== 'boolean') return perr('perf', 'perf must be true or false');
  const launch: Launch = { host, relay, token, run, env, idleMs, mtu };
  if (program !== undefined) launch.program = program;
  if (v.perf === true) launch.perf = true;
  if (v.relayCertSha256 === undefined) return launch;
  const pin = str(v, 'relayCertSha256', 128);
  if (isProtocolError(pin)) return pin;
  if (!/^(?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/.test(pin)) return perr('relayCertSha256', 'relayCertSha256 must be a SHA-256 fingerprint (64 hex digits)');
  launch.relayCertSha256 = pin;
  return launch;
}

// ---- tokens ----
// imach1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "imach1.<claims>"))>
// Minting and verifying (which need the secret and node:crypto) live in relay/auth.ts.

export interface TokenClaims {
  /** host name, or ADMIN_HOST */
  h: string;
  /** issued at, seconds since the epoch */
  iat: number;
  /** expires at, seconds since the epoch */
  exp: number;
  /** random nonce */
  n: string;
}

/** The host a token claims, without checking its signature (for logs and routing hints only). */
export function peekTokenHost(token: string): string | null {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== TOKEN_PREFIX) return null;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return isObj(claims) && typeof claims.h === 'string' ? claims.h : null;
  } catch {
    return null;
  }
}
