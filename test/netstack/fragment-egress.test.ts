import assert from 'node:assert/strict';
import { Stack } from '../../netstack/stack.js';
import { silentLogger } from '../../netstack/log.js';
import { VirtualClock } from '../../netstack/time.js';
import { createLinkPair, type LinkPairOptions, type MemoryLink } from '../../netstack/link/memory.js';
import type { Link, PacketHandler } from '../../netstack/link/link.js';
import { mulberry32 } from '../../netstack/link/prng.js';
import type { RemoteInfo } from '../../netstack/api/dgram.js';
import {
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_UNREACH_FRAG_NEEDED,
  IPV4_FLAG_DF,
  IPV4_FLAG_MF,
  IPV4_HEADER_LENGTH,
  PROTO_ICMP,
  PROTO_UDP,
  SYN,
  buildIcmpUnreachable,
  buildIpv4Packet,
  buildTcpPacket,
  emitIcmp,
  emitIpv4Header,
  isWireError,
  parseIcmp,
  parseIpv4,
  parseIpv4Address,
  parseUdp,
  type Ipv4Packet,
} from '../../netstack/wire/index.js';
import { ADDR_A, ADDR_B, CaptureLink, once, waitFor } from '../support/stack-harness.js';

const A = parseIpv4Address(ADDR_A)!;
const B = parseIpv4Address(ADDR_B)!;
const GATEWAY = parseIpv4Address('10.77.0.1')!;

/** Forwards to an inner link and keeps a copy of every packet sent. */
class TapLink implements Link {
  readonly sent: Uint8Array[] = [];
  constructor(private readonly inner: Link) {}
  get mtu(): number | undefined {
    return this.inner.mtu;
  }
  send(packet: Uint8Array): void {
    this.sent.push(packet.slice());
    this.inner.send(packet);
  }
  onReceive(handler: PacketHandler): void {
    this.inner.onReceive(handler);
  }
  close(): void {
    this.inner.close();
  }
}

interface TappedPair {
  a: Stack;
  b: Stack;
  tapA: TapLink;
  tapB: TapLink;
  links: [MemoryLink, MemoryLink];
  close(): void;
}

function tappedPair(mtu: number, link: LinkPairOptions = {}): TappedPair {
  const [la, lb] = createLinkPair({ mtu, ...link });
  const tapA = new TapLink(la);
  const tapB = new TapLink(lb);
  const a = new Stack({ address: ADDR_A, mtu, logger: silentLogger });
  const b = new Stack({ address: ADDR_B, mtu, logger: silentLogger });
  a.attach(tapA);
  b.attach(tapB);
  return {
    a,
    b,
    tapA,
    tapB,
    links: [la, lb],
    close() {
      a.close();
      b.close();
      la.close();
    },
  };
}

function ip(p: Uint8Array): Ipv4Packet {
  const r = parseIpv4(p);
  if (isWireError(r)) assert.fail(r.reason);
  return r;
}

function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const r = mulberry32(seed);
  for (let i = 0; i < size; i++) out[i] = (r() * 256) >>> 0;
  return out;
}

/** Bytes of payload in every fragment but the last at this MTU. */
function perFragment(mtu: number): number {
  return Math.floor((mtu - IPV4_HEADER_LENGTH) / 8) * 8;
}

/**
 * Check that `packets` are the fragments of one datagram of `ipPayload` bytes at `mtu`,
 * field by field, and return the payload they carry, put back together by offset.
 */
function checkFragments(packets: readonly Uint8Array[], ipPayload: number, mtu: number, protocol: number, src: number, dst: number): Uint8Array {
  const size = perFragment(mtu);
  const count = Math.ceil(ipPayload / size);
  assert.equal(packets.length, count, 'number of fragments');
  const id = ip(packets[0]).id;
  const whole = new Uint8Array(ipPayload);
  packets.forEach((raw, i) => {
    const p = ip(raw);
    const last = i === count - 1;
    assert.ok(raw.length <= mtu, `fragment ${i} fits the MTU`);
    assert.equal(p.id, id, `fragment ${i} id`);
    assert.equal(p.src, src);
    assert.equal(p.dst, dst);
    assert.equal(p.protocol, protocol);
    assert.equal(p.headerLength, IPV4_HEADER_LENGTH);
    assert.equal(p.fragmentOffset, i * size, `fragment ${i} offset`);
    assert.equal(p.fragmentOffset % 8, 0);
    assert.equal(p.flags & IPV4_FLAG_DF, 0, `fragment ${i} has DF clear`);
    assert.equal(p.flags & IPV4_FLAG_MF, last ? 0 : IPV4_FLAG_MF, `fragment ${i} MF`);
    const expected = last ? ipPayload - (count - 1) * size : size;
    assert.equal(p.totalLength, IPV4_HEADER_LENGTH + expected, `fragment ${i} total length`);
    assert.equal(raw.length, p.totalLength);
    whole.set(p.payload, p.fragmentOffset);
  });
  return whole;
}

function udpFrom(stack: Stack, port: number): { got: Array<[Buffer, RemoteInfo]>; close(): void } {
  const got: Array<[Buffer, RemoteInfo]> = [];
  const s = stack.dgram.createSocket('udp4', (m, r) => got.push([Buffer.from(m), r]));
  s.bind(port);
  return { got, close: () => s.close() };
}

function send(stack: Stack, payload: Uint8Array, port: number, address: string): Promise<number> {
  const s = stack.dgram.createSocket('udp4');
  return new Promise<number>((resolve, reject) =>
    s.send(payload, port, address, (err, n) => {
      s.close();
      if (err) reject(err);
      else resolve(n);
    }),
  );
}

describe('IPv4 fragmentation on egress (RFC 791 section 3.2)', () => {
  for (const mtu of [1500, 576]) {
    for (const size of [4000, 65507]) {
      it(`carries a ${size}-byte UDP datagram at MTU ${mtu} in fragments and reassembles it`, async () => {
        const pair = tappedPair(mtu);
        const server = udpFrom(pair.b, 7000);
        try {
          const payload = pattern(size, size + mtu);
          assert.equal(await send(pair.a, payload, 7000, ADDR_B), size);
          await waitFor(() => server.got.length === 1, 5000, 'the datagram');
          const [msg, rinfo] = server.got[0];
          assert.equal(rinfo.size, size);
          assert.equal(rinfo.address, ADDR_A);
          assert.ok(Buffer.from(payload).equals(msg), 'payload intact');

          const frags = pair.tapA.sent.filter((p) => ip(p).protocol === PROTO_UDP);
          const carried = checkFragments(frags, size + 8, mtu, PROTO_UDP, A, B);
          const udp = parseUdp(carried, A, B);
          assert.ok(!isWireError(udp), 'the UDP checksum covers the whole datagram');
          assert.equal(udp.dstPort, 7000);
          assert.equal((carried[4] << 8) | carried[5], size + 8, 'UDP length');
          assert.equal(pair.b.counters.fragmentsReassembled, 1);
          assert.equal(pair.a.counters['egress-too-big'] ?? 0, 0);
          assert.equal(pair.a.counters.fragmentsCreated, frags.length);
          assert.equal(pair.a.counters.datagramsFragmented, 1);
        } finally {
          server.close();
          pair.close();
        }
      });
    }
  }

  it('sends a datagram that fits the MTU whole, with DF set, as before', async () => {
    const pair = tappedPair(1500);
    const server = udpFrom(pair.b, 7000);
    try {
      await send(pair.a, pattern(1472, 1), 7000, ADDR_B);
      await waitFor(() => server.got.length === 1, 5000, 'the datagram');
      const [p] = pair.tapA.sent.map(ip);
      assert.equal(pair.tapA.sent.length, 1);
      assert.equal(p.totalLength, 1500);
      assert.equal(p.flags, IPV4_FLAG_DF);
      assert.equal(p.fragmentOffset, 0);
      assert.equal(pair.a.counters.datagramsFragmented, 0);
    } finally {
      server.close();
      pair.close();
    }
  });

  it('answers EMSGSIZE above 65507 bytes of UDP payload', async () => {
    const pair = tappedPair(1500);
    try {
      const s = pair.a.dgram.createSocket('udp4');
      const err = await new Promise<Error | null>((resolve) => s.send(new Uint8Array(65508), 9, ADDR_B, (e) => resolve(e)));
      assert.equal((err as Error & { code?: string } | null)?.code, 'EMSGSIZE');
      assert.equal(pair.tapA.sent.length, 0);
      s.close();
    } finally {
      pair.close();
    }
  });

  it('pings with 4000 bytes of data: request and reply both go in fragments', async () => {
    const pair = tappedPair(1500);
    try {
      const rtt = await pair.a.ping(ADDR_B, { size: 4000, timeout: 5000 });
      assert.ok(Number.isFinite(rtt) && rtt > 0 && rtt < 5000, String(rtt));
      const request = checkFragments(pair.tapA.sent, 4008, 1500, PROTO_ICMP, A, B);
      const reply = checkFragments(pair.tapB.sent, 4008, 1500, PROTO_ICMP, B, A);
      const req = parseIcmp(request);
      const rep = parseIcmp(reply);
      assert.ok(!isWireError(req) && !isWireError(rep), 'ICMP checksums cover the whole message');
      assert.equal(req.type, ICMP_ECHO_REQUEST);
      assert.equal(rep.type, ICMP_ECHO_REPLY);
      assert.equal(rep.identifier, req.identifier);
      assert.equal(rep.sequence, req.sequence);
      assert.deepEqual(rep.data, req.data);
      assert.equal(pair.b.counters.icmpEchoReplies, 1);
      assert.equal(pair.b.counters['egress-too-big'] ?? 0, 0);
      assert.equal(pair.a.counters.fragmentsReassembled, 1);
      assert.equal(pair.b.counters.fragmentsReassembled, 1);
    } finally {
      pair.close();
    }
  });

  it('refuses a ping larger than an IPv4 datagram can carry', async () => {
    const pair = tappedPair(1500);
    try {
      await assert.rejects(pair.a.ping(ADDR_B, { size: 65508, timeout: 1000 }), { code: 'EMSGSIZE' });
      assert.equal(pair.tapA.sent.length, 0);
      assert.equal(pair.a.tableSizes().pendingPings, 0);
    } finally {
      pair.close();
    }
  });

  it('answers a fragmented echo request with a fragmented reply', () => {
    const clock = new VirtualClock(1000);
    const stack = new Stack({ address: ADDR_A, mtu: 576, clock, logger: silentLogger });
    const link = new CaptureLink();
    stack.attach(link);
    try {
      const data = pattern(3000, 3);
      const icmp = new Uint8Array(8 + data.length);
      emitIcmp({ type: ICMP_ECHO_REQUEST, code: 0, identifier: 5, sequence: 6, data }, icmp, 0);
      const size = perFragment(576);
      for (let off = 0; off < icmp.length; off += size) {
        const part = icmp.subarray(off, Math.min(icmp.length, off + size));
        const pkt = new Uint8Array(IPV4_HEADER_LENGTH + part.length);
        const more = off + size < icmp.length;
        emitIpv4Header({ src: GATEWAY, dst: A, protocol: PROTO_ICMP, totalLength: pkt.length, id: 99, flags: more ? IPV4_FLAG_MF : 0, fragmentOffset: off }, pkt, 0);
        pkt.set(part, IPV4_HEADER_LENGTH);
        link.inject(pkt);
      }
      const reply = parseIcmp(checkFragments(link.take(), icmp.length, 576, PROTO_ICMP, A, GATEWAY));
      assert.ok(!isWireError(reply));
      assert.equal(reply.type, ICMP_ECHO_REPLY);
      assert.equal(reply.identifier, 5);
      assert.equal(reply.sequence, 6);
      assert.deepEqual(reply.data, data);
    } finally {
      stack.close();
    }
  });

  describe('reassembly of what we send, under reordering and loss', () => {
    /** The fragments a stack at `mtu` sends for one UDP datagram of `payload`. */
    function fragmentsOf(payload: Uint8Array, mtu: number, srcPort = 4000): { frags: Uint8Array[]; clock: VirtualClock; close(): void } {
      const clock = new VirtualClock(1000);
      const sender = new Stack({ address: ADDR_A, mtu, clock, logger: silentLogger });
      const link = new CaptureLink();
      sender.attach(link);
      assert.equal(sender.udpSend(srcPort, B, 7000, payload), null);
      const frags = link.take();
      return { frags, clock, close: () => sender.close() };
    }

    function receiver(mtu: number, clock: VirtualClock): { stack: Stack; link: CaptureLink; got: Uint8Array[] } {
      const stack = new Stack({ address: ADDR_B, mtu, clock, logger: silentLogger });
      const link = new CaptureLink();
      stack.attach(link);
      const got: Uint8Array[] = [];
      stack.dgram.createSocket('udp4', (m) => got.push(Uint8Array.from(m))).bind(7000);
      return { stack, link, got };
    }

    it('reassembles whatever order the fragments arrive in', () => {
      const payload = pattern(65507, 11);
      const sent = fragmentsOf(payload, 576);
      const rx = receiver(576, sent.clock);
      try {
        const rand = mulberry32(5);
        for (let round = 0; round < 3; round++) {
          const order = sent.frags.map((f) => f.slice());
          if (round === 0) order.reverse();
          else {
            for (let i = order.length - 1; i > 0; i--) {
              const j = Math.floor(rand() * (i + 1));
              [order[i], order[j]] = [order[j], order[i]];
            }
          }
          for (const f of order) rx.link.inject(f);
          assert.equal(rx.got.length, round + 1, `round ${round}`);
          assert.deepEqual(rx.got[round], payload);
        }
        assert.equal(rx.stack.counters.fragmentsReassembled, 3);
        assert.equal(rx.stack.tableSizes().reassemblyBytes, 0);
      } finally {
        rx.stack.close();
        sent.close();
      }
    });

    it('loses a datagram that lost a fragment, and never delivers it corrupted', () => {
      const payload = pattern(4000, 12);
      const sent = fragmentsOf(payload, 1500);
      const rx = receiver(1500, sent.clock);
      try {
        assert.equal(sent.frags.length, 3);
        for (let missing = 0; missing < sent.frags.length; missing++) {
          for (const [i, f] of sent.frags.entries()) if (i !== missing) rx.link.inject(f.slice());
          assert.equal(rx.got.length, 0, `fragment ${missing} missing`);
          sent.clock.advanceBy(31_000);
        }
        // Each timeout drops the fragments held: all but the missing one, three times.
        assert.equal(rx.stack.counters['frag-timeout'], 3 * (sent.frags.length - 1));
        assert.equal(rx.stack.tableSizes().reassemblyBytes, 0);
        // The next datagram, whole, still arrives intact.
        const next = pattern(4000, 13);
        for (const f of fragmentsOf(next, 1500, 4001).frags) rx.link.inject(f);
        assert.equal(rx.got.length, 1);
        assert.deepEqual(rx.got[0], next);
      } finally {
        rx.stack.close();
        sent.close();
      }
    });

    it('delivers only intact datagrams over a link that reorders, duplicates and drops packets', async () => {
      const pair = tappedPair(1500, { seed: 3, loss: 0.05, reorder: 0.3, reorderDelay: 2, duplicate: 0.05 });
      const server = udpFrom(pair.b, 7000);
      try {
        const payloads = Array.from({ length: 40 }, (_, i) => pattern(3000 + i * 37, 100 + i));
        for (const p of payloads) await send(pair.a, p, 7000, ADDR_B);
        const c = pair.links[0].counters;
        await waitFor(() => c.delivered + c.dropLoss === c.sent + c.duplicated, 5000, 'every fragment delivered or lost');
        assert.ok(c.dropLoss > 0 && c.reordered > 0 && c.duplicated > 0, JSON.stringify(c));
        const sentIds = new Set(pair.tapA.sent.map((p) => ip(p).id));
        assert.equal(sentIds.size, payloads.length, 'one id per datagram');
        assert.ok(server.got.length > 0 && server.got.length < payloads.length, `some but not all delivered: ${server.got.length}`);
        for (const [msg] of server.got) {
          const i = (msg.length - 3000) / 37;
          assert.ok(Number.isInteger(i) && i >= 0 && i < payloads.length, `length ${msg.length}`);
          assert.ok(Buffer.from(payloads[i]).equals(msg), `datagram ${i} intact`);
        }
      } finally {
        server.close();
        pair.close();
      }
    });
  });

  describe('sendPacket', () => {
    it('fragments a whole packet without DF and still drops one with DF', () => {
      const clock = new VirtualClock(1000);
      const stack = new Stack({ address: ADDR_A, mtu: 1500, clock, logger: silentLogger });
      const link = new CaptureLink();
      stack.attach(link);
      try {
        const body = pattern(5000, 21);
        stack.sendPacket(buildIpv4Packet({ src: A, dst: B, protocol: 253, id: 77, ttl: 9 }, body));
        const frags = link.take();
        assert.deepEqual(checkFragments(frags, body.length, 1500, 253, A, B), body);
        for (const f of frags) {
          assert.equal(ip(f).id, 77);
          assert.equal(ip(f).ttl, 9);
        }
        stack.sendPacket(buildIpv4Packet({ src: A, dst: B, protocol: 253, flags: IPV4_FLAG_DF }, body));
        assert.equal(link.take().length, 0);
        assert.equal(stack.counters['egress-too-big'], 1);
        const syn = buildTcpPacket({ src: A, dst: B }, { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: SYN, window: 100, urgent: 0, options: {}, payload: new Uint8Array(2000) });
        stack.sendPacket(syn);
        assert.equal(link.take().length, 0, 'TCP keeps DF and is never fragmented');
        assert.equal(stack.counters['egress-too-big'], 2);
      } finally {
        stack.close();
      }
    });
  });

  describe('ICMP fragmentation needed (type 3 code 4)', () => {
    it('is counted and dropped, whatever it quotes, and changes nothing', async () => {
      const pair = tappedPair(1500);
      const server = udpFrom(pair.b, 7000);
      const local = pair.a.dgram.createSocket('udp4');
      const errors: Error[] = [];
      local.on('error', (e) => errors.push(e));
      local.bind(6000);
      try {
        await once(local, 'listening');
        const udp = new Uint8Array(IPV4_HEADER_LENGTH + 8 + 1472);
        emitIpv4Header({ src: A, dst: B, protocol: PROTO_UDP, totalLength: udp.length, flags: IPV4_FLAG_DF }, udp, 0);
        udp.set([0x17, 0x70, 0x1b, 0x58], IPV4_HEADER_LENGTH);
        const tcp = buildTcpPacket({ src: A, dst: B }, { srcPort: 6000, dstPort: 80, seq: 1, ack: 0, flags: SYN, window: 100, urgent: 0, options: {}, payload: new Uint8Array(0) });
        const echo = new Uint8Array(IPV4_HEADER_LENGTH + 8);
        emitIpv4Header({ src: A, dst: B, protocol: PROTO_ICMP, totalLength: 1028 }, echo, 0);
        const quotes: Uint8Array[] = [udp, tcp, echo];
        const messages = quotes.map((q) => withMtu(buildIcmpUnreachable(q, ICMP_UNREACH_FRAG_NEEDED, GATEWAY), 576));
        // A truncated quote, one of someone else's packet, one with a zero MTU, one quoting garbage.
        messages.push(truncatedQuote(buildIcmpUnreachable(udp, ICMP_UNREACH_FRAG_NEEDED, GATEWAY)));
        const foreign = udp.slice();
        foreign.set([10, 77, 0, 9], 12);
        messages.push(buildIcmpUnreachable(foreign, ICMP_UNREACH_FRAG_NEEDED, GATEWAY));
        messages.push(withMtu(buildIcmpUnreachable(udp, ICMP_UNREACH_FRAG_NEEDED, GATEWAY), 0));
        messages.push(buildIcmpUnreachable(new Uint8Array(28).fill(0xff), ICMP_UNREACH_FRAG_NEEDED, GATEWAY));
        const before = pair.a.counters.icmpErrorsReceived;
        const rx = pair.a as unknown as { input(p: Uint8Array): void };
        for (const m of messages) {
          const dst = m.slice();
          dst.set([10, 77, 0, 2], 16);
          reChecksum(dst);
          rx.input(dst);
        }
        assert.equal(pair.a.counters.internalErrors, 0);
        assert.equal(pair.a.counters['internal-error'] ?? 0, 0);
        assert.equal(pair.a.counters['icmp-frag-needed'], 4);
        assert.equal(pair.a.counters.icmpErrorsReceived - before, messages.length);
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(errors, [], 'no socket error for fragmentation needed');
        // Nothing changed: a large datagram still goes out in 1500-byte fragments.
        pair.tapA.sent.length = 0;
        const payload = pattern(4000, 31);
        local.send(payload, 7000, ADDR_B);
        await waitFor(() => server.got.length === 1, 5000, 'the datagram');
        assert.ok(Buffer.from(payload).equals(server.got[0][0]));
        checkFragments(pair.tapA.sent, 4008, 1500, PROTO_UDP, A, B);
      } finally {
        local.close();
        server.close();
        pair.close();
      }
    });
  });
});

/** Put `mtu` in the next-hop MTU field (RFC 1191 section 4) and fix the ICMP checksum. */
function withMtu(packet: Uint8Array, mtu: number): Uint8Array {
  const out = packet.slice();
  const icmp = out.subarray(IPV4_HEADER_LENGTH);
  icmp[6] = mtu >>> 8;
  icmp[7] = mtu;
  icmpChecksum(icmp);
  return out;
}

/** Cut the quote to 12 bytes (less than an IPv4 header), fixing lengths and checksums. */
function truncatedQuote(packet: Uint8Array): Uint8Array {
  const out = packet.slice(0, IPV4_HEADER_LENGTH + 8 + 12);
  out[2] = out.length >>> 8;
  out[3] = out.length;
  icmpChecksum(out.subarray(IPV4_HEADER_LENGTH));
  reChecksum(out);
  return out;
}

function icmpChecksum(icmp: Uint8Array): void {
  const msg = { type: icmp[0], code: icmp[1], identifier: (icmp[4] << 8) | icmp[5], sequence: (icmp[6] << 8) | icmp[7], data: icmp.slice(8) };
  emitIcmp(msg, icmp, 0);
}

function reChecksum(packet: Uint8Array): void {
  const p = parseIpv4(packet, false);
  if (isWireError(p)) assert.fail(p.reason);
  emitIpv4Header({ src: p.src, dst: p.dst, protocol: p.protocol, totalLength: p.totalLength, ttl: p.ttl, tos: p.tos, id: p.id, flags: p.flags, fragmentOffset: p.fragmentOffset }, packet, 0);
}
