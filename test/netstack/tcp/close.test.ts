import assert from 'node:assert/strict';
import { rstForUnmatched } from '../../../netstack/tcp/rst.js';
import { ACK, FIN, RST, SYN, TcpHarness } from '../../support/tcp-harness.js';

const PLAIN = { timestamps: false, sack: false, windowScaling: false, mss: 1000, timeWaitMs: 10_000 };

describe('tcp close, TIME-WAIT and resets', () => {
  it('active close: FIN-WAIT-1 -> FIN-WAIT-2 -> TIME-WAIT -> CLOSED after 2MSL', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.conn.shutdown(h.now);
    h.expect({ flags: FIN | ACK, seq: iss + 1, ack: irs + 1 });
    assert.equal(h.conn.state, 'FIN-WAIT-1');
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 2 });
    assert.equal(h.conn.state, 'FIN-WAIT-2');
    h.send({ flags: FIN | ACK, seq: irs + 1, ack: iss + 2 });
    h.expect({ flags: ACK, seq: iss + 2, ack: irs + 2 });
    assert.equal(h.conn.state, 'TIME-WAIT');
    assert.deepEqual(h.events.types(), ['established', 'fin', 'closed']);
    assert.equal(h.env.removedConns.length, 0);
    h.advance(9_999);
    assert.equal(h.conn.state, 'TIME-WAIT');
    h.advance(2);
    assert.equal(h.conn.state, 'CLOSED');
    assert.equal(h.env.removedConns.length, 1);
    assert.equal(h.events.types().filter((t) => t === 'closed').length, 1);
  });

  it('FIN-WAIT-1 goes straight to TIME-WAIT on a FIN that also ACKs our FIN', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.conn.shutdown(h.now);
    h.expect({ flags: FIN | ACK, seq: iss + 1 });
    h.send({ flags: FIN | ACK, seq: irs + 1, ack: iss + 2 });
    h.expect({ flags: ACK, ack: irs + 2 });
    assert.equal(h.conn.state, 'TIME-WAIT');
    assert.deepEqual(h.events.types(), ['established', 'fin', 'closed']);
  });

  it('half-close: after shutdown the connection keeps receiving', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.conn.send(new TextEncoder().encode('req'), h.now);
    h.conn.shutdown(h.now);
    h.expect({ flags: ACK, seq: iss + 1, data: 'req' });
    h.expect({ flags: FIN | ACK, seq: iss + 4 });
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 5, data: 'response' });
    assert.equal(h.conn.state, 'FIN-WAIT-2');
    assert.equal(Buffer.from(h.events.receivedBytes()).toString(), 'response');
    assert.equal(h.conn.send(new Uint8Array(1), h.now), 0);
    h.send({ flags: FIN | ACK, seq: irs + 9, ack: iss + 5 });
    h.expect({ flags: ACK, ack: irs + 10 });
    assert.equal(h.conn.state, 'TIME-WAIT');
  });

  it('passive close: CLOSE-WAIT still sends, then LAST-ACK -> CLOSED', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.send({ flags: FIN | ACK, seq: irs + 1, ack: iss + 1 });
    h.expect({ flags: ACK, ack: irs + 2 });
    assert.equal(h.conn.state, 'CLOSE-WAIT');
    assert.deepEqual(h.events.types(), ['established', 'fin']);
    h.conn.send(new TextEncoder().encode('bye'), h.now);
    h.expect({ flags: ACK, data: 'bye' });
    h.conn.shutdown(h.now);
    h.send({ flags: ACK, seq: irs + 2, ack: iss + 4 });
    h.expect({ flags: FIN | ACK, seq: iss + 4 });
    assert.equal(h.conn.state, 'LAST-ACK');
    h.send({ flags: ACK, seq: irs + 2, ack: iss + 5 });
    assert.equal(h.conn.state, 'CLOSED');
    assert.equal(h.events.closedError(), null);
    assert.equal(h.env.removedConns.length, 1);
  });

  it('simultaneous close goes through CLOSING', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.conn.shutdown(h.now);
    h.expect({ flags: FIN | ACK, seq: iss + 1 });
    h.send({ flags: FIN | ACK, seq: irs + 1, ack: iss + 1 });
    h.expect({ flags: ACK, ack: irs + 2 });
    assert.equal(h.conn.state, 'CLOSING');
    h.send({ flags: ACK, seq: irs + 2, ack: iss + 2 });
    assert.equal(h.conn.state, 'TIME-WAIT');
    assert.equal(h.events.closedError(), null);
  });

  it('retransmits an unacknowledged FIN', () => {
    const h = new TcpHarness(PLAIN);
    const { iss } = h.establishActive();
    h.conn.shutdown(h.now);
    h.expect({ flags: FIN | ACK, seq: iss + 1 });
    h.advance(200);
    h.expect({ flags: FIN | ACK, seq: iss + 1 });
  });

  it('TIME-WAIT re-ACKs a retransmitted FIN and restarts 2MSL', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.conn.shutdown(h.now);
    h.send({ flags: FIN | ACK, seq: irs + 1, ack: iss + 2 });
    h.drain();
    assert.equal(h.conn.state, 'TIME-WAIT');
    h.advance(8_000);
    h.send({ flags: FIN | ACK, seq: irs + 1, ack: iss + 2 });
    h.expect({ flags: ACK, ack: irs + 2 });
    h.advance(8_000);
    assert.equal(h.conn.state, 'TIME-WAIT');
    h.advance(2_001);
    assert.equal(h.conn.state, 'CLOSED');
  });

  it('TIME-WAIT releases itself for a newer SYN and challenges an old one', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.conn.shutdown(h.now);
    h.send({ flags: FIN | ACK, seq: irs + 1, ack: iss + 2 });
    h.drain();
    assert.equal(h.send({ flags: SYN, seq: irs - 100 }), false);
    h.expect({ flags: ACK, ack: irs + 2 });
    assert.equal(h.conn.state, 'TIME-WAIT');
    assert.equal(h.send({ flags: SYN, seq: irs + 100_000 }), true);
    h.expectNothing();
    assert.equal(h.conn.state, 'CLOSED');
    assert.equal(h.env.removedConns.length, 1);
  });

  it('abort sends RST and reports closed(null)', () => {
    const h = new TcpHarness(PLAIN);
    const { iss } = h.establishActive();
    h.conn.abort(h.now);
    h.expect({ flags: RST, seq: iss + 1 });
    assert.equal(h.conn.state, 'CLOSED');
    assert.equal(h.events.closedError(), null);
    assert.equal(h.env.removedConns.length, 1);
  });

  it('a RST exactly at RCV.NXT resets the connection (ECONNRESET)', () => {
    const h = new TcpHarness(PLAIN);
    const { irs } = h.establishActive();
    h.send({ flags: RST, seq: irs + 1 });
    h.expectNothing();
    assert.equal(h.events.closedError(), 'ECONNRESET');
  });

  it('RFC 5961: an in-window RST not at RCV.NXT gets a challenge ACK; out of window is ignored', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.send({ flags: RST, seq: irs + 10 });
    h.expect({ flags: ACK, seq: iss + 1, ack: irs + 1 });
    assert.equal(h.conn.state, 'ESTABLISHED');
    h.send({ flags: RST, seq: irs + 10_000_000 });
    h.expectNothing();
    assert.equal(h.conn.state, 'ESTABLISHED');
    assert.equal(h.conn.stats.challengeAcks, 1);
  });

  it('RFC 5961: a SYN in ESTABLISHED gets a challenge ACK, rate-limited', () => {
    const h = new TcpHarness({ ...PLAIN, challengeAckLimit: 2 });
    const { iss, irs } = h.establishActive();
    for (let i = 0; i < 3; i++) h.send({ flags: SYN, seq: irs + 1 + i });
    h.expect({ flags: ACK, seq: iss + 1, ack: irs + 1 });
    h.expect({ flags: ACK, seq: iss + 1, ack: irs + 1 });
    h.expectNothing();
    assert.equal(h.conn.stats.challengeAcksSuppressed, 1);
    h.advance(1000);
    h.send({ flags: SYN, seq: irs + 1 });
    h.expect({ flags: ACK, ack: irs + 1 });
    assert.equal(h.conn.state, 'ESTABLISHED');
  });

  it('RFC 5961 section 5.2: an ACK of unsent data is answered and its data dropped', () => {
    const h = new TcpHarness(PLAIN);
    const { iss, irs } = h.establishActive();
    h.send({ flags: ACK, seq: irs + 1, ack: iss + 1000, data: 'evil' });
    h.expect({ flags: ACK, ack: irs + 1 });
    assert.equal(h.events.receivedBytes().length, 0);
    assert.equal(h.conn.stats.badAcks, 1);
  });

  it('rstForUnmatched follows RFC 9293 section 3.10.7.1', () => {
    const h = new TcpHarness(PLAIN);
    const withAck = rstForUnmatched(h.seg({ flags: ACK, seq: 5, ack: 999 }))!;
    assert.equal(withAck.flags, RST);
    assert.equal(withAck.seq, 999);
    assert.equal(withAck.srcPort, h.localPort);
    assert.equal(withAck.dstPort, h.peerPort);
    const syn = rstForUnmatched(h.seg({ flags: SYN, seq: 0xffffffff, data: 'ab' }))!;
    assert.equal(syn.flags, RST | ACK);
    assert.equal(syn.seq, 0);
    assert.equal(syn.ack, 2);
    assert.equal(rstForUnmatched(h.seg({ flags: RST, seq: 1 })), null);
  });
});
