import assert from 'node:assert/strict';
import { ACK, FIN, RST, SYN } from '../../netstack/wire/tcp.js';
import { buildUdpPacket } from '../../netstack/wire/udp.js';
import { FlowTable } from '../../relay/flows.js';
import { addr, tcpSegment } from '../support/relay-packets.js';

const A = '10.77.0.5';
const B = '10.77.0.9';

describe('relay flow table', () => {
  it('follows a TCP connection\'s state from its flags, counting each direction', () => {
    const t = new FlowTable();
    const out = (flags: number, payload = new Uint8Array(0)) => tcpSegment(A, B, 40000, 80, flags, payload);
    const back = (flags: number, payload = new Uint8Array(0)) => tcpSegment(B, A, 80, 40000, flags, payload);
    const see = (p: Uint8Array, now: number) => t.observe(p, p.length, now);
    const state = () => t.list(1000)[0]!.state;
    see(out(SYN), 0);
    assert.equal(state(), 'syn-sent');
    see(back(SYN | ACK), 1);
    assert.equal(state(), 'syn-received');
    see(out(ACK), 2);
    assert.equal(state(), 'established');
    see(out(ACK, new Uint8Array(100)), 3);
    see(back(FIN | ACK), 4);
    assert.equal(state(), 'closing');
    see(out(FIN | ACK), 5);
    assert.equal(state(), 'closed');
    const [f] = t.list(10);
    assert.deepEqual(f, { protocol: 'tcp', src: `${A}:40000`, dst: `${B}:80`, state: 'closed', packetsOut: 4, bytesOut: 40 * 3 + 140, packetsIn: 2, bytesIn: 80, ageMs: 10, idleMs: 5 });
    see(out(SYN), 20);
    assert.equal(state(), 'syn-sent', 'a new connection on the same ports');
    see(back(RST | ACK), 21);
    assert.equal(state(), 'reset');
    assert.equal(t.size, 1);
  });

  it('keeps UDP flows apart by port, filters by host, and ignores other protocols', () => {
    const t = new FlowTable();
    const udp = (sp: number, dp: number, from = A, to = B) => buildUdpPacket({ src: addr(from), dst: addr(to), srcPort: sp, dstPort: dp, payload: new Uint8Array(8) });
    for (const p of [udp(1000, 53), udp(1001, 53), udp(53, 1000, B, A), udp(7, 7, '10.77.0.20', '10.77.0.21')]) t.observe(p, p.length, 0);
    const icmp = tcpSegment(A, B, 1, 2, SYN);
    icmp[9] = 1;
    t.observe(icmp, icmp.length, 0);
    assert.equal(t.size, 3);
    const ofA = t.list(0, addr(A));
    assert.equal(ofA.length, 2);
    const dns = ofA.find((f) => f.src === `${A}:1000`)!;
    assert.equal(dns.state, 'active');
    assert.equal(dns.packetsOut, 1);
    assert.equal(dns.packetsIn, 1);
  });

  it('is bounded: a full table counts what it cannot track; the sweep forgets idle and closed flows', () => {
    const t = new FlowTable({ maxFlows: 2, idleMs: 1000, closedMs: 100 });
    const open = (sp: number, now: number) => {
      const p = tcpSegment(A, B, sp, 80, SYN);
      t.observe(p, p.length, now);
    };
    open(1, 0);
    open(2, 0);
    open(3, 0);
    assert.equal(t.size, 2);
    assert.equal(t.untracked, 1);
    const rst = tcpSegment(B, A, 80, 1, RST);
    t.observe(rst, rst.length, 500);
    t.sweep(700);
    assert.equal(t.size, 1, 'the reset flow is gone after closedMs');
    t.sweep(1000);
    assert.equal(t.size, 0, 'the idle one after idleMs');
    open(3, 1000);
    assert.equal(t.size, 1);
  });
});
