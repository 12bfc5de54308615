import assert from 'node:assert/strict';
import { FrameParser, type FrameParserOptions } from '../../transport/frame-parser.js';
import { CLOSE_INVALID_DATA, CLOSE_NO_STATUS, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG, frameHeader, xorMask } from '../../transport/frame.js';
import { clientFrame, serverFrame } from '../support/ws-frames.js';

type Event =
  | { kind: 'binary'; data: Buffer }
  | { kind: 'text'; text: string }
  | { kind: 'ping' | 'pong'; data: Buffer }
  | { kind: 'close' | 'fail'; code: number; reason: string };

/** Feed `chunks` to a fresh parser (copies: the parser unmasks in place); what it reported. */
function parse(chunks: Uint8Array[], options: Partial<FrameParserOptions> = {}): Event[] {
  const events: Event[] = [];
  const parser = new FrameParser(
    {
      binary: (views, length) => {
        assert.equal(views.reduce((n, v) => n + v.length, 0), length);
        events.push({ kind: 'binary', data: Buffer.concat(views) });
      },
      text: (text) => events.push({ kind: 'text', text }),
      ping: (p) => events.push({ kind: 'ping', data: Buffer.from(p) }),
      pong: (p) => events.push({ kind: 'pong', data: Buffer.from(p) }),
      close: (code, reason) => events.push({ kind: 'close', code, reason }),
      fail: (code, reason) => events.push({ kind: 'fail', code, reason }),
    },
    { role: 'server', maxBinaryBytes: 1 << 20, maxTextBytes: 4096, ...options },
  );
  for (const c of chunks) parser.push(Buffer.from(c));
  return events;
}

function closeBody(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

const KEY = [0x12, 0x34, 0x56, 0x78];

/** A stream of every kind of frame a client sends, masked with a non-zero key. */
function sampleStream(): Buffer {
  const big = Buffer.alloc(70_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  return Buffer.concat([
    clientFrame(2, Buffer.from([1, 2, 3]), { key: KEY }),
    clientFrame(1, Buffer.from('héllo ✓', 'utf8'), { key: KEY }),
    clientFrame(9, Buffer.from('ping!'), { key: KEY }),
    clientFrame(2, big.subarray(0, 300), { key: KEY }),
    // a fragmented text message with a pong between its fragments
    clientFrame(1, Buffer.from('frag', 'utf8'), { key: KEY, fin: false }),
    clientFrame(10, Buffer.from('p'), { key: KEY }),
    clientFrame(0, Buffer.from('mented ✓', 'utf8'), { key: KEY }),
    clientFrame(2, big, { key: [0, 0, 0, 0] }),
    clientFrame(2, Buffer.alloc(0), { key: KEY }),
    clientFrame(8, closeBody(1000, 'bye'), { key: KEY }),
  ]);
}

describe('transport/frame-parser', () => {
  it('parses a stream split at every byte position into the same events', () => {
    const stream = sampleStream();
    const whole = parse([stream]);
    assert.deepEqual(
      whole.map((e) => e.kind),
      ['binary', 'text', 'ping', 'binary', 'pong', 'text', 'binary', 'binary', 'close'],
    );
    assert.equal((whole[1] as { text: string }).text, 'héllo ✓');
    assert.equal((whole[5] as { text: string }).text, 'fragmented ✓');
    assert.equal((whole[6] as { data: Buffer }).data.length, 70_000);
    assert.deepEqual(whole[8], { kind: 'close', code: 1000, reason: 'bye' });
    for (let cut = 1; cut < stream.length; cut++) {
      // every position around the headers and small frames; in the big payload, a sample
      if (cut > 400 && cut < stream.length - 100 && cut % 997 !== 0) continue;
      assert.deepEqual(parse([stream.subarray(0, cut), stream.subarray(cut)]), whole, `cut at ${cut}`);
    }
    const bytes: Uint8Array[] = [];
    for (let i = 0; i < 420; i++) bytes.push(stream.subarray(i, i + 1));
    bytes.push(stream.subarray(420));
    assert.deepEqual(parse(bytes), whole, 'one byte at a time');
  });

  it('hands a binary message on as views of the reads it spans', () => {
    const views: Uint8Array[][] = [];
    const parser = new FrameParser(
      { binary: (v) => views.push(v), text() {}, ping() {}, pong() {}, close() {}, fail: (c, r) => assert.fail(`${c} ${r}`) },
      { role: 'client', maxBinaryBytes: 1000, maxTextBytes: 100 },
    );
    const frame = serverFrame(Buffer.from([1, 2, 3, 4]), 2);
    const read1 = Buffer.from(frame.subarray(0, 4));
    const read2 = Buffer.from(frame.subarray(4));
    parser.push(read1);
    parser.push(read2);
    assert.equal(views.length, 1);
    assert.equal(views[0]![0]!.buffer, read1.buffer, 'a view of the first read');
    assert.equal(views[0]![1]!.buffer, read2.buffer, 'a view of the second read');
  });

  it('fails with the RFC 6455 close code for each violation', () => {
    const cases: [string, Buffer, number, Partial<FrameParserOptions>?][] = [
      ['unmasked frame to a server', serverFrame(Buffer.from([1]), 2), CLOSE_PROTOCOL_ERROR],
      ['masked frame to a client', clientFrame(2, Buffer.from([1])), CLOSE_PROTOCOL_ERROR, { role: 'client' }],
      ['reserved bit', Buffer.from([0xc2, 0x80, 0, 0, 0, 0]), CLOSE_PROTOCOL_ERROR],
      ['unknown data opcode', clientFrame(3, Buffer.from([1])), CLOSE_PROTOCOL_ERROR],
      ['unknown control opcode', clientFrame(0xb, Buffer.from([1])), CLOSE_PROTOCOL_ERROR],
      ['fragmented ping', clientFrame(9, Buffer.from([1]), { fin: false }), CLOSE_PROTOCOL_ERROR],
      ['ping over 125 bytes', clientFrame(9, Buffer.alloc(126)), CLOSE_PROTOCOL_ERROR],
      ['continuation without a message', clientFrame(0, Buffer.from([1])), CLOSE_PROTOCOL_ERROR],
      ['new message inside a fragmented one', Buffer.concat([clientFrame(2, Buffer.from([1]), { fin: false }), clientFrame(2, Buffer.from([1]))]), CLOSE_PROTOCOL_ERROR],
      ['64-bit length with the top bit', Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]), CLOSE_PROTOCOL_ERROR],
      ['binary over the limit', clientFrame(2, Buffer.alloc(101)), CLOSE_TOO_BIG, { maxBinaryBytes: 100 }],
      ['fragments over the limit together', Buffer.concat([clientFrame(2, Buffer.alloc(60), { fin: false }), clientFrame(0, Buffer.alloc(60))]), CLOSE_TOO_BIG, { maxBinaryBytes: 100 }],
      ['text over the limit', clientFrame(1, Buffer.alloc(4097, 0x61)), CLOSE_TOO_BIG],
      ['text not UTF-8', clientFrame(1, Buffer.from([0x61, 0xff, 0x62])), CLOSE_INVALID_DATA],
      ['text cut inside a character', clientFrame(1, Buffer.from('✓', 'utf8').subarray(0, 2)), CLOSE_INVALID_DATA],
      ['close with a 1-byte body', clientFrame(8, Buffer.from([3])), CLOSE_PROTOCOL_ERROR],
      ['close with code 1005', clientFrame(8, closeBody(1005)), CLOSE_PROTOCOL_ERROR],
      ['close with code 999', clientFrame(8, closeBody(999)), CLOSE_PROTOCOL_ERROR],
      ['close with code 5000', clientFrame(8, closeBody(5000)), CLOSE_PROTOCOL_ERROR],
      ['close reason not UTF-8', clientFrame(8, Buffer.concat([closeBody(1000), Buffer.from([0xc3])])), CLOSE_INVALID_DATA],
    ];
    for (const [name, bytes, code, options] of cases) {
      const events = parse([bytes, clientFrame(2, Buffer.from([9]))], options);
      assert.equal(events.length, 1, `${name}: one event, nothing parsed after it`);
      assert.equal(events[0]!.kind, 'fail', name);
      assert.equal((events[0] as { code: number }).code, code, name);
    }
    assert.deepEqual(parse([clientFrame(8, Buffer.alloc(0))]), [{ kind: 'close', code: CLOSE_NO_STATUS, reason: '' }]);
    assert.deepEqual(parse([clientFrame(8, closeBody(4000, 'replaced'))]), [{ kind: 'close', code: 4000, reason: 'replaced' }]);
  });

  it('survives 100,000 random and mutated frames: nothing thrown, every failure a close code', () => {
    let seed = 12345;
    const rand = (): number => {
      // xorshift32: seeded, so a failure can be replayed
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const valid = [...sampleStream().subarray(0, 400)];
    const codes = new Map<number, number>();
    let frames = 0;
    let parsers = 0;
    while (frames < 100_000) {
      const stream: Buffer[] = [];
      const n = 1 + Math.floor(rand() * 20);
      for (let i = 0; i < n; i++) {
        const kind = rand();
        let f: Buffer;
        if (kind < 0.3) {
          const len = Math.floor(rand() * 200);
          f = Buffer.alloc(len);
          for (let j = 0; j < len; j++) f[j] = Math.floor(rand() * 256);
        } else {
          const opcode = [0, 1, 2, 8, 9, 10, 3, 11][Math.floor(rand() * 8)]!;
          const payload = Buffer.alloc(Math.floor(rand() * (rand() < 0.1 ? 5000 : 130)));
          for (let j = 0; j < payload.length; j++) payload[j] = rand() < 0.8 ? 0x61 : Math.floor(rand() * 256);
          f = clientFrame(opcode, payload, { key: [1, 2, 3, 4].map(() => Math.floor(rand() * 256)), fin: rand() < 0.8 });
          if (kind > 0.7) {
            const flips = 1 + Math.floor(rand() * 3);
            for (let j = 0; j < flips; j++) f[Math.floor(rand() * Math.min(f.length, 16))] ^= 1 << Math.floor(rand() * 8);
          }
        }
        stream.push(f);
        frames++;
      }
      if (rand() < 0.1) stream.unshift(Buffer.from(valid));
      const bytes = Buffer.concat(stream);
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; ) {
        const size = 1 + Math.floor(rand() * 300);
        chunks.push(bytes.subarray(at, at + size));
        at += size;
      }
      const events = parse(chunks, { maxBinaryBytes: 4096, maxTextBytes: 2048 });
      parsers++;
      const ends = events.filter((e) => e.kind === 'fail' || e.kind === 'close');
      assert.ok(ends.length <= 1, 'at most one close or failure, and nothing after it');
      if (ends.length === 1) assert.equal(events.at(-1), ends[0]);
      for (const e of ends) if (e.kind === 'fail') codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
    }
    assert.ok(parsers > 5000);
    for (const code of codes.keys()) assert.ok([CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_DATA, CLOSE_TOO_BIG].includes(code), `code ${code}`);
    assert.ok((codes.get(CLOSE_PROTOCOL_ERROR) ?? 0) > 100, 'protocol errors seen');
    assert.ok((codes.get(CLOSE_INVALID_DATA) ?? 0) > 10, 'bad UTF-8 seen');
    assert.ok((codes.get(CLOSE_TOO_BIG) ?? 0) > 10, 'oversized seen');
  });
});

describe('transport/frame', () => {
  it('xorMask equals the byte-by-byte definition at every alignment and key offset', () => {
    const key = Uint8Array.from([0xde, 0xad, 0xbe, 0xef]);
    const src = Uint8Array.from({ length: 64 }, (_, i) => (i * 31) & 0xff);
    for (let offset = 0; offset < 8; offset++) {
      for (let len = 0; len < 40; len++) {
        for (let k = 0; k < 4; k++) {
          const backing = new Uint8Array(80);
          const dst = backing.subarray(offset + 3, offset + 3 + len);
          const s = src.subarray(offset, offset + len);
          const end = xorMask(s, dst, key, k);
          for (let i = 0; i < len; i++) assert.equal(dst[i], s[i]! ^ key[(k + i) & 3]!);
          assert.equal(end, (k + len) & 3);
          const inPlace = Uint8Array.from(s);
          xorMask(inPlace, inPlace, key, k);
          assert.deepEqual(inPlace, dst);
        }
      }
    }
  });

  it('writes the three length forms of the header', () => {
    assert.deepEqual([...frameHeader(2, 125, null)], [0x82, 125]);
    assert.deepEqual([...frameHeader(2, 126, null)], [0x82, 126, 0, 126]);
    assert.deepEqual([...frameHeader(1, 65536, Uint8Array.from([1, 2, 3, 4]))], [0x81, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]);
  });
});
