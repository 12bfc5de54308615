// WebSocket frames built by hand for tests of the frame readers (RFC 6455 section 5.2).

/** A client frame, masked with `key` (hosts send an all-zero key). */
export function clientFrame(opcode: number, payload: Uint8Array, o: { fin?: boolean; key?: number[] } = {}): Buffer {
  const key = o.key ?? [0, 0, 0, 0];
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const h = Buffer.alloc(2 + ext + 4);
  h[0] = (o.fin === false ? 0 : 0x80) | opcode;
  if (ext === 0) h[1] = 0x80 | len;
  else if (ext === 2) {
    h[1] = 0x80 | 126;
    h.writeUInt16BE(len, 2);
  } else {
    h[1] = 0x80 | 127;
    h.writeUInt32BE(0, 2);
    h.writeUInt32BE(len, 6);
  }
  h.set(key, 2 + ext);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([h, body]);
}

/** A server frame (unmasked, RFC 6455 section 5.1) carrying `payload`. */
export function serverFrame(payload: Uint8Array, opcode = 2): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const h = Buffer.alloc(2 + ext);
  h[0] = 0x80 | opcode;
  if (ext === 0) h[1] = len;
  else if (ext === 2) {
    h[1] = 126;
    h.writeUInt16BE(len, 2);
  } else {
    h[1] = 127;
    h.writeUInt32BE(len, 6);
  }
  return Buffer.concat([h, payload]);
}
