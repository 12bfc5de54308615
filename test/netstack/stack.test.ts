import assert from 'node:assert/strict';
import { Stack } from '../../netstack/stack.js';
import { silentLogger } from '../../netstack/log.js';
import { VirtualClock } from '../../netstack/time.js';
import { createDnsResolver } from '../../netstack/api/dns.js';
import {
  DNS_RCODE_NXDOMAIN,
  ICMP_DEST_UNREACHABLE,
  ICMP_ECHO_REPLY,
  ICMP_UNREACH_HOST,
  ICMP_UNREACH_PORT,
  IPV4_FLAG_MF,
  IPV4_HEADER_LENGTH,
  PROTO_UDP,
  buildDnsResponse,
  buildIcmpEchoRequest,
  buildIcmpUnreachable,
  buildUdpPacket,
  emitIpv4Header,
  isWireError,
  parseDns,
  parseIcmp,
  parseIcmpQuote,
  parseIpv4,
  parseIpv4Address,
  type Ipv4Packet,
} from '../../netstack/wire/index.js';
import { ADDR_A, ADDR_B, CaptureLink, once, stackPair } from '../support/stack-harness.js';
import type { RemoteInfo } from '../../netstack/api/dgram.js';

const A = parseIpv4Address(ADDR_A)!;
const B = parseIpv4Address(ADDR_B)!;
const PEER = parseIpv4Address('10.77.0.9')!;

function ip(p: Uint8Array): Ipv4Packet {
  const r = parseIpv4(p);
  if (isWireError(r)) assert.fail(r.reason);
  return r;
}

function captured(options: Partial<ConstructorParameters<typeof Stack>[0]> = {}): { stack: Stack; link: CaptureLink; clock: VirtualClock } {
  const clock = new VirtualClock(1000);
  const stack = new Stack({ address: ADDR_A, clock, logger: silentLogger, ...options });
  const link = new CaptureLink();
  stack.attach(link);
  return { stack, link, clock };
}

/** Split a UDP packet's IP payload into fragments of `size` bytes (a multiple of 8). */
function fragment(whole: Uint8Array, size: number, id: number): Uint8Array[] {
  const p = ip(whole);
  const out: Uint8Array[] = [];
  for (let off = 0; off < p.payload.length; off += size) {
    const part = p.payload.subarray(off, Math.min(p.payload.length, off + size));
    const more = off + size < p.payload.length;
    const buf = new Uint8Array(IPV4_HEADER_LENGTH + part.length);
    emitIpv4Header({ src: p.src, dst: p.dst, protocol: p.protocol, totalLength: buf.length, id, flags: more ? IPV4_FLAG_MF : 0, fragmentOffset: off }, buf, 0);
    buf.set(part, IPV4_HEADER_LENGTH);
    out.push(buf);
  }
  return out;
}

describe('stack', () => {
  describe('ICMP', () => {
    it('answers an echo request with a matching reply', () => {
      const { stack, link } = captured();
      link.inject(buildIcmpEchoRequest({ src: PEER, dst: A, identifier: 77, sequence: 5, payload: Uint8Array.from([9, 8, 7]) }));
      const [reply] = link.take();
      const p = ip(reply);
      assert.equal(p.src, A);
      assert.equal(p.dst, PEER);
      const icmp = parseIcmp(p.payload);
      assert.ok(!isWireError(icmp));
      assert.equal(icmp.type, ICMP_ECHO_REPLY);
      assert.equal(icmp.identifier, 77);
      assert.equal(icmp.sequence, 5);
      assert.deepEqual([...icmp.data], [9, 8, 7]);
      assert.equal(stack.counters.icmpEchoReplies, 1);
      stack.close();
    });

    it('sends port unreachable for a closed UDP port, rate limited', () => {
      const { stack, link, clock } = captured({ limits: { icmpErrorBurst: 3, icmpErrorsPerSecond: 10 } });
      const dgram = buildUdpPacket({ src: PEER, dst: A, srcPort: 1000, dstPort: 4444, payload: new Uint8Array(50) });
      for (let i = 0; i < 10; i++) link.inject(dgram);
      const sent = link.take();
      assert.equal(sent.length, 3);
      const p = ip(sent[0]);
      assert.equal(p.dst, PEER);
      const icmp = parseIcmp(p.payload);
      assert.ok(!isWireError(icmp));
      assert.equal(icmp.type, ICMP_DEST_UNREACHABLE);
      assert.equal(icmp.code, ICMP_UNREACH_PORT);
      const q = parseIcmpQuote(icmp.data);
      assert.ok(!isWireError(q));
      assert.equal(q.dstPort, 4444);
      assert.equal(stack.counters.icmpErrorsRateLimited, 7);
      assert.equal(stack.counters['udp-no-socket'], 10);
      clock.advanceBy(1000);
      link.inject(dgram);
      assert.equal(link.take().length, 1);
      stack.close();
    });

    it('sends no ICMP error about a broadcast datagram', () => {
      const { stack, link } = captured();
      link.inject(buildUdpPacket({ src: PEER, dst: 0x0a4dffff, srcPort: 1, dstPort: 2, payload: new Uint8Array(1) }));
      assert.equal(link.take().length, 0);
      assert.equal(stack.counters['udp-no-socket'], 1);
      stack.close();
    });

    it('drops what is not for it and counts by reason', () => {
      const { stack, link } = captured();
      link.inject(buildIcmpEchoRequest({ src: PEER, dst: B, identifier: 1, sequence: 1 }));
      const bad = buildIcmpEchoRequest({ src: PEER, dst: A, identifier: 1, sequence: 1 });
      bad[8] ^= 0xff;
      link.inject(bad);
      link.inject(new Uint8Array(3));
      assert.equal(link.take().length, 0);
      assert.equal(stack.counters['not-for-us'], 1);
      assert.equal(stack.counters['ipv4-bad-checksum'], 1);
      assert.equal(stack.counters['ipv4-truncated'], 1);
      assert.equal(stack.counters.dropped, 3);
      stack.close();
    });
  });

  describe('UDP', () => {
    it('carries datagrams both ways with Node-style events', async () => {
      const pair = stackPair();
      try {
        const server = pair.b.dgram.createSocket('udp4');
        server.on('message', (msg: Buffer, rinfo: RemoteInfo) => server.send(Buffer.concat([Buffer.from('echo:'), msg]), rinfo.port, rinfo.address));
        server.bind(5000);
        await once(server, 'listening');
        assert.deepEqual(server.address(), { address: ADDR_B, family: 'IPv4', port: 5000 });
        const client = pair.a.dgram.createSocket({ type: 'udp4' });
        const got = once<[Buffer, RemoteInfo]>(client, 'message');
        const sent = new Promise<number>((resolve, reject) => client.send('hello', 5000, ADDR_B, (err, n) => (err ? reject(err) : resolve(n))));
        assert.equal(await sent, 5);
        const [msg, rinfo] = await got;
        assert.equal(msg.toString(), 'echo:hello');
        assert.deepEqual(rinfo, { address: ADDR_B, family: 'IPv4', port: 5000, size: 10 });
        // offset/length form
        const got2 = once<[Buffer, RemoteInfo]>(client, 'message');
        client.send(Buffer.from('xxabcxx'), 2, 3, 5000, ADDR_B);
        assert.equal((await got2)[0].toString(), 'echo:abc');
        assert.equal(pair.a.socketStats().udp, 1);
        const closed = once(client, 'close');
        client.close();
        await closed;
        server.close();
        assert.equal(pair.a.socketStats().udp, 0);
      } finally {
        pair.close();
      }
    });

    it('reports EADDRINUSE and a port-unreachable error to a listening socket', async () => {
      const pair = stackPair();
      try {
        const s1 = pair.a.dgram.createSocket('udp4');
        s1.bind(6000);
        await once(s1, 'listening');
        const s2 = pair.a.dgram.createSocket('udp4');
        s2.bind(6000);
        const [err] = await once<[Error & { code: string }]>(s2, 'error');
        assert.equal(err.code, 'EADDRINUSE');
        const errP = once<[Error & { code: string }]>(s1, 'error');
        s1.send('x', 7, ADDR_B);
        const [unreach] = await errP;
        assert.equal(unreach.code, 'ECONNREFUSED');
        s1.close();
      } finally {
        pair.close();
      }
    });

    it('fragments a datagram larger than the MTU and refuses one over 65507 bytes with EMSGSIZE', async () => {
      const pair = stackPair({ mtu: 1500 });
      try {
        const s = pair.a.dgram.createSocket('udp4');
        const send = (n: number): Promise<Error | null> => new Promise((resolve) => s.send(new Uint8Array(n), 9, ADDR_B, (e) => resolve(e)));
        assert.equal(await send(1500 - 28 + 1), null);
        assert.equal(pair.a.counters.datagramsFragmented, 1);
        const err = await send(65508);
        assert.equal((err as Error & { code: string }).code, 'EMSGSIZE');
        s.close();
      } finally {
        pair.close();
      }
    });
  });

  describe('fragment reassembly', () => {
    function bound(stack: Stack, port: number): Uint8Array[] {
      const got: Uint8Array[] = [];
      const s = stack.dgram.createSocket('udp4', (m) => got.push(Uint8Array.from(m)));
      s.bind(port);
      return got;
    }

    it('reassembles fragments in any order', () => {
      const { stack, link } = captured();
      const got = bound(stack, 7000);
      const payload = new Uint8Array(3000).map((_, i) => (i * 7) & 0xff);
      const frags = fragment(buildUdpPacket({ src: PEER, dst: A, srcPort: 9, dstPort: 7000, payload }), 800, 42);
      assert.equal(frags.length, 4);
      for (const f of [frags[2], frags[0], frags[3], frags[1]]) link.inject(f);
      assert.equal(got.length, 1);
      assert.deepEqual(got[0], payload);
      assert.equal(stack.counters.fragmentsReassembled, 1);
      // A duplicate of a fragment after completion starts a new partial that times out.
      stack.close();
    });

    it('drops a datagram with overlapping fragments and ignores exact duplicates', () => {
      const { stack, link } = captured();
      const got = bound(stack, 7001);
      const payload = new Uint8Array(2400).fill(3);
      const frags = fragment(buildUdpPacket({ src: PEER, dst: A, srcPort: 9, dstPort: 7001, payload }), 800, 7);
      link.inject(frags[0]);
      link.inject(frags[0]);
      assert.equal(stack.counters['frag-duplicate'], 1);
      // An overlapping fragment: offset 400 into the first one.
      const p = ip(frags[1]);
      const overlap = new Uint8Array(IPV4_HEADER_LENGTH + 800);
      emitIpv4Header({ src: PEER, dst: A, protocol: PROTO_UDP, totalLength: overlap.length, id: 7, flags: IPV4_FLAG_MF, fragmentOffset: 400 }, overlap, 0);
      overlap.set(p.payload, IPV4_HEADER_LENGTH);
      link.inject(overlap);
      assert.equal(stack.counters['frag-overlap'], 1);
      for (const f of frags.slice(1)) link.inject(f);
      assert.equal(got.length, 0);
      stack.close();
    });

    it('times out incomplete datagrams on the stack timer', () => {
      const { stack, link, clock } = captured({ limits: { reassemblyTimeoutMs: 5000 } });
      const got = bound(stack, 7002);
      const frags = fragment(buildUdpPacket({ src: PEER, dst: A, srcPort: 9, dstPort: 7002, payload: new Uint8Array(1600) }), 800, 9);
      link.inject(frags[0]);
      assert.equal(clock.pending, 1);
      clock.advanceBy(4999);
      assert.equal(stack.counters['frag-timeout'] ?? 0, 0);
      clock.advanceBy(2);
      assert.equal(stack.counters['frag-timeout'], 1);
      link.inject(frags[1]);
      link.inject(frags[2]);
      assert.equal(got.length, 0);
      stack.close();
      assert.equal(clock.pending, 0);
    });

    it('bounds reassembly memory by evicting the oldest datagram', () => {
      const { stack, link } = captured({ limits: { reassemblyMemory: 4000, reassemblyMaxDatagrams: 100 } });
      const got = bound(stack, 7003);
      for (let id = 0; id < 20; id++) {
        const frags = fragment(buildUdpPacket({ src: PEER, dst: A, srcPort: 9, dstPort: 7003, payload: new Uint8Array(1600) }), 800, id);
        link.inject(frags[0]);
      }
      assert.ok(stack.counters['frag-evicted'] >= 15);
      // A complete datagram still gets through within the limit.
      for (const f of fragment(buildUdpPacket({ src: PEER, dst: A, srcPort: 9, dstPort: 7003, payload: new Uint8Array(3000).fill(1) }), 1000, 999)) link.inject(f);
      assert.equal(got.length, 1);
      assert.equal(got[0].length, 3000);
      stack.close();
    });

    it('bounds the number of datagrams in reassembly', () => {
      const { stack, link } = captured({ limits: { reassemblyMaxDatagrams: 4 } });
      for (let id = 0; id < 10; id++) {
        link.inject(fragment(buildUdpPacket({ src: PEER, dst: A, srcPort: 9, dstPort: 1, payload: new Uint8Array(1600) }), 800, id)[0]);
      }
      assert.equal(stack.counters['frag-evicted'], 6);
      stack.close();
    });
  });

  describe('ping', () => {
    it('measures a round trip to another stack', async () => {
      const pair = stackPair({}, { delay: 5 });
      try {
        const rtt = await pair.a.ping(ADDR_B);
        // the request and the reply each wait 5 ms on the link: more than one delay, whatever
        // the timers' rounding (Node's may fire up to a millisecond early)
        assert.ok(Number.isFinite(rtt) && rtt > 7 && rtt < 1000, String(rtt));
        assert.equal(pair.b.counters.icmpEchoReplies, 1);
      } finally {
        pair.close();
      }
    });

    it('rejects with ETIMEDOUT when nobody answers', async () => {
      const pair = stackPair({}, { loss: 1 });
      try {
        await assert.rejects(pair.a.ping(ADDR_B, { timeout: 30 }), { code: 'ETIMEDOUT' });
      } finally {
        pair.close();
      }
    });

    it('rejects with EHOSTUNREACH on a host-unreachable reply', async () => {
      const { stack, link } = captured({ clock: undefined });
      const p = stack.ping('10.77.0.50', { timeout: 5000 });
      await new Promise((r) => setImmediate(r));
      const [req] = link.take();
      link.inject(buildIcmpUnreachable(req, ICMP_UNREACH_HOST, parseIpv4Address('10.77.0.1')!));
      await assert.rejects(p, { code: 'EHOSTUNREACH' });
      stack.close();
    });
  });

  describe('DNS resolver', () => {
    it('resolves names against a DNS responder on another stack', async () => {
      const pair = stackPair();
      try {
        const names: Record<string, string> = { 'web.imach': '10.77.0.20', 'db.imach': '10.77.0.21' };
        const server = pair.b.dgram.createSocket('udp4');
        let queries = 0;
        server.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
          queries++;
          const q = parseDns(msg);
          if (isWireError(q)) return;
          const addr = names[q.questions[0]?.name ?? ''];
          const resp = addr !== undefined ? buildDnsResponse(q, { answers: [{ address: addr, ttl: 60 }] }) : buildDnsResponse(q, { rcode: DNS_RCODE_NXDOMAIN });
          server.send(resp, rinfo.port, rinfo.address);
        });
        server.bind(53);
        await once(server, 'listening');
        const resolver = createDnsResolver(pair.a, ADDR_B, { timeout: 200, retries: 1 });
        pair.a.setResolver(resolver.lookup.bind(resolver));
        assert.equal(await pair.a.lookup('web'), '10.77.0.20');
        // With no query in flight the resolver holds no port, so it never keeps a host
        // from being idle (the app's own sockets are what count).
        assert.equal(pair.a.socketStats().udp, 0);
        assert.deepEqual(await resolver.resolve4('db.imach'), ['10.77.0.21']);
        assert.equal(await resolver.lookup('10.1.2.3'), '10.1.2.3');
        await assert.rejects(resolver.lookup('nope'), { code: 'ENOTFOUND' });
        const before = queries;
        assert.equal(await resolver.lookup('web'), '10.77.0.20');
        assert.equal(queries, before, 'answer served from the cache');
        resolver.close();
        server.close();
      } finally {
        pair.close();
      }
    });

    it('retries, then fails when the server never answers', async () => {
      const pair = stackPair();
      try {
        let seen = 0;
        const server = pair.b.dgram.createSocket('udp4', () => seen++);
        server.bind(53);
        const resolver = createDnsResolver(pair.a, ADDR_B, { timeout: 20, retries: 2 });
        await assert.rejects(resolver.resolve4('slow'), { code: 'ETIMEOUT' });
        assert.equal(seen, 3);
        await assert.rejects(resolver.lookup('slow'), { code: 'EAI_AGAIN' });
        resolver.close();
        server.close();
      } finally {
        pair.close();
      }
    });
  });

  describe('stack basics', () => {
    it('validates options and reports socket stats', () => {
      assert.throws(() => new Stack({ address: 'nope' }), TypeError);
      assert.throws(() => new Stack({ address: ADDR_A, mtu: 100 }), RangeError);
      const { stack, link } = captured();
      assert.equal(stack.gateway, '10.77.0.1');
      const s0 = stack.socketStats();
      assert.equal(s0.packetsIn, 0);
      link.inject(buildIcmpEchoRequest({ src: PEER, dst: A, identifier: 1, sequence: 1 }));
      const s1 = stack.socketStats();
      assert.equal(s1.packetsIn, 1);
      assert.equal(s1.packetsOut, 1);
      assert.equal(s1.lastActivity, 1000);
      assert.equal(s0.idleMs, Infinity);
      assert.equal(s1.idleMs, 0);
      assert.ok(s1.bytesIn > 0 && s1.bytesOut > 0);
      stack.close();
    });

    it('runs scheduled jobs off one clock timer', () => {
      const { stack, clock } = captured();
      const ran: number[] = [];
      for (let i = 0; i < 100; i++) stack.schedule(1000 + ((i * 37) % 100), () => ran.push(clock.now()));
      const cancel = stack.schedule(1050, () => ran.push(-1));
      cancel();
      assert.equal(clock.pending, 1);
      clock.advanceTo(2000);
      assert.equal(ran.length, 100);
      assert.deepEqual(ran, [...ran].sort((x, y) => x - y));
      stack.close();
    });
  });
});

