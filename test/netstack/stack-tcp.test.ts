import assert from 'node:assert/strict';
import { createLinkPair } from '../../netstack/link/memory.js';
import { silentLogger } from '../../netstack/log.js';
import { Stack } from '../../netstack/stack.js';
import { VirtualClock } from '../../netstack/time.js';
import type { TcpConnectionApi } from '../../netstack/tcp/types.js';
import {
  ICMP_UNREACH_HOST,
  ICMP_UNREACH_PORT,
  SYN,
  buildIcmpUnreachable,
  isWireError,
  parseIpv4,
  parseTcp,
} from '../../netstack/wire/index.js';
import { CaptureLink } from '../support/stack-harness.js';
import { probe, type Probe } from '../support/tcp-stack-pair.js';

function pair(): { clock: VirtualClock; a: Stack; b: Stack; close(): void } {
  const clock = new VirtualClock(0);
  const [la, lb] = createLinkPair({ clock, delay: 1 });
  const a = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, seed: 1 });
  const b = new Stack({ address: '10.77.0.3', clock, logger: silentLogger, seed: 2 });
  a.attach(la);
  b.attach(lb);
  return {
    clock,
    a,
    b,
    close() {
      a.close();
      b.close();
      la.close();
    },
  };
}

describe('stack TCP demultiplexing', () => {
  it('connects, exchanges data and counts the connection in socketStats', () => {
    const { clock, a, b, close } = pair();
    let server: TcpConnectionApi | null = null;
    const sp = probe();
    const l = b.tcp.listen(8080, {}, (c) => {
      server = c;
      c.events = sp;
    });
    assert.ok(typeof l !== 'string');
    const cp = probe();
    const c = a.tcp.connect(b.localAddress, 8080, cp);
    assert.ok(typeof c !== 'string');
    assert.ok(c.tuple.localPort >= 49152 && c.tuple.localPort <= 65535);
    assert.ok(clock.runUntil(() => server !== null && cp.log.includes('established'), 1000));
    assert.equal(b.socketStats().established, 1);
    assert.equal(b.socketStats().listening, 1);
    c.send(new Uint8Array(5000), clock.now());
    assert.ok(clock.runUntil(() => sp.bytes === 5000, 1000));
    close();
    assert.deepEqual(cp.log, ['established', 'closed']);
    assert.equal(clock.pending, 0, 'stack.close() leaves no timer behind');
  });

  it('answers a segment to a closed port with RST, and connect fails with ECONNREFUSED', () => {
    const { clock, a, b, close } = pair();
    const cp = probe();
    const c = a.tcp.connect(b.localAddress, 81, cp);
    assert.ok(typeof c !== 'string');
    assert.ok(clock.runUntil(() => cp.error !== undefined, 1000));
    assert.equal(cp.error, 'ECONNREFUSED');
    assert.equal(b.counters.tcpResetsSent, 1);
    assert.equal(a.tableSizes().tcpConnections, 0);
    close();
  });

  it('refuses a second listener and a duplicate four-tuple with EADDRINUSE', () => {
    const { a, b, close } = pair();
    assert.ok(typeof a.tcp.listen(9000, {}, () => {}) !== 'string');
    assert.equal(a.tcp.listen(9000, {}, () => {}), 'EADDRINUSE');
    const eph = a.tcp.listen(0, {}, () => {});
    assert.ok(typeof eph !== 'string' && eph.localPort >= 49152);
    const c1 = a.tcp.connect(b.localAddress, 80, probe(), { localPort: 40000 });
    assert.ok(typeof c1 !== 'string');
    assert.equal(a.tcp.connect(b.localAddress, 80, probe(), { localPort: 40000 }), 'EADDRINUSE');
    assert.equal(a.tcp.connect(b.localAddress, 80, probe(), { localPort: 9000 }), 'EADDRINUSE');
    assert.ok(typeof a.tcp.connect(b.localAddress, 81, probe(), { localPort: 40000 }) !== 'string');
    close();
  });

  it('maps ICMP unreachable to ECONNREFUSED (port) and EHOSTUNREACH (host) for a connecting socket', () => {
    for (const [code, expected] of [[ICMP_UNREACH_PORT, 'ECONNREFUSED'], [ICMP_UNREACH_HOST, 'EHOSTUNREACH']] as const) {
      const clock = new VirtualClock(0);
      const stack = new Stack({ address: '10.77.0.2', clock, logger: silentLogger });
      const link = new CaptureLink();
      stack.attach(link);
      const cp = probe();
      const c = stack.tcp.connect(0x0a4d0063, 5432, cp);
      assert.ok(typeof c !== 'string');
      const [syn] = link.take();
      const ip = parseIpv4(syn);
      assert.ok(!isWireError(ip));
      const seg = parseTcp(ip.payload, ip.src, ip.dst);
      assert.ok(!isWireError(seg));
      assert.equal(seg.flags, SYN);
      assert.equal(seg.options.mss, 65495);
      link.inject(buildIcmpUnreachable(syn, code, 0x0a4d0001));
      assert.equal(cp.error, expected);
      assert.equal(stack.tableSizes().tcpConnections, 0);
      stack.close();
    }
  });

  it('sends SYNs whose MSS fits the MTU, with DF set', () => {
    const clock = new VirtualClock(0);
    const stack = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, mtu: 1500 });
    const link = new CaptureLink();
    stack.attach(link);
    stack.tcp.connect(0x0a4d0063, 80, probe());
    const ip = parseIpv4(link.take()[0]);
    assert.ok(!isWireError(ip));
    assert.equal(ip.flags & 0x2, 0x2);
    const seg = parseTcp(ip.payload, ip.src, ip.dst);
    assert.ok(!isWireError(seg));
    assert.equal(seg.options.mss, 1460);
    stack.close();
  });

  it('drives 2,000 connections off a single clock timer', () => {
    const { clock, a, b, close } = pair();
    let accepted = 0;
    b.tcp.listen(7000, { backlog: 4096 }, () => accepted++);
    const probes: Probe[] = [];
    for (let i = 0; i < 2000; i++) {
      const p = probe();
      probes.push(p);
      assert.ok(typeof a.tcp.connect(b.localAddress, 7000, p) !== 'string');
    }
    assert.ok(clock.runUntil(() => accepted === 2000, 5000));
    assert.equal(a.socketStats().established, 2000);
    assert.equal(a.tableSizes().timers <= 2000, true);
    // Each stack holds one clock timer at most; the link holds none when idle.
    assert.ok(clock.pending <= 2, `clock timers ${clock.pending}`);
    close();
    assert.ok(probes.every((p) => p.log.at(-1) === 'closed'));
  });

  it('connects to itself through the loopback path', () => {
    const clock = new VirtualClock(0);
    const s = new Stack({ address: '10.77.0.2', clock, logger: silentLogger });
    let got = 0;
    s.tcp.listen(80, {}, (c) => {
      c.events = { ...probe(), data: (d) => (got += d.length) };
    });
    const cp = probe();
    const c = s.tcp.connect(s.localAddress, 80, cp);
    assert.ok(typeof c !== 'string');
    assert.ok(clock.runUntil(() => cp.log.includes('established'), 100));
    c.send(new Uint8Array(1000), clock.now());
    assert.ok(clock.runUntil(() => got === 1000, 100));
    s.close();
  });

  it('a RST from the peer for an established connection gives ECONNRESET', () => {
    const { clock, a, b, close } = pair();
    let server: TcpConnectionApi | null = null;
    b.tcp.listen(80, {}, (c) => {
      server = c;
      c.events = probe();
    });
    const cp = probe();
    a.tcp.connect(b.localAddress, 80, cp);
    assert.ok(clock.runUntil(() => server !== null, 1000));
    (server as unknown as TcpConnectionApi).abort(clock.now());
    assert.ok(clock.runUntil(() => cp.error !== undefined, 1000));
    assert.equal(cp.error, 'ECONNRESET');
    close();
  });
});

describe('stack TCP ephemeral ports', () => {
  it('reuses a local port only towards a different remote, and reports exhaustion', () => {
    const clock = new VirtualClock(0);
    const stack = new Stack({ address: '10.77.0.2', clock, logger: silentLogger, ephemeralPorts: [50000, 50003] });
    stack.attach(new CaptureLink());
    const ports = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const c = stack.tcp.connect(0x0a4d0009, 80, probe());
      assert.ok(typeof c !== 'string');
      ports.add(c.tuple.localPort);
    }
    assert.deepEqual([...ports].sort(), [50000, 50001, 50002, 50003]);
    assert.equal(stack.tcp.connect(0x0a4d0009, 80, probe()), 'EADDRNOTAVAIL');
    const other = stack.tcp.connect(0x0a4d000a, 80, probe());
    assert.ok(typeof other !== 'string' && ports.has(other.tuple.localPort));
    stack.close();
  });
});
