// Replies to segments that reach no connection.

import { ACK, FIN, RST, SYN, type TcpSegment, type TcpSegmentOut } from '../wire/tcp.js';

const EMPTY = new Uint8Array(0);

/** RFC 9293 section 3.10.7.1: the reset for a segment to a CLOSED port; null for a RST. */
export function rstForUnmatched(seg: TcpSegment): TcpSegmentOut | null {
  if ((seg.flags & RST) !== 0) return null;
  if ((seg.flags & ACK) !== 0) return makeRst(seg, seg.ack >>> 0, 0, RST);
  const len = seg.payload.length + ((seg.flags & SYN) !== 0 ? 1 : 0) + ((seg.flags & FIN) !== 0 ? 1 : 0);
  return makeRst(seg, 0, (seg.seq + len) >>> 0, RST | ACK);
}

/** A RST answering `seg` with the given sequence and acknowledgment numbers. */
export function makeRst(seg: TcpSegment, seq: number, ack: number, flags: number): TcpSegmentOut {
  return {
    srcPort: seg.dstPort,
    dstPort: seg.srcPort,
    seq,
    ack,
    flags,
    window: 0,
    urgent: 0,
    options: {},
    payload: EMPTY,
    payloadLength: 0,
  };
}
