import assert from 'node:assert/strict';
import { EphemeralPorts } from '../../../netstack/tcp/ports.js';
import type { TcpConnectionApi } from '../../../netstack/tcp/types.js';
import { FIN, RST, SYN } from '../../../netstack/wire/tcp.js';
import { probe, tcpStackPair, type Probe, type TcpStackPair } from '../../support/tcp-stack-pair.js';
import { ACK, TcpHarness } from '../../support/tcp-harness.js';

const SERVER = 0x0a4d0003;

/** Server b answers one byte with the byte and its FIN (so b closes first and holds TIME-WAIT). */
function echoAndClose(p: TcpStackPair, port: number): void {
  const l = p.b.tcp.listen(port, {}, (c) => {
    c.events = {
      established() {},
      data(chunk) {
        c.consume(chunk.length, p.clock.now());
        c.send(chunk.slice(), p.clock.now(), true);
      },
      fin() {},
      sendSpace() {},
      closed() {},
    };
  });
  assert.ok(typeof l !== 'string');
}

/** One request/response/close cycle from a; returns the client connection and its probe. */
function oneExchange(p: TcpStackPair, port: number, localPort?: number): { c: TcpConnectionApi; cp: Probe } {
  const cp = probe();
  const c = p.a.tcp.connect(SERVER, port, cp, localPort !== undefined ? { localPort } : {});
  assert.ok(typeof c !== 'string', String(c));
  const start = p.clock.now();
  cp.fin = () => {
    cp.log.push('fin');
    c.shutdown(p.clock.now());
  };
  cp.established = () => {
    cp.log.push('established');
    c.send(new Uint8Array([7]), p.clock.now());
  };
  // Four link delays of 1 ms each way suffice; a SYN retransmission would need 1 s.
  assert.ok(p.clock.runUntil(() => cp.log.includes('closed'), start + 20), `exchange ${cp.log.join(',')}`);
  assert.equal(cp.error, null);
  assert.equal(cp.bytes, 1);
  return { c, cp };
}

describe('tcp ephemeral ports (RFC 6056 algorithm 3)', () => {
  it('gives successive connections to one destination successive ports, skipping ports in use', () => {
    const ports = new EphemeralPorts([50000, 50009], new Uint8Array(16).fill(3));
    const first = ports.pick(1, 2, 80, () => false);
    assert.ok(first >= 50000 && first <= 50009);
    const next = (p: number) => (p === 50009 ? 50000 : p + 1);
    const second = ports.pick(1, 2, 80, () => false);
    assert.equal(second, next(first));
    const busy = next(second);
    const third = ports.pick(1, 2, 80, (p) => p === busy);
    assert.equal(third, next(busy));
    assert.equal(ports.pick(1, 2, 80, () => true), 0);
  });

  it('a stack does not reuse a local port towards a server before the range is used up', () => {
    const p = tcpStackPair({}, { ephemeralPorts: [50000, 50063] });
    try {
      echoAndClose(p, 7000);
      const seen = new Set<number>();
      for (let i = 0; i < 64; i++) {
        const { c } = oneExchange(p, 7000);
        assert.ok(!seen.has(c.tuple.localPort), `port ${c.tuple.localPort} reused after ${i} connections`);
        seen.add(c.tuple.localPort);
      }
    } finally {
      p.close();
    }
  });
});

describe('tcp TIME-WAIT reuse (RFC 6191)', () => {
  it('a new SYN on a tuple the server holds in TIME-WAIT opens a connection at once', () => {
    const p = tcpStackPair();
    try {
      echoAndClose(p, 7001);
      // The same four-tuple again and again: each SYN meets the server's TIME-WAIT.
      for (let i = 0; i < 8; i++) {
        const mark = p.trace.length;
        oneExchange(p, 7001, 40001);
        const segs = p.trace.slice(mark);
        assert.ok(!segs.some((t) => (t.seg.flags & RST) !== 0), `round ${i}: a RST was sent`);
        const synAck = segs.find((t) => t.from === 'b' && (t.seg.flags & (SYN | ACK)) === (SYN | ACK));
        assert.ok(synAck, `round ${i}: no SYN-ACK`);
        // The server's first answer is the SYN-ACK, not a challenge ACK.
        assert.equal(segs.find((t) => t.from === 'b')?.seg.flags, SYN | ACK, `round ${i}`);
      }
    } finally {
      p.close();
    }
  });

  function timeWait(): { h: TcpHarness; irs: number } {
    const h = new TcpHarness({ mss: 1460 });
    const { iss, irs } = h.establishPassive({ peerIss: 1_000_000, options: { mss: 1460, timestamp: { value: 100, echo: 0 } } });
    h.conn.shutdown(h.now);
    h.expect({ flags: FIN | ACK });
    h.send({ flags: FIN | ACK, seq: irs + 1, ack: iss + 2, options: { timestamp: { value: 102, echo: 0 } } });
    h.expect({ flags: ACK });
    assert.equal(h.conn.state, 'TIME-WAIT');
    return { h, irs };
  }

  it('TIME-WAIT gives way to a SYN with a newer timestamp even when its ISN is lower', () => {
    const { h } = timeWait();
    assert.equal(h.send({ flags: SYN, seq: 5, options: { mss: 1460, timestamp: { value: 103, echo: 0 } } }), true);
    assert.equal(h.conn.state, 'CLOSED');
  });

  it('with an equal timestamp, TIME-WAIT gives way only to a higher ISN (as Linux)', () => {
    const low = timeWait();
    assert.equal(low.h.send({ flags: SYN, seq: 5, options: { mss: 1460, timestamp: { value: 102, echo: 0 } } }), false);
    assert.equal(low.h.conn.state, 'TIME-WAIT');
    low.h.expect({ flags: ACK });
    const high = timeWait();
    assert.equal(high.h.send({ flags: SYN, seq: high.irs + 1000, options: { mss: 1460, timestamp: { value: 102, echo: 0 } } }), true);
    assert.equal(high.h.conn.state, 'CLOSED');
  });
});
