import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ACK,
  FIN,
  RST,
  buildTcpResetFor,
  DNS_RCODE_NXDOMAIN,
  DNS_RCODE_SERVFAIL,
  DNS_TYPE_A,
  ICMP_DEST_UNREACHABLE,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_UNREACH_PORT,
  IPV4_FLAG_DF,
  IPV4_FLAG_MF,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
  PSH,
  SYN,
  buildDnsQuery,
  buildDnsResponse,
  buildIcmpEchoReply,
  buildIcmpEchoRequest,
  buildIcmpUnreachable,
  buildTcpPacket,
  buildIpv4Packets,
  buildUdpPacket,
  emitIcmp,
  emitIcmpHeader,
  emitIpv4Header,
  emitUdpHeader,
  fragmentPayloadSize,
  gatherSum,
  internetChecksum,
  ipv4ToString,
  isWireError,
  parseDns,
  parseIcmp,
  parseIcmpQuote,
  parseIpv4,
  parseIpv4Address,
  parseTcp,
  parseUdp,
  pseudoHeaderSum,
  tcpHeaderLength,
  type TcpSegment,
  type TcpSegmentOut,
  type WireError,
} from '../../netstack/wire/index.js';

// Straightforward RFC 1071 reference: 16-bit big-endian words, carries folded each step.
function referenceChecksum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < data.length; i += 2) {
    const word = (data[i] << 8) | (i + 1 < data.length ? data[i + 1] : 0);
    sum += word;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ok<T extends object>(r: T | WireError): T {
  if (isWireError(r)) assert.fail(`unexpected wire error ${r.reason}`);
  return r as T;
}

function reason(r: object): string {
  assert.ok(isWireError(r), 'expected a wire error');
  return (r as WireError).reason;
}

const A = parseIpv4Address('10.77.0.2')!;
const B = parseIpv4Address('10.77.0.3')!;

describe('wire', () => {
  describe('internetChecksum', () => {
    it('matches the RFC 1071 section 3 example', () => {
      // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
      const data = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
      assert.equal(internetChecksum(data), ~0xddf2 & 0xffff);
    });

    it('matches a reference implementation at every length, offset and alignment', () => {
      const big = new Uint8Array(randomBytes(4096 + 16));
      for (const len of [0, 1, 2, 3, 7, 19, 20, 95, 96, 97, 100, 128, 257, 1500, 4001]) {
        for (let off = 0; off < 8; off++) {
          const view = big.subarray(off, off + len);
          assert.equal(internetChecksum(view), referenceChecksum(view), `len ${len} off ${off}`);
          assert.equal(internetChecksum(big, off, off + len), referenceChecksum(view), `range len ${len} off ${off}`);
          assert.equal(internetChecksum(view, 0, len, 0x1234), referenceChecksum(view, 0x1234));
        }
      }
    });

    it('is correct for all-ones data large enough to need carry folding', () => {
      const data = new Uint8Array(3 * 1024 * 1024 + 3).fill(0xff);
      assert.equal(internetChecksum(data), referenceChecksum(data));
      const data2 = new Uint8Array(5 * 1024 * 1024 + 1);
      for (let i = 0; i < data2.length; i++) data2[i] = (i * 131) & 0xff;
      assert.equal(internetChecksum(data2.subarray(1)), referenceChecksum(data2.subarray(1)));
    });

    it('verifies to zero once the checksum is inserted', () => {
      const data = new Uint8Array(randomBytes(200));
      data[10] = 0;
      data[11] = 0;
      const sum = internetChecksum(data);
      data[10] = sum >>> 8;
      data[11] = sum & 0xff;
      assert.equal(internetChecksum(data), 0);
    });
  });

  describe('ipv4', () => {
    it('formats and parses addresses', () => {
      assert.equal(ipv4ToString(0x0a4d0001), '10.77.0.1');
      assert.equal(parseIpv4Address('10.77.0.1'), 0x0a4d0001);
      assert.equal(parseIpv4Address('255.255.255.255'), 0xffffffff);
      for (const bad of ['', '10.77.0', '10.77.0.256', '1.2.3.4.5', '01.2.3.4', 'a.b.c.d', '1..2.3', ' 1.2.3.4']) {
        assert.equal(parseIpv4Address(bad), null, bad);
      }
    });

    it('round-trips a header and ignores trailing bytes', () => {
      const buf = new Uint8Array(20 + 5 + 3);
      emitIpv4Header({ src: A, dst: B, protocol: PROTO_UDP, totalLength: 25, ttl: 7, id: 0xbeef, flags: IPV4_FLAG_DF, fragmentOffset: 1480 }, buf, 0);
      buf.set([1, 2, 3, 4, 5], 20);
      const p = ok(parseIpv4(buf));
      assert.equal(p.src, A);
      assert.equal(p.dst, B);
      assert.equal(p.protocol, PROTO_UDP);
      assert.equal(p.ttl, 7);
      assert.equal(p.id, 0xbeef);
      assert.equal(p.flags, IPV4_FLAG_DF);
      assert.equal(p.fragmentOffset, 1480);
      assert.equal(p.headerLength, 20);
      assert.equal(p.totalLength, 25);
      assert.deepEqual([...p.payload], [1, 2, 3, 4, 5]);
      assert.equal(referenceChecksum(buf.subarray(0, 20)), 0);
    });

    it('skips options', () => {
      const buf = new Uint8Array(28);
      emitIpv4Header({ src: A, dst: B, protocol: PROTO_TCP, totalLength: 28 }, buf, 0);
      buf[0] = 0x46;
      buf.set([1, 1, 1, 0], 20);
      buf.set([9, 9, 9, 9], 24);
      buf[10] = 0;
      buf[11] = 0;
      const s = internetChecksum(buf, 0, 24);
      buf[10] = s >>> 8;
      buf[11] = s & 0xff;
      const p = ok(parseIpv4(buf));
      assert.equal(p.headerLength, 24);
      assert.deepEqual([...p.payload], [9, 9, 9, 9]);
    });

    it('rejects malformed headers with a reason', () => {
      const good = buildUdpPacket({ src: A, dst: B, srcPort: 1, dstPort: 2, payload: new Uint8Array(4) });
      assert.equal(reason(parseIpv4(good.subarray(0, 19))), 'ipv4-truncated');
      const v6 = good.slice();
      v6[0] = 0x65;
      assert.equal(reason(parseIpv4(v6)), 'ipv4-bad-version');
      const ihl = good.slice();
      ihl[0] = 0x44;
      assert.equal(reason(parseIpv4(ihl)), 'ipv4-bad-header-length');
      const ihlBig = good.slice();
      ihlBig[0] = 0x4f;
      assert.equal(reason(parseIpv4(ihlBig)), 'ipv4-bad-header-length');
      const shortTotal = good.slice();
      shortTotal[2] = 0;
      shortTotal[3] = 10;
      assert.equal(reason(parseIpv4(shortTotal)), 'ipv4-bad-total-length');
      assert.equal(reason(parseIpv4(good.subarray(0, good.length - 1))), 'ipv4-truncated');
      const badSum = good.slice();
      badSum[8] ^= 1;
      assert.equal(reason(parseIpv4(badSum)), 'ipv4-bad-checksum');
      assert.ok(!isWireError(parseIpv4(badSum, false)));
    });
  });

  describe('icmp', () => {
    it('builds an echo request and its reply', () => {
      const req = buildIcmpEchoRequest({ src: A, dst: B, identifier: 0x1234, sequence: 7, payload: Uint8Array.from([1, 2, 3]) });
      const ip = ok(parseIpv4(req));
      assert.equal(ip.protocol, PROTO_ICMP);
      const icmp = ok(parseIcmp(ip.payload));
      assert.equal(icmp.type, ICMP_ECHO_REQUEST);
      assert.equal(icmp.identifier, 0x1234);
      assert.equal(icmp.sequence, 7);
      assert.equal(referenceChecksum(ip.payload), 0);
      const rep = ok(parseIpv4(buildIcmpEchoReply(ip, icmp)));
      assert.equal(rep.src, B);
      assert.equal(rep.dst, A);
      const ricmp = ok(parseIcmp(rep.payload));
      assert.equal(ricmp.type, ICMP_ECHO_REPLY);
      assert.equal(ricmp.identifier, 0x1234);
      assert.equal(ricmp.sequence, 7);
      assert.deepEqual([...ricmp.data], [1, 2, 3]);
    });

    it('quotes the original header and 8 bytes in destination unreachable', () => {
      const orig = buildUdpPacket({ src: A, dst: B, srcPort: 5353, dstPort: 9999, payload: new Uint8Array(100) });
      const pkt = ok(parseIpv4(buildIcmpUnreachable(orig, ICMP_UNREACH_PORT, B)));
      assert.equal(pkt.src, B);
      assert.equal(pkt.dst, A);
      const icmp = ok(parseIcmp(pkt.payload));
      assert.equal(icmp.type, ICMP_DEST_UNREACHABLE);
      assert.equal(icmp.code, ICMP_UNREACH_PORT);
      assert.equal(icmp.data.length, 28);
      assert.deepEqual([...icmp.data], [...orig.subarray(0, 28)]);
      const q = ok(parseIcmpQuote(icmp.data));
      assert.equal(q.src, A);
      assert.equal(q.dst, B);
      assert.equal(q.protocol, PROTO_UDP);
      assert.equal(q.srcPort, 5353);
      assert.equal(q.dstPort, 9999);
    });

    it('rejects truncated messages, bad checksums and short quotes', () => {
      assert.equal(reason(parseIcmp(new Uint8Array(7))), 'icmp-truncated');
      const req = ok(parseIpv4(buildIcmpEchoRequest({ src: A, dst: B, identifier: 1, sequence: 1 })));
      const bad = req.payload.slice();
      bad[4] ^= 0xff;
      assert.equal(reason(parseIcmp(bad)), 'icmp-bad-checksum');
      assert.equal(reason(parseIcmpQuote(new Uint8Array(27).fill(0x45))), 'icmp-quote-truncated');
    });
  });

  describe('udp', () => {
    it('round-trips with a checksum a reference computes the same', () => {
      const payload = new Uint8Array(randomBytes(333));
      const pkt = buildUdpPacket({ src: A, dst: B, srcPort: 40000, dstPort: 53, payload, ttl: 9 });
      const ip = ok(parseIpv4(pkt));
      assert.equal(ip.ttl, 9);
      const udp = ok(parseUdp(ip.payload, A, B));
      assert.equal(udp.srcPort, 40000);
      assert.equal(udp.dstPort, 53);
      assert.deepEqual(Buffer.from(udp.payload), Buffer.from(payload));
      // Independent check: pseudo-header bytes + segment summed by the reference.
      const pseudo = new Uint8Array(12 + ip.payload.length);
      pseudo.set(pkt.subarray(12, 20), 0);
      pseudo[9] = PROTO_UDP;
      pseudo[10] = ip.payload.length >>> 8;
      pseudo[11] = ip.payload.length & 0xff;
      pseudo.set(ip.payload, 12);
      assert.equal(referenceChecksum(pseudo), 0);
    });

    it('accepts a zero checksum as none and rejects bad ones', () => {
      const pkt = buildUdpPacket({ src: A, dst: B, srcPort: 1, dstPort: 2, payload: Uint8Array.from([5, 6]) });
      const ip = ok(parseIpv4(pkt));
      const seg = ip.payload.slice();
      seg[8] ^= 1;
      assert.equal(reason(parseUdp(seg, A, B)), 'udp-bad-checksum');
      seg[6] = 0;
      seg[7] = 0;
      assert.deepEqual([...ok(parseUdp(seg, A, B)).payload], [4, 6]);
      assert.equal(reason(parseUdp(seg.subarray(0, 7), A, B)), 'udp-truncated');
      const longLen = seg.slice();
      longLen[5] = 200;
      assert.equal(reason(parseUdp(longLen, A, B)), 'udp-bad-length');
      const shortLen = seg.slice();
      shortLen[5] = 3;
      assert.equal(reason(parseUdp(shortLen, A, B)), 'udp-bad-length');
    });
  });

  describe('gather lists and fragments', () => {
    /** `whole` cut into parts of the given sizes (the last takes the rest), at odd byte offsets too. */
    function split(whole: Uint8Array, sizes: number[]): Uint8Array[] {
      const parts: Uint8Array[] = [];
      let at = 0;
      for (const n of sizes) {
        const backing = new Uint8Array(n + 3);
        backing.set(whole.subarray(at, at + n), parts.length % 3);
        parts.push(backing.subarray(parts.length % 3, (parts.length % 3) + n));
        at += n;
      }
      parts.push(whole.slice(at));
      return parts;
    }

    it('sums a gather list as the reference sums the whole', () => {
      const whole = new Uint8Array(randomBytes(3001));
      for (const sizes of [[], [1], [1, 1], [7, 200, 3], [0, 0, 1500, 1], [999, 1000, 1]]) {
        const parts = split(whole, sizes);
        assert.equal(~gatherSum(parts) & 0xffff, referenceChecksum(whole), `sizes ${sizes.join(',')}`);
        assert.equal(~gatherSum(parts, 0x1234) & 0xffff, referenceChecksum(whole, 0x1234));
      }
    });

    it('writes UDP and ICMP headers whose checksums cover the data where it lies', () => {
      for (const n of [0, 1, 333, 4000]) {
        const payload = new Uint8Array(randomBytes(n));
        const header = new Uint8Array(8);
        emitUdpHeader({ srcPort: 40000, dstPort: 53, payload }, header, 0, A, B);
        const whole = buildUdpPacket({ src: A, dst: B, srcPort: 40000, dstPort: 53, payload });
        assert.deepEqual(header, whole.subarray(20, 28), `UDP, ${n} bytes`);
        const msg = { type: ICMP_ECHO_REQUEST, code: 0, identifier: 9, sequence: n, data: payload };
        const icmpHeader = new Uint8Array(8);
        emitIcmpHeader(msg, icmpHeader, 0);
        const icmp = new Uint8Array(8 + n);
        emitIcmp(msg, icmp, 0);
        assert.deepEqual(icmpHeader, icmp.subarray(0, 8), `ICMP, ${n} bytes`);
      }
    });

    it('builds one packet when the datagram fits, keeping its flags', () => {
      const parts = [Uint8Array.from([1, 2, 3]), Uint8Array.from([4, 5])];
      const out = buildIpv4Packets({ src: A, dst: B, protocol: PROTO_UDP, id: 7, flags: IPV4_FLAG_DF }, parts, 25);
      assert.ok(!isWireError(out));
      assert.equal(out.length, 1);
      const p = ok(parseIpv4(out[0]));
      assert.equal(p.flags, IPV4_FLAG_DF);
      assert.equal(p.totalLength, 25);
      assert.deepEqual([...p.payload], [1, 2, 3, 4, 5]);
    });

    it('fragments on 8-byte boundaries with one id, DF clear and MF on all but the last', () => {
      const whole = new Uint8Array(randomBytes(2789));
      const parts = split(whole, [8, 3, 1000, 0, 777]);
      const mtu = 105;
      const size = fragmentPayloadSize(mtu);
      assert.equal(size, 80);
      const out = buildIpv4Packets({ src: A, dst: B, protocol: PROTO_UDP, id: 0xbeef, ttl: 3, tos: 0x10, flags: 0 }, parts, mtu);
      assert.ok(!isWireError(out));
      assert.equal(out.length, Math.ceil(whole.length / size));
      const joined = new Uint8Array(whole.length);
      out.forEach((raw, i) => {
        const p = ok(parseIpv4(raw));
        const last = i === out.length - 1;
        assert.ok(raw.length <= mtu);
        assert.equal(p.id, 0xbeef);
        assert.equal(p.ttl, 3);
        assert.equal(p.tos, 0x10);
        assert.equal(p.fragmentOffset, i * size);
        assert.equal(p.flags, last ? 0 : IPV4_FLAG_MF);
        assert.equal(p.payload.length, last ? whole.length - i * size : size);
        joined.set(p.payload, p.fragmentOffset);
      });
      assert.deepEqual(joined, whole);
    });

    it('fragments a fragment again: offsets from its own, MF kept on the last piece', () => {
      const data = new Uint8Array(randomBytes(200));
      const out = buildIpv4Packets({ src: A, dst: B, protocol: PROTO_UDP, id: 1, flags: IPV4_FLAG_MF, fragmentOffset: 1480 }, [data], 100);
      assert.ok(!isWireError(out));
      const ps = out.map((x) => ok(parseIpv4(x)));
      assert.deepEqual(ps.map((p) => p.fragmentOffset), [1480, 1560, 1640]);
      assert.deepEqual(ps.map((p) => p.flags), [IPV4_FLAG_MF, IPV4_FLAG_MF, IPV4_FLAG_MF]);
    });

    it('refuses what cannot be sent with a reason', () => {
      const big = new Uint8Array(65516);
      assert.equal(reason(buildIpv4Packets({ src: A, dst: B, protocol: PROTO_UDP }, [big], 1500)), 'ipv4-too-big');
      assert.ok(!isWireError(buildIpv4Packets({ src: A, dst: B, protocol: PROTO_UDP }, [big.subarray(1)], 1500)));
      assert.equal(reason(buildIpv4Packets({ src: A, dst: B, protocol: PROTO_UDP, flags: IPV4_FLAG_DF }, [new Uint8Array(1481)], 1500)), 'ipv4-dont-fragment');
      assert.equal(reason(buildIpv4Packets({ src: A, dst: B, protocol: PROTO_UDP }, [new Uint8Array(30)], 27)), 'ipv4-mtu-too-small');
    });
  });

  describe('tcp', () => {
    function segment(over: Partial<TcpSegmentOut> = {}): TcpSegmentOut {
      return { srcPort: 1234, dstPort: 80, seq: 0xfffffff0, ack: 42, flags: SYN | ACK, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), payloadLength: 0, ...over };
    }

    it('buildTcpResetFor answers per RFC 9293 section 3.10.7.1, from the destination to the source', () => {
      const parseReset = (pkt: Uint8Array | null) => {
        assert.ok(pkt !== null);
        const ip = parseIpv4(pkt);
        assert.ok(!isWireError(ip));
        assert.equal(ip.src, B);
        assert.equal(ip.dst, A);
        const seg = parseTcp(ip.payload, ip.src, ip.dst);
        assert.ok(!isWireError(seg));
        assert.equal(seg.srcPort, 80);
        assert.equal(seg.dstPort, 1234);
        assert.equal(seg.payload.length, 0);
        return seg;
      };
      // with ACK: <SEQ=SEG.ACK><CTL=RST>
      const withAck = parseReset(buildTcpResetFor(buildTcpPacket({ src: A, dst: B }, segment({ flags: ACK | PSH, seq: 7, ack: 0xabcdef01, payload: new Uint8Array(10), payloadLength: 10 }))));
      assert.equal(withAck.flags, RST);
      assert.equal(withAck.seq, 0xabcdef01);
      assert.equal(withAck.ack, 0);
      // without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SYN and FIN count, mod 2^32
      const synFin = parseReset(buildTcpResetFor(buildTcpPacket({ src: A, dst: B }, segment({ flags: SYN | FIN, seq: 0xfffffff0, payload: new Uint8Array(20), payloadLength: 20 }))));
      assert.equal(synFin.flags, RST | ACK);
      assert.equal(synFin.seq, 0);
      assert.equal(synFin.ack, (0xfffffff0 + 22) >>> 0);
      // no answer to a RST, a fragment, a bad checksum or a truncated segment
      assert.equal(buildTcpResetFor(buildTcpPacket({ src: A, dst: B }, segment({ flags: RST | ACK }))), null);
      assert.equal(buildTcpResetFor(buildTcpPacket({ src: A, dst: B, flags: IPV4_FLAG_MF }, segment({ flags: ACK }))), null);
      const corrupt = buildTcpPacket({ src: A, dst: B }, segment({ flags: ACK }));
      corrupt[corrupt.length - 4] ^= 0xff;
      assert.equal(buildTcpResetFor(corrupt), null);
      assert.equal(buildTcpResetFor(buildTcpPacket({ src: A, dst: B }, segment({ flags: ACK })).subarray(0, 30)), null);
    });

    it('round-trips every option together and alone', () => {
      const cases = [
        {},
        { mss: 65495 },
        { windowScale: 7 },
        { sackPermitted: true },
        { timestamp: { value: 0xdeadbeef, echo: 1 } },
        { mss: 1460, windowScale: 14, sackPermitted: true, timestamp: { value: 5, echo: 6 } },
        { sack: [{ left: 1, right: 2 }, { left: 3, right: 4 }, { left: 5, right: 6 }, { left: 7, right: 8 }] },
        { timestamp: { value: 9, echo: 10 }, sack: [{ left: 10, right: 20 }, { left: 30, right: 40 }, { left: 50, right: 60 }] },
      ];
      for (const options of cases) {
        const pkt = buildTcpPacket({ src: A, dst: B }, segment({ options }));
        const ip = ok(parseIpv4(pkt));
        assert.equal(ip.flags, IPV4_FLAG_DF);
        assert.equal(ip.payload.length, tcpHeaderLength(options));
        assert.equal(tcpHeaderLength(options) % 4, 0);
        const seg = ok(parseTcp(ip.payload, A, B));
        assert.deepEqual(seg.options, options);
        assert.equal(seg.seq, 0xfffffff0);
        assert.equal(seg.flags, SYN | ACK);
      }
    });

    it('leaves out SACK blocks that do not fit in 40 bytes of options', () => {
      const sack = [1, 2, 3, 4].map((i) => ({ left: i * 10, right: i * 10 + 5 }));
      const options = { timestamp: { value: 1, echo: 2 }, sack };
      assert.equal(tcpHeaderLength(options), 60);
      const seg = ok(parseTcp(ok(parseIpv4(buildTcpPacket({ src: A, dst: B }, segment({ options })))).payload, A, B));
      assert.deepEqual(seg.options.sack, sack.slice(0, 3));
    });

    it('copies a gather-list payload once and checksums it', () => {
      const parts = [new Uint8Array(randomBytes(1000)), new Uint8Array(0), new Uint8Array(randomBytes(3))];
      const total = parts.reduce((n, p) => n + p.length, 0);
      const pkt = buildTcpPacket({ src: A, dst: B, ttl: 3 }, segment({ flags: ACK | PSH, payload: parts, payloadLength: total }));
      const ip = ok(parseIpv4(pkt));
      const seg: TcpSegment = ok(parseTcp(ip.payload, A, B));
      assert.deepEqual(Buffer.from(seg.payload), Buffer.concat(parts));
      assert.equal(internetChecksum(ip.payload, 0, ip.payload.length, pseudoHeaderSum(A, B, PROTO_TCP, ip.payload.length)), 0);
    });

    it('skips unknown options and rejects absurd ones', () => {
      const pkt = buildTcpPacket({ src: A, dst: B }, segment({ options: { mss: 1000, windowScale: 2 } }));
      const ip = ok(parseIpv4(pkt));
      const fix = (mutate: (b: Uint8Array) => void): Uint8Array => {
        const b = ip.payload.slice();
        mutate(b);
        b[16] = 0;
        b[17] = 0;
        const s = internetChecksum(b, 0, b.length, pseudoHeaderSum(A, B, PROTO_TCP, b.length));
        b[16] = s >>> 8;
        b[17] = s & 0xff;
        return b;
      };
      // Options: MSS at 20..23, NOP at 24, WS at 25..27.
      const unknown = fix((b) => b.set([99, 3, 0], 25));
      assert.deepEqual(ok(parseTcp(unknown, A, B)).options, { mss: 1000 });
      assert.equal(reason(parseTcp(fix((b) => (b[21] = 0)), A, B)), 'tcp-bad-option');
      assert.equal(reason(parseTcp(fix((b) => (b[21] = 1)), A, B)), 'tcp-bad-option');
      assert.equal(reason(parseTcp(fix((b) => (b[26] = 40)), A, B)), 'tcp-bad-option');
      assert.equal(reason(parseTcp(fix((b) => b.set([1, 1, 1, 2], 24)), A, B)), 'tcp-bad-option');
      const wsHuge = fix((b) => (b[27] = 200));
      assert.equal(ok(parseTcp(wsHuge, A, B)).options.windowScale, 14);
    });

    it('rejects bad header lengths and checksums', () => {
      const ip = ok(parseIpv4(buildTcpPacket({ src: A, dst: B }, segment())));
      assert.equal(reason(parseTcp(ip.payload.subarray(0, 19), A, B)), 'tcp-truncated');
      const small = ip.payload.slice();
      small[12] = 0x40;
      assert.equal(reason(parseTcp(small, A, B, false)), 'tcp-bad-header-length');
      const big = ip.payload.slice();
      big[12] = 0xf0;
      assert.equal(reason(parseTcp(big, A, B, false)), 'tcp-bad-header-length');
      assert.equal(reason(parseTcp(ip.payload, A, A)), 'tcp-bad-checksum');
    });
  });

  describe('dns', () => {
    it('builds and parses a query', () => {
      const q = ok(buildDnsQuery({ id: 0xabcd, name: 'Web.Imach' }) as Uint8Array | WireError) as Uint8Array;
      const m = ok(parseDns(q));
      assert.equal(m.id, 0xabcd);
      assert.equal(m.qr, false);
      assert.equal(m.rd, true);
      assert.deepEqual(m.questions, [{ name: 'web.imach', type: DNS_TYPE_A, class: 1 }]);
      assert.equal(reason(buildDnsQuery({ id: 1, name: 'a..b' }) as WireError), 'dns-bad-name');
      assert.equal(reason(buildDnsQuery({ id: 1, name: 'x'.repeat(64) }) as WireError), 'dns-bad-name');
    });

    it('builds responses with A answers, NXDOMAIN and SERVFAIL', () => {
      const query = ok(parseDns(buildDnsQuery({ id: 7, name: 'db.imach' }) as Uint8Array));
      const r = ok(parseDns(buildDnsResponse(query, { answers: [{ address: '10.77.0.5', ttl: 30 }, { name: 'other.imach', address: 0x0a4d0006 }] })));
      assert.equal(r.id, 7);
      assert.equal(r.qr, true);
      assert.equal(r.rcode, 0);
      assert.deepEqual(r.questions, query.questions);
      assert.deepEqual(r.answers.map((a) => [a.name, a.address, a.ttl]), [['db.imach', '10.77.0.5', 30], ['other.imach', '10.77.0.6', 60]]);
      assert.equal(ok(parseDns(buildDnsResponse(query, { rcode: DNS_RCODE_NXDOMAIN }))).rcode, DNS_RCODE_NXDOMAIN);
      const sf = ok(parseDns(buildDnsResponse(query, { rcode: DNS_RCODE_SERVFAIL })));
      assert.equal(sf.rcode, DNS_RCODE_SERVFAIL);
      assert.equal(sf.answers.length, 0);
    });

    it('follows compression pointers and refuses loops and forward pointers', () => {
      const query = ok(parseDns(buildDnsQuery({ id: 7, name: 'a.b' }) as Uint8Array));
      const resp = buildDnsResponse(query, { answers: [{ address: '1.2.3.4' }] });
      // The answer's name is a pointer to offset 12.
      const at = 12 + 5 + 4;
      assert.deepEqual([...resp.subarray(at, at + 2)], [0xc0, 12]);
      const self = resp.slice();
      self[at + 1] = at;
      assert.equal(reason(parseDns(self)), 'dns-bad-pointer');
      const forward = resp.slice();
      forward[at + 1] = at + 2;
      assert.equal(reason(parseDns(forward)), 'dns-bad-pointer');
      const trunc = resp.subarray(0, resp.length - 2);
      assert.equal(reason(parseDns(trunc)), 'dns-truncated');
      assert.equal(reason(parseDns(new Uint8Array(11))), 'dns-truncated');
    });

    it('bounds a chain of backward pointers', () => {
      // Question: the root name at 12. Answer 1 carries, as RDATA, 100 pointers each to the
      // one before it; answer 2's name points at the last: 101 hops, all backward.
      const hops = 100;
      const chainAt = 28;
      const answerAt = chainAt + 2 * hops;
      const b = new Uint8Array(answerAt + 2 + 10);
      b[5] = 1;
      b[7] = 2;
      b[14] = 1;
      b[16] = 1;
      b[19] = 1;
      b[21] = 1;
      b[26] = (2 * hops) >> 8;
      b[27] = (2 * hops) & 0xff;
      for (let i = 0; i < hops; i++) {
        const p = chainAt + 2 * i;
        const target = i === 0 ? 12 : p - 2;
        b[p] = 0xc0 | (target >> 8);
        b[p + 1] = target & 0xff;
      }
      b[answerAt] = 0xc0;
      b[answerAt + 1] = answerAt - 2;
      assert.equal(reason(parseDns(b)), 'dns-bad-pointer');
      // A short chain of the same shape parses.
      const short = b.slice();
      short[answerAt + 1] = chainAt + 2 * 10;
      const m = ok(parseDns(short));
      assert.equal(m.answers[1].name, '');
    });
  });
});

