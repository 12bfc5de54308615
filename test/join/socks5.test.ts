// The SOCKS5 proxy of `imach join --userspace`, with the kernel's loopback TCP as the dialer
// (the userspace stack is swapped in by the session; see userspace.test.ts).

import assert from 'node:assert/strict';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { SOCKS_REPLY, Socks5Server, encodeReply, parseGreeting, parseRequest, replyForError, type Dial } from '../../join/socks5.js';
import { encodeDomainRequest, exchange, socksConnect } from '../support/join-socks-client.js';

describe('join: SOCKS5 codec', function () {
  it('parses a greeting once it is complete', function () {
    assert.deepEqual(parseGreeting(Uint8Array.from([5])), { need: true });
    assert.deepEqual(parseGreeting(Uint8Array.from([5, 2, 0])), { need: true });
    assert.deepEqual(parseGreeting(Uint8Array.from([5, 2, 0, 2])), { methods: [0, 2], length: 4 });
    assert.ok('error' in parseGreeting(Uint8Array.from([4, 1, 0])));
    assert.ok('error' in parseGreeting(Uint8Array.from([5, 0])));
  });

  it('parses CONNECT requests for IPv4, names and IPv6', function () {
    assert.deepEqual(parseRequest(Uint8Array.from([5, 1, 0, 1, 10, 77, 0, 11, 0, 80])), {
      command: 1, addressType: 1, host: '10.77.0.11', port: 80, length: 10,
    });
    const named = parseRequest(encodeDomainRequest('web.imach', 8080));
    assert.ok('host' in named);
    assert.equal(named.host, 'web.imach');
    assert.equal(named.port, 8080);
    const v6 = parseRequest(Uint8Array.from([5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1, 0, 22]));
    assert.ok('host' in v6);
    assert.equal(v6.host, '2001:db8:0:0:0:0:0:1');
    assert.deepEqual(parseRequest(encodeDomainRequest('web.imach', 80).subarray(0, 8)), { need: true });
  });

  it('refuses unknown address types with reply 8', function () {
    const r = parseRequest(Uint8Array.from([5, 1, 0, 9, 0, 0]));
    assert.ok('error' in r);
    assert.equal(r.reply, SOCKS_REPLY.addressTypeNotSupported);
  });

  it('encodes replies with the bound address and maps dial errors to reply codes', function () {
    assert.deepEqual(Array.from(encodeReply(0, { address: '10.77.0.200', port: 0x1234 })), [5, 0, 0, 1, 10, 77, 0, 200, 0x12, 0x34]);
    assert.equal(replyForError('ECONNREFUSED'), SOCKS_REPLY.connectionRefused);
    assert.equal(replyForError('EHOSTUNREACH'), SOCKS_REPLY.hostUnreachable);
    assert.equal(replyForError('ENOTFOUND'), SOCKS_REPLY.hostUnreachable);
    assert.equal(replyForError('EACCES'), SOCKS_REPLY.notAllowed);
    assert.equal(replyForError(undefined), SOCKS_REPLY.generalFailure);
  });
});

describe('join: SOCKS5 server', function () {
  let echo: net.Server;
  let echoPort: number;
  let proxy: Socks5Server;
  const dialed: string[] = [];
  const sockets: net.Socket[] = [];

  const dial: Dial = ({ host, port }) => {
    dialed.push(`${host}:${port}`);
    if (host === 'refused.imach') return Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
    return new Promise<Duplex>((resolve, reject) => {
      const s = net.connect(echoPort, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
  };

  before(async function () {
    echo = net.createServer((s) => {
      s.on('error', () => {});
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as net.AddressInfo).port;
    proxy = await Socks5Server.start({ dial, port: 0, handshakeTimeoutMs: 2000 });
  });

  after(async function () {
    for (const s of sockets) s.destroy();
    await proxy.close();
    await new Promise<void>((r) => echo.close(() => r()));
  });

  it('connects by name and carries data both ways, including bytes sent with the request', async function () {
    const request = Buffer.concat([encodeDomainRequest('web.imach', 80), Buffer.from('early ')]);
    const r = await socksConnect(proxy.address, 'web.imach', 80, request);
    sockets.push(r.socket);
    assert.equal(r.reply, SOCKS_REPLY.succeeded);
    const back = await exchange(r.socket, 'hello', r.rest);
    assert.equal(back, 'early hello');
    assert.ok(dialed.includes('web.imach:80'));
  });

  it('answers a refused connection with reply 5', async function () {
    const r = await socksConnect(proxy.address, 'refused.imach', 80);
    sockets.push(r.socket);
    assert.equal(r.reply, SOCKS_REPLY.connectionRefused);
    assert.ok(proxy.counters.drops.dialFailed >= 1);
  });

  it('answers BIND and UDP ASSOCIATE with reply 7 and never dials', async function () {
    const before = dialed.length;
    const r = await socksConnect(proxy.address, 'web.imach', 80, encodeDomainRequest('web.imach', 80, 2));
    sockets.push(r.socket);
    assert.equal(r.reply, SOCKS_REPLY.commandNotSupported);
    assert.equal(dialed.length, before);
  });

  it('answers a client offering only username/password with 0xFF', async function () {
    const s = net.connect(proxy.address.port, proxy.address.host);
    sockets.push(s);
    const got = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('close', () => resolve(Buffer.concat(chunks)));
      s.on('error', reject);
      s.write(Buffer.from([5, 1, 2]));
    });
    assert.deepEqual(Array.from(got), [5, 0xff]);
  });

  it('closes a client that is not speaking SOCKS5 and counts it', async function () {
    const s = net.connect(proxy.address.port, proxy.address.host);
    sockets.push(s);
    await new Promise<void>((resolve) => {
      s.on('close', () => resolve());
      s.on('error', () => {});
      s.write('GET / HTTP/1.1\r\n\r\n');
    });
    assert.ok(proxy.counters.drops.badGreeting >= 1);
  });
});
