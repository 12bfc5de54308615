// An in-memory model of the TcpHost contract (netstack/tcp/types.ts) for facade tests:
// no packets, just the observable rules: a bounded send buffer that signals sendSpace,
// a receive window that only reopens through consume(), FIN after queued data, RST on
// abort, ECONNREFUSED for a port without a listener and EHOSTUNREACH for no host.
// Deliveries happen on setImmediate, as if over a network.

import type {
  FourTuple,
  TcpConnectOptions,
  TcpConnectionApi,
  TcpConnectionEvents,
  TcpHost,
  TcpListenerHandle,
  TcpState,
} from '../../netstack/tcp/types.js';
import { parseIpv4Address } from '../../netstack/wire/ipv4.js';

export interface FakeTcpOptions {
  sendBuffer?: number;
  receiveWindow?: number;
}

const NO_EVENTS: TcpConnectionEvents = {
  established() {},
  data() {},
  fin() {},
  sendSpace() {},
  closed() {},
};

export class FakeTcpNetwork {
  readonly hosts = new Map<number, FakeTcpHost>();
  private readonly due = new Set<FakeConn>();
  private readonly handshakes: Array<() => void> = [];
  private immediate: ReturnType<typeof setImmediate> | null = null;

  host(address: string, options: FakeTcpOptions = {}): FakeTcpHost {
    const ip = parseIpv4Address(address);
    if (ip === null) throw new Error(`bad address ${address}`);
    const h = new FakeTcpHost(this, ip, options);
    this.hosts.set(ip, h);
    return h;
  }

  schedule(conn: FakeConn): void {
    this.due.add(conn);
    this.wake();
  }

  later(fn: () => void): void {
    this.handshakes.push(fn);
    this.wake();
  }

  private wake(): void {
    if (this.immediate === null) this.immediate = setImmediate(() => this.run());
  }

  private run(): void {
    this.immediate = null;
    const fns = this.handshakes.splice(0);
    for (const fn of fns) fn();
    const conns = [...this.due];
    this.due.clear();
    for (const c of conns) c.flush();
  }

  close(): void {
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.immediate = null;
  }
}

export class FakeTcpHost implements TcpHost {
  readonly listeners = new Map<number, (conn: TcpConnectionApi) => void>();
  readonly ports = new Set<number>();
  readonly connections = new Set<FakeConn>();
  private nextPort = 49152;

  constructor(
    readonly network: FakeTcpNetwork,
    readonly localAddress: number,
    readonly options: FakeTcpOptions,
  ) {}

  now(): number {
    return performance.now();
  }

  private ephemeral(): number {
    for (let i = 0; i < 16384; i++) {
      const p = this.nextPort;
      this.nextPort = p === 65535 ? 49152 : p + 1;
      if (!this.ports.has(p) && !this.listeners.has(p)) return p;
    }
    return 0;
  }

  connect(
    remoteAddress: number,
    remotePort: number,
    events: TcpConnectionEvents,
    options?: TcpConnectOptions,
  ): TcpConnectionApi | 'EADDRINUSE' | 'EADDRNOTAVAIL' {
    let localPort = options?.localPort ?? 0;
    if (localPort !== 0 && (this.ports.has(localPort) || this.listeners.has(localPort))) return 'EADDRINUSE';
    if (localPort === 0) localPort = this.ephemeral();
    if (localPort === 0) return 'EADDRNOTAVAIL';
    const conn = new FakeConn(this, { localAddress: this.localAddress, localPort, remoteAddress, remotePort }, events, 'SYN-SENT');
    this.network.later(() => this.handshake(conn));
    return conn;
  }

  private handshake(client: FakeConn): void {
    if (client.state !== 'SYN-SENT') return;
    const peerHost = this.network.hosts.get(client.tuple.remoteAddress);
    if (peerHost === undefined) return client.fail('EHOSTUNREACH');
    const onConnection = peerHost.listeners.get(client.tuple.remotePort);
    if (onConnection === undefined) return client.fail('ECONNREFUSED');
    const t = client.tuple;
    const server = new FakeConn(
      peerHost,
      { localAddress: t.remoteAddress, localPort: t.remotePort, remoteAddress: t.localAddress, remotePort: t.localPort },
      NO_EVENTS,
      'ESTABLISHED',
    );
    server.peer = client;
    client.peer = server;
    client.state = 'ESTABLISHED';
    onConnection(server);
    client.events.established();
  }

  listen(
    localPort: number,
    _options: { backlog?: number },
    onConnection: (conn: TcpConnectionApi) => void,
  ): TcpListenerHandle | 'EADDRINUSE' {
    if (localPort !== 0 && this.listeners.has(localPort)) return 'EADDRINUSE';
    const port = localPort === 0 ? this.ephemeral() : localPort;
    this.listeners.set(port, onConnection);
    return { localPort: port, close: () => void this.listeners.delete(port) };
  }
}

export class FakeConn implements TcpConnectionApi {
  peer: FakeConn | null = null;
  readonly deadline = Infinity;
  bytesSent = 0;
  bytesReceived = 0;
  /** delivered to the owner and not yet consumed */
  unconsumed = 0;
  consumedTotal = 0;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private wantSpace = false;
  private finQueued = false;
  private finSent = false;
  private finReceived = false;
  private readonly sendBuffer: number;
  private readonly receiveWindow: number;

  constructor(
    readonly host: FakeTcpHost,
    readonly tuple: FourTuple,
    public events: TcpConnectionEvents,
    public state: TcpState,
  ) {
    this.sendBuffer = host.options.sendBuffer ?? 64 * 1024;
    this.receiveWindow = host.options.receiveWindow ?? 64 * 1024;
    host.ports.add(tuple.localPort);
    host.connections.add(this);
  }

  get sendSpace(): number {
    return Math.max(0, this.sendBuffer - this.queued);
  }
  get sendBuffered(): number {
    return this.queued;
  }

  poll(): void {}

  send(data: Uint8Array): number {
    if (this.finQueued || (this.state !== 'ESTABLISHED' && this.state !== 'CLOSE-WAIT')) return 0;
    const n = Math.min(this.sendSpace, data.byteLength);
    if (n > 0) {
      this.queue.push(n === data.byteLength ? data : data.subarray(0, n));
      this.queued += n;
      this.host.network.schedule(this);
    }
    if (n < data.byteLength) this.wantSpace = true;
    return n;
  }

  flush(): void {
    const peer = this.peer;
    if (peer === null || this.state === 'CLOSED') return;
    while (this.queue.length > 0 && peer.state !== 'CLOSED') {
      const room = peer.receiveWindow - peer.unconsumed;
      if (room <= 0) break;
      const head = this.queue[0]!;
      const chunk = head.byteLength <= room ? head : head.subarray(0, room);
      if (chunk === head) this.queue.shift();
      else this.queue[0] = head.subarray(room);
      this.queued -= chunk.byteLength;
      this.bytesSent += chunk.byteLength;
      peer.unconsumed += chunk.byteLength;
      peer.bytesReceived += chunk.byteLength;
      peer.events.data(chunk.slice());
    }
    if (this.wantSpace && this.sendSpace > 0 && !this.isClosed()) {
      this.wantSpace = false;
      this.events.sendSpace();
    }
    if (this.queue.length === 0 && this.finQueued && !this.finSent && peer.state !== 'CLOSED') {
      this.finSent = true;
      peer.receiveFin();
      this.maybeClosed();
    }
  }

  private isClosed(): boolean {
    return this.state === 'CLOSED';
  }

  private receiveFin(): void {
    this.finReceived = true;
    if (this.state === 'ESTABLISHED') this.state = 'CLOSE-WAIT';
    else if (this.state === 'FIN-WAIT-1' || this.state === 'FIN-WAIT-2') this.state = 'TIME-WAIT';
    this.events.fin();
    this.maybeClosed();
  }

  private maybeClosed(): void {
    if (this.finSent && this.finReceived && this.state !== 'CLOSED') this.finish(null);
  }

  private finish(error: 'ECONNREFUSED' | 'ECONNRESET' | 'EHOSTUNREACH' | null): void {
    this.state = 'CLOSED';
    this.host.ports.delete(this.tuple.localPort);
    this.host.connections.delete(this);
    this.events.closed(error);
  }

  fail(error: 'ECONNREFUSED' | 'EHOSTUNREACH'): void {
    if (this.state !== 'CLOSED') this.finish(error);
  }

  shutdown(): void {
    if (this.finQueued || this.state === 'CLOSED') return;
    this.finQueued = true;
    if (this.state === 'ESTABLISHED') this.state = 'FIN-WAIT-1';
    else if (this.state === 'CLOSE-WAIT') this.state = 'LAST-ACK';
    this.host.network.schedule(this);
  }

  abort(): void {
    if (this.state === 'CLOSED') return;
    const peer = this.peer;
    this.finish(null);
    if (peer !== null && peer.state !== 'CLOSED') peer.finish('ECONNRESET');
  }

  consume(bytes: number): void {
    this.unconsumed -= bytes;
    this.consumedTotal += bytes;
    if (this.unconsumed < 0) throw new Error(`consumed more than delivered (${this.unconsumed})`);
    if (this.peer !== null) this.host.network.schedule(this.peer);
  }

  setNoDelay(): void {}
  setKeepAlive(): void {}
}
