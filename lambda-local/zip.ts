// Deployment packages: read a zip (stored or deflated entries, unix modes kept so a
// `bootstrap` stays executable) into a folder, and write one (tests, later `imach deploy`).
// Zip64, encryption and symlinks are refused.

import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Lambda's quota on a function's unzipped code. */
export const MAX_UNZIPPED_BYTES = 262_144_000;
const MAX_ENTRIES = 20_000;

// APPNOTE.TXT 4.3.16 / 4.3.12 / 4.3.7: record signatures
const EOCD_SIG = 0x06054b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const MADE_BY_UNIX = 3;

export interface ZipEntry {
  /** Relative path with `/` separators; a trailing `/` marks a directory. */
  name: string;
  data: Uint8Array;
  /** Unix permission bits (e.g. 0o755 for an executable); 0o644 when absent. */
  mode?: number;
}

export interface ZipError {
  kind: 'zip-error';
  message: string;
}

function zipError(message: string): ZipError {
  return { kind: 'zip-error', message };
}

export function isZipError(x: unknown): x is ZipError {
  return typeof x === 'object' && x !== null && (x as ZipError).kind === 'zip-error';
}

function safeName(name: string): boolean {
  if (name.length === 0 || name.length > 1024 || name.includes('\\') || name.includes('\0')) return false;
  if (name.startsWith('/')) return false;
  return name.split('/').every((part) => part !== '..');
}

/** Parse a zip archive; every entry's CRC is checked. Bounded by MAX_UNZIPPED_BYTES. */
export function readZip(zip: Uint8Array, maxBytes = MAX_UNZIPPED_BYTES): ZipEntry[] | ZipError {
  const buf = Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength);
  let eocd = -1;
  for (let i = buf.length - 22; i >= 0 && i >= buf.length - 22 - 0xffff; i--) {
    if (buf.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return zipError('not a zip file (no end of central directory)');
  const count = buf.readUInt16LE(eocd + 10);
  const cdSize = buf.readUInt32LE(eocd + 12);
  const cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) return zipError('zip64 archives are not supported');
  if (count > MAX_ENTRIES) return zipError(`too many entries (${count} > ${MAX_ENTRIES})`);
  if (cdOffset + cdSize > eocd) return zipError('central directory out of bounds');
  const entries: ZipEntry[] = [];
  let total = 0;
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > eocd || buf.readUInt32LE(p) !== CENTRAL_SIG) return zipError('bad central directory entry');
    const madeBy = buf.readUInt16LE(p + 4);
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    const compSize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const external = buf.readUInt32LE(p + 38);
    const localOffset = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (!safeName(name)) return zipError(`unsafe entry name '${name.slice(0, 100)}'`);
    if (flags & 1) return zipError(`encrypted entry '${name}'`);
    const unixMode = madeBy >> 8 === MADE_BY_UNIX ? external >>> 16 : 0;
    if ((unixMode & 0o170000) === 0o120000) return zipError(`symlink entry '${name}' is not supported`);
    if (localOffset + 30 > buf.length || buf.readUInt32LE(localOffset) !== LOCAL_SIG) return zipError(`bad local header for '${name}'`);
    const dataStart = localOffset + 30 + buf.readUInt16LE(localOffset + 26) + buf.readUInt16LE(localOffset + 28);
    if (dataStart + compSize > buf.length) return zipError(`entry '${name}' out of bounds`);
    total += size;
    if (total > maxBytes) return zipError(`unzipped size exceeds ${maxBytes} bytes`);
    const raw = buf.subarray(dataStart, dataStart + compSize);
    let data: Buffer;
    if (method === 0) data = raw;
    else if (method === 8) {
      try {
        data = inflateRawSync(raw, { maxOutputLength: Math.max(size, 1) });
      } catch (err) {
        return zipError(`cannot inflate '${name}': ${(err as Error).message}`);
      }
    } else return zipError(`entry '${name}' uses unsupported compression method ${method}`);
    if (data.length !== size || crc32(data) !== crc) return zipError(`entry '${name}' is corrupt (size or CRC mismatch)`);
    entries.push({ name, data, mode: unixMode & 0o777 || undefined });
  }
  return entries;
}

/** Write `entries` under `dir` (which must exist), keeping their modes. */
export function extractZip(entries: ZipEntry[], dir: string): void {
  for (const e of entries) {
    const target = join(dir, e.name);
    if (e.name.endsWith('/')) {
      mkdirSync(target, { recursive: true });
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, e.data);
    chmodSync(target, e.mode ?? 0o644);
  }
}

/** Build a zip archive (deflated entries, unix modes). */
export function writeZip(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const isDir = e.name.endsWith('/');
    const data = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
    const packed = isDir ? Buffer.alloc(0) : deflateRawSync(data);
    const crc = crc32(data);
    const method = isDir ? 0 : 8;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(LOCAL_SIG, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // APPNOTE 4.4.4 bit 11: names are UTF-8
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, packed);
    const mode = (isDir ? 0o040000 : 0o100000) | (e.mode ?? (isDir ? 0o755 : 0o644));
    const central = Buffer.alloc(46);
    central.writeUInt32LE(CENTRAL_SIG, 0);
    central.writeUInt16LE((MADE_BY_UNIX << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += 30 + name.length + packed.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(EOCD_SIG, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}
