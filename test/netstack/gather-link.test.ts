// TCP segments handed to a link with sendGather as header and send-buffer views: large
// segments go that way, small ones, loopback packets and links without it stay
// contiguous, and a packet whose views are read late (as a socket's write queue does)
// still gives the peer the right stream.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createLinkPair, type MemoryLink } from '../../netstack/link/memory.js';
import type { Link, PacketHandler } from '../../netstack/link/link.js';
import { createPcapTap } from '../../netstack/link/pcap.js';
import { silentLogger } from '../../netstack/log.js';
import { Stack } from '../../netstack/stack.js';
import { VirtualClock, type TimerHandle } from '../../netstack/time.js';
import { isWireError, parseIpv4, parseTcp } from '../../netstack/wire/index.js';
import type { NetSocket } from '../../netstack/api/net.js';

/**
 * A link with sendGather in front of a memory link. Packets wait in a FIFO, as in a
 * socket's write queue, and a gathered one is joined only when the FIFO drains every
 * `drainMs`: its views are read then, not when it was sent.
 */
class LateGatherLink implements Link {
  gathered = 0;
  plain = 0;
  private fifo: (Uint8Array | { header: Uint8Array; payload: readonly Uint8Array[]; length: number })[] = [];
  private timer: TimerHandle | null = null;

  constructor(
    private readonly inner: MemoryLink,
    private readonly clock: VirtualClock,
    private readonly drainMs: number,
  ) {}

  get mtu(): number {
    return this.inner.mtu;
  }

  send(packet: Uint8Array): void {
    this.plain++;
    this.queue(packet);
  }

  sendGather(header: Uint8Array, payload: readonly Uint8Array[], length: number): void {
    this.gathered++;
    this.queue({ header, payload, length });
  }

  onReceive(handler: PacketHandler): void {
    this.inner.onReceive(handler);
  }

  close(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.fifo = [];
    this.inner.close();
  }

  private queue(p: Uint8Array | { header: Uint8Array; payload: readonly Uint8Array[]; length: number }): void {
    this.fifo.push(p);
    if (this.timer === null) this.timer = this.clock.setTimer(this.clock.now() + this.drainMs, () => this.drain());
  }

  private drain(): void {
    this.timer = null;
    const due = this.fifo;
    this.fifo = [];
    for (const p of due) {
      if (p instanceof Uint8Array) {
        this.inner.send(p);
        continue;
      }
      const joined = new Uint8Array(p.length);
      joined.set(p.header, 0);
      let off = p.header.length;
      for (const part of p.payload) {
        joined.set(part, off);
        off += part.length;
      }
      this.inner.send(joined);
    }
  }
}

function fill(buf: Uint8Array, from: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = ((from + i) * 2654435761) >>> 27;
}

/** Write `total` bytes from one reused buffer on `client` to a server on `server`, driving the clock. */
async function stream(
  clock: VirtualClock,
  client: Stack,
  server: Stack,
  total: number,
): Promise<{ sent: string; received: string; bytes: number; finished: boolean }> {
  const sentHash = createHash('sha256');
  const recvHash = createHash('sha256');
  let bytes = 0;
  let finished = false;
  const srv = server.net.createServer((s: NetSocket) => {
    s.on('data', (d: Buffer) => {
      recvHash.update(d);
      bytes += d.length;
    });
    s.on('end', () => {
      finished = true;
      s.end();
    });
  });
  srv.listen(80);
  const sock = client.net.connect(80, server.address);
  const buf = new Uint8Array(50_000);
  let written = 0;
  const writeNext = (): void => {
    if (written >= total) {
      sock.end();
      return;
    }
    const view = buf.subarray(0, Math.min(buf.length, total - written));
    fill(view, written);
    sentHash.update(view);
    written += view.length;
    sock.write(view, writeNext);
  };
  sock.once('connect', writeNext);
  for (let t = 0; t < 100_000 && !finished; t++) {
    clock.advanceBy(1);
    await new Promise((r) => setImmediate(r));
  }
  sock.destroy();
  srv.close();
  return { sent: sentHash.digest('hex'), received: recvHash.digest('hex'), bytes, finished };
}

describe('netstack: segments as gather lists (Link.sendGather)', function () {
  this.timeout(30_000);

  function pair(opts: { loss?: number; reorder?: number; drainMs: number }) {
    const clock = new VirtualClock(0);
    const [ma, mb] = createLinkPair({ clock, delay: 1, mtu: 65535, seed: 5, loss: opts.loss, reorder: opts.reorder, reorderDelay: 6 });
    const la = new LateGatherLink(ma, clock, opts.drainMs);
    const lb = new LateGatherLink(mb, clock, opts.drainMs);
    const a = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, seed: 1, mtu: 65535 });
    const b = new Stack({ address: '10.77.0.3', clock, logger: silentLogger, seed: 2, mtu: 65535 });
    a.attach(la);
    b.attach(lb);
    return {
      clock,
      a,
      b,
      la,
      lb,
      close() {
        a.close();
        b.close();
        la.close();
        lb.close();
      },
    };
  }

  it('sends large segments as gather lists and small ones contiguous; the stream arrives intact', async () => {
    const p = pair({ drainMs: 1 });
    try {
      const r = await stream(p.clock, p.a, p.b, 3 << 20);
      assert.ok(r.finished);
      assert.equal(r.bytes, 3 << 20);
      assert.equal(r.received, r.sent);
      assert.ok(p.la.gathered > 3 * 16, `data segments gathered (${p.la.gathered})`);
      assert.ok(p.la.plain >= 2, 'SYN and pure ACKs are contiguous');
      assert.equal(p.lb.gathered, 0, 'the receiver sends no data');
      assert.equal(p.a.counters.packetsOut, p.la.gathered + p.la.plain);
    } finally {
      p.close();
    }
  });

  it('keeps the stream intact when queued retransmissions are read after their blocks were reused', async () => {
    // Reordering makes spurious fast retransmissions; the late drain lets their original's
    // ACK free (and a write reuse) the block before the retransmission's views are read.
    const p = pair({ reorder: 0.1, loss: 0.01, drainMs: 4 });
    try {
      const r = await stream(p.clock, p.a, p.b, 6 << 20);
      assert.ok(r.finished, `finished (${r.bytes} bytes)`);
      assert.equal(r.bytes, 6 << 20);
      assert.equal(r.received, r.sent);
      assert.ok(p.la.gathered > 0);
      const stale = p.b.counters['tcp-bad-checksum'] ?? 0;
      assert.ok(stale > 0, 'some packets read a reused block (and were dropped by checksum)');
    } finally {
      p.close();
    }
  });

  it('sends packets to its own address contiguous, through input', async () => {
    const clock = new VirtualClock(0);
    const [ma, mb] = createLinkPair({ clock, mtu: 65535 });
    const la = new LateGatherLink(ma, clock, 1);
    const a = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, seed: 1, mtu: 65535 });
    a.attach(la);
    try {
      const r = await stream(clock, a, a, 1 << 20);
      assert.ok(r.finished);
      assert.equal(r.received, r.sent);
      assert.equal(la.gathered + la.plain, 0, 'nothing went to the link');
    } finally {
      a.close();
      la.close();
      mb.close();
    }
  });

  it('gives a pcap tap a whole copy of each gathered packet, and a link without sendGather contiguous packets', async () => {
    const clock = new VirtualClock(0);
    const [ma, mb] = createLinkPair({ clock, delay: 1, mtu: 65535 });
    const la = new LateGatherLink(ma, clock, 1);
    const records: Uint8Array[] = [];
    const tap = createPcapTap(la, { write: (c) => records.push(Uint8Array.from(c)) }, { clock });
    assert.equal(typeof tap.sendGather, 'function');
    const plainTap = createPcapTap(mb, { write: () => {} });
    assert.equal(plainTap.sendGather, undefined, 'a tap offers sendGather only when its link does');
    const a = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, seed: 1, mtu: 65535 });
    const b = new Stack({ address: '10.77.0.3', clock, logger: silentLogger, seed: 2, mtu: 65535 });
    a.attach(tap);
    b.attach(plainTap);
    try {
      const r = await stream(clock, a, b, 1 << 20);
      assert.equal(r.received, r.sent);
      assert.ok(la.gathered > 0);
      // Records after the file header: 16-byte record header, then the packet.
      const packets = records.slice(1).map((rec) => rec.subarray(16));
      const sent = packets.filter((pkt) => {
        const ip = parseIpv4(pkt, true);
        return !isWireError(ip) && ip.src === a.localAddress;
      });
      assert.equal(sent.length, la.gathered + la.plain);
      for (const pkt of sent) {
        const ip = parseIpv4(pkt, true);
        assert.ok(!isWireError(ip));
        assert.ok(!isWireError(parseTcp(ip.payload, ip.src, ip.dst, true)), 'whole packet with a valid checksum');
      }
    } finally {
      a.close();
      b.close();
      tap.close();
    }
  });
});
