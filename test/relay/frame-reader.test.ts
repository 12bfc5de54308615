import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { FrameReader } from '../../relay/frame-reader.js';
import { mulberry32 } from '../../netstack/link/prng.js';
import { clientFrame } from '../support/ws-frames.js';

const MAX = 1 << 20;

/** A socket whose reads the test decides (emit 'data') and whose writes it keeps. */
class FakeSocket extends Duplex {
  readonly written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written.push(chunk);
    cb();
  }
}

type Event = ['bin', string] | ['text', string] | ['message-bin', string] | ['ping', string] | ['error', string];

interface Harness {
  ws: WebSocket;
  socket: FakeSocket;
  reader: FrameReader | string;
  events: Event[];
  close(): void;
}

function hex(views: Uint8Array[]): string {
  return Buffer.concat(views).toString('hex');
}

/** A server WebSocket upgraded on a fake socket the way the relay's WebSocketServer does it. */
function harness(opts: { allowSynchronousEvents?: boolean } = {}): Harness {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX, clientTracking: false, ...opts });
  const socket = new FakeSocket();
  const req = {
    method: 'GET',
    headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
  } as unknown as IncomingMessage;
  let ws: WebSocket | null = null;
  wss.handleUpgrade(req, socket, Buffer.alloc(0), (w) => (ws = w));
  assert.ok(ws !== null, 'upgraded synchronously');
  const events: Event[] = [];
  const w = ws as WebSocket;
  const reader = FrameReader.attach(w, socket, MAX, (views, length) => {
    assert.equal(views.reduce((n, v) => n + v.length, 0), length);
    events.push(['bin', hex(views)]);
  });
  w.on('message', (data: RawData, isBinary: boolean) => events.push(isBinary ? ['message-bin', (data as Buffer).toString('hex')] : ['text', (data as Buffer).toString()]));
  w.on('ping', (data: Buffer) => events.push(['ping', data.toString()]));
  w.on('error', (err: Error & { code?: string }) => events.push(['error', err.code ?? err.message]));
  socket.written.length = 0; // the 101 response
  return {
    ws: w,
    socket,
    reader,
    events,
    close: () => {
      w.terminate();
      socket.destroy();
      wss.close();
    },
  };
}

/** Server frames (unmasked) written to the socket: opcode and payload. */
function serverFrames(written: Buffer[]): { opcode: number; payload: Buffer }[] {
  const b = Buffer.concat(written);
  const out: { opcode: number; payload: Buffer }[] = [];
  let o = 0;
  while (o + 2 <= b.length) {
    let len = b[o + 1] & 0x7f;
    let h = 2;
    if (len === 126) {
      len = b.readUInt16BE(o + 2);
      h = 4;
    } else if (len === 127) {
      len = b.readUInt32BE(o + 6);
      h = 10;
    }
    out.push({ opcode: b[o] & 0x0f, payload: b.subarray(o + h, o + h + len) });
    o += h + len;
  }
  return out;
}

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Feed `stream` in chunks cut at `cuts` (sorted offsets), each a fresh buffer as a socket read is. */
function feed(h: Harness, stream: Buffer, cuts: number[]): void {
  let at = 0;
  for (const c of [...cuts, stream.length]) {
    if (c > at) h.socket.emit('data', Buffer.from(stream.subarray(at, c)));
    at = c;
  }
}

describe('relay frame reader', () => {
  const a = bytes(300, 1);
  const b = bytes(70_000, 2);
  const c = bytes(20, 3);
  // a pong is not in the event log
  const small: [Buffer, Event | null][] = [
    [clientFrame(1, Buffer.from('{"type":"activity"}')), ['text', '{"type":"activity"}']],
    [clientFrame(2, a, { key: [0x12, 0x34, 0x56, 0x78] }), ['bin', Buffer.from(a).toString('hex')]],
    [clientFrame(9, Buffer.from('hi')), ['ping', 'hi']],
    [clientFrame(2, c), ['bin', Buffer.from(c).toString('hex')]],
    [clientFrame(2, new Uint8Array(0)), ['bin', '']],
    [clientFrame(10, Buffer.from('po'), { key: [1, 2, 3, 4] }), null],
    [clientFrame(1, Buffer.from('{"type":"x"}'), { key: [9, 9, 9, 9] }), ['text', '{"type":"x"}']],
  ];
  const smallStream = Buffer.concat(small.map((s) => s[0]));
  const smallExpected = small.map((s) => s[1]).filter((e): e is Event => e !== null);

  it('takes binary frames itself and hands the rest to ws, in order, split at every point', () => {
    for (let cut = 0; cut <= smallStream.length; cut++) {
      const h = harness();
      try {
        assert.ok(h.reader instanceof FrameReader, String(h.reader));
        feed(h, smallStream, [cut]);
        assert.deepEqual(h.events, smallExpected, `split at ${cut}`);
        assert.equal(h.reader.framesTaken, 3);
        // the ping was answered
        assert.deepEqual(serverFrames(h.socket.written).map((f) => [f.opcode, f.payload.toString()]), [[10, 'hi']]);
      } finally {
        h.close();
      }
    }
  });

  it('takes frames with 16- and 64-bit lengths and a non-zero key, split at random points (seeded)', () => {
    const stream = Buffer.concat([smallStream, clientFrame(2, b, { key: [0xde, 0xad, 0xbe, 0xef] }), clientFrame(1, Buffer.from('{"type":"end"}'))]);
    const expected: Event[] = [...smallExpected, ['bin', Buffer.from(b).toString('hex')], ['text', '{"type":"end"}']];
    const next = mulberry32(42);
    for (let round = 0; round < 200; round++) {
      const n = 1 + Math.floor(next() * 40);
      const cuts = Array.from({ length: n }, () => Math.floor(next() * stream.length)).sort((x, y) => x - y);
      const h = harness();
      try {
        feed(h, stream, cuts);
        assert.deepEqual(h.events, expected, `round ${round} cuts ${cuts.join(',')}`);
      } finally {
        h.close();
      }
    }
  });

  it('answers a close frame as ws does and reads nothing after it', () => {
    const h = harness();
    try {
      const close = Buffer.alloc(2);
      close.writeUInt16BE(1000);
      feed(h, Buffer.concat([clientFrame(2, c), clientFrame(8, close, { key: [5, 6, 7, 8] }), clientFrame(2, a)]), [3, 30]);
      assert.deepEqual(h.events, [['bin', Buffer.from(c).toString('hex')]]);
      const out = serverFrames(h.socket.written);
      assert.equal(out.length, 1);
      assert.equal(out[0].opcode, 8);
      assert.equal(out[0].payload.readUInt16BE(0), 1000);
      assert.equal(h.ws.readyState, 2); // CLOSING: waiting for the socket to end
    } finally {
      h.close();
    }
  });

  it('closes with 1009 on a frame over maxPayload, as ws does', async () => {
    const h = harness();
    try {
      const big = Buffer.alloc(14);
      big[0] = 0x82;
      big[1] = 0x80 | 127;
      big.writeUInt32BE(MAX + 1, 6);
      feed(h, Buffer.concat([clientFrame(2, c), big, Buffer.alloc(100)]), [5, 22]);
      // ws reports the error, and closes, on the next tick
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(h.events, [
        ['bin', Buffer.from(c).toString('hex')],
        ['error', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'],
      ]);
      const out = serverFrames(h.socket.written);
      assert.equal(out.length, 1);
      assert.equal(out[0].opcode, 8);
      assert.equal(out[0].payload.readUInt16BE(0), 1009);
      assert.equal((h.reader as FrameReader).framesTaken, 1);
    } finally {
      h.close();
    }
  });

  it('hands fragmented messages to ws (also the control frames between them), then takes frames again', () => {
    const h = harness();
    try {
      const part1 = bytes(10_000, 7);
      const part2 = bytes(9_000, 8);
      const stream = Buffer.concat([
        clientFrame(2, part1, { fin: false, key: [1, 1, 1, 1] }),
        clientFrame(9, Buffer.from('p')),
        clientFrame(0, part2),
        clientFrame(2, c),
      ]);
      for (let at = 0; at < stream.length; at += 4096) h.socket.emit('data', Buffer.from(stream.subarray(at, Math.min(stream.length, at + 4096))));
      assert.deepEqual(h.events, [
        ['ping', 'p'],
        ['message-bin', Buffer.concat([part1, part2]).toString('hex')],
        ['bin', Buffer.from(c).toString('hex')],
      ]);
      const r = h.reader as FrameReader;
      assert.equal(r.framesTaken, 1);
      assert.equal(r.framesPassed, 3);
    } finally {
      h.close();
    }
  });

  it('closes with 1002 on a protocol error ws detects (unmasked frame) and reads nothing after it', async () => {
    const h = harness();
    try {
      const unmasked = Buffer.from([0x82, 0x02, 0xaa, 0xbb]);
      feed(h, Buffer.concat([unmasked, clientFrame(2, c)]), []);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(h.events, [['error', 'WS_ERR_EXPECTED_MASK']]);
      const out = serverFrames(h.socket.written);
      assert.equal(out[0].opcode, 8);
      assert.equal(out[0].payload.readUInt16BE(0), 1002);
      assert.equal((h.reader as FrameReader).framesTaken, 0);
    } finally {
      h.close();
    }
  });

  it('reads what a paused socket still holds when it closes, as ws does', async () => {
    const h = harness();
    try {
      h.socket.pause();
      const stream = Buffer.concat([clientFrame(2, c), clientFrame(1, Buffer.from('{"type":"bye"}')), clientFrame(2, a, { key: [3, 3, 3, 3] })]);
      h.socket.push(stream.subarray(0, 40));
      h.socket.push(stream.subarray(40));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(h.events, []);
      h.socket.destroy();
      await new Promise((r) => h.socket.once('close', r));
      assert.deepEqual(h.events, [
        ['bin', Buffer.from(c).toString('hex')],
        ['text', '{"type":"bye"}'],
        ['bin', Buffer.from(a).toString('hex')],
      ]);
    } finally {
      h.close();
    }
  });

  it('refuses to attach when ws does not emit synchronously, leaving ws reading the socket', () => {
    const h = harness({ allowSynchronousEvents: false });
    try {
      assert.equal(typeof h.reader, 'string');
      assert.match(h.reader as string, /synchronous/);
      assert.equal(h.socket.listeners('data').length, 1);
    } finally {
      h.close();
    }
  });
});
