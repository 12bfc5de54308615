// The codec against the `ws` package as an independent peer, both ways, and against raw
// bytes where ws cannot be made to misbehave.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { acceptKey, acceptUpgrade, isUpgradeRefusal, refuseUpgrade } from '../../transport/handshake.js';
import { dialWebSocket, isDialError, isLoopbackHost } from '../../transport/dial.js';
import type { MaskMode, WebSocketConnection } from '../../transport/websocket.js';
import { clientFrame } from '../support/ws-frames.js';

const PROTOCOL = 'imach.v1';
const MAX = 1000;

interface OurServer {
  url: string;
  /** close code and reason of each connection that ended */
  closes: { code: number; reason: string }[];
  conns: WebSocketConnection[];
  close(): Promise<void>;
}

/** Our server end on a Node http server: echoes binary and text, records closes. */
async function ourServer(): Promise<OurServer> {
  const server: Server = createServer((_req, res) => res.end());
  const closes: OurServer['closes'] = [];
  const conns: WebSocketConnection[] = [];
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const ws = acceptUpgrade(req, socket, head, { protocol: PROTOCOL, maxBinaryBytes: MAX, maxTextBytes: MAX });
    if (isUpgradeRefusal(ws)) return refuseUpgrade(socket, ws.status, ws.message, 'X-Test-Error', ws.headers);
    conns.push(ws);
    ws.start({
      binary: (views, length) => ws.sendBinary(views, length),
      text: (text) => {
        if (text === 'ping me') ws.ping(Buffer.from('srv'));
        else if (text.startsWith('close ')) ws.close(Number(text.slice(6)), 'asked to');
        else ws.sendText(text);
      },
      close: (code, reason) => closes.push({ code, reason }),
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/join`,
    closes,
    conns,
    close: async () => {
      for (const c of conns) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function wsClient(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, PROTOCOL);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function next<T>(ws: WebSocket, event: string, map: (...args: never[]) => T): Promise<T> {
  return new Promise((resolve) => ws.once(event, (...args: unknown[]) => resolve(map(...(args as never[])))));
}

function wsClosed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('transport/websocket: ws client against our server', () => {
  let srv: OurServer;
  const clients: WebSocket[] = [];
  beforeEach(async () => {
    srv = await ourServer();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.terminate();
    await srv.close();
  });
  async function client(): Promise<WebSocket> {
    const c = await wsClient(srv.url);
    clients.push(c);
    return c;
  }

  it('agrees on the subprotocol and echoes binary and text, pings both ways', async () => {
    const c = await client();
    assert.equal(c.protocol, PROTOCOL);
    const bin = next(c, 'message', (data: Buffer, isBinary: boolean) => ({ data, isBinary }));
    c.send(Buffer.from([1, 2, 3, 250]));
    assert.deepEqual(await bin, { data: Buffer.from([1, 2, 3, 250]), isBinary: true });
    const text = next(c, 'message', (data: Buffer, isBinary: boolean) => ({ text: data.toString(), isBinary }));
    c.send('héllo ✓');
    assert.deepEqual(await text, { text: 'héllo ✓', isBinary: false });
    const pong = next(c, 'pong', (data: Buffer) => data.toString());
    c.ping('abc');
    assert.equal(await pong, 'abc');
    const ping = next(c, 'ping', (data: Buffer) => data.toString());
    c.send('ping me');
    assert.equal(await ping, 'srv');
  });

  it('runs the close handshake with the client\'s code and reason, and with the server\'s', async () => {
    const c = await client();
    const closed = wsClosed(c);
    c.close(4001, 'going');
    assert.deepEqual(await closed, { code: 4001, reason: 'going' });
    await until(() => srv.closes.length === 1, 'server close');
    assert.deepEqual(srv.closes[0], { code: 4001, reason: 'going' });
    const d = await client();
    const closedD = wsClosed(d);
    d.send('close 4002');
    assert.deepEqual(await closedD, { code: 4002, reason: 'asked to' });
  });

  it('closes with 1009 on a message over the limit, 1007 on bad UTF-8, 1002 on an unmasked frame', async () => {
    const big = await client();
    const closedBig = wsClosed(big);
    big.send(Buffer.alloc(MAX + 1));
    assert.equal((await closedBig).code, 1009);
    const bad = await client();
    const closedBad = wsClosed(bad);
    // ws sends a Buffer as text without checking it
    bad.send(Buffer.from([0x61, 0xff]), { binary: false });
    assert.equal((await closedBad).code, 1007);
    const unmasked = await client();
    const closedUnmasked = wsClosed(unmasked);
    unmasked.send(Buffer.from([1]), { mask: false });
    assert.equal((await closedUnmasked).code, 1002);
    await until(() => srv.closes.length === 3, 'three server closes');
    assert.deepEqual(srv.closes.map((c) => c.code).sort(), [1002, 1007, 1009]);
  });

  it('drops a peer that sends a close frame and then never closes its end of TCP', async () => {
    const port = Number(new URL(srv.url).port);
    const events: string[] = [];
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () =>
      s.write(`GET /v1/join HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`),
    );
    try {
      s.once('data', () => s.write(clientFrame(8, Buffer.from([0x03, 0xe8]), { key: [9, 9, 9, 9] })));
      s.on('end', () => events.push('end'));
      s.on('error', () => {});
      const started = Date.now();
      // the default close timeout is 2 s
      await until(() => srv.closes.length === 1, 'the server to drop the half-closed connection', 4000);
      assert.ok(Date.now() - started >= 1500, 'not before the close timeout');
      assert.deepEqual(events, ['end'], 'the server ended its side first (RFC 6455 section 7.1.1)');
      assert.equal(srv.closes[0]!.code, 1000);
    } finally {
      s.destroy();
    }
  });

  it('refuses a bad upgrade: version 426, a missing key and a foreign subprotocol 400', async () => {
    const port = new URL(srv.url).port;
    const ask = (headers: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = connect(Number(port), '127.0.0.1', () => s.write(`GET /v1/join HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${headers}\r\n`));
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('close', () => resolve(got));
        s.on('error', reject);
      });
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const v12 = await ask(`Sec-WebSocket-Version: 12\r\nSec-WebSocket-Key: ${key}\r\n`);
    assert.match(v12, /^HTTP\/1.1 426 /);
    assert.match(v12, /Sec-WebSocket-Version: 13/);
    assert.match(await ask('Sec-WebSocket-Version: 13\r\n'), /^HTTP\/1.1 400 [\s\S]*X-Test-Error: Sec-WebSocket-Key/);
    assert.match(await ask(`Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Protocol: chat\r\n`), /^HTTP\/1.1 400 [\s\S]*subprotocol/);
    // RFC 6455 section 1.3: the example key and its accept value
    assert.equal(acceptKey(key), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('keeps a neighbouring session working while other connections send random and mutated frames', async () => {
    const neighbour = await client();
    let echoed = 0;
    neighbour.on('message', () => echoed++);
    let seed = 99;
    const rand = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const port = Number(new URL(srv.url).port);
    let sent = 0;
    for (let round = 0; round < 40; round++) {
      await new Promise<void>((resolve, reject) => {
        const s: Socket = connect(port, '127.0.0.1', () =>
          s.write(`GET /v1/join HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`),
        );
        s.once('data', () => {
          const frames: Buffer[] = [];
          for (let i = 0; i < 50; i++) {
            const payload = Buffer.alloc(Math.floor(rand() * 300), 0x61);
            const f = clientFrame([1, 2, 8, 9, 0, 5][Math.floor(rand() * 6)]!, payload, { key: [1, 2, 3, 4], fin: rand() < 0.9 });
            if (rand() < 0.5) f[Math.floor(rand() * Math.min(f.length, 14))] ^= 1 << Math.floor(rand() * 8);
            frames.push(f);
          }
          sent += frames.length;
          s.end(Buffer.concat(frames));
        });
        s.on('data', () => {});
        s.on('error', () => {});
        const timer = setTimeout(() => reject(new Error('fuzz connection not closed')), 5000);
        s.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      neighbour.send(Buffer.from([round]));
    }
    await until(() => echoed === 40, 'the neighbour\'s 40 echoes');
    assert.equal(sent, 2000);
    assert.equal(neighbour.readyState, WebSocket.OPEN);
    await until(() => srv.closes.length >= 40, 'fuzzed connections closed');
    // a violation's code, a close frame without a body (1005), or the end of the stream
    // without a close frame (1006): fuzzed close bodies are 'aa', an invalid code (1002)
    for (const c of srv.closes) assert.ok([1002, 1005, 1006, 1007, 1009].includes(c.code), `code ${c.code}`);
    assert.ok(srv.closes.filter((c) => c.code === 1002).length > 10, 'protocol errors among them');
  });
});

describe('transport/websocket: our client against a ws server', () => {
  let wss: WebSocketServer;
  let url: string;
  const serverSide: WebSocket[] = [];
  const ours: WebSocketConnection[] = [];
  beforeEach(async () => {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: MAX, handleProtocols: (p) => (p.has(PROTOCOL) ? PROTOCOL : false) });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v1/join`;
    wss.on('connection', (ws) => {
      serverSide.push(ws);
      ws.on('error', () => {});
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  afterEach(async () => {
    for (const c of ours.splice(0)) c.terminate();
    for (const s of serverSide.splice(0)) s.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
  });

  async function dial(mask?: MaskMode): Promise<WebSocketConnection> {
    const c = await dialWebSocket({ url, protocol: PROTOCOL, maxBinaryBytes: MAX, maxTextBytes: MAX, ...(mask ? { mask } : {}) });
    if (isDialError(c)) throw new Error(c.message);
    ours.push(c);
    return c;
  }

  for (const mask of ['random', 'zero'] as const) {
    it(`echoes binary (as views, gathered) and text with ${mask} masks; ping gets a pong`, async () => {
      const c = await dial(mask);
      assert.equal(c.masksRandomly, mask === 'random');
      const got: (Buffer | string)[] = [];
      const pongs: string[] = [];
      c.start({ binary: (views) => got.push(Buffer.concat(views)), text: (t) => got.push(t), pong: (p) => pongs.push(Buffer.from(p).toString()) });
      const a = Buffer.from([1, 2, 3]);
      const b = Buffer.alloc(300, 7);
      c.sendBinary([a, b], 303);
      c.sendText('héllo ✓');
      c.ping(Buffer.from('hi'));
      await until(() => got.length === 2 && pongs.length === 1, 'echoes and pong');
      assert.deepEqual(got[0], Buffer.concat([a, b]));
      assert.equal(got[1], 'héllo ✓');
      assert.deepEqual(pongs, ['hi']);
      assert.deepEqual(a, Buffer.from([1, 2, 3]), 'the caller\'s views are not masked in place');
      assert.deepEqual(b, Buffer.alloc(300, 7));
    });
  }

  it('takes the server\'s close code and reason, and closes 1009 when the server refuses a big message', async () => {
    const c = await dial();
    const closes: [number, string][] = [];
    c.start({ close: (code, reason) => closes.push([code, reason]) });
    await until(() => serverSide.length === 1, 'server side');
    serverSide[0]!.close(4000, 'replaced');
    await until(() => closes.length === 1, 'close');
    assert.deepEqual(closes[0], [4000, 'replaced']);
    const d = await dial();
    d.start({ close: (code, reason) => closes.push([code, reason]) });
    d.sendBinary([Buffer.alloc(MAX + 1)], MAX + 1);
    await until(() => closes.length === 2, 'close after the big message');
    assert.equal(closes[1]![0], 1009);
  });

  it('fails with 1002 on a masked frame from the server and 1007 on bad UTF-8 from it', async () => {
    const c = await dial();
    const closes: number[] = [];
    c.start({ close: (code) => closes.push(code) });
    await until(() => serverSide.length === 1, 'server side');
    const s0 = serverSide[0]!;
    const s0closed = new Promise<number>((r) => s0.once('close', (code: number) => r(code)));
    s0.send(Buffer.from([1]), { mask: true });
    assert.equal(await s0closed, 1002);
    await until(() => closes.length === 1, 'close');
    assert.equal(closes[0], 1002);
    const d = await dial();
    d.start({ close: (code) => closes.push(code) });
    await until(() => serverSide.length === 2, 'second server side');
    const s1 = serverSide[1]!;
    const s1closed = new Promise<number>((r) => s1.once('close', (code: number) => r(code)));
    s1.send(Buffer.from([0x61, 0xc3]), { binary: false });
    assert.equal(await s1closed, 1007);
    assert.equal(d.counters.protocolErrors, 1);
  });

  it('reports a refusal with its status and error header, and a wrong subprotocol or accept as a protocol error', async () => {
    const refusing = createServer((_req, res) => res.end());
    refusing.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      if (req.url === '/no') return refuseUpgrade(socket, 403, 'unknown host: x', 'X-Imach-Error');
      const accept = req.url === '/badaccept' ? 'AAAA' : acceptKey(String(req.headers['sec-websocket-key']));
      socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${req.url === '/badproto' ? 'chat' : PROTOCOL}\r\n\r\n`);
    });
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    const base = `ws://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
    try {
      const opts = { protocol: PROTOCOL, maxBinaryBytes: MAX, maxTextBytes: MAX, errorHeader: 'X-Imach-Error' };
      const no = await dialWebSocket({ url: `${base}/no`, ...opts });
      assert.ok(isDialError(no));
      assert.deepEqual([no.kind, no.status, no.reason], ['http', 403, 'unknown host: x']);
      const badAccept = await dialWebSocket({ url: `${base}/badaccept`, ...opts });
      assert.ok(isDialError(badAccept));
      assert.equal(badAccept.kind, 'protocol');
      assert.match(badAccept.message, /Sec-WebSocket-Accept/);
      const badProto = await dialWebSocket({ url: `${base}/badproto`, ...opts });
      assert.ok(isDialError(badProto));
      assert.match(badProto.message, /subprotocol chat/);
    } finally {
      refusing.closeAllConnections();
      await new Promise<void>((r) => refusing.close(() => r()));
    }
  });
});

describe('transport/websocket: masking keys on the wire', () => {
  it('mask random: a fresh key per frame, the payload masked; the default to a loopback address: the zero key', async () => {
    assert.ok(isLoopbackHost('127.0.0.1') && isLoopbackHost('[::1]') && isLoopbackHost('localhost'));
    assert.ok(!isLoopbackHost('10.0.0.1') && !isLoopbackHost('relay.example.com') && !isLoopbackHost('128.0.0.1'));
    const server = createTcpServer();
    const keys: string[] = [];
    let payloadSeen = '';
    server.on('connection', (s) => {
      let buf = Buffer.alloc(0);
      let upgraded = false;
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (!upgraded) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const key = /sec-websocket-key: (\S+)/i.exec(buf.subarray(0, end).toString())![1]!;
          s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\nSec-WebSocket-Protocol: ${PROTOCOL}\r\n\r\n`);
          upgraded = true;
          buf = buf.subarray(end + 4);
        }
        // frames of 4 payload bytes: 2 header bytes, 4 key bytes, 4 payload bytes
        while (buf.length >= 10) {
          keys.push(buf.subarray(2, 6).toString('hex'));
          payloadSeen += buf.subarray(6, 10).toString('hex');
          buf = buf.subarray(10);
        }
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      for (const [mask, expectRandom] of [[undefined, false], ['random', true]] as const) {
        keys.length = 0;
        const c = await dialWebSocket({ url: `ws://127.0.0.1:${port}/`, protocol: PROTOCOL, maxBinaryBytes: MAX, maxTextBytes: MAX, ...(mask ? { mask } : {}) });
        assert.ok(!isDialError(c));
        c.start({});
        for (let i = 0; i < 8; i++) c.sendBinary([Buffer.from([0, 0, 0, 0])], 4);
        await until(() => keys.length === 8, 'eight frames');
        if (expectRandom) {
          assert.equal(new Set(keys).size, 8, 'a different key for every frame');
          assert.ok(!keys.includes('00000000'));
          assert.notEqual(payloadSeen.slice(-64), '0'.repeat(64), 'the payload is masked on the wire');
        } else {
          assert.deepEqual(new Set(keys), new Set(['00000000']), 'loopback: the zero key');
        }
        c.terminate();
      }
    } finally {
      server.close();
    }
  });
});
