// The send buffer owns the bytes it holds: a writer may reuse its buffer once a write's
// callback has fired (Node's contract), and a bulk transfer reuses the buffer's blocks.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createLinkPair } from '../../netstack/link/memory.js';
import { silentLogger } from '../../netstack/log.js';
import { Stack } from '../../netstack/stack.js';
import { SendBuffer } from '../../netstack/tcp/send-buffer.js';
import { VirtualClock } from '../../netstack/time.js';
import type { NetSocket } from '../../netstack/api/net.js';

function flat(v: Uint8Array | Uint8Array[]): Uint8Array {
  return Array.isArray(v) ? Buffer.concat(v) : v;
}

function pattern(seed: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

describe('netstack/tcp send buffer', () => {
  describe('a writer that reuses its buffer after each callback', function () {
    this.timeout(20_000);

    async function transfer(loss: number): Promise<{ sent: string; received: string; bytes: number }> {
      const clock = new VirtualClock(0);
      const [la, lb] = createLinkPair({ clock, delay: 1, mtu: 1500, loss, seed: 7 });
      // A small receive window keeps written data waiting in the sender's buffer.
      const a = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, seed: 1, mtu: 1500 });
      const b = new Stack({ address: '10.77.0.3', clock, logger: silentLogger, seed: 2, mtu: 1500, tcp: { receiveBufferSize: 8192 } });
      a.attach(la);
      b.attach(lb);
      const chunk = 4096;
      const count = 64;
      const sentHash = createHash('sha256');
      const recvHash = createHash('sha256');
      let received = 0;
      let done = false;
      try {
        const srv = b.net.createServer();
        srv.on('connection', (s: NetSocket) => {
          s.on('data', (d: Buffer) => {
            recvHash.update(d);
            received += d.length;
          });
          s.on('end', () => {
            done = true;
            s.end();
          });
        });
        srv.listen(80);
        const sock = a.net.connect(80, '10.77.0.3');
        const buf = new Uint8Array(chunk);
        let i = 0;
        const writeNext = (): void => {
          if (i === count) {
            sock.end();
            return;
          }
          buf.set(pattern(i++, chunk));
          sentHash.update(buf);
          sock.write(buf, writeNext);
        };
        sock.once('connect', writeNext);
        for (let t = 0; t < 200_000 && !done; t++) {
          clock.advanceBy(1);
          await new Promise((r) => setImmediate(r));
        }
        sock.destroy();
        srv.close();
        await once(sock, 'close');
      } finally {
        a.close();
        b.close();
        la.close();
      }
      assert.ok(done, `transfer finished (${received} bytes received)`);
      return { sent: sentHash.digest('hex'), received: recvHash.digest('hex'), bytes: received };
    }

    it('delivers the bytes written, not what the buffer holds later', async () => {
      const r = await transfer(0);
      assert.equal(r.bytes, 64 * 4096);
      assert.equal(r.received, r.sent);
    });

    it('retransmits the bytes written, not what the buffer holds later', async () => {
      const r = await transfer(0.05);
      assert.equal(r.bytes, 64 * 4096);
      assert.equal(r.received, r.sent);
    });
  });

  describe('blocks', () => {
    /** A model of the stream: bytes pushed since the start, and how many were dropped. */
    function check(b: SendBuffer, stream: Uint8Array, dropped: number, offset: number, len: number): void {
      const got = flat(b.read(offset, len));
      assert.equal(got.length, len);
      assert.ok(Buffer.from(got).equals(stream.subarray(dropped + offset, dropped + offset + len)), `bytes at ${dropped + offset}+${len}`);
    }

    it('keeps the right bytes over many block reuses, reading across blocks', () => {
      const b = new SendBuffer();
      const total = 40 * 65536 + 12345;
      const stream = pattern(3, total);
      const window = 300_000;
      let pushed = 0;
      let dropped = 0;
      let step = 0;
      const sizes = [1, 7, 1000, 4096, 65536, 70000, 123, 65535, 131072];
      while (dropped < total) {
        while (pushed < total && pushed - dropped < window) {
          const n = Math.min(sizes[step++ % sizes.length]!, total - pushed);
          const src = Uint8Array.from(stream.subarray(pushed, pushed + n));
          b.push(src);
          src.fill(0xaa);
          pushed += n;
        }
        assert.equal(b.length, pushed - dropped);
        // Segments from the front to the end, as a sender walks them, then one across the middle.
        for (let off = 0; off < b.length; off += 9000) check(b, stream, dropped, off, Math.min(9000, b.length - off));
        if (b.length > 70_000) check(b, stream, dropped, 65_000, 5000);
        check(b, stream, dropped, 0, Math.min(b.length, 1));
        // Free and live blocks together never hold much more than the most bytes buffered.
        assert.ok(b.allocatedBytes <= window + 3 * 65536, `blocks ${b.blockCount} free ${b.freeBlocks}: ${b.allocatedBytes} bytes`);
        const ack = Math.min(b.length, 50_000 + (step % 5) * 17_001);
        b.drop(ack);
        dropped += ack;
      }
      assert.equal(b.length, 0);
      assert.equal(b.blockCount, 0);
      assert.equal(b.freeBlocks, 0, 'an empty buffer keeps no free blocks');
    });

    it('reuses acknowledged blocks instead of allocating, and empties the free list when empty', () => {
      const b = new SendBuffer();
      const chunk = new Uint8Array(65536);
      for (let i = 0; i < 4; i++) b.push(chunk.fill(i));
      assert.equal(b.blockCount, 4);
      const freed = [flat(b.read(0, 1)).buffer, flat(b.read(65536, 1)).buffer];
      b.drop(2 * 65536 + 10);
      assert.equal(b.freeBlocks, 2);
      b.push(chunk.fill(9));
      assert.equal(b.freeBlocks, 1);
      const again = b.read(b.length - 65536, 65536);
      assert.ok(!Array.isArray(again));
      assert.ok(freed.includes(again.buffer), 'a freed block is taken before a new one');
      assert.deepEqual([...new Set(flat(again))], [9]);
      check(b, Buffer.concat([new Uint8Array(65536).fill(2), new Uint8Array(65536).fill(3), new Uint8Array(65536).fill(9)]), 10, 0, b.length);
      b.drop(b.length);
      assert.equal(b.freeBlocks, 0);
      assert.equal(b.blockCount, 0);
    });

    it('gives a small write a small block, and an idle buffer none', () => {
      const b = new SendBuffer();
      assert.equal(b.blockCount, 0);
      b.push(new Uint8Array([1, 2, 3]));
      assert.deepEqual([...flat(b.read(0, 3))], [1, 2, 3]);
      assert.ok(b.allocatedBytes <= 1024, `a few bytes do not take a 64 KiB block (${b.allocatedBytes})`);
      // Small writes behind it share growing blocks, not one each.
      for (let i = 0; i < 1000; i++) b.push(new Uint8Array([i & 0xff]));
      assert.ok(b.blockCount <= 4, `${b.blockCount} blocks`);
      assert.deepEqual([...flat(b.read(3, 1000))], Array.from({ length: 1000 }, (_, i) => i & 0xff));
      b.drop(3);
      b.drop(1000);
      b.drop(3);
      assert.equal(b.blockCount, 0);
    });
  });
});
