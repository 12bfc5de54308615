import assert from 'node:assert/strict';
import { createLinkPair } from '../../netstack/link/memory.js';
import { mulberry32, type Random } from '../../netstack/link/prng.js';
import { silentLogger } from '../../netstack/log.js';
import { Stack } from '../../netstack/stack.js';
import { VirtualClock } from '../../netstack/time.js';
import type { TcpConnectionApi, TcpConnectionEvents } from '../../netstack/tcp/types.js';
import {
  IPV4_FLAG_MF,
  IPV4_HEADER_LENGTH,
  PROTO_TCP,
  PROTO_UDP,
  buildIcmpEchoRequest,
  buildIcmpUnreachable,
  buildTcpPacket,
  buildUdpPacket,
  emitIpv4Header,
  internetChecksum,
  pseudoHeaderSum,
  type TcpOptions,
} from '../../netstack/wire/index.js';

const PACKETS = 120_000;

function quietEvents(onData?: (c: Uint8Array) => void): TcpConnectionEvents & { isEstablished: boolean; isClosed: boolean } {
  const ev = {
    isEstablished: false,
    isClosed: false,
    established() {
      ev.isEstablished = true;
    },
    data(c: Uint8Array) {
      onData?.(c);
    },
    fin() {},
    sendSpace() {},
    closed() {
      ev.isClosed = true;
    },
  };
  return ev;
}

/** Recompute the IPv4 header checksum (and the transport one when asked) after a mutation. */
function fixChecksums(p: Uint8Array, transport: boolean): void {
  if (p.length < IPV4_HEADER_LENGTH) return;
  const hl = Math.max(IPV4_HEADER_LENGTH, (p[0] & 0x0f) * 4);
  if (hl > p.length) return;
  p[10] = 0;
  p[11] = 0;
  const s = internetChecksum(p, 0, hl);
  p[10] = s >>> 8;
  p[11] = s & 0xff;
  if (!transport) return;
  const proto = p[9];
  const seg = p.subarray(hl);
  const src = ((p[12] << 24) | (p[13] << 16) | (p[14] << 8) | p[15]) >>> 0;
  const dst = ((p[16] << 24) | (p[17] << 16) | (p[18] << 8) | p[19]) >>> 0;
  const at = proto === PROTO_TCP ? 16 : proto === PROTO_UDP ? 6 : -1;
  if (at < 0 || seg.length < at + 2) return;
  seg[at] = 0;
  seg[at + 1] = 0;
  const c = internetChecksum(seg, 0, seg.length, pseudoHeaderSum(src, dst, proto, seg.length));
  seg[at] = c >>> 8;
  seg[at + 1] = c & 0xff;
}

class PacketFuzzer {
  constructor(
    private readonly r: Random,
    private readonly target: number,
    private readonly peer: number,
    private readonly established: () => { localPort: number; remotePort: number } | null,
  ) {}

  private int(n: number): number {
    return Math.floor(this.r() * n);
  }

  private bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  private source(): number {
    return this.r() < 0.5 ? this.peer : (0x0a4d0000 | this.int(0xfffe)) + 1;
  }

  private absurdOptions(): Uint8Array {
    const n = 4 * (1 + this.int(10));
    const o = this.bytes(n);
    if (this.r() < 0.5) o[1] = this.int(3) === 0 ? 0 : this.int(3) === 0 ? 1 : 200;
    return o;
  }

  /** A TCP packet with the given flags, valid checksums, aimed at a listener, a connection or a closed port. */
  tcp(flags: number): Uint8Array {
    const est = this.established();
    const kind = this.int(3);
    let src = this.source();
    let srcPort = 1 + this.int(65535);
    let dstPort = 80;
    if (kind === 1 && est !== null) {
      src = this.peer;
      srcPort = est.localPort;
      dstPort = est.remotePort;
    } else if (kind === 2) dstPort = 1 + this.int(65535);
    const options: TcpOptions = {};
    if (this.r() < 0.3) options.mss = this.int(65536);
    if (this.r() < 0.3) options.windowScale = this.int(15);
    if (this.r() < 0.3) options.sackPermitted = true;
    if (this.r() < 0.3) options.timestamp = { value: this.int(2 ** 32), echo: this.int(2 ** 32) };
    if (this.r() < 0.2) options.sack = [{ left: this.int(2 ** 32), right: this.int(2 ** 32) }];
    const payload = this.bytes(this.int(4) === 0 ? this.int(2000) : 0);
    const p = buildTcpPacket(
      { src, dst: this.target, ttl: 64 },
      { srcPort, dstPort, seq: this.int(2 ** 32), ack: this.int(2 ** 32), flags, window: this.int(65536), urgent: this.int(65536), options, payload, payloadLength: payload.length },
    );
    if (this.r() < 0.2) {
      // Replace the options with absurd bytes, keeping the checksums right.
      const opts = this.absurdOptions();
      const out = new Uint8Array(IPV4_HEADER_LENGTH + 20 + opts.length);
      out.set(p.subarray(0, IPV4_HEADER_LENGTH + 20));
      out.set(opts, IPV4_HEADER_LENGTH + 20);
      out[2] = out.length >>> 8;
      out[3] = out.length & 0xff;
      out[IPV4_HEADER_LENGTH + 12] = ((20 + opts.length) / 4) << 4;
      fixChecksums(out, true);
      return out;
    }
    return p;
  }

  fragment(): Uint8Array {
    const len = 8 * (1 + this.int(200));
    const out = new Uint8Array(IPV4_HEADER_LENGTH + len);
    const more = this.r() < 0.7;
    emitIpv4Header(
      { src: this.source(), dst: this.target, protocol: this.r() < 0.5 ? PROTO_UDP : PROTO_TCP, totalLength: out.length, id: this.int(64), flags: more ? IPV4_FLAG_MF : 0, fragmentOffset: 8 * this.int(8192) },
      out,
      0,
    );
    out.set(this.bytes(len), IPV4_HEADER_LENGTH);
    return out;
  }

  template(): Uint8Array {
    switch (this.int(5)) {
      case 0:
        return buildUdpPacket({ src: this.source(), dst: this.target, srcPort: this.int(65536), dstPort: this.r() < 0.5 ? 53 : this.int(65536), payload: this.bytes(this.int(600)) });
      case 1:
        return buildIcmpEchoRequest({ src: this.source(), dst: this.target, identifier: this.int(65536), sequence: this.int(65536), payload: this.bytes(this.int(100)) });
      case 2: {
        const inner = buildTcpPacket({ src: this.target, dst: this.peer }, { srcPort: this.int(65536), dstPort: this.int(65536), seq: 0, ack: 0, flags: 2, window: 0, urgent: 0, options: {}, payload: new Uint8Array(0), payloadLength: 0 });
        return buildIcmpUnreachable(inner, this.int(16), this.source());
      }
      case 3:
        return this.fragment();
      default:
        return this.tcp(this.int(256));
    }
  }

  mutated(): Uint8Array {
    const p = this.template().slice();
    const how = this.int(6);
    if (how === 0) return p.subarray(0, this.int(p.length + 1));
    if (how === 1) {
      const n = 1 + this.int(4);
      for (let i = 0; i < n; i++) p[this.int(p.length)] = this.int(256);
      fixChecksums(p, this.r() < 0.5);
      return p;
    }
    if (how === 2) {
      // Lengths: IPv4 total length, IHL, UDP length or TCP data offset.
      const at = [2, 3, 0, IPV4_HEADER_LENGTH + 4, IPV4_HEADER_LENGTH + 5, IPV4_HEADER_LENGTH + 12][this.int(6)];
      if (at < p.length) p[at] = this.int(256);
      fixChecksums(p, true);
      return p;
    }
    if (how === 3) {
      p[this.int(p.length)] ^= 1 << this.int(8);
      return p;
    }
    if (how === 4) return this.bytes(this.int(80));
    return p;
  }
}

describe('fuzz: the stack survives hostile input', function () {
  this.timeout(120_000);

  it(`takes ${PACKETS} random and mutated packets without throwing, stays bounded, and still serves`, () => {
    const clock = new VirtualClock(0);
    const [la, lb] = createLinkPair({ clock });
    const limits = { reassemblyMemory: 256 * 1024, reassemblyMaxDatagrams: 32, maxTcpConnections: 600 };
    const target = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, limits, seed: 5 });
    const peer = new Stack({ address: '10.77.0.3', clock, logger: silentLogger, seed: 6 });
    target.attach(la);
    peer.attach(lb);
    const accepted: TcpConnectionApi[] = [];
    const listener = target.tcp.listen(80, { backlog: 64 }, (c) => {
      c.events = quietEvents((d) => c.consume(d.length, clock.now()));
      accepted.push(c);
    });
    assert.notEqual(typeof listener, 'string');
    const ev = quietEvents();
    const conn = peer.tcp.connect(target.localAddress, 80, ev);
    assert.notEqual(typeof conn, 'string');
    const established = conn as TcpConnectionApi;
    assert.ok(clock.runUntil(() => ev.isEstablished, 5000));
    const udp = target.dgram.createSocket('udp4');
    udp.bind(53);

    const fuzz = new PacketFuzzer(mulberry32(1234), target.localAddress, peer.localAddress, () =>
      ev.isClosed ? null : { localPort: established.tuple.localPort, remotePort: established.tuple.remotePort },
    );
    let sent = 0;
    // Every flag combination, to the listener, the connection and closed ports, many times.
    for (let round = 0; round < 40; round++) {
      for (let flags = 0; flags < 256; flags++) {
        target.input(fuzz.tcp(flags));
        sent++;
      }
      clock.advanceBy(50);
    }
    while (sent < PACKETS) {
      for (let i = 0; i < 500; i++, sent++) target.input(fuzz.mutated());
      clock.advanceBy(100);
      const t = target.tableSizes();
      assert.ok(t.reassemblyBytes <= limits.reassemblyMemory, `reassembly ${t.reassemblyBytes}`);
      assert.ok(t.reassemblyDatagrams <= limits.reassemblyMaxDatagrams);
      assert.ok(t.tcpConnections <= limits.maxTcpConnections, `tcp ${t.tcpConnections}`);
      assert.ok(t.timers <= t.tcpConnections + 8, `timers ${t.timers}`);
    }
    assert.ok(sent >= 100_000);
    const c = target.counters;
    if (process.env.FUZZ_VERBOSE) console.log(c, target.tableSizes());
    assert.equal(c.internalErrors, 0, 'no exception escaped into the stack');
    assert.equal(c.timerStuck, 0);
    assert.ok(c.dropped > 10_000, `dropped ${c.dropped}`);
    // The fuzzer reached each kind of damage it aims at.
    for (const reason of ['ipv4-bad-checksum', 'ipv4-truncated', 'ipv4-bad-version', 'tcp-bad-option', 'tcp-bad-checksum', 'udp-bad-length', 'frag-evicted']) {
      assert.ok((c[reason] ?? 0) > 0, `no ${reason} drops`);
    }
    assert.ok(c.tcpSegmentsIn > 10_000 && c.tcpResetsSent > 0 && c.icmpEchoReplies > 0);
    assert.ok(target.tableSizes().counterKeys < 120, `counter keys ${target.tableSizes().counterKeys}`);

    // Let half-open connections and partial datagrams expire, then serve a new connection.
    clock.advanceBy(400_000);
    const t = target.tableSizes();
    assert.equal(t.reassemblyDatagrams, 0);
    assert.equal(t.reassemblyBytes, 0);
    const ev2 = quietEvents();
    let got = 0;
    const before = accepted.length;
    const c2 = peer.tcp.connect(target.localAddress, 80, ev2);
    assert.notEqual(typeof c2, 'string');
    assert.ok(clock.runUntil(() => ev2.isEstablished && accepted.length > before, clock.now() + 5000), 'new connection established');
    const server = accepted[accepted.length - 1];
    server.events = quietEvents((d) => {
      got += d.length;
      server.consume(d.length, clock.now());
    });
    (c2 as TcpConnectionApi).send(new Uint8Array(100_000).fill(7), clock.now());
    assert.ok(clock.runUntil(() => got === 100_000, clock.now() + 10_000), `received ${got}`);
    udp.close();
    target.close();
    peer.close();
    la.close();
  });
});
