// Error objects shaped like the ones Node's `net` and `dns` modules produce, so that code
// written against Node (checking err.code, err.syscall, err.address) works unchanged.

import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

/** An Error with Node's system-error fields. */
export interface NetError extends Error {
  code: string;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
  hostname?: string;
}

// getaddrinfo codes are libuv's EAI_* numbers, not os.constants.errno.
const DNS_ERRNO: Readonly<Record<string, number>> = {
  EAI_AGAIN: -3001,
  EAI_FAIL: -3002,
  ENOTFOUND: -3008,
  ENODATA: -3007,
};

/** Node's negative errno for a code (as os.constants.errno), or -1 when unknown. */
export function errnoOf(code: string): number {
  const n = (constants.errno as Readonly<Record<string, number | undefined>>)[code];
  if (n !== undefined) return -n;
  return DNS_ERRNO[code] ?? -1;
}

function makeError(message: string, code: string, syscall: string): NetError {
  const err = new Error(message) as NetError;
  err.errno = errnoOf(code);
  err.code = code;
  err.syscall = syscall;
  return err;
}

/** Like Node's exceptionWithHostPort: `connect ECONNREFUSED 10.77.0.5:80`. */
export function hostPortError(code: string, syscall: string, address: string, port: number): NetError {
  const details = port > 0 ? ` ${address}:${port}` : ` ${address}`;
  const err = makeError(`${syscall} ${code}${details}`, code, syscall);
  err.address = address;
  if (port > 0) err.port = port;
  return err;
}

/** Like Node's uvExceptionWithHostPort (listen, bind): `listen EADDRINUSE: address already in use 0.0.0.0:80`. */
export function uvHostPortError(code: string, syscall: string, address: string, port: number): NetError {
  const entry = getSystemErrorMap().get(errnoOf(code));
  const text = entry === undefined ? code.toLowerCase() : entry[1];
  const details = port > 0 ? ` ${address}:${port}` : ` ${address}`;
  const err = makeError(`${syscall} ${code}: ${text}${details}`, code, syscall);
  err.address = address;
  if (port > 0) err.port = port;
  return err;
}

/** Like Node's errnoException: `read ECONNRESET`. */
export function syscallError(code: string, syscall: string): NetError {
  return makeError(`${syscall} ${code}`, code, syscall);
}

/** Like Node's dnsException: `getaddrinfo ENOTFOUND db.internal`. */
export function lookupError(code: string, hostname: string): NetError {
  const err = makeError(`getaddrinfo ${code} ${hostname}`, code, 'getaddrinfo');
  err.hostname = hostname;
  return err;
}

/** An Error with a Node internal code (ERR_*), for misuse that Node reports the same way. */
export function codedError(code: string, message: string, kind: 'Error' | 'RangeError' | 'TypeError' = 'Error'): Error & { code: string } {
  const Ctor = kind === 'RangeError' ? RangeError : kind === 'TypeError' ? TypeError : Error;
  const err = new Ctor(message) as Error & { code: string };
  err.code = code;
  return err;
}

/** The code of whatever a name lookup rejected with; ENOTFOUND when it has none. */
export function lookupCodeOf(reason: unknown): string {
  if (typeof reason === 'object' && reason !== null) {
    const code = (reason as { code?: unknown }).code;
    if (typeof code === 'string' && code.length > 0) return code;
  }
  return 'ENOTFOUND';
}
