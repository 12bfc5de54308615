// RFC 6455 section 5: the WebSocket frame's constants, its header, and the mask XOR.

/** RFC 6455 section 5.2: opcodes. */
export const OPCODE_CONTINUATION = 0x0;
export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;
export const OPCODE_PING = 0x9;
export const OPCODE_PONG = 0xa;

/** RFC 6455 section 7.4.1: close status codes this codec sends or names. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_UNSUPPORTED_DATA = 1003;
/** RFC 6455 section 7.4.1: reported when a close frame had no code; never sent. */
export const CLOSE_NO_STATUS = 1005;
/** RFC 6455 section 7.4.1: reported when the connection ended without a close frame; never sent. */
export const CLOSE_ABNORMAL = 1006;
export const CLOSE_INVALID_DATA = 1007;
export const CLOSE_POLICY = 1008;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_INTERNAL_ERROR = 1011;
/** IANA WebSocket close code registry (RFC 6455 section 11.7): try again later. */
export const CLOSE_TRY_AGAIN = 1013;

/** RFC 6455 section 5.5: control frames carry at most 125 payload bytes. */
export const MAX_CONTROL_PAYLOAD = 125;
/** RFC 6455 section 5.2: 2 bytes, 8 of extended length, 4 of masking key. */
export const MAX_HEADER_BYTES = 14;

/**
 * Whether `code` may appear in a close frame (RFC 6455 section 7.4.1 and 7.4.2; 1012 to
 * 1014 are registered in IANA's registry; 3000 to 4999 belong to libraries and applications).
 */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * The header of a final frame: `opcode`, `length` payload bytes, masked with `maskKey`
 * (4 bytes) when one is given (RFC 6455 section 5.2). Written into `into` at 0 when given;
 * returns the header's byte length.
 */
export function writeFrameHeader(into: Uint8Array, opcode: number, length: number, maskKey: Uint8Array | null): number {
  const maskBit = maskKey !== null ? 0x80 : 0;
  into[0] = 0x80 | opcode;
  let at: number;
  if (length < 126) {
    into[1] = maskBit | length;
    at = 2;
  } else if (length < 65536) {
    into[1] = maskBit | 126;
    into[2] = length >>> 8;
    into[3] = length & 0xff;
    at = 4;
  } else {
    into[1] = maskBit | 127;
    const high = Math.floor(length / 2 ** 32);
    const low = length >>> 0;
    into[2] = high >>> 24;
    into[3] = (high >>> 16) & 0xff;
    into[4] = (high >>> 8) & 0xff;
    into[5] = high & 0xff;
    into[6] = low >>> 24;
    into[7] = (low >>> 16) & 0xff;
    into[8] = (low >>> 8) & 0xff;
    into[9] = low & 0xff;
    at = 10;
  }
  if (maskKey !== null) {
    into.set(maskKey.subarray(0, 4), at);
    at += 4;
  }
  return at;
}

/** Header length of a frame of `length` payload bytes. */
export function frameHeaderLength(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/** A new buffer holding the header of a final frame (see writeFrameHeader). */
export function frameHeader(opcode: number, length: number, maskKey: Uint8Array | null): Buffer {
  const h = Buffer.allocUnsafe(frameHeaderLength(length, maskKey !== null));
  writeFrameHeader(h, opcode, length, maskKey);
  return h;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * XOR `src` with `key` into `dst` (same length; may be the same bytes), starting at key
 * octet `keyOffset` (RFC 6455 section 5.3: octet i is XORed with key octet i mod 4).
 * Returns the key offset after the last byte. Works a 32-bit word at a time where `dst`
 * and `src` are aligned alike.
 */
export function xorMask(src: Uint8Array, dst: Uint8Array, key: Uint8Array, keyOffset: number): number {
  const n = src.length;
  let i = 0;
  let k = keyOffset & 3;
  // bytes until dst is 4-aligned
  while (i < n && ((dst.byteOffset + i) & 3) !== 0) {
    dst[i] = src[i] ^ key[k];
    k = (k + 1) & 3;
    i++;
  }
  const words = (n - i) >>> 2;
  if (words > 0 && ((src.byteOffset + i) & 3) === 0) {
    const k0 = key[k];
    const k1 = key[(k + 1) & 3];
    const k2 = key[(k + 2) & 3];
    const k3 = key[(k + 3) & 3];
    const word = littleEndian ? (k0 | (k1 << 8) | (k2 << 16) | (k3 << 24)) : ((k0 << 24) | (k1 << 16) | (k2 << 8) | k3);
    const s32 = new Int32Array(src.buffer, src.byteOffset + i, words);
    const d32 = src === dst ? s32 : new Int32Array(dst.buffer, dst.byteOffset + i, words);
    for (let w = 0; w < words; w++) d32[w] = s32[w] ^ word;
    i += words << 2;
  }
  for (; i < n; i++) {
    dst[i] = src[i] ^ key[k];
    k = (k + 1) & 3;
  }
  return k;
}
