// One TCP connection, sans-IO: segments and `now` (ms) in, segments (env.output) and
// events out. RFC 9293 is the base; the RFC of each extension is named where it acts.
//
// Timers are lazy: the protocol timer (timer.ts), ackAt and kaAt are "wake me no later
// than" times, so the deadline the stack sees changes rarely, not on every segment.

import { ACK, FIN, PSH, RST, SYN, type SackBlock, type TcpOptions, type TcpSegment, type TcpSegmentOut } from '../wire/tcp.js';
import { NewReno } from './congestion.js';
import { Cubic } from './cubic.js';
import { windowScaleFor, type TcpConfig } from './config.js';
import { defaultIsnGenerator } from './isn.js';
import { Reassembler } from './reassembly.js';
import { ACK_BATCH, ACK_DELAYED, ACK_NONE, ACK_NOW, TcpReceiver } from './receiver.js';
import { PrrRecovery, RenoRecovery } from './recovery.js';
import { TcpSender } from './sender.js';
import { RttEstimator } from './rtt.js';
import { SackScoreboard } from './sack.js';
import { SendBuffer } from './send-buffer.js';
import { TIMER_IDLE, timerAt, type ArmedTimer, type ConnectionTimer } from './timer.js';
import { asSeq, seqAdd, seqDiff, seqGe, seqGt, seqInRange, seqLe, seqLt, seqMax, seqMin, tsLt, type Seq } from './seq.js';
import type {
  FourTuple,
  TcpConnectionApi,
  TcpConnectionEvents,
  TcpEnv,
  TcpErrorCode,
  TcpState,
} from './types.js';

/** Per-connection counters. */
export interface TcpStats {
  segmentsIn: number;
  segmentsOut: number;
  /** Segments sent again (timeouts, fast retransmit, SACK repair, go-back-N after RTO). */
  retransmits: number;
  fastRetransmits: number;
  /** Retransmission timeouts (including SYN). */
  timeouts: number;
  dupAcks: number;
  /** Holes retransmitted because SACK showed them missing (RFC 6675). */
  sackRepaired: number;
  /** Tail loss probes sent (RFC 8985 section 7). */
  tailLossProbes: number;
  /** Loss responses taken back because D-SACK showed every retransmission spurious (RFC 3708). */
  spuriousUndos: number;
  challengeAcks: number;
  challengeAcksSuppressed: number;
  /** Dropped by PAWS (RFC 7323 section 5). */
  pawsDrops: number;
  /** Segments outside the receive window (answered with an ACK). */
  outOfWindow: number;
  /** ACKs of unsent data or far below SND.UNA (RFC 5961 section 5). */
  badAcks: number;
  oooSegments: number;
  /** Out-of-order data dropped because the assembler was full. */
  oooDropped: number;
  zeroWindowProbes: number;
  keepAliveProbes: number;
}

/** Told when a passively opened connection leaves SYN-RECEIVED. */
export interface HalfOpenOwner {
  halfOpenDone(conn: TcpConnection, established: boolean): void;
}

const EMPTY = new Uint8Array(0);
const NO_OPTIONS: TcpOptions = Object.freeze({}) as TcpOptions;
// Reused for every ordinary segment: env.output serialises a segment before it returns
// (TcpEnv contract), so one record serves all connections without a per-segment allocation.
const SCRATCH_TS = { value: 0, echo: 0 };
const SCRATCH_TS_OPTIONS: TcpOptions = { timestamp: SCRATCH_TS };
const SCRATCH_SEGMENT: TcpSegmentOut = {
  srcPort: 0,
  dstPort: 0,
  seq: 0,
  ack: 0,
  flags: 0,
  window: 0,
  urgent: 0,
  options: NO_OPTIONS,
  payload: new Uint8Array(0),
  payloadLength: 0,
};
// RFC 9293 section 3.7.1: default send MSS when the peer sends no MSS option.
const DEFAULT_PEER_MSS = 536;
// RFC 7323 section 5.5: TS.Recent is invalid after 24 days of idleness.
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;
const TS_OPTION_BYTES = 12;
const MAX_BACKOFF = 16;
// Free send-buffer bytes that wake a blocked writer (at most a quarter of the buffer).
const SEND_SPACE_WAKE_MAX = 64 * 1024;
// Minimum spacing of ACKs answering out-of-window bare ACKs (Linux tcp_invalid_ratelimit).
const OOW_ACK_INTERVAL_MS = 500;

const NO_EVENTS: TcpConnectionEvents = Object.freeze({
  established(): void {},
  data(): void {},
  fin(): void {},
  sendSpace(): void {},
  closed(): void {},
});


export class TcpConnection implements TcpConnectionApi {
  events: TcpConnectionEvents;
  state: TcpState;
  readonly stats: TcpStats = {
    segmentsIn: 0,
    segmentsOut: 0,
    retransmits: 0,
    fastRetransmits: 0,
    timeouts: 0,
    dupAcks: 0,
    sackRepaired: 0,
    tailLossProbes: 0,
    spuriousUndos: 0,
    challengeAcks: 0,
    challengeAcksSuppressed: 0,
    pawsDrops: 0,
    outOfWindow: 0,
    badAcks: 0,
    oooSegments: 0,
    oooDropped: 0,
    zeroWindowProbes: 0,
    keepAliveProbes: 0,
  };
  bytesSent = 0;
  bytesReceived = 0;

  private owner: HalfOpenOwner | null;
  private noDelay = false;
  /** The owner released the connection (orphan()): FIN-WAIT-2 is then bounded. */
  private orphaned = false;
  private finWait2Since = -Infinity;
  private closedFired = false;
  private finQueued = false;
  private finOut = false;
  private sendBlocked = false;
  private softError: TcpErrorCode | null = null;

  /** The send half: sequence space, send buffer, congestion control, recovery. */
  private readonly snd: TcpSender;
  /** The receive half: sequence space, window, assembler, ACK owed. */
  private readonly rcv: TcpReceiver;

  // Options (RFC 7323, RFC 2018).
  private tsOk = false;
  /** The peer's SYN carried a window-scale option and we accepted it. */
  private wsOffered = false;
  private sackOk = false;
  private tsRecent = 0;
  private tsRecentAt = -Infinity;
  private readonly tsOffset: number;
  /** Time of the last retransmission timeout: older echoes are not RTT samples. */
  private lastTimeoutAt = -Infinity;

  // Retransmission (RFC 6298) and congestion control (RFC 5681, RFC 6582, RFC 6675).
  private readonly rtt: RttEstimator;
  private backoff = 0;
  private retries = 0;
  /** Retransmit, persist, TIME-WAIT or orphaned FIN-WAIT-2 (timer.ts). */
  private timer: ConnectionTimer = TIMER_IDLE;
  private rttSeq = asSeq(0);
  private rttTime = -1;

  // Delayed ACK and keepalive (RFC 1122 section 4.2.3.6).
  private ackAt = Infinity;
  private kaAt = Infinity;
  private kaIdle = 0;
  private kaProbes = 0;
  private lastRecvAt: number;

  // RFC 5961 section 7: challenge ACK rate limit.
  private challengeWindowStart = -Infinity;
  private lastOowAckAt = -Infinity;
  private challengeCount = 0;

  private notifiedDeadline = Infinity;

  private constructor(
    private readonly env: TcpEnv,
    private readonly config: TcpConfig,
    readonly tuple: FourTuple,
    events: TcpConnectionEvents,
    state: TcpState,
    iss: number,
    owner: HalfOpenOwner | null,
    now: number,
  ) {
    this.events = events;
    this.state = state;
    this.owner = owner;
    this.tsOffset =
      config.tsOffset !== undefined
        ? config.tsOffset(tuple)
        : defaultIsnGenerator.tsOffset(tuple.localAddress, tuple.remoteAddress);
    this.rtt = new RttEstimator(config.initialRtoMs, config.minRtoMs, config.maxRtoMs);
    const sndMss = Math.min(config.mss, DEFAULT_PEER_MSS);
    this.snd = new TcpSender(config, asSeq(iss), sndMss, config.congestionControl === 'cubic' ? new Cubic(sndMss, config.initialCwndSegments) : new NewReno(sndMss, config.initialCwndSegments));
    this.rcv = new TcpReceiver(config);
    this.lastRecvAt = now;
  }

  /** Active open (RFC 9293 section 3.10.1): emits the SYN at once. */
  static connect(
    env: TcpEnv,
    config: TcpConfig,
    tuple: FourTuple,
    events: TcpConnectionEvents,
    now: number,
    noDelay = false,
  ): TcpConnection {
    const iss = config.isn !== undefined ? config.isn(tuple, now) : defaultIsnGenerator.isn(tuple, now);
    const c = new TcpConnection(env, config, tuple, events, 'SYN-SENT', iss, null, now);
    c.noDelay = noDelay;
    c.sendSyn(now);
    c.settle();
    return c;
  }

  /**
   * Passive open from a SYN that reached a listener (RFC 9293 section 3.10.7.2): the new
   * connection is in SYN-RECEIVED and has sent its SYN-ACK.
   */
  static accept(
    env: TcpEnv,
    config: TcpConfig,
    tuple: FourTuple,
    syn: TcpSegment,
    now: number,
    iss: number,
    owner: HalfOpenOwner | null,
  ): TcpConnection {
    const c = new TcpConnection(env, config, tuple, NO_EVENTS, 'SYN-RECEIVED', iss, owner, now);
    c.rcv.irs = asSeq(syn.seq);
    c.rcv.nxt = seqAdd(c.rcv.irs, 1);
    c.negotiate(syn.options, now);
    c.snd.wnd = syn.window;
    c.snd.maxWnd = syn.window;
    c.snd.wl1 = c.rcv.irs;
    c.snd.wl2 = c.snd.iss;
    c.sendSyn(now);
    c.settle();
    return c;
  }

  /**
   * A connection from a returning SYN cookie (RFC 4987 section 3.6): `synOptions` are
   * what the cookie remembered of the SYN. It is in SYN-RECEIVED as if its SYN-ACK had
   * been sent; the listener then hands it the ACK.
   */
  static fromCookie(
    env: TcpEnv,
    config: TcpConfig,
    tuple: FourTuple,
    synOptions: TcpOptions,
    irs: number,
    iss: number,
    now: number,
    owner: HalfOpenOwner,
  ): TcpConnection {
    const c = new TcpConnection(env, config, tuple, NO_EVENTS, 'SYN-RECEIVED', iss, owner, now);
    c.rcv.irs = asSeq(irs);
    c.rcv.nxt = seqAdd(c.rcv.irs, 1);
    c.negotiate(synOptions, now);
    c.rcv.advRight = seqAdd(c.rcv.nxt, Math.min(config.receiveBufferSize, 0xffff));
    c.rcv.lastAckSent = c.rcv.nxt;
    c.snd.wl1 = c.rcv.irs;
    c.snd.wl2 = c.snd.iss;
    c.snd.nxt = seqAdd(c.snd.iss, 1);
    c.snd.max = c.snd.nxt;
    return c;
  }

  // ---------------------------------------------------------------- public surface

  get deadline(): number {
    const t = timerAt(this.timer);
    const a = t < this.ackAt ? t : this.ackAt;
    return a < this.kaAt ? a : this.kaAt;
  }

  get sendSpace(): number {
    const used = this.snd.buffer === null ? 0 : this.snd.buffer.length;
    return this.config.sendBufferSize > used ? this.config.sendBufferSize - used : 0;
  }

  get sendBuffered(): number {
    return this.snd.buffer === null ? 0 : this.snd.buffer.length;
  }

  /** Bytes of the receive window currently advertised (for tests and diagnostics). */
  get receiveWindow(): number {
    return this.rcv.window;
  }

  /** The congestion window in bytes. */
  get cwnd(): number {
    return this.snd.sendWindow();
  }

  /** Current RTO in ms (RFC 6298), before backoff. */
  get rto(): number {
    return this.rtt.rto;
  }

  /** Initial send sequence number. */
  get initialSequence(): Seq {
    return this.snd.iss;
  }

  /**
   * Queue bytes (see TcpConnectionApi.send). With `end`, and if every byte was accepted,
   * the FIN follows them as shutdown() would, in the same segment when it fits.
   */
  send(data: Uint8Array, now: number, end = false): number {
    const st = this.state;
    if (this.finQueued || !(st === 'ESTABLISHED' || st === 'CLOSE-WAIT' || st === 'SYN-SENT' || st === 'SYN-RECEIVED')) {
      return 0;
    }
    const n = Math.min(this.sendSpace, data.length);
    if (n < data.length) this.sendBlocked = true;
    if (n > 0) {
      if (this.snd.buffer === null) this.snd.buffer = new SendBuffer();
      this.snd.buffer.push(n === data.length ? data : data.subarray(0, n));
    }
    const fin = end && n === data.length && this.queueFin();
    if (n === 0 && !fin) return 0;
    this.output(now, false);
    this.settle();
    return n;
  }

  shutdown(now: number): void {
    if (!this.queueFin()) return;
    this.output(now, false);
    this.settle();
  }

  /** RFC 9293 section 3.10.4: note the FIN (sent after the queued data); false if it cannot be. */
  private queueFin(): boolean {
    if (this.finQueued) return false;
    switch (this.state) {
      case 'SYN-SENT':
      case 'SYN-RECEIVED':
        // Queued until the connection is established.
        this.finQueued = true;
        return true;
      case 'ESTABLISHED':
        this.finQueued = true;
        this.state = 'FIN-WAIT-1';
        return true;
      case 'CLOSE-WAIT':
        this.finQueued = true;
        this.state = 'LAST-ACK';
        return true;
      default:
        return false;
    }
  }

  abort(now: number): void {
    void now;
    switch (this.state) {
      case 'CLOSED':
        return;
      case 'TIME-WAIT':
        this.terminate(null);
        return;
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
        // RFC 9293 section 3.10.5: <SEQ=SND.NXT><CTL=RST>.
        this.emitRaw(this.snd.max, 0, RST);
        break;
      default:
        break;
    }
    this.terminate(null);
  }

  consume(bytes: number, now: number): void {
    if (!(bytes > 0)) return;
    this.rcv.unconsumed = bytes >= this.rcv.unconsumed ? 0 : this.rcv.unconsumed - bytes;
    const st = this.state;
    if (st !== 'ESTABLISHED' && st !== 'FIN-WAIT-1' && st !== 'FIN-WAIT-2') return;
    const rcvBuf = this.config.receiveBufferSize;
    const maxWindow = Math.min(rcvBuf, 0xffff << this.rcv.wscale);
    const cur = this.rcv.window;
    const free = this.rcv.freeSpace();
    // Window update at once when the window opens significantly (RFC 9293 section
    // 3.8.6.2.2 threshold) and the advertised window is below half its maximum.
    if (cur < maxWindow / 2 && free - cur >= Math.min(rcvBuf >> 1, this.config.mss)) {
      this.sendAck(now);
      this.settle();
    }
  }

  /**
   * The owner no longer needs the connection: it finishes its close on its own, and
   * FIN-WAIT-2 lasts at most config.finWait2TimeoutMs (Linux tcp_fin_timeout) before a RST.
   */
  orphan(now: number): void {
    if (this.orphaned || this.isClosed()) return;
    this.orphaned = true;
    if (this.state === 'FIN-WAIT-2') {
      this.finWait2Since = now;
      this.armFinWait2();
    }
    this.settle();
  }

  setNoDelay(noDelay: boolean, now: number): void {
    this.noDelay = noDelay;
    if (noDelay) {
      this.output(now, false);
      this.settle();
    }
  }

  setKeepAlive(enable: boolean, initialDelayMs: number, now: number): void {
    if (!enable) {
      this.kaIdle = 0;
      this.kaAt = Infinity;
    } else {
      this.kaIdle = initialDelayMs > 0 ? initialDelayMs : this.config.keepAliveIdleMs;
      this.kaProbes = 0;
      if (now > this.lastRecvAt) this.lastRecvAt = now;
      this.kaAt = this.lastRecvAt + this.kaIdle;
    }
    this.settle();
  }

  /**
   * ICMP destination unreachable for this connection: fatal in SYN-SENT, otherwise a
   * soft error reported only if the connection later times out (RFC 1122 section 4.2.3.9).
   */
  icmpError(code: TcpErrorCode, now: number): void {
    void now;
    if (this.isClosed()) return;
    if (this.state === 'SYN-SENT') {
      this.terminate(code);
      return;
    }
    this.softError = code;
  }

  /**
   * A segment for this connection. Returns true when the connection was in TIME-WAIT and
   * released itself for an acceptable new SYN (RFC 9293 section 3.10.7.4, RFC 6191): the
   * stack should then hand the same segment to the listener.
   */
  input(seg: TcpSegment, now: number): boolean {
    const st = this.state;
    if (st === 'CLOSED') return false;
    this.stats.segmentsIn++;
    let reuse = false;
    if (st === 'SYN-SENT') this.inputSynSent(seg, now);
    else reuse = this.inputSynchronized(seg, now);
    this.settle();
    return reuse;
  }

  /** End of the input batch (TcpEnv.deferAck): send the ACK held for it, if still owed. */
  flushBatchAck(now: number): void {
    if (this.rcv.ackState !== ACK_BATCH || this.isClosed()) return;
    this.sendAck(now);
    this.settle();
  }

  poll(now: number): void {
    if (this.isClosed()) return;
    if (now >= this.ackAt) {
      this.ackAt = Infinity;
      if (this.rcv.ackState !== ACK_NONE) this.sendAck(now);
    }
    if (now >= timerAt(this.timer)) this.onTimer(now);
    if (now >= this.kaAt && !this.isClosed()) this.onKeepAliveTimer(now);
    this.settle();
  }

  // ---------------------------------------------------------------- input

  /** RFC 9293 section 3.10.7.3: SYN-SENT. */
  private inputSynSent(seg: TcpSegment, now: number): void {
    const f = seg.flags;
    if ((f & ACK) !== 0 && (seqLe(asSeq(seg.ack), this.snd.iss) || seqGt(asSeq(seg.ack), this.snd.max))) {
      if ((f & RST) === 0) this.emitRaw(asSeq(seg.ack), 0, RST);
      return;
    }
    if ((f & RST) !== 0) {
      if ((f & ACK) !== 0) this.terminate('ECONNREFUSED');
      return;
    }
    if ((f & SYN) === 0) return;
    this.lastRecvAt = now;
    this.rcv.irs = asSeq(seg.seq);
    this.rcv.nxt = seqAdd(this.rcv.irs, 1);
    this.negotiate(seg.options, now);
    this.rcv.advRight = seqAdd(this.rcv.nxt, Math.min(this.config.receiveBufferSize, 0xffff));
    // RFC 7323 section 2.2: the window of a SYN is never scaled.
    this.snd.wnd = seg.window;
    this.snd.maxWnd = seg.window;
    this.snd.wl1 = this.rcv.irs;
    if ((f & ACK) !== 0) {
      this.snd.wl2 = asSeq(seg.ack);
      this.snd.una = seqAdd(this.snd.iss, 1);
      if (this.retries === 0 && this.rttTime >= 0) this.rtt.sample(now - this.rttTime);
      this.rttTime = -1;
      this.retries = 0;
      this.backoff = 0;
      this.state = this.finQueued ? 'FIN-WAIT-1' : 'ESTABLISHED';
      this.rcv.ackState = ACK_NOW;
      this.output(now, false);
      if (this.rcv.ackState !== ACK_NONE) this.sendAck(now);
      this.events.established();
    } else {
      // RFC 9293 section 3.10.7.3: simultaneous open.
      this.state = 'SYN-RECEIVED';
      this.snd.wl2 = this.snd.iss;
      this.sendSyn(now);
    }
  }

  /** RFC 9293 section 3.10.7.4: every state after SYN-SENT. */
  private inputSynchronized(seg: TcpSegment, now: number): boolean {
    const f = seg.flags;
    const ts = this.tsOk ? seg.options.timestamp : undefined;

    if (this.state === 'TIME-WAIT' && (f & (SYN | ACK | RST)) === SYN) {
      // RFC 6191 section 2: a new incarnation may reuse the tuple if its SYN is newer: by
      // timestamp, or by sequence number where the timestamps are equal or absent.
      const newer =
        ts !== undefined
          ? tsLt(this.tsRecent, ts.value) || (ts.value >>> 0 === this.tsRecent && seqGt(asSeq(seg.seq), this.rcv.nxt))
          : seqGt(asSeq(seg.seq), this.rcv.nxt);
      if (newer) {
        this.terminate(null);
        return true;
      }
    }

    // RFC 7323 section 5.3 R1: PAWS.
    if (ts !== undefined && (f & RST) === 0 && now - this.tsRecentAt <= PAWS_IDLE_MS && tsLt(ts.value, this.tsRecent)) {
      this.stats.pawsDrops++;
      this.sendAck(now);
      return false;
    }

    if (this.state === 'SYN-RECEIVED' && (f & (SYN | ACK | RST)) === SYN && asSeq(seg.seq) === this.rcv.irs) {
      // Our SYN-ACK was lost: the peer retransmitted its SYN.
      this.stats.retransmits++;
      this.sendSyn(now);
      return false;
    }

    // RFC 9293 section 3.10.7.4 first: sequence number acceptability.
    let payload = seg.payload;
    let fin = (f & FIN) !== 0;
    const segLen = payload.length + ((f & SYN) !== 0 ? 1 : 0) + (fin ? 1 : 0);
    const wnd = this.rcv.window;
    const seq = asSeq(seg.seq);
    let ok: boolean;
    // A zero-length segment exactly at the right edge is accepted too (as Linux does):
    // a peer whose data filled our window sends its ACKs there.
    if (segLen === 0) ok = seqGe(seq, this.rcv.nxt) && seqLe(seq, seqAdd(this.rcv.nxt, wnd));
    else
      ok =
        wnd !== 0 &&
        (seqInRange(seq, this.rcv.nxt, seqAdd(this.rcv.nxt, wnd)) ||
          seqInRange(seqAdd(seq, segLen - 1), this.rcv.nxt, seqAdd(this.rcv.nxt, wnd)));
    if (!ok) {
      if ((f & RST) !== 0) return false;
      if (wnd === 0 && seq === this.rcv.nxt && (f & SYN) === 0) {
        // RFC 9293 section 3.10.7.4: with a zero window, still process ACKs (a window probe).
        payload = EMPTY;
        fin = false;
        this.rcv.ackState = ACK_NOW;
      } else {
        this.stats.outOfWindow++;
        // RFC 9293 section 3.10.7.4: TIME-WAIT re-ACKs a retransmitted FIN and restarts 2MSL.
        if (this.state === 'TIME-WAIT' && fin && seqAdd(seq, payload.length + 1) === this.rcv.nxt) this.restartTimeWait(now);
        // RFC 2883 section 4: data wholly below RCV.NXT is a duplicate; say so (D-SACK)
        if (this.sackOk && payload.length > 0 && seqLe(seqAdd(seq, payload.length), this.rcv.nxt)) {
          this.rcv.dsack = { left: seq, right: seqAdd(seq, payload.length) };
        }
        // Segments with data or SYN/FIN always get a duplicate ACK; bare ACKs only at a
        // limited rate, so that two confused ends cannot ping-pong ACKs (as Linux does).
        if (segLen > 0 || now - this.lastOowAckAt >= OOW_ACK_INTERVAL_MS) {
          this.lastOowAckAt = now;
          this.sendAck(now);
        }
        return false;
      }
    }
    this.lastRecvAt = now;
    this.kaProbes = 0;

    // RFC 9293 section 3.10.7.4 second, with RFC 5961 section 3.2.
    if ((f & RST) !== 0) {
      if (seq === this.rcv.nxt) this.onReset();
      else this.challengeAck(now);
      return false;
    }

    // RFC 5961 section 4.2: a SYN in a synchronized state gets a challenge ACK.
    if ((f & SYN) !== 0) {
      this.challengeAck(now);
      return false;
    }

    if ((f & ACK) === 0) return false;

    // RFC 7323 section 4.3: update TS.Recent.
    if (ts !== undefined && seqLe(seq, this.rcv.lastAckSent) && !tsLt(ts.value, this.tsRecent)) {
      this.tsRecent = ts.value >>> 0;
      this.tsRecentAt = now;
    }

    if (this.state === 'SYN-RECEIVED') {
      const ack = asSeq(seg.ack);
      if (!(seqGt(ack, this.snd.una) && seqLe(ack, this.snd.max))) {
        this.emitRaw(ack, 0, RST);
        return false;
      }
      this.snd.una = seqAdd(this.snd.iss, 1);
      if (this.retries === 0 && this.rttTime >= 0 && !this.tsOk) this.rtt.sample(now - this.rttTime);
      this.rttTime = -1;
      this.retries = 0;
      this.backoff = 0;
      this.snd.wnd = seg.window << this.snd.wscale;
      this.snd.maxWnd = Math.max(this.snd.maxWnd, this.snd.wnd);
      this.snd.wl1 = seq;
      this.snd.wl2 = ack;
      this.state = this.finQueued ? 'FIN-WAIT-1' : 'ESTABLISHED';
      const owner = this.owner;
      this.owner = null;
      if (owner !== null) owner.halfOpenDone(this, true);
      this.events.established();
      if (this.isClosed()) return false;
    }

    if (!this.processAck(seg, now)) return false;
    if (this.isClosed()) return false;

    // RFC 9293 section 3.10.7.4 seventh and eighth: segment text and FIN.
    if (payload.length > 0 || fin) this.processText(seq, payload, fin, now);
    if (this.isClosed()) return false;

    this.afterInput(now);
    return false;
  }

  /** RFC 9293 section 3.10.7.4 fifth. Returns false when the segment is to be dropped. */
  private processAck(seg: TcpSegment, now: number): boolean {
    const ack = asSeq(seg.ack);
    // RFC 5961 section 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT.
    if (seqGt(ack, this.snd.max) || seqLt(ack, seqAdd(this.snd.una, -this.snd.maxWnd))) {
      this.stats.badAcks++;
      this.challengeAck(now);
      return false;
    }
    const window = seg.window << this.snd.wscale;
    const unaBefore = this.snd.una;
    const sackedBefore = this.snd.score === null ? 0 : this.snd.score.sackedBytes;
    const blocks = seg.options.sack;
    let dsack = false;
    if (this.sackOk && blocks !== undefined && blocks.length > 0) {
      dsack = this.checkDsack(blocks, ack);
      if (this.snd.score === null) this.snd.score = new SackScoreboard(this.config.sackScoreboardMaxBlocks);
      this.snd.score.update(blocks, seqMax(ack, this.snd.una), this.snd.max);
    }

    if (seqGt(ack, this.snd.una)) {
      this.ackNewData(ack, seg, now);
    } else if (
      ack === this.snd.una &&
      seg.payload.length === 0 &&
      (seg.flags & FIN) === 0 &&
      seqGt(this.snd.max, this.snd.una) &&
      window === this.snd.wnd
    ) {
      // RFC 5681 section 2: a duplicate ACK.
      this.onDupAck(now);
    } else if (this.snd.max === this.snd.una) {
      this.retries = 0;
    }
    this.checkProbe(dsack, now);
    const recovery = this.snd.recovery;
    const score = this.snd.score;
    if (recovery !== null && this.sackOk && score !== null) {
      // RFC 6937 section 3: DeliveredData is the change in SND.UNA plus the change in SACKed bytes.
      const delivered = seqDiff(this.snd.una, unaBefore) + score.sackedBytes - sackedBefore;
      recovery.onAck(delivered, this.snd.pipe(score), this.snd.cc.ssthresh);
    }

    // RFC 9293 section 3.10.7.4 fifth: window update.
    const seq = asSeq(seg.seq);
    if (seqLt(this.snd.wl1, seq) || (this.snd.wl1 === seq && seqLe(this.snd.wl2, ack))) {
      this.snd.wnd = window;
      this.snd.wl1 = seq;
      this.snd.wl2 = ack;
      if (window > this.snd.maxWnd) this.snd.maxWnd = window;
    }

    if (this.finAcked()) {
      const st = this.state;
      if (st === 'FIN-WAIT-1') {
        this.state = 'FIN-WAIT-2';
        this.finWait2Since = now;
        if (this.orphaned) this.armFinWait2();
      } else if (st === 'CLOSING') this.enterTimeWait(now);
      else if (st === 'LAST-ACK') {
        this.terminate(null);
        return false;
      }
    }
    return true;
  }

  /**
   * RFC 2883 section 4: the first block is a D-SACK when it lies below the cumulative ACK
   * or inside the second block. When it shows the last retransmission of the loss
   * episode spurious, the loss response is undone (RFC 3708 section 3).
   */
  private checkDsack(blocks: readonly SackBlock[], ack: Seq): boolean {
    const left = asSeq(blocks[0]!.left);
    const right = asSeq(blocks[0]!.right);
    const second = blocks.length > 1 ? blocks[1]! : null;
    const dsack =
      seqLe(right, ack) || (second !== null && seqGe(left, asSeq(second.left)) && seqLe(right, asSeq(second.right)));
    const undo = this.snd.undo;
    if (!dsack || undo === null || !this.snd.dsackReceived(left, right)) return dsack;
    this.snd.undo = null;
    this.stats.spuriousUndos++;
    this.snd.cc.undo(undo.priorCwnd, undo.priorSsthresh);
    this.snd.recovery = null;
    return true;
  }

  /** Our FIN has been sent and acknowledged. */
  private finAcked(): boolean {
    const len = this.snd.buffer === null ? 0 : this.snd.buffer.length;
    return len === 0 && this.finSent() && this.snd.una === this.snd.max;
  }

  /** The FIN went out at least once (it then occupies SND.MAX - 1). */
  private finSent(): boolean {
    return this.finOut;
  }

  private ackNewData(ack: Seq, seg: TcpSegment, now: number): void {
    const acked = seqDiff(ack, this.snd.una);
    const sb = this.snd.buffer;
    if (sb !== null) sb.drop(acked);
    this.snd.una = ack;
    if (seqLt(this.snd.nxt, ack)) this.snd.nxt = ack;
    if (seqLt(this.snd.highRxt, ack)) this.snd.highRxt = ack;

    // RTT measurement: RFC 7323 section 4 with timestamps, else one timed segment (Karn's rule).
    const ts = this.tsOk ? seg.options.timestamp : undefined;
    if (ts !== undefined && ts.echo !== 0) {
      // Echoes older than the last timeout may time an earlier transmission plus the
      // timeout itself (the receiver echoes TS.Recent, RFC 7323 section 4.3): skip them.
      const r = (this.tsNow(now) - ts.echo) >>> 0;
      if (r < 0x7fffffff && r <= now - this.lastTimeoutAt) this.rtt.sample(r);
    } else if (this.rttTime >= 0 && seqGe(ack, this.rttSeq)) {
      this.rtt.sample(now - this.rttTime);
      this.rttTime = -1;
    }
    this.retries = 0;
    this.backoff = 0;
    if (this.snd.score !== null) this.snd.score.ackTo(ack);

    const sackMode = this.sackOk;
    if (this.snd.recovery !== null) {
      if (seqGe(ack, this.snd.recover)) {
        this.snd.recovery = null;
        this.snd.dupAcks = 0;
        this.snd.cc.onRecoveryEnd(seqDiff(this.snd.max, ack));
      } else {
        // RFC 6582 section 3.2 step 5: partial ACK.
        this.snd.recovery.onPartialAck(acked);
        if (!sackMode || this.snd.score === null || this.snd.score.empty) this.retransmit(ack, -1, now, false);
      }
    } else {
      this.snd.dupAcks = 0;
      // RFC 7661 section 4.3: an application- or receiver-limited sender does not grow
      // cwnd (it would otherwise climb without bound and later burst at line rate).
      if (this.snd.cwndLimited()) this.snd.cc.onAck(acked, now, this.rtt.srtt);
    }
    // RFC 6298 section 5.3: restart the timer when new data is acknowledged.
    if (this.timer.kind === 'retransmit' || this.timer.kind === 'probe') this.timer.base = now;
    this.armProbe(now);
  }

  private onDupAck(now: number): void {
    this.stats.dupAcks++;
    this.snd.dupAcks++;
    if (this.snd.recovery !== null) {
      this.snd.recovery.onDupAck();
      return;
    }
    const thresh = this.config.dupAckThreshold;
    // RFC 6675 section 4: SND.UNA is lost when more than (DupThresh-1)*SMSS bytes above it are SACKed.
    const sackLoss =
      this.sackOk && this.snd.score !== null && this.snd.score.sackedBytes > (thresh - 1) * this.snd.mss;
    // RFC 6582 section 3.2 step 2: only if the ACK covers more than `recover`.
    if ((this.snd.dupAcks >= thresh || sackLoss) && seqGe(this.snd.una, this.snd.recover)) this.enterRecovery(now);
  }

  /** Fast retransmit and fast recovery (RFC 5681 section 3.2, RFC 6675 section 5). */
  private enterRecovery(now: number): void {
    this.stats.fastRetransmits++;
    this.snd.tlp = null;
    this.snd.recover = this.snd.max;
    this.snd.startUndo();
    this.snd.cc.onLoss(seqDiff(this.snd.max, this.snd.una));
    this.snd.recovery = this.sackOk ? new PrrRecovery() : new RenoRecovery();
    this.snd.recovery.enter(this.snd.cc.cwnd, this.snd.mss, seqDiff(this.snd.max, this.snd.una));
    if (this.sackOk && this.snd.score === null) this.snd.score = new SackScoreboard(this.config.sackScoreboardMaxBlocks);
    this.snd.highRxt = this.snd.una;
    this.retransmit(this.snd.una, -1, now, false);
  }

  /** Segment text (RFC 9293 section 3.10.7.4 seventh) and FIN (eighth). */
  private processText(segSeq: Seq, payload: Uint8Array, fin: boolean, now: number): void {
    const st = this.state;
    if (st !== 'ESTABLISHED' && st !== 'FIN-WAIT-1' && st !== 'FIN-WAIT-2') {
      // The peer's FIN was already received: anything here is a retransmission.
      if (st === 'TIME-WAIT' && fin) {
        // RFC 9293 section 3.10.7.4 eighth: re-ACK the FIN and restart the 2MSL timeout.
        this.restartTimeWait(now);
      }
      this.rcv.ackState = ACK_NOW;
      return;
    }
    let seq = segSeq;
    let data = payload;
    if (seqLt(seq, this.rcv.nxt)) {
      // RFC 2883 section 4: report the duplicate part in the first SACK block of the ACK
      if (this.sackOk && data.length > 0) {
        const end = seqAdd(seq, data.length);
        this.rcv.dsack = { left: seq, right: seqLt(end, this.rcv.nxt) ? end : this.rcv.nxt };
      }
      const off = seqDiff(this.rcv.nxt, seq);
      data = off >= data.length ? EMPTY : data.subarray(off);
      seq = this.rcv.nxt;
    }
    const room = seqDiff(this.rcv.advRight, seq);
    if (data.length > room) {
      data = room > 0 ? data.subarray(0, room) : EMPTY;
      fin = false;
    }
    if (data.length === 0 && !fin) {
      this.rcv.ackState = ACK_NOW;
      return;
    }
    if (seq !== this.rcv.nxt) {
      this.stats.oooSegments++;
      if (data.length > 0) {
        if (this.rcv.asm === null) this.rcv.asm = new Reassembler(this.config.reassemblyMaxSegments, this.config.receiveBufferSize);
        if (!this.rcv.asm.insert(seq, data)) this.stats.oooDropped++;
      }
      if (fin) {
        this.rcv.finPending = true;
        this.rcv.finSeq = seqAdd(seq, data.length);
      }
      // RFC 5681 section 4.2: ACK out-of-order data at once.
      this.rcv.ackState = ACK_NOW;
      return;
    }
    const asm = this.rcv.asm;
    const hadOoo = asm !== null && asm.count > 0;
    if (data.length > 0) {
      if (data.length > this.rcv.mss) this.rcv.mss = Math.min(data.length, this.config.mss);
      this.rcv.nxt = seqAdd(this.rcv.nxt, data.length);
      this.rcv.unackedBytes += data.length;
      this.deliver(data);
      if (this.isClosed()) return;
    }
    if (hadOoo && asm !== null) {
      let chunk: Uint8Array | null;
      while ((chunk = asm.pop(this.rcv.nxt)) !== null) {
        this.rcv.nxt = seqAdd(this.rcv.nxt, chunk.length);
        this.deliver(chunk);
        if (this.isClosed()) return;
      }
      if (asm.count === 0) this.rcv.asm = null;
    }
    if (this.rcv.finPending && this.rcv.nxt === this.rcv.finSeq) {
      fin = true;
      this.rcv.finPending = false;
    }
    // RFC 5681 section 4.2 / RFC 1122 section 4.2.3.2: ACK at least every second full
    // segment, at once when a hole is filled, otherwise delay.
    // Segments that arrived in one batch (a relay frame, a device read) may share one
    // stretch ACK sent at the batch's end, as Linux's GRO makes them share one.
    if (hadOoo || fin) this.rcv.ackState = ACK_NOW;
    else if (this.rcv.unackedBytes > this.rcv.mss) {
      if (this.rcv.ackState !== ACK_NOW) {
        this.rcv.ackState = this.bytesReceived >= this.config.batchAckAfterBuffers * this.config.receiveBufferSize ? ACK_BATCH : ACK_NOW;
      }
    } else if (this.rcv.ackState === ACK_NONE) this.rcv.ackState = ACK_DELAYED;
    if (fin) this.processFin(now);
  }

  private deliver(chunk: Uint8Array): void {
    this.rcv.unconsumed += chunk.length;
    this.bytesReceived += chunk.length;
    this.events.data(chunk);
  }

  private processFin(now: number): void {
    this.rcv.nxt = seqAdd(this.rcv.nxt, 1);
    this.rcv.ackState = ACK_NOW;
    switch (this.state) {
      case 'ESTABLISHED':
        this.state = 'CLOSE-WAIT';
        break;
      case 'FIN-WAIT-1':
        // RFC 9293 section 3.10.7.4 eighth: simultaneous close goes through CLOSING.
        if (this.finAcked()) {
          this.sendAck(now);
          this.events.fin();
          this.enterTimeWait(now);
          return;
        }
        this.state = 'CLOSING';
        break;
      case 'FIN-WAIT-2':
        this.sendAck(now);
        this.events.fin();
        this.enterTimeWait(now);
        return;
      default:
        break;
    }
    this.events.fin();
  }

  private onReset(): void {
    switch (this.state) {
      case 'SYN-RECEIVED':
        // RFC 9293 section 3.10.7.4 second: a passive open returns to LISTEN (we just
        // disappear); an active one was refused.
        this.terminate(this.owner !== null ? null : 'ECONNREFUSED');
        return;
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
        this.terminate('ECONNRESET');
        return;
      default:
        this.terminate(null);
    }
  }

  /** Send what the windows allow, then the ACK owed (piggybacked if data went out). */
  private afterInput(now: number): void {
    this.output(now, false);
    const ackState = this.rcv.ackState;
    if (ackState === ACK_NOW) this.sendAck(now);
    else if (ackState === ACK_BATCH) {
      if (this.env.deferAck?.(this) !== true) this.sendAck(now);
      // Should the batch end never come, the delayed-ACK timer still sends it.
      else if (this.ackAt === Infinity) this.ackAt = now + this.config.delayedAckMs;
    } else if (ackState === ACK_DELAYED && this.ackAt === Infinity) this.ackAt = now + this.config.delayedAckMs;
    // Wake a blocked writer only for a useful amount of space (as Linux's
    // sk_stream_write_space), not for the few segments each ACK frees.
    const wake = this.config.sendBufferSize >> 2;
    if (
      this.sendBlocked &&
      this.sendSpace >= (wake < SEND_SPACE_WAKE_MAX ? wake : SEND_SPACE_WAKE_MAX) &&
      (this.state === 'ESTABLISHED' || this.state === 'CLOSE-WAIT')
    ) {
      this.sendBlocked = false;
      this.events.sendSpace();
    }
  }

  private enterTimeWait(now: number): void {
    this.state = 'TIME-WAIT';
    this.kaAt = Infinity;
    this.timer = { kind: 'time-wait', at: now + this.config.timeWaitMs, base: now };
    this.snd.buffer = null;
    this.rcv.asm = null;
    this.snd.score = null;
    if (!this.closedFired) {
      this.closedFired = true;
      this.events.closed(null);
    }
  }

  // ---------------------------------------------------------------- output

  private canSendData(): boolean {
    const st = this.state;
    return st === 'ESTABLISHED' || st === 'CLOSE-WAIT' || st === 'FIN-WAIT-1' || st === 'CLOSING' || st === 'LAST-ACK';
  }

  /**
   * Send new data (and SACK repairs during recovery) as the receive window, the
   * congestion window, Nagle and silly-window avoidance allow. `force` sends one
   * segment regardless of Nagle/SWS (persist timer, RFC 9293 section 3.8.6.2.1).
   */
  private output(now: number, force: boolean): void {
    if (!this.canSendData()) return;
    const sb = this.snd.buffer;
    const dataEnd = seqAdd(this.snd.una, sb === null ? 0 : sb.length);
    const finAllowed = this.finQueued && this.state !== 'ESTABLISHED' && this.state !== 'CLOSE-WAIT';
    const mss = this.snd.payloadMss(this.rcv.sendsSackBlocks);
    const sackScore = this.snd.recovery !== null && this.sackOk ? this.snd.score : null;
    let blocked = false;
    for (;;) {
      let inFlight: number;
      if (sackScore !== null) {
        inFlight = this.snd.pipe(sackScore);
        if (inFlight >= this.snd.sendWindow()) break;
        // RFC 6675 section 5 (NextSeg rule 1): repair holes below the highest SACK first.
        const hole = this.snd.nextHole(sackScore);
        if (hole !== null) {
          if (this.retransmit(hole, sackScore.nextSackedStart(hole), now, true) > 0) continue;
        }
      } else {
        inFlight = seqDiff(this.snd.nxt, this.snd.una);
      }
      const sndNxt = this.snd.nxt;
      const resending = seqLt(sndNxt, this.snd.max);
      if (resending && this.snd.score !== null) {
        const end = this.snd.score.sackedEnd(sndNxt);
        if (end !== -1) {
          this.snd.nxt = seqMin(end, this.snd.max);
          continue;
        }
      }
      const avail = seqDiff(dataEnd, sndNxt);
      const wndRoom = seqDiff(seqAdd(this.snd.una, this.snd.wnd), sndNxt);
      const cwndRoom = this.snd.sendWindow() + (resending ? 0 : this.snd.limitedTransmitAllowance()) - inFlight;
      let len = mss;
      if (avail < len) len = avail;
      if (wndRoom < len) len = wndRoom;
      if (cwndRoom < len) len = cwndRoom;
      if (len < 0) len = 0;
      if (resending && this.snd.score !== null) {
        const next = this.snd.score.nextSackedStart(sndNxt);
        if (next !== -1 && seqDiff(next, sndNxt) < len) len = seqDiff(next, sndNxt);
      }
      const fin = finAllowed && avail >= 0 && len === avail && (force || cwndRoom > 0 || resending || len > 0);
      if (len === 0 && !fin) {
        if (avail > 0 && wndRoom < Math.min(avail, mss)) blocked = true;
        break;
      }
      if (len < mss && !fin && !force && !resending) {
        if (len < avail) {
          // RFC 9293 section 3.8.6.2.1: sender SWS avoidance.
          if (len < this.snd.maxWnd >> 1) {
            if (wndRoom < avail) blocked = true;
            break;
          }
        } else if (!this.noDelay && seqGt(this.snd.max, this.snd.una)) {
          // RFC 9293 section 3.7.4: Nagle.
          break;
        }
      }
      force = false;
      this.sendData(sndNxt, len, fin, len > 0 && len === avail, now);
      if (fin) break;
    }
    this.snd.noteCwndUsage(sackScore !== null ? this.snd.pipe(sackScore) : seqDiff(this.snd.nxt, this.snd.una), mss);
    // RFC 9293 section 3.8.6.1: zero-window probing when data waits on the peer's window.
    const timer = this.timer;
    if (blocked && this.snd.max === this.snd.una) {
      if (timer.kind !== 'persist') {
        const at = timer.kind === 'idle' ? now + this.persistTimeout() : timer.at;
        this.timer = { kind: 'persist', at, base: now };
      }
    } else if (timer.kind === 'persist') {
      // No longer blocked: the wake-up stays, and finds nothing outstanding.
      this.timer = { kind: 'retransmit', at: timer.at, base: timer.base };
    }
  }

  private sendData(seq: Seq, len: number, fin: boolean, push: boolean, now: number): void {
    const sb = this.snd.buffer;
    const payload = len > 0 && sb !== null ? sb.read(seqDiff(seq, this.snd.una), len) : EMPTY;
    const wasIdle = this.snd.max === this.snd.una;
    const resend = seqLt(seq, this.snd.max);
    if (resend) {
      this.stats.retransmits++;
      if (this.snd.undo !== null) this.snd.undo.retransmits++;
      this.rttTime = -1;
    } else {
      this.bytesSent += len;
      if (this.rttTime < 0 && !this.tsOk) {
        this.rttSeq = seqAdd(seq, len);
        this.rttTime = now;
      }
    }
    this.emit(seq, ACK | (fin ? FIN : 0) | (push ? PSH : 0), payload, len, now);
    if (fin) this.finOut = true;
    if (this.snd.recovery !== null) this.snd.recovery.onSent(len + (fin ? 1 : 0));
    const end = seqAdd(seq, len + (fin ? 1 : 0));
    this.snd.nxt = end;
    if (seqGt(end, this.snd.max)) this.snd.max = end;
    this.startRtx(now, wasIdle);
    if (!resend) this.armProbe(now);
  }

  /**
   * Retransmit from `seq` (at most one segment, stopping before `limit` unless -1).
   * Returns the sequence space sent.
   */
  private retransmit(seq: Seq, limit: Seq | -1, now: number, sackRepair: boolean): number {
    const sb = this.snd.buffer;
    const dataEnd = seqAdd(this.snd.una, sb === null ? 0 : sb.length);
    let len = Math.min(this.snd.payloadMss(this.rcv.sendsSackBlocks), seqDiff(dataEnd, seq));
    // Only what was sent before: new data goes through output() and its checks.
    if (seqDiff(this.snd.max, seq) < len) len = seqDiff(this.snd.max, seq);
    if (limit !== -1 && seqDiff(limit, seq) < len) len = seqDiff(limit, seq);
    if (len < 0) len = 0;
    const fin = this.finSent() && seqAdd(seq, len) === dataEnd;
    if (len === 0 && !fin) return 0;
    const payload = len > 0 && sb !== null ? sb.read(seqDiff(seq, this.snd.una), len) : EMPTY;
    this.stats.retransmits++;
    if (this.snd.undo !== null) this.snd.undo.retransmits++;
    if (sackRepair) this.stats.sackRepaired++;
    this.rttTime = -1;
    this.emit(seq, ACK | (fin ? FIN : 0), payload, len, now);
    if (this.snd.recovery !== null) this.snd.recovery.onSent(len + (fin ? 1 : 0));
    const end = seqAdd(seq, len + (fin ? 1 : 0));
    if (seqGt(end, this.snd.nxt)) this.snd.nxt = end;
    if (seqGt(end, this.snd.highRxt)) this.snd.highRxt = end;
    this.startRtx(now, false);
    return len + (fin ? 1 : 0);
  }

  private sendSyn(now: number): void {
    const synAck = this.state === 'SYN-RECEIVED';
    const c = this.config;
    const options: TcpOptions = { mss: c.mss };
    if (synAck) {
      if (this.wsOffered) options.windowScale = this.rcv.wscale;
      if (this.sackOk) options.sackPermitted = true;
      if (this.tsOk) options.timestamp = { value: this.tsNow(now), echo: this.tsRecent };
    } else {
      if (c.windowScaling) options.windowScale = windowScaleFor(c.receiveBufferSize);
      if (c.sack) options.sackPermitted = true;
      if (c.timestamps) options.timestamp = { value: this.tsNow(now), echo: 0 };
    }
    const window = Math.min(c.receiveBufferSize, 0xffff);
    if (synAck) {
      const right = seqAdd(this.rcv.nxt, window);
      if (seqGt(right, this.rcv.advRight) || this.rcv.advRight === 0) this.rcv.advRight = right;
      this.rcv.lastAckSent = this.rcv.nxt;
    }
    const seg: TcpSegmentOut = {
      srcPort: this.tuple.localPort,
      dstPort: this.tuple.remotePort,
      seq: this.snd.iss,
      ack: synAck ? this.rcv.nxt : 0,
      flags: synAck ? SYN | ACK : SYN,
      window,
      urgent: 0,
      options,
      payload: EMPTY,
      payloadLength: 0,
    };
    const first = this.snd.max === this.snd.iss;
    this.snd.nxt = seqAdd(this.snd.iss, 1);
    this.snd.max = this.snd.nxt;
    if (first) this.rttTime = now;
    this.stats.segmentsOut++;
    this.env.output(this.tuple, seg);
    this.startRtx(now, first);
  }

  /**
   * A pure ACK. Its sequence number is SND.MAX (RFC 9293's SND.NXT: retransmission after
   * a timeout rewinds our sndNxt, not the peer's view), so the peer never finds it old.
   */
  private sendAck(now: number): void {
    this.emit(this.snd.max, ACK, EMPTY, 0, now);
  }

  /** A segment with the usual ACK, window and options. */
  private emit(seq: Seq, flags: number, payload: Uint8Array | Uint8Array[], len: number, now: number): void {
    let options = NO_OPTIONS;
    const dsack = this.rcv.dsack;
    if (this.sackOk && ((this.rcv.asm !== null && this.rcv.asm.count > 0) || dsack !== null)) {
      options = {};
      if (this.tsOk) options.timestamp = { value: this.tsNow(now), echo: this.tsRecent };
      // RFC 2018 section 3: at most 3 blocks alongside timestamps, else 4.
      const max = this.tsOk ? 3 : 4;
      const blocks = this.rcv.asm !== null && this.rcv.asm.count > 0 ? this.rcv.asm.sackBlocks(dsack !== null ? max - 1 : max) : [];
      // RFC 2883 section 4: a duplicate is reported once, in the first block
      if (dsack !== null) blocks.unshift(dsack);
      this.rcv.dsack = null;
      options.sack = blocks;
    } else if (this.tsOk) {
      SCRATCH_TS.value = this.tsNow(now);
      SCRATCH_TS.echo = this.tsRecent;
      options = SCRATCH_TS_OPTIONS;
    }
    this.rcv.lastAckSent = this.rcv.nxt;
    this.rcv.unackedBytes = 0;
    this.rcv.ackState = ACK_NONE;
    this.stats.segmentsOut++;
    const seg = SCRATCH_SEGMENT;
    seg.srcPort = this.tuple.localPort;
    seg.dstPort = this.tuple.remotePort;
    seg.seq = seq;
    seg.ack = this.rcv.nxt;
    seg.flags = flags;
    seg.window = this.rcv.windowField();
    seg.options = options;
    seg.payload = payload;
    seg.payloadLength = len;
    this.env.output(this.tuple, seg);
    seg.payload = EMPTY;
  }

  /** A bare control segment (RST) without options. */
  private emitRaw(seq: Seq, ack: number, flags: number): void {
    this.stats.segmentsOut++;
    this.env.output(this.tuple, {
      srcPort: this.tuple.localPort,
      dstPort: this.tuple.remotePort,
      seq,
      ack,
      flags,
      window: 0,
      urgent: 0,
      options: NO_OPTIONS,
      payload: EMPTY,
      payloadLength: 0,
    });
  }

  private challengeAck(now: number): void {
    // RFC 5961 section 7: rate-limit challenge ACKs.
    if (now - this.challengeWindowStart >= 1000) {
      this.challengeWindowStart = now;
      this.challengeCount = 0;
    }
    if (this.challengeCount >= this.config.challengeAckLimit) {
      this.stats.challengeAcksSuppressed++;
      return;
    }
    this.challengeCount++;
    this.stats.challengeAcks++;
    this.sendAck(now);
  }

  private negotiate(opts: TcpOptions, now: number): void {
    const c = this.config;
    if (c.windowScaling && opts.windowScale !== undefined) {
      // RFC 7323 section 2.3: shifts above 14 are treated as 14.
      this.snd.wscale = Math.min(14, Math.max(0, opts.windowScale | 0));
      this.rcv.wscale = windowScaleFor(c.receiveBufferSize);
      this.wsOffered = true;
    } else {
      this.snd.wscale = 0;
      this.rcv.wscale = 0;
    }
    this.sackOk = c.sack && opts.sackPermitted === true;
    const ts = opts.timestamp;
    if (c.timestamps && ts !== undefined) {
      this.tsOk = true;
      this.tsRecent = ts.value >>> 0;
      this.tsRecentAt = now;
    }
    const peerMss = opts.mss !== undefined && opts.mss > 0 ? opts.mss : DEFAULT_PEER_MSS;
    // RFC 9293 section 3.7.1: effective send MSS, less the options on every segment.
    const mss = Math.max(64, Math.min(peerMss, c.mss) - (this.tsOk ? TS_OPTION_BYTES : 0));
    this.snd.mss = mss;
    this.snd.cc.setMss(mss);
    this.rcv.mss = Math.min(DEFAULT_PEER_MSS, c.mss);
  }

  private tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  // ---------------------------------------------------------------- timers

  /** RFC 6298 section 5.1: start the timer if it is not running. */
  private startRtx(now: number, wasIdle: boolean): void {
    const t = this.timer;
    if (t.kind === 'time-wait' || t.kind === 'fin-wait-2') return;
    if ((t.kind === 'retransmit' || t.kind === 'probe') && !wasIdle) {
      const due = t.base + this.rtt.current(this.backoff);
      if (due < t.at) t.at = due;
      return;
    }
    const due = now + this.rtt.current(this.backoff);
    const at = timerAt(t);
    this.timer = { kind: 'retransmit', at: due < at ? due : at, base: now };
  }

  private restartTimeWait(now: number): void {
    if (this.timer.kind === 'time-wait') this.timer.base = now;
  }

  private persistTimeout(): number {
    return Math.min(this.config.persistMaxMs, Math.max(this.config.minRtoMs, this.rtt.current(this.backoff)));
  }

  private armFinWait2(): void {
    const expires = this.finWait2Since + this.config.finWait2TimeoutMs;
    const at = timerAt(this.timer);
    this.timer = { kind: 'fin-wait-2', at: expires < at ? expires : at, expires };
  }

  private onTimer(now: number): void {
    const t = this.timer;
    switch (t.kind) {
      case 'idle':
        return;
      case 'fin-wait-2':
        if (now < t.expires) t.at = t.expires;
        else {
          // As Linux does when tcp_fin_timeout expires: the peer learns by a RST.
          this.emitRaw(this.snd.max, 0, RST);
          this.terminate('ETIMEDOUT');
        }
        return;
      case 'time-wait': {
        const due = t.base + this.config.timeWaitMs;
        if (now < due) t.at = due;
        else this.terminate(null);
        return;
      }
      case 'probe':
        if (this.snd.max === this.snd.una) this.timer = TIMER_IDLE;
        else this.onProbeTimer(t, now);
        return;
      case 'retransmit':
      case 'persist':
        if (this.snd.max !== this.snd.una) this.onRetransmitTimer(t, now);
        else if (t.kind === 'persist' && this.canSendData()) this.onPersistTimer(t, now);
        else this.timer = TIMER_IDLE;
        return;
    }
  }

  private onRetransmitTimer(t: ArmedTimer & { base: number }, now: number): void {
    const due = t.base + this.rtt.current(this.backoff);
    if (now < due) {
      t.at = due;
      return;
    }
    const synState = this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED';
    if (this.retries >= (synState ? this.config.synRetries : this.config.maxRetries)) {
      this.terminate(this.softError ?? 'ETIMEDOUT');
      return;
    }
    this.retries++;
    if (this.backoff < MAX_BACKOFF) this.backoff++;
    this.stats.timeouts++;
    this.rttTime = -1;
    this.timer = { kind: 'retransmit', at: now + this.rtt.current(this.backoff), base: now };
    if (synState) {
      this.stats.retransmits++;
      this.sendSyn(now);
      return;
    }
    // RFC 6298 section 5.4 and RFC 5681 section 3.1: retransmit the earliest segment, go back to slow start.
    if (this.retries === 1) this.snd.startUndo();
    this.snd.cc.onTimeout(seqDiff(this.snd.max, this.snd.una), this.retries === 1);
    this.lastTimeoutAt = now;
    this.snd.recovery = null;
    this.snd.tlp = null;
    this.snd.recover = this.snd.max;
    this.snd.dupAcks = 0;
    // RFC 2018 section 8: forget SACK information after a timeout (the receiver may renege).
    if (this.snd.score !== null) this.snd.score.clear();
    this.snd.highRxt = this.snd.una;
    this.snd.nxt = this.snd.una;
    this.retransmit(this.snd.una, -1, now, false);
  }

  /**
   * RFC 8985 section 7.2: arm the tail loss probe after new data is sent or acknowledged,
   * with SACK, outside recovery, with no probe in flight.
   */
  private armProbe(now: number): void {
    const snd = this.snd;
    const t = this.timer;
    if (!this.config.tailLossProbes || !this.sackOk || snd.recovery !== null || snd.tlp !== null) return;
    if (snd.max === snd.una || snd.nxt !== snd.max || seqLt(snd.una, snd.recover)) return;
    if (t.kind !== 'retransmit' && t.kind !== 'probe') return;
    const due = now + this.probeTimeout();
    if (t.kind === 'probe') {
      // Lazy: a later due leaves `at` alone; an earlier one (a shorter PTO) moves it.
      t.probeBase = now;
      if (due < t.at) t.at = due;
      return;
    }
    this.timer = { kind: 'probe', at: due < t.at ? due : t.at, base: t.base, probeBase: now };
  }

  /** RFC 8985 section 7.2: PTO = 2 SRTT, plus the worst-case delayed ACK for a lone segment. */
  private probeTimeout(): number {
    const srtt = this.rtt.srtt;
    if (srtt < 0) return 1000;
    // RFC 8985 section 7.2: WCDelAckT = 200 ms; otherwise Linux's 2 ms of slack.
    return 2 * srtt + (seqDiff(this.snd.max, this.snd.una) <= this.snd.mss ? 200 : 2);
  }

  private onProbeTimer(t: ArmedTimer & { kind: 'probe' }, now: number): void {
    const rtoDue = t.base + this.rtt.current(this.backoff);
    const probeDue = t.probeBase + this.probeTimeout();
    if (rtoDue <= probeDue || this.snd.recovery !== null || this.snd.tlp !== null) {
      // The RTO comes first (or the probe no longer applies): an ordinary retransmit timer.
      const rtx = { kind: 'retransmit' as const, at: t.at, base: t.base };
      this.timer = rtx;
      this.onRetransmitTimer(rtx, now);
      return;
    }
    if (now < probeDue) {
      t.at = probeDue;
      return;
    }
    this.sendProbe(now);
  }

  /**
   * RFC 8985 section 7.3: one new segment if the receive window allows, else the last
   * segment again. The RTO then restarts from the probe.
   */
  private sendProbe(now: number): void {
    const snd = this.snd;
    const sb = snd.buffer;
    const dataEnd = seqAdd(snd.una, sb === null ? 0 : sb.length);
    const flight = seqDiff(snd.max, snd.una);
    const mss = snd.payloadMss(this.rcv.sendsSackBlocks);
    const avail = seqDiff(dataEnd, snd.max);
    const wndRoom = seqDiff(seqAdd(snd.una, snd.wnd), snd.max);
    this.stats.tailLossProbes++;
    this.timer = { kind: 'retransmit', at: now + this.rtt.current(this.backoff), base: now };
    const start = snd.max;
    if (avail > 0 && wndRoom > 0 && !this.finOut) {
      const len = Math.min(mss, avail, wndRoom);
      const finAllowed = this.finQueued && this.state !== 'ESTABLISHED' && this.state !== 'CLOSE-WAIT';
      snd.tlp = { start, end: seqAdd(start, len), retransmitted: false, flight };
      this.sendData(start, len, finAllowed && len === avail, len === avail, now);
      return;
    }
    // The last segment (and the FIN if it went out): its loss is what the probe repairs.
    const dataLen = seqDiff(dataEnd, snd.una);
    const len = Math.min(mss, dataLen);
    const from = seqAdd(dataEnd, -len);
    snd.tlp = { start: from, end: snd.max, retransmitted: true, flight };
    this.retransmit(from, -1, now, false);
  }

  /**
   * An ACK that accounts for the tail loss probe (RFC 8985 sections 7.4 and 6.2). A SACK
   * of the probe with holes below it: everything there was sent at least a PTO before
   * the probe, which RACK's rule (sent more than an RTT plus the reordering window before
   * a delivered segment) declares lost, so recovery repairs it now.
   */
  private checkProbe(dsack: boolean, now: number): void {
    const snd = this.snd;
    const tlp = snd.tlp;
    if (tlp === null) return;
    if (tlp.retransmitted && dsack) {
      // RFC 8985 section 7.4.2: the D-SACK says the original arrived; nothing was lost.
      snd.tlp = null;
      return;
    }
    // A retransmitted probe waits for an ACK beyond it, so that the D-SACK of a spurious
    // probe can come first (RFC 8985 section 7.4.2); then it repaired a loss and calls
    // for the congestion response of one.
    if (tlp.retransmitted ? seqGt(snd.una, tlp.end) : seqGe(snd.una, tlp.end)) {
      snd.tlp = null;
      if (tlp.retransmitted && snd.recovery === null) snd.cc.onLoss(tlp.flight);
      return;
    }
    const score = snd.score;
    if (score === null || score.sackedEnd(tlp.start) === -1) return;
    snd.tlp = null;
    if (snd.recovery === null && seqGe(snd.una, snd.recover) && seqLt(snd.una, tlp.start)) this.enterRecovery(now);
  }

  private onPersistTimer(t: ArmedTimer & { kind: 'persist' }, now: number): void {
    const due = t.base + this.persistTimeout();
    if (now < due) {
      t.at = due;
      return;
    }
    if (this.retries >= this.config.maxRetries) {
      this.terminate(this.softError ?? 'ETIMEDOUT');
      return;
    }
    this.retries++;
    if (this.backoff < MAX_BACKOFF) this.backoff++;
    this.stats.zeroWindowProbes++;
    t.base = now;
    t.at = now + this.persistTimeout();
    if (this.snd.wnd > 0) {
      this.timer = { kind: 'retransmit', at: t.at, base: now };
      this.output(now, true);
    } else {
      // Probe with SND.UNA-1 (as Linux does): always outside the peer's window, so it
      // is answered with an ACK carrying the current window.
      this.emit(seqAdd(this.snd.una, -1), ACK, EMPTY, 0, now);
    }
    if (this.snd.max === this.snd.una && this.timer.kind !== 'persist') {
      this.timer = { kind: 'persist', at: now + this.persistTimeout(), base: now };
    }
  }

  private onKeepAliveTimer(now: number): void {
    const st = this.state;
    // FIN-WAIT-2 too: after a half-close, a peer that vanished would otherwise hold the
    // connection forever.
    if (this.kaIdle === 0 || (st !== 'ESTABLISHED' && st !== 'CLOSE-WAIT' && st !== 'FIN-WAIT-2')) {
      this.kaAt = Infinity;
      return;
    }
    const interval = this.config.keepAliveIntervalMs;
    const due = this.lastRecvAt + this.kaIdle + this.kaProbes * interval;
    if (now < due) {
      this.kaAt = due;
      return;
    }
    if (this.kaProbes >= this.config.keepAliveProbes) {
      this.terminate('ETIMEDOUT');
      return;
    }
    if (this.snd.max !== this.snd.una) {
      // Retransmissions already probe the peer.
      this.kaAt = now + interval;
      return;
    }
    // RFC 1122 section 4.2.3.6: a probe with SEG.SEQ = SND.NXT-1 and no data.
    this.kaProbes++;
    this.stats.keepAliveProbes++;
    this.emit(seqAdd(this.snd.nxt, -1), ACK, EMPTY, 0, now);
    this.kaAt = this.lastRecvAt + this.kaIdle + this.kaProbes * interval;
  }

  // ---------------------------------------------------------------- teardown

  private terminate(error: TcpErrorCode | null): void {
    if (this.isClosed()) return;
    this.state = 'CLOSED';
    this.timer = TIMER_IDLE;
    this.ackAt = Infinity;
    this.kaAt = Infinity;
    this.snd.buffer = null;
    this.rcv.asm = null;
    this.snd.score = null;
    const owner = this.owner;
    this.owner = null;
    this.env.removed(this);
    if (owner !== null) owner.halfOpenDone(this, false);
    if (!this.closedFired) {
      this.closedFired = true;
      this.events.closed(error);
    }
  }

  /** Callbacks may have closed the connection (defeats TypeScript's narrowing of `state`). */
  private isClosed(): boolean {
    return this.state === 'CLOSED';
  }

  /** Tell the stack when the next deadline moved. */
  private settle(): void {
    if (this.isClosed()) return;
    const d = this.deadline;
    if (d !== this.notifiedDeadline) {
      this.notifiedDeadline = d;
      this.env.deadlineChanged(this);
    }
  }
}
