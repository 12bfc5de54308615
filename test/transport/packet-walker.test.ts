import assert from 'node:assert/strict';
import { checkPacket, MALFORMED_CHECKSUM, MALFORMED_LENGTH, MALFORMED_SHORT, MALFORMED_VERSION } from '../../transport/packet-walker.js';
import { PacketWalker } from '../../transport/packet-walker.js';
import { addr, concat, rawPacket } from '../support/relay-packets.js';

/** An IPv4 packet with `optionWords` words of options (IHL 5 + optionWords), checksummed. */
function withOptions(src: string, dst: string, optionWords: number, payload: number, fill: number): Uint8Array {
  const hl = 20 + optionWords * 4;
  const p = new Uint8Array(hl + payload).fill(fill);
  p[0] = 0x40 | (hl >> 2);
  p[1] = 0;
  p[2] = (hl + payload) >> 8;
  p[3] = (hl + payload) & 0xff;
  p[8] = 64;
  p[9] = 253;
  p[10] = 0;
  p[11] = 0;
  new DataView(p.buffer).setUint32(12, addr(src));
  new DataView(p.buffer).setUint32(16, addr(dst));
  for (let i = 20; i < hl; i++) p[i] = 1; // RFC 791 section 3.1: option type 1, no-operation
  let sum = 0;
  for (let i = 0; i < hl; i += 2) sum += (p[i] << 8) | p[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  p[10] = c >> 8;
  p[11] = c & 0xff;
  return p;
}

function splitAt(frame: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, frame.length]) {
    if (c > at) out.push(frame.slice(at, c));
    at = c;
  }
  return out;
}

interface Walked {
  lengths: number[];
  src: number[];
  dst: number[];
  packets: Uint8Array[];
  copies: Uint8Array[];
  end: number;
}

function walk(views: Uint8Array[], length: number, reused?: PacketWalker): Walked {
  const w = reused?.reset(views, length) ?? new PacketWalker(views, length);
  const r: Walked = { lengths: [], src: [], dst: [], packets: [], copies: [], end: 0 };
  while (!w.done) {
    const off = w.pos;
    const len = w.check();
    if (len < 0) {
      r.end = len;
      break;
    }
    r.lengths.push(len);
    r.src.push(w.src);
    r.dst.push(w.dst);
    r.packets.push(concat(...w.slice(off, off + len)));
    r.copies.push(w.bytes(off, off + len));
    w.skip(len);
  }
  return r;
}

describe('transport/packet-walker', () => {
  const A = '10.77.0.5';
  const B = '10.77.0.9';
  const packets = [rawPacket(A, B, 20, 1), withOptions(B, A, 10, 33, 2), rawPacket(A, B, 300, 3), withOptions(A, B, 1, 0, 4), rawPacket(B, B, 41, 5)];
  const frame = concat(...packets);

  function assertWalked(r: Walked, what: string): void {
    assert.equal(r.end, 0, what);
    assert.deepEqual(r.lengths, packets.map((p) => p.length), what);
    assert.deepEqual(r.packets, packets, what);
    assert.deepEqual(r.copies, packets, what);
    assert.deepEqual(r.src, [A, B, A, A, B].map(addr), what);
    assert.deepEqual(r.dst, [B, A, B, B, B].map(addr), what);
  }

  it('walks a frame in one view as checkPacket does', () => {
    const r = walk([frame], frame.length);
    assertWalked(r, 'one view');
    let off = 0;
    for (const len of r.lengths) {
      assert.equal(checkPacket(frame, off), len);
      off += len;
    }
  });

  it('walks a frame split at every point, and at every pair of points near headers', () => {
    for (let cut = 0; cut <= frame.length; cut++) assertWalked(walk(splitAt(frame, [cut]), frame.length), `split at ${cut}`);
    // the second packet's 60-byte header split three ways
    const start = packets[0].length;
    for (let i = start; i <= start + 60; i++) {
      for (let j = i; j <= start + 60; j++) assertWalked(walk(splitAt(frame, [i, j]), frame.length), `split at ${i},${j}`);
    }
  });

  it('walks a frame split into single bytes', () => {
    assertWalked(walk(splitAt(frame, Array.from({ length: frame.length }, (_, i) => i)), frame.length), 'bytes');
  });

  it('returns a packet in one view without copying it', () => {
    const views = splitAt(frame, [packets[0].length + 5]);
    const w = new PacketWalker(views, frame.length);
    w.skip(packets[0].length);
    w.skip(packets[1].length);
    const off = w.pos;
    const one = w.bytes(off, off + packets[2].length);
    assert.equal(one.buffer, views[1].buffer);
    const whole = new PacketWalker([frame], frame.length).slice(0, frame.length);
    assert.equal(whole[0], frame);
  });

  it('one walker reset frame after frame walks each as a fresh one does', () => {
    const w = new PacketWalker([], 0);
    for (let cut = 0; cut <= frame.length; cut += 7) {
      // a frame walked halfway (as the router leaves one at a malformed packet) must not leak into the next
      w.reset(splitAt(frame, [3, 50]), frame.length).skip(packets[0].length);
      w.slice(packets[0].length, frame.length);
      assertWalked(walk(splitAt(frame, [cut]), frame.length, w), `reset, split at ${cut}`);
    }
  });

  it('hands on the whole frame as the views it was given, not a new array', () => {
    const views = splitAt(frame, [10, 200]);
    assert.equal(new PacketWalker(views, frame.length).slice(0, frame.length), views);
  });

  it('stops at a malformed packet in the middle wherever the frame is split', () => {
    const bad = rawPacket(A, B, 100, 7);
    bad[10] ^= 0xff;
    const f = concat(packets[0], packets[1], bad, packets[2]);
    const shortTail = concat(packets[0], new Uint8Array(19).fill(0x45));
    const overlong = concat(packets[0], packets[2].subarray(0, 299));
    const v6 = concat(packets[0], packets[2]);
    v6[packets[0].length] = 0x60;
    for (const [frameBytes, code, good] of [
      [f, MALFORMED_CHECKSUM, 2],
      [shortTail, MALFORMED_SHORT, 1],
      [overlong, MALFORMED_LENGTH, 1],
      [v6, MALFORMED_VERSION, 1],
    ] as const) {
      for (let cut = 0; cut <= frameBytes.length; cut++) {
        const r = walk(splitAt(frameBytes, [cut]), frameBytes.length);
        assert.equal(r.end, code, `split at ${cut}`);
        assert.equal(r.lengths.length, good, `split at ${cut}`);
      }
    }
  });
});
