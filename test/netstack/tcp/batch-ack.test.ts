// ACK policy across input batches: segments that arrive in one batch (a relay frame, a
// device read) share one stretch ACK at the batch's end; outside a batch, every second
// full segment is ACKed at once (RFC 5681 section 4.2).

import assert from 'node:assert/strict';
import { ACK, FIN, TcpHarness } from '../../support/tcp-harness.js';
import type { TcpBatchAcker } from '../../../netstack/tcp/types.js';
import type { TcpConfig } from '../../../netstack/tcp/config.js';

const PLAIN = { timestamps: false, sack: false, windowScaling: false, mss: 1000, delayedAckMs: 40, batchAckAfterBuffers: 0 };

/** A harness whose env holds ACKs while `open` is true, as the stack does during a batch. */
function batchHarness(overrides: Partial<TcpConfig> = {}): { h: TcpHarness; batch: { open: boolean; held: Set<TcpBatchAcker>; end(): void } } {
  const h = new TcpHarness({ ...PLAIN, ...overrides });
  const batch = {
    open: false,
    held: new Set<TcpBatchAcker>(),
    end(): void {
      batch.open = false;
      for (const c of batch.held) c.flushBatchAck(h.now);
      batch.held.clear();
    },
  };
  Object.assign(h.env, {
    deferAck(conn: TcpBatchAcker): boolean {
      if (!batch.open) return false;
      batch.held.add(conn);
      return true;
    },
  });
  return { h, batch };
}

const full = () => new Uint8Array(1000);

describe('tcp ACKs per input batch', () => {
  it('answers full segments that arrive in one batch with one ACK at the batch end', () => {
    const { h, batch } = batchHarness();
    const { iss, irs } = h.establishActive({ options: { mss: 1000 } });
    const r = irs + 1;
    batch.open = true;
    for (let i = 0; i < 6; i++) h.send({ flags: ACK, seq: r + i * 1000, ack: iss + 1, data: full() });
    h.expectNothing();
    batch.end();
    h.expect({ flags: ACK, ack: r + 6000 });
    h.expectNothing();
    // nothing is owed any more: the delayed-ACK timer adds no second ACK
    h.advance(100);
    h.expectNothing();
  });

  it('ACKs every second full segment of a batch until batchAckAfterBuffers receive buffers have arrived', () => {
    // stretch ACKs once half of the 16000-byte receive buffer (8000 bytes) has arrived
    const { h, batch } = batchHarness({ receiveBufferSize: 16000, batchAckAfterBuffers: 0.5 });
    const { iss, irs } = h.establishActive({ options: { mss: 1000 } });
    const r = irs + 1;
    const acks: number[] = [];
    for (let round = 0; round < 3; round++) {
      batch.open = true;
      for (let i = 0; i < 4; i++) {
        const at = (round * 4 + i) * 1000;
        h.send({ flags: ACK, seq: r + at, ack: iss + 1, data: full() });
      }
      batch.end();
      for (const s of h.drain()) acks.push(s.ack - r);
    }
    assert.deepEqual(acks, [2000, 4000, 6000, 8000, 12000]);
  });

  it('still ACKs every second full segment when each segment is its own batch', () => {
    const { h, batch } = batchHarness();
    const { iss, irs } = h.establishActive({ options: { mss: 1000 } });
    const r = irs + 1;
    const acks: number[] = [];
    for (let i = 0; i < 4; i++) {
      batch.open = true;
      h.send({ flags: ACK, seq: r + i * 1000, ack: iss + 1, data: full() });
      batch.end();
      for (const s of h.drain()) acks.push(s.ack - r);
    }
    assert.deepEqual(acks, [2000, 4000]);
  });

  it('without a batch, ACKs every second full segment at once', () => {
    const { h } = batchHarness();
    const { iss, irs } = h.establishActive({ options: { mss: 1000 } });
    const r = irs + 1;
    for (let i = 0; i < 4; i++) h.send({ flags: ACK, seq: r + i * 1000, ack: iss + 1, data: full() });
    assert.deepEqual(
      h.drain().map((s) => s.ack - r),
      [2000, 4000],
    );
  });

  it('ACKs out-of-order data and a FIN at once, even inside a batch', () => {
    const { h, batch } = batchHarness();
    const { iss, irs } = h.establishActive({ options: { mss: 1000 } });
    const r = irs + 1;
    batch.open = true;
    h.send({ flags: ACK, seq: r + 2000, ack: iss + 1, data: full() });
    h.expect({ flags: ACK, ack: r });
    // RFC 5681 section 4.2: while a hole remains, and when it is filled, ACK at once
    h.send({ flags: ACK, seq: r, ack: iss + 1, data: full() });
    h.expect({ flags: ACK, ack: r + 1000 });
    h.send({ flags: ACK, seq: r + 1000, ack: iss + 1, data: full() });
    h.expect({ flags: ACK, ack: r + 3000 });
    h.send({ flags: ACK | FIN, seq: r + 3000, ack: iss + 1, data: full() });
    h.expect({ flags: ACK, ack: r + 4001 });
    batch.end();
    h.expectNothing();
  });

  it('an ACK held for a batch rides on data sent before the batch ends', () => {
    const { h, batch } = batchHarness();
    const { iss, irs } = h.establishActive({ options: { mss: 1000 } });
    const r = irs + 1;
    batch.open = true;
    h.send({ flags: ACK, seq: r, ack: iss + 1, data: full() });
    h.send({ flags: ACK, seq: r + 1000, ack: iss + 1, data: full() });
    h.expectNothing();
    h.conn.send(new TextEncoder().encode('reply'), h.now);
    h.expect({ flags: ACK, ack: r + 2000, data: 'reply' });
    batch.end();
    h.expectNothing();
  });

  it('falls back to the delayed-ACK timer if a batch is never ended', () => {
    const { h, batch } = batchHarness();
    const { iss, irs } = h.establishActive({ options: { mss: 1000 } });
    const r = irs + 1;
    batch.open = true;
    h.send({ flags: ACK, seq: r, ack: iss + 1, data: full() });
    h.send({ flags: ACK, seq: r + 1000, ack: iss + 1, data: full() });
    h.expectNothing();
    h.advance(39);
    h.expectNothing();
    h.advance(1);
    h.expect({ flags: ACK, ack: r + 2000 });
  });
});
