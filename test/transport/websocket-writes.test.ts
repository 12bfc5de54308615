import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { FrameParser } from '../../transport/frame-parser.js';
import { WebSocketConnection } from '../../transport/websocket.js';

/** A socket that records what the connection writes: each write (or each buffer of a corked writev) as one chunk. */
class RecordingSocket extends Duplex {
  readonly chunks: Buffer[] = [];
  /** calls of _write/_writev: socket writes as the kernel would see them */
  writes = 0;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writes++;
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.writes++;
    for (const c of chunks) this.chunks.push(Buffer.from(c.chunk));
    cb();
  }
}

type Msg = { kind: 'binary'; data: Buffer } | { kind: 'text'; text: string } | { kind: 'ping'; data: Buffer };

/** The frames a server connection wrote, as a client reads them. */
function framesOf(chunks: Buffer[]): Msg[] {
  const out: Msg[] = [];
  const parser = new FrameParser(
    {
      binary: (views) => out.push({ kind: 'binary', data: Buffer.concat(views) }),
      text: (text) => out.push({ kind: 'text', text }),
      ping: (p) => out.push({ kind: 'ping', data: Buffer.from(p) }),
      pong: () => {},
      close: () => {},
      fail: (code, reason) => assert.fail(`bad frames: ${code} ${reason}`),
    },
    { role: 'client', maxBinaryBytes: 1 << 20, maxTextBytes: 1 << 16 },
  );
  for (const c of chunks) parser.push(c);
  return out;
}

const tick = () => new Promise((r) => setImmediate(r));

describe('transport/websocket: writes', () => {
  it('writes a burst of small frames as one buffer, in order with text, pings and large frames', async () => {
    const socket = new RecordingSocket();
    const ws = new WebSocketConnection(socket, { role: 'server', maxBinaryBytes: 1 << 20, maxTextBytes: 1 << 16 });
    const small = (i: number) => Buffer.alloc(64, i);
    const large = Buffer.alloc(5000, 0xee);
    const sent: Msg[] = [];
    for (let i = 0; i < 100; i++) {
      // two views per frame: the frame is one message all the same
      const p = small(i);
      assert.equal(ws.sendBinary([p.subarray(0, 20), p.subarray(20)], 64), true);
      sent.push({ kind: 'binary', data: p });
    }
    // queued and not yet written: still counted as the connection's send queue
    assert.ok(ws.bufferedAmount >= 100 * 66, `bufferedAmount ${ws.bufferedAmount}`);
    ws.sendText('between');
    sent.push({ kind: 'text', text: 'between' });
    ws.sendBinary([large], large.length);
    sent.push({ kind: 'binary', data: large });
    ws.ping(Buffer.from('p'));
    sent.push({ kind: 'ping', data: Buffer.from('p') });
    for (let i = 100; i < 110; i++) {
      ws.sendBinary([small(i)], 64);
      sent.push({ kind: 'binary', data: small(i) });
    }
    await tick();
    assert.deepEqual(framesOf(socket.chunks), sent);
    assert.equal(socket.writes, 1, 'one burst, one socket write');
    // 100 small frames in one buffer, text, the large frame's header and payload, ping, 10 small frames in one buffer
    assert.equal(socket.chunks.length, 6);
    assert.equal(ws.bufferedAmount, 0);
    ws.terminate();
  });

  it('a small frame written after the views it was given change keeps the bytes it was given', async () => {
    const socket = new RecordingSocket();
    const ws = new WebSocketConnection(socket, { role: 'server', maxBinaryBytes: 1 << 20, maxTextBytes: 1 << 16 });
    const p = Buffer.alloc(64, 1);
    ws.sendBinary([p], 64);
    p.fill(2);
    ws.sendBinary([p], 64);
    await tick();
    // the next burst's frames go after the first burst's, not over them
    ws.sendBinary([Buffer.alloc(10, 3)], 10);
    await tick();
    const got = framesOf(socket.chunks).map((m) => (m.kind === 'binary' ? m.data : Buffer.alloc(0)));
    assert.deepEqual(got, [Buffer.alloc(64, 1), Buffer.alloc(64, 2), Buffer.alloc(10, 3)]);
    assert.equal(socket.writes, 2);
    ws.terminate();
  });

  it('a client with the zero key coalesces too; its frames carry the mask bit and key', async () => {
    const socket = new RecordingSocket();
    const ws = new WebSocketConnection(socket, { role: 'client', mask: 'zero', maxBinaryBytes: 1 << 20, maxTextBytes: 1 << 16 });
    for (let i = 0; i < 3; i++) ws.sendBinary([Buffer.alloc(8, i)], 8);
    await tick();
    assert.equal(socket.chunks.length, 1);
    const frame = socket.chunks[0];
    assert.equal(frame.length, 3 * (2 + 4 + 8));
    assert.equal(frame[1], 0x80 | 8);
    const events: Buffer[] = [];
    const parser = new FrameParser(
      { binary: (v) => events.push(Buffer.concat(v)), text: () => {}, ping: () => {}, pong: () => {}, close: () => {}, fail: (c, r) => assert.fail(`${c} ${r}`) },
      { role: 'server', maxBinaryBytes: 1 << 20, maxTextBytes: 1024 },
    );
    parser.push(frame);
    assert.deepEqual(events, [Buffer.alloc(8, 0), Buffer.alloc(8, 1), Buffer.alloc(8, 2)]);
    ws.terminate();
  });
});
