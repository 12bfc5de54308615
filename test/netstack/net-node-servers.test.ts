// Node's own servers and TLS over the facade: node:http's Server takes a facade socket
// from its 'connection' event, tls.TLSSocket wraps one, and a corked response (header and
// body) leaves in one TCP segment, as it does from Linux.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { dirname, join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createNetApi, type NetApi, type NetServer, type NetSocket } from '../../netstack/api/net.js';
import type { Link, PacketHandler } from '../../netstack/link/link.js';
import { createLinkPair } from '../../netstack/link/memory.js';
import { Stack } from '../../netstack/stack.js';
import { parseIpv4 } from '../../netstack/wire/ipv4.js';
import { parseTcp } from '../../netstack/wire/tcp.js';
import { isWireError } from '../../netstack/wire/error.js';

const TLS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'support', 'tls');

/** A link that records the TCP payload sizes of the packets its stack sends. */
class RecordingLink implements Link {
  readonly payloads: number[] = [];
  constructor(private readonly inner: Link) {}
  get mtu(): number | undefined {
    return this.inner.mtu;
  }
  send(packet: Uint8Array): void {
    const ip = parseIpv4(packet, false);
    if (!isWireError(ip) && ip.protocol === 6) {
      const seg = parseTcp(ip.payload, ip.src, ip.dst, false);
      if (!isWireError(seg) && seg.payload.byteLength > 0) this.payloads.push(seg.payload.byteLength);
    }
    this.inner.send(packet);
  }
  onReceive(handler: PacketHandler): void {
    this.inner.onReceive(handler);
  }
  close(): void {
    this.inner.close();
  }
}

interface Pair {
  client: NetApi;
  server: NetApi;
  serverLink: RecordingLink;
  close(): void;
}

function stackPair(): Pair {
  const clientStack = new Stack({ address: '10.77.0.2' });
  const serverStack = new Stack({ address: '10.77.0.3' });
  const [a, b] = createLinkPair();
  const serverLink = new RecordingLink(b);
  clientStack.attach(a);
  serverStack.attach(serverLink);
  return {
    client: createNetApi(clientStack),
    server: createNetApi(serverStack),
    serverLink,
    close: () => {
      clientStack.close();
      serverStack.close();
      a.close();
      b.close();
    },
  };
}

describe('node:http and tls over the net facade', function () {
  let pair: Pair;
  const cleanups: Array<() => void> = [];

  beforeEach(function () {
    pair = stackPair();
  });

  afterEach(function () {
    for (const c of cleanups.splice(0).reverse()) c();
    pair.close();
  });

  /** A facade listener that hands its sockets to `target` as Node's own listener would. */
  async function listenFor(target: { emit(event: string, ...args: unknown[]): boolean }): Promise<number> {
    const listener: NetServer = pair.server.createServer((s) => target.emit('connection', s));
    listener.listen(0);
    await once(listener, 'listening');
    cleanups.push(() => listener.close());
    return listener.address()!.port;
  }

  function get(port: number, agent?: http.Agent): Promise<{ status: number; body: string; socket: NetSocket }> {
    return new Promise((resolve, reject) => {
      let socket: NetSocket | undefined;
      const req = http.get(
        {
          host: '10.77.0.3',
          port,
          path: '/hello',
          agent,
          createConnection: agent === undefined ? () => (socket = pair.client.connect(port, '10.77.0.3')) : undefined,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket: socket! }));
        },
      );
      req.on('error', reject);
    });
  }

  it("http.Server answers a request on a facade socket from the listener's connection event", async function () {
    const server = http.createServer((req, res) => res.end(`you asked for ${req.url}`));
    cleanups.push(() => server.close());
    const port = await listenFor(server);
    const { status, body, socket } = await get(port);
    assert.equal(status, 200);
    assert.equal(body, 'you asked for /hello');
    socket.destroy();
  });

  it('a small response (header and body, corked) leaves in one TCP segment', async function () {
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      // A Buffer body is not joined to the header string: node:http corks and writes both.
      res.end(Buffer.from('pong'));
    });
    cleanups.push(() => server.close());
    const port = await listenFor(server);
    pair.serverLink.payloads.length = 0;
    const { body, socket } = await get(port);
    assert.equal(body, 'pong');
    assert.equal(pair.serverLink.payloads.length, 1, `response segments: ${pair.serverLink.payloads.join(', ')}`);
    socket.destroy();
  });

  it('keep-alive: a second request on the same connection is answered at once (no Nagle wait)', async function () {
    const server = http.createServer((_req, res) => res.end(Buffer.alloc(100, 'x')));
    cleanups.push(() => server.close());
    const port = await listenFor(server);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    (agent as unknown as { createConnection: () => NetSocket }).createConnection = () => pair.client.connect(port, '10.77.0.3');
    cleanups.push(() => agent.destroy());
    await get(port, agent);
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) assert.equal((await get(port, agent)).body.length, 100);
    const perRequest = (performance.now() - t0) / 5;
    // A body held by Nagle waits for the peer's delayed ACK (40 ms and more).
    assert.ok(perRequest < 20, `${perRequest.toFixed(1)} ms per request`);
  });

  it('tls.TLSSocket over facade sockets: a TLS server and client with a test CA', async function () {
    const key = readFileSync(join(TLS_DIR, 'server-key.pem'));
    const cert = readFileSync(join(TLS_DIR, 'server.pem'));
    const ca = readFileSync(join(TLS_DIR, 'ca.pem'));
    const tlsServer = tls.createServer({ key, cert }, (s) => {
      s.end(`hello ${s.servername ?? ''}`);
    });
    cleanups.push(() => tlsServer.close());
    const port = await listenFor(tlsServer);
    const raw = pair.client.connect(port, '10.77.0.3');
    const client = tls.connect({ socket: raw, servername: 'web', ca });
    cleanups.push(() => client.destroy());
    let text = '';
    client.setEncoding('utf8');
    client.on('data', (d: string) => (text += d));
    await once(client, 'secureConnect');
    assert.equal(client.authorized, true);
    await once(client, 'end');
    assert.equal(text, 'hello web');
  });

  it('corked writes of mixed sizes (small ones joined, large ones as they are) arrive whole and in order', async function () {
    const chunks = [Buffer.alloc(10, 1), Buffer.alloc(100_000, 2), Buffer.alloc(5, 3), Buffer.alloc(70_000, 4), Buffer.alloc(30_000, 5), Buffer.alloc(40_000, 6)];
    const expected = Buffer.concat(chunks);
    const received: Buffer[] = [];
    const listener = pair.server.createServer((s) => {
      s.on('data', (d: Buffer) => received.push(d));
      s.on('end', () => s.end());
    });
    listener.listen(0);
    await once(listener, 'listening');
    cleanups.push(() => listener.close());
    const c = pair.client.connect(listener.address()!.port, '10.77.0.3');
    await once(c, 'connect');
    c.cork();
    for (const chunk of chunks) c.write(chunk);
    c.uncork();
    c.end();
    c.resume();
    await once(c, 'close');
    assert.ok(Buffer.concat(received).equals(expected), `received ${Buffer.concat(received).length} of ${expected.length} bytes`);
  });

  it('127.0.0.1 is the host itself: a loopback listener takes its own host and refuses another', async function () {
    const listener = pair.server.createServer((s) => s.end('self'));
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    cleanups.push(() => listener.close());
    const port = listener.address()!.port;
    assert.equal(listener.address()!.address, '127.0.0.1');
    const self = pair.server.connect(port, '127.0.0.1');
    let text = '';
    self.setEncoding('utf8');
    self.on('data', (d: string) => (text += d));
    await once(self, 'end');
    assert.equal(text, 'self');
    const other = pair.client.connect(port, '10.77.0.3');
    const [err] = (await once(other, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
  });

  it('a facade socket has a writable server property, as Node sockets do', async function () {
    let accepted: NetSocket | undefined;
    const listener = pair.server.createServer((s) => (accepted = s));
    listener.listen(0);
    await once(listener, 'listening');
    cleanups.push(() => listener.close());
    const c = pair.client.connect(listener.address()!.port, '10.77.0.3');
    await once(listener, 'connection');
    assert.equal(accepted!.server, listener);
    const other = {};
    accepted!.server = other;
    assert.equal(accepted!.server, other);
    c.destroy();
    accepted!.destroy();
  });
});
