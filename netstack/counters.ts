// Named counts kept by a stack: traffic totals and drops by reason. Reasons come from a
// fixed vocabulary (wire errors and the stack's own), so the object stays small.

export interface StackCounters {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** every dropped inbound or outbound packet; also counted under its reason */
  dropped: number;
  icmpEchoReplies: number;
  icmpErrorsSent: number;
  icmpErrorsRateLimited: number;
  icmpErrorsReceived: number;
  udpDelivered: number;
  tcpSegmentsIn: number;
  tcpResetsSent: number;
  fragmentsReassembled: number;
  /** datagrams we sent in fragments (Linux FragOKs) */
  datagramsFragmented: number;
  /** fragments those made (Linux FragCreates) */
  fragmentsCreated: number;
  timerStuck: number;
  internalErrors: number;
  /** drop reasons, e.g. 'ipv4-bad-checksum', 'not-for-us', 'udp-no-socket' */
  [reason: string]: number;
}

export function newCounters(): StackCounters {
  return {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    icmpEchoReplies: 0,
    icmpErrorsSent: 0,
    icmpErrorsRateLimited: 0,
    icmpErrorsReceived: 0,
    udpDelivered: 0,
    tcpSegmentsIn: 0,
    tcpResetsSent: 0,
    fragmentsReassembled: 0,
    datagramsFragmented: 0,
    fragmentsCreated: 0,
    timerStuck: 0,
    internalErrors: 0,
  };
}

/** Token bucket for ICMP errors (RFC 1812 section 4.3.2.8). */
export class RateLimiter {
  private tokens: number;
  private last = -Infinity;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(now: number): boolean {
    if (this.last !== -Infinity) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
