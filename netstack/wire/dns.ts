// DNS messages (RFC 1035 section 4): enough for A-record queries and answers, with name
// compression (section 4.1.4) followed through a bounded number of backward pointers.

import { wireError, type WireError } from './error.js';
import { ipv4ToString, parseIpv4Address, readUint32, writeUint32 } from './ipv4.js';

export const DNS_TYPE_A = 1;
export const DNS_TYPE_CNAME = 5;
export const DNS_TYPE_AAAA = 28;
export const DNS_CLASS_IN = 1;

/** RFC 1035 section 4.1.1 RCODE values. */
export const DNS_RCODE_NOERROR = 0;
export const DNS_RCODE_FORMERR = 1;
export const DNS_RCODE_SERVFAIL = 2;
export const DNS_RCODE_NXDOMAIN = 3;
export const DNS_RCODE_NOTIMP = 4;
export const DNS_RCODE_REFUSED = 5;

const HEADER_LENGTH = 12;
/** RFC 1035 section 2.3.4 */
const MAX_NAME_LENGTH = 255;
const MAX_LABEL_LENGTH = 63;
const MAX_POINTER_JUMPS = 64;
/** Records beyond these counts are refused rather than parsed. */
export const DNS_MAX_QUESTIONS = 8;
export const DNS_MAX_ANSWERS = 64;

export interface DnsQuestion {
  /** lower-case, dot separated, no trailing dot */
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** RDATA view (aliases the input) */
  data: Uint8Array;
  /** dotted quad for a well-formed A record */
  address?: string;
}

export interface DnsMessage {
  id: number;
  /** true for a response */
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
}

interface NameRead {
  name: string;
  /** offset just past the name where it started (not where a pointer led) */
  next: number;
}

function readName(b: Uint8Array, offset: number): NameRead | WireError {
  const labels: string[] = [];
  let length = 0;
  let pos = offset;
  let next = -1;
  let jumps = 0;
  let lowest = offset;
  for (;;) {
    if (pos >= b.length) return wireError('dns-truncated');
    const len = b[pos];
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= b.length) return wireError('dns-truncated');
      const target = ((len & 0x3f) << 8) | b[pos + 1];
      // Only strictly backward pointers, so a loop cannot form.
      if (target >= lowest || ++jumps > MAX_POINTER_JUMPS) return wireError('dns-bad-pointer');
      if (next < 0) next = pos + 2;
      pos = target;
      lowest = target;
      continue;
    }
    if ((len & 0xc0) !== 0) return wireError('dns-bad-label');
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if (pos + 1 + len > b.length) return wireError('dns-truncated');
    length += len + 1;
    if (length > MAX_NAME_LENGTH) return wireError('dns-name-too-long');
    let label = '';
    for (let i = pos + 1; i <= pos + len; i++) {
      let c = b[i];
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      label += String.fromCharCode(c);
    }
    labels.push(label);
    pos += 1 + len;
  }
  return { name: labels.join('.'), next };
}

/** Parse a DNS query or response. Authority and additional sections are not read. */
export function parseDns(bytes: Uint8Array): DnsMessage | WireError {
  if (bytes.length < HEADER_LENGTH) return wireError('dns-truncated');
  const flags = (bytes[2] << 8) | bytes[3];
  const qdcount = (bytes[4] << 8) | bytes[5];
  const ancount = (bytes[6] << 8) | bytes[7];
  if (qdcount > DNS_MAX_QUESTIONS || ancount > DNS_MAX_ANSWERS) return wireError('dns-too-many-records');
  const msg: DnsMessage = {
    id: (bytes[0] << 8) | bytes[1],
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >>> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    questions: [],
    answers: [],
  };
  let pos = HEADER_LENGTH;
  for (let i = 0; i < qdcount; i++) {
    const n = readName(bytes, pos);
    if ('wireError' in n) return n;
    pos = n.next;
    if (pos + 4 > bytes.length) return wireError('dns-truncated');
    msg.questions.push({ name: n.name, type: (bytes[pos] << 8) | bytes[pos + 1], class: (bytes[pos + 2] << 8) | bytes[pos + 3] });
    pos += 4;
  }
  for (let i = 0; i < ancount; i++) {
    const n = readName(bytes, pos);
    if ('wireError' in n) return n;
    pos = n.next;
    if (pos + 10 > bytes.length) return wireError('dns-truncated');
    const type = (bytes[pos] << 8) | bytes[pos + 1];
    const cls = (bytes[pos + 2] << 8) | bytes[pos + 3];
    const ttl = readUint32(bytes, pos + 4);
    const rdlength = (bytes[pos + 8] << 8) | bytes[pos + 9];
    pos += 10;
    if (pos + rdlength > bytes.length) return wireError('dns-truncated');
    const data = bytes.subarray(pos, pos + rdlength);
    const record: DnsRecord = { name: n.name, type, class: cls, ttl, data };
    if (type === DNS_TYPE_A && cls === DNS_CLASS_IN && rdlength === 4) record.address = ipv4ToString(readUint32(data, 0));
    msg.answers.push(record);
    pos += rdlength;
  }
  return msg;
}

/** Encode a name as labels (RFC 1035 section 3.1), or null if it is not a valid name. */
export function encodeDnsName(name: string): Uint8Array | null {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed.length === 0) return new Uint8Array([0]);
  const labels = trimmed.split('.');
  let total = 1;
  for (const l of labels) {
    if (l.length === 0 || l.length > MAX_LABEL_LENGTH) return null;
    total += l.length + 1;
  }
  if (total > MAX_NAME_LENGTH) return null;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const l of labels) {
    out[pos++] = l.length;
    for (let i = 0; i < l.length; i++) {
      const c = l.charCodeAt(i);
      if (c > 0x7e || c <= 0x20) return null;
      out[pos++] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
    }
  }
  out[pos] = 0;
  return out;
}

function writeHeader(b: Uint8Array, id: number, flags: number, qd: number, an: number): void {
  b[0] = id >>> 8;
  b[1] = id;
  b[2] = flags >>> 8;
  b[3] = flags;
  b[4] = qd >>> 8;
  b[5] = qd;
  b[6] = an >>> 8;
  b[7] = an;
  b.fill(0, 8, 12);
}

/** A standard query for one name (type A unless given), recursion desired. */
export function buildDnsQuery(opts: { id: number; name: string; type?: number }): Uint8Array | WireError {
  const name = encodeDnsName(opts.name);
  if (name === null) return wireError('dns-bad-name');
  const out = new Uint8Array(HEADER_LENGTH + name.length + 4);
  writeHeader(out, opts.id, 0x0100, 1, 0);
  out.set(name, HEADER_LENGTH);
  const p = HEADER_LENGTH + name.length;
  const type = opts.type ?? DNS_TYPE_A;
  out[p] = type >>> 8;
  out[p + 1] = type;
  out[p + 2] = 0;
  out[p + 3] = DNS_CLASS_IN;
  return out;
}

export interface DnsAnswerA {
  /** defaults to the question's name */
  name?: string;
  /** dotted quad or uint32 */
  address: string | number;
  /** seconds */
  ttl?: number;
}

/**
 * A response to `query`, echoing its first question: A answers, or an rcode such as
 * DNS_RCODE_NXDOMAIN or DNS_RCODE_SERVFAIL with no answers.
 */
export function buildDnsResponse(
  query: DnsMessage,
  opts: { answers?: readonly DnsAnswerA[]; rcode?: number; authoritative?: boolean; recursionAvailable?: boolean },
): Uint8Array {
  const q = query.questions[0];
  const qname = q !== undefined ? encodeDnsName(q.name) : null;
  const answers = (opts.answers ?? []).slice(0, DNS_MAX_ANSWERS);
  const encoded: { name: Uint8Array | null; address: number; ttl: number }[] = [];
  let size = HEADER_LENGTH + (qname !== null ? qname.length + 4 : 0);
  for (const a of answers) {
    const address = typeof a.address === 'number' ? a.address >>> 0 : parseIpv4Address(a.address);
    if (address === null) continue;
    // Same name as the question: a compression pointer to offset 12 (RFC 1035 section 4.1.4).
    const name = a.name === undefined || (q !== undefined && a.name.toLowerCase() === q.name) ? null : encodeDnsName(a.name);
    if (name === null && qname === null) continue;
    encoded.push({ name, address, ttl: a.ttl ?? 60 });
    size += (name === null ? 2 : name.length) + 10 + 4;
  }
  const rcode = opts.rcode ?? DNS_RCODE_NOERROR;
  const flags =
    0x8000 |
    ((query.opcode & 0xf) << 11) |
    (opts.authoritative ?? true ? 0x0400 : 0) |
    (query.rd ? 0x0100 : 0) |
    (opts.recursionAvailable ? 0x0080 : 0) |
    (rcode & 0xf);
  const out = new Uint8Array(size);
  writeHeader(out, query.id, flags, qname !== null ? 1 : 0, encoded.length);
  let p = HEADER_LENGTH;
  if (qname !== null && q !== undefined) {
    out.set(qname, p);
    p += qname.length;
    out[p] = q.type >>> 8;
    out[p + 1] = q.type;
    out[p + 2] = q.class >>> 8;
    out[p + 3] = q.class;
    p += 4;
  }
  for (const a of encoded) {
    if (a.name === null) {
      out[p] = 0xc0;
      out[p + 1] = HEADER_LENGTH;
      p += 2;
    } else {
      out.set(a.name, p);
      p += a.name.length;
    }
    out[p] = 0;
    out[p + 1] = DNS_TYPE_A;
    out[p + 2] = 0;
    out[p + 3] = DNS_CLASS_IN;
    writeUint32(out, p + 4, a.ttl);
    out[p + 8] = 0;
    out[p + 9] = 4;
    writeUint32(out, p + 10, a.address);
    p += 14;
  }
  return out;
}
