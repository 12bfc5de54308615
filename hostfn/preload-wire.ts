// The request and reply that open every connection from the preload library
// (native/preload/preload.c, `struct request` / `struct reply`) to the host runtime's
// Unix listener. Addresses and ports in network order, the rest little endian.

import { constants as osConstants } from 'node:os';

export const REQUEST_BYTES = 16;
export const REPLY_BYTES = 20;
/** A host name to resolve is at most this long (RFC 1035 section 2.3.4: 255 octets on the wire). */
export const MAX_NAME_BYTES = 253;

export const OP_CONNECT = 1;
export const OP_LISTEN = 2;
export const OP_ACCEPT = 3;
export const OP_RESOLVE = 4;

export interface PreloadRequest {
  op: number;
  /** dotted quad */
  address: string;
  port: number;
  /** listen: backlog; accept: listener id; resolve: name length */
  arg: number;
  pid: number;
}

export interface PreloadReply {
  /** 0 or a positive errno */
  err: number;
  id?: number;
  localAddress?: string;
  localPort?: number;
  peerAddress?: string;
  peerPort?: number;
}

function quad(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

function putQuad(buf: Buffer, at: number, address: string | undefined): void {
  const parts = (address ?? '0.0.0.0').split('.').map(Number);
  for (let i = 0; i < 4; i++) buf[at + i] = parts.length === 4 && Number.isInteger(parts[i]) ? parts[i]! & 0xff : 0;
}

export function decodeRequest(buf: Buffer): PreloadRequest {
  return {
    op: buf[0]!,
    port: buf.readUInt16BE(2),
    address: quad(buf, 4),
    arg: buf.readUInt32LE(8),
    pid: buf.readUInt32LE(12),
  };
}

export function encodeRequest(r: PreloadRequest): Buffer {
  const b = Buffer.alloc(REQUEST_BYTES);
  b[0] = r.op;
  b.writeUInt16BE(r.port, 2);
  putQuad(b, 4, r.address);
  b.writeUInt32LE(r.arg, 8);
  b.writeUInt32LE(r.pid, 12);
  return b;
}

export function encodeReply(r: PreloadReply): Buffer {
  const b = Buffer.alloc(REPLY_BYTES);
  b.writeInt32LE(r.err, 0);
  b.writeUInt32LE(r.id ?? 0, 4);
  putQuad(b, 8, r.localAddress);
  b.writeUInt16BE(r.localPort ?? 0, 12);
  b.writeUInt16BE(r.peerPort ?? 0, 14);
  putQuad(b, 16, r.peerAddress);
  return b;
}

export function decodeReply(b: Buffer): PreloadReply {
  return {
    err: b.readInt32LE(0),
    id: b.readUInt32LE(4),
    localAddress: quad(b, 8),
    localPort: b.readUInt16BE(12),
    peerPort: b.readUInt16BE(14),
    peerAddress: quad(b, 16),
  };
}

const ERRNO: Readonly<Record<string, number>> = osConstants.errno as Readonly<Record<string, number>>;

/** The Linux errno of a Node-style error code (ECONNREFUSED...), EIO for anything else. */
export function errnoOf(code: string | undefined): number {
  if (code === 'ENOTFOUND') return ERRNO.EHOSTUNREACH ?? 113;
  return (code !== undefined ? ERRNO[code] : undefined) ?? ERRNO.EIO ?? 5;
}
