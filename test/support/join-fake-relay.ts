// A stand-in relay for the join tests: it speaks protocol v1 to one kind of client (token
// check at the upgrade, welcome, binary frames of IPv4 packets) and answers every ICMP echo
// request itself, as the real relay's gateway does for its own address.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { splitPackets } from '../../transport/relay-link.js';
import { JOIN_PATH, SUBPROTOCOL, type WelcomeMessage } from '../../relay/protocol.js';
import { echoReplyTo } from './join-packets.js';
import { testWelcome } from './welcome.js';

export interface FakeRelayOptions {
  token: string;
  welcome?: Partial<WelcomeMessage>;
}

export class FakeRelay {
  echoed = 0;
  packetsIn = 0;
  malformedFrames = 0;
  readonly sockets = new Set<WebSocket>();
  private constructor(
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    readonly welcome: WelcomeMessage,
  ) {}

  static async start(options: FakeRelayOptions): Promise<FakeRelay> {
    const welcome = testWelcome({ host: 'laptop', address: '10.77.0.200', ...options.welcome });
    const http = createServer();
    const wss = new WebSocketServer({
      server: http,
      path: JOIN_PATH,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
      verifyClient: (info: { req: IncomingMessage }, cb: (ok: boolean, code?: number, msg?: string, headers?: Record<string, string>) => void) => {
        const auth = info.req.headers.authorization;
        if (auth === `Bearer ${options.token}`) return cb(true);
        cb(false, 401, 'forged token', { 'X-Imach-Error': 'forged token' });
      },
    });
    const relay = new FakeRelay(http, wss, welcome);
    wss.on('connection', (ws) => relay.accept(ws));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  private accept(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.send(JSON.stringify(this.welcome));
    ws.on('message', (data, isBinary) => {
      if (!isBinary) return;
      const frame = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      const { packets, malformed } = splitPackets(frame);
      if (malformed) this.malformedFrames++;
      for (const p of packets) {
        this.packetsIn++;
        const reply = echoReplyTo(p);
        if (reply) {
          this.echoed++;
          ws.send(reply, { binary: true });
        }
      }
    });
  }

  drain(reason: string): void {
    for (const ws of this.sockets) ws.send(JSON.stringify({ type: 'drain', reason, graceMs: 0 }));
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
