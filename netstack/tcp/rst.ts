// Replies to segments that reach no connection.

import { tcpResetFor, type TcpSegment, type TcpSegmentOut } from '../wire/tcp.js';

const EMPTY = new Uint8Array(0);

/** RFC 9293 section 3.10.7.1: the reset for a segment to a CLOSED port; null for a RST. */
export function rstForUnmatched(seg: TcpSegment): TcpSegmentOut | null {
  return tcpResetFor(seg);
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
