// The relay's data path without reassembly: frames taken off the socket by the relay
// (transport's codec), routed as views and forwarded as gather writes, over real sockets.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { RelayServer, startRelay, JOIN_PATH, SUBPROTOCOL, maxFrameBytes, type Relay } from '../../relay/index.js';
import { silentLogger } from '../../relay/log.js';
import { joinRelay, waitFor, type TestHost } from '../support/relay-client.js';
import { concat, rawPacket } from '../support/relay-packets.js';
import { clientFrame } from '../support/ws-frames.js';

interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** A host speaking RFC 6455 by hand, so a test decides every byte and where writes split. */
class RawHost {
  readonly frames: ServerFrame[] = [];
  private buf = Buffer.alloc(0);
  private upgraded = false;
  private waiters: (() => void)[] = [];
  closed = false;
  address = '';

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.parse();
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static async join(relay: Relay, name: string): Promise<RawHost> {
    const u = new URL(relay.url);
    const socket = connect(Number(u.port), u.hostname);
    socket.setNoDelay(true);
    const h = new RawHost(socket);
    socket.write(
      `GET ${JOIN_PATH} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Protocol: ${SUBPROTOCOL}\r\nAuthorization: Bearer ${relay.mintToken(name, 60)}\r\n\r\n`,
    );
    const welcome = await h.next((f) => f.opcode === 1);
    h.address = (JSON.parse(welcome.payload.toString()) as { address: string }).address;
    return h;
  }

  private parse(): void {
    if (!this.upgraded) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      assert.match(this.buf.subarray(0, end).toString(), /^HTTP\/1\.1 101/);
      this.buf = this.buf.subarray(end + 4);
      this.upgraded = true;
    }
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1] & 0x7f;
      let h = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        h = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = this.buf.readUInt32BE(6);
        h = 10;
      }
      assert.equal(this.buf[1] & 0x80, 0, 'server frames are not masked');
      if (this.buf.length < h + len) return;
      this.frames.push({ opcode: this.buf[0] & 0x0f, payload: Buffer.from(this.buf.subarray(h, h + len)) });
      this.buf = this.buf.subarray(h + len);
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  /** The first frame (taken out) that matches. */
  async next(match: (f: ServerFrame) => boolean): Promise<ServerFrame> {
    const end = Date.now() + 5000;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed || Date.now() > end) throw new Error('no such frame');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Write `bytes` in pieces cut at `cuts`, letting the relay read between them. */
  async write(bytes: Uint8Array, cuts: number[] = []): Promise<void> {
    let at = 0;
    for (const c of [...cuts, bytes.length]) {
      if (c > at) this.socket.write(bytes.subarray(at, c));
      at = c;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }
}

/** Binary messages the relay has received. */
function framesIn(relay: RelayServer): number {
  return relay.counters()['frames-in'];
}

async function withRelay(fn: (relay: RelayServer) => Promise<void>): Promise<void> {
  const relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, secret: 'direct-test-secret', logger: silentLogger });
  assert.ok(relay instanceof RelayServer);
  try {
    await fn(relay);
  } finally {
    await relay.close();
  }
}

/** `n` packets of `size` bytes from src to dst, each filled with its index. */
function packets(src: string, dst: string, n: number, size: number, first = 1): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => rawPacket(src, dst, size, first + i));
}

describe('relay data path without reassembly', function () {
  this.timeout(15000);

  it('takes frames off the socket itself and forwards full-size batches byte for byte, as one frame', async () => {
    await withRelay(async (relay) => {
      const hosts: TestHost[] = [];
      try {
        const a = await joinRelay(relay.url, relay.mintToken('alpha', 60));
        hosts.push(a);
        const b = await joinRelay(relay.url, relay.mintToken('beta', 60));
        hosts.push(b);
        const big = packets(a.address, b.address, 16, 65535);
        const frame = concat(...big);
        assert.equal(frame.length, maxFrameBytes(65535));
        // the ws client masks with a random key: the relay unmasks in place
        a.send(frame);
        a.send(frame);
        await b.until(() => b.packets.length === 32, '32 packets');
        assert.deepEqual(b.frames.length, 2);
        assert.deepEqual(b.frames[0], frame);
        assert.deepEqual(b.frames[1], frame);
        assert.equal(framesIn(relay), 2);
        const beta = relay.hosts().find((h) => h.name === 'beta');
        assert.equal(beta?.bytesIn, 2 * frame.length);
        assert.equal(relay.counters()['packets-delivered'], 32);
      } finally {
        await Promise.all(hosts.map((h) => h.close()));
      }
    });
  });

  it('splits big frames by destination across reads, and drops a bad packet in the middle with the rest of its frame', async () => {
    await withRelay(async (relay) => {
      const hosts: TestHost[] = [];
      try {
        const a = await joinRelay(relay.url, relay.mintToken('alpha', 60));
        const b = await joinRelay(relay.url, relay.mintToken('beta', 60));
        const c = await joinRelay(relay.url, relay.mintToken('gamma', 60));
        hosts.push(a, b, c);
        const toB = packets(a.address, b.address, 3, 40_001, 1);
        const toC = packets(a.address, c.address, 2, 50_003, 10);
        a.send(concat(toB[0], toB[1], toC[0], toC[1], toB[2]));
        await b.until(() => b.packets.length === 3, 'three at beta');
        await c.until(() => c.packets.length === 2, 'two at gamma');
        assert.deepEqual(b.frames, [concat(toB[0], toB[1]), toB[2]]);
        assert.deepEqual(c.frames, [concat(toC[0], toC[1])]);
        const bad = rawPacket(a.address, b.address, 60_000, 0x55);
        bad[10] ^= 0x01;
        a.send(concat(toB[0], bad, toB[1]));
        await b.until(() => b.packets.length === 4, 'the packet before the bad one');
        a.send(toB[2]);
        await b.until(() => b.packets.length === 5, 'the next frame');
        assert.deepEqual(b.frames.slice(2), [toB[0], toB[2]]);
        assert.equal(relay.counters()['hosts.alpha.malformed-checksum'], 1);
        assert.equal(framesIn(relay), 3);
      } finally {
        await Promise.all(hosts.map((h) => h.close()));
      }
    });
  });

  it('keeps data and control frames in order when writes split headers, mask keys and packet headers', async () => {
    await withRelay(async (relay) => {
      let raw: RawHost | null = null;
      let b: TestHost | null = null;
      try {
        raw = await RawHost.join(relay, 'alpha');
        b = await joinRelay(relay.url, relay.mintToken('beta', 60));
        const ps = packets(raw.address, b.address, 3, 70, 1);
        const data = clientFrame(2, concat(...ps));
        // header is 2 bytes + 2 length + 4 key; packets start at 8; second packet's header at 78
        await raw.write(data, [1, 3, 6, 8, 80, 90]);
        const keyed = clientFrame(2, concat(...ps), { key: [0xa1, 0xb2, 0xc3, 0xd4] });
        const activity = clientFrame(1, Buffer.from(JSON.stringify({ type: 'activity', established: 3, listening: 1, bytesIn: 0, bytesOut: 0, idleMs: 0 })));
        const ping = clientFrame(9, Buffer.from('are you there'), { key: [1, 2, 3, 4] });
        const stream = concat(keyed, activity, ping, data);
        await raw.write(stream, [keyed.length - 1, keyed.length + 3, keyed.length + activity.length + 7, stream.length - data.length + 9]);
        const pong = await raw.next((f) => f.opcode === 10);
        assert.equal(pong.payload.toString(), 'are you there');
        await b.until(() => b!.packets.length === 9, 'nine packets');
        assert.deepEqual(b.frames.length, 3);
        for (const f of b.frames) assert.deepEqual(f, concat(...ps));
        await waitFor(() => relay.hosts().find((h) => h.name === 'alpha')?.connections === 3, 'activity');
        assert.equal(framesIn(relay), 3);
        const close = Buffer.alloc(2);
        close.writeUInt16BE(1000);
        // a frame after the close frame is not read
        await raw.write(concat(clientFrame(8, close), data), [1]);
        const answer = await raw.next((f) => f.opcode === 8);
        assert.equal(answer.payload.readUInt16BE(0), 1000);
        await waitFor(() => relay.counters().sessions === 1, 'session closed');
        assert.equal(b.packets.length, 9);
        assert.equal(framesIn(relay), 3);
      } finally {
        await raw?.close();
        await b?.close();
      }
    });
  });

  it('routes a fragmented binary message (as views of its fragments, not joined) through the same routing', async () => {
    await withRelay(async (relay) => {
      let raw: RawHost | null = null;
      let b: TestHost | null = null;
      try {
        raw = await RawHost.join(relay, 'alpha');
        b = await joinRelay(relay.url, relay.mintToken('beta', 60));
        const ps = packets(raw.address, b.address, 2, 1000, 1);
        const body = concat(...ps);
        await raw.write(
          concat(clientFrame(2, body.subarray(0, 1010), { key: [7, 7, 7, 7], fin: false }), clientFrame(9, Buffer.from('x')), clientFrame(0, body.subarray(1010)), clientFrame(2, ps[0])),
          [500, 1100],
        );
        await raw.next((f) => f.opcode === 10);
        await b.until(() => b!.packets.length === 3, 'three packets');
        assert.deepEqual(b.frames, [body, ps[0]]);
        assert.equal(framesIn(relay), 2, 'the fragmented message counts once');
      } finally {
        await raw?.close();
        await b?.close();
      }
    });
  });

  it('closes a session with 1009 on a frame over the limit', async () => {
    await withRelay(async (relay) => {
      let raw: RawHost | null = null;
      try {
        raw = await RawHost.join(relay, 'alpha');
        const h = Buffer.alloc(14);
        h[0] = 0x82;
        h[1] = 0x80 | 127;
        h.writeUInt32BE(maxFrameBytes(65535) + 1, 6);
        await raw.write(concat(h, new Uint8Array(1000)));
        const close = await raw.next((f) => f.opcode === 8);
        assert.equal(close.payload.readUInt16BE(0), 1009);
        assert.equal(framesIn(relay), 0);
        await waitFor(() => relay.counters()['hosts.alpha.websocket-protocol-error'] === 1, 'the protocol error counted');
      } finally {
        await raw?.close();
      }
    });
  });
});
