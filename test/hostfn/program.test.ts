// `command:` hosts: ordinary Node programs (ES module and CommonJS, named imports of
// builtins) run as hosts by the local provider with the register module, started cold
// by a test host's first connect; lifecycle (SIGTERM on drain, exit releases the host).

import assert from 'node:assert/strict';
import { joinTestHost, startE2eApp, waitFor, type E2eApp, type TestHost } from '../support/e2e-harness.js';
import type { NetApi } from '../../netstack/api/net.js';

/** One HTTP/1.1 request over a facade socket; resolves with the whole response text. */
export function rawHttpGet(net: NetApi, host: string, port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('error', reject);
    s.on('end', () => resolve(text));
    s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

const ESM_SERVER = `
import { createServer } from 'node:http';
import { networkInterfaces } from 'node:os';
import dns from 'node:dns/promises';
import { Resolver } from 'node:dns';
import { connect } from 'node:net';
const server = createServer(async (req, res) => {
  if (req.url === '/names') {
    const r = new Resolver();
    r.resolve4('cjs.imach', (err, addresses) => {
      dns.lookup('nosuchhost').catch((e) => {
        const c = connect(8080, 'nosuchhost');
        c.on('error', (e2) => res.end([err?.code ?? addresses.join(','), e.code, e.hostname, e2.code].join(' ')));
      });
    });
  } else if (req.url === '/whoami') {
    const self = await dns.lookup('web');
    res.end('esm ' + self.address + ' ' + server.address().port);
  } else res.end('esm ' + req.url);
});
server.listen(8080, () => console.log('listening on', server.address().port));
process.on('SIGTERM', () => {
  console.log('SIGTERM: closing');
  server.close(() => console.log('closed'));
});
`;

const CJS_SERVER = `
const http = require('http');
const net = require('net');
const server = net.createServer((s) => s.end('cjs raw\\n'));
server.listen(7000, '0.0.0.0');
http.createServer((req, res) => res.end('cjs ' + req.url)).listen(8080);
`;

const SELF_CLIENT = `
import { createServer, connect } from 'node:net';
// A program that talks to itself over its loopback, then exits: the host is released.
const server = createServer((s) => s.end('to myself'));
server.listen(9000, '127.0.0.1', () => {
  const c = connect(9000, 'localhost');
  let got = '';
  c.setEncoding('utf8');
  c.on('data', (d) => (got += d));
  c.on('end', () => {
    console.log('self said: ' + got);
    server.close();
  });
});
`;

const EGRESS_NONE = `
import net from 'node:net';
const server = net.createServer((s) => {
  const c = net.connect(80, '192.0.2.1');
  c.on('error', (e) => s.end(e.code + ' ' + e.address + ':' + e.port + ' ' + /egress/.test(e.message)));
});
server.listen(7000);
`;

const REAL_PORT_MODULE = `
import http from 'node:http';
export default async function ({ net }) {
  // By mistake: Node's own http binds a port of the real machine.
  http.createServer((_q, r) => r.end('unreachable')).listen(0, '127.0.0.1');
  net.createServer((s) => s.end('on the stack')).listen(7000);
}
`;

const MANIFEST = `
hosts:
  mistaken:
    run: ./real-port.mjs
    address: 10.77.0.9
    idle: 60s
  web:
    command: node esm-server.mjs
    address: 10.77.0.5
    idle: 1s
  cjs:
    command: [node, cjs-server.cjs]
    address: 10.77.0.6
    idle: 60s
  self:
    command: node self-client.mjs
    address: 10.77.0.7
    idle: 60s
  walled:
    command: node egress-none.mjs
    address: 10.77.0.8
    egress: none
    idle: 60s
`;

describe('command: hosts (ordinary Node programs)', function () {
  this.timeout(30_000);
  let app: E2eApp;
  let me: TestHost;

  before(async function () {
    app = await startE2eApp(MANIFEST, {
      'esm-server.mjs': ESM_SERVER,
      'cjs-server.cjs': CJS_SERVER,
      'self-client.mjs': SELF_CLIENT,
      'egress-none.mjs': EGRESS_NONE,
      'real-port.mjs': REAL_PORT_MODULE,
    });
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
  });

  after(async function () {
    me?.close();
    await app?.close();
  });

  it('an ES module program with named imports answers the connect that started it cold', async function () {
    const res = await rawHttpGet(me.net, 'web', 8080, '/whoami');
    assert.match(res, /^HTTP\/1\.1 200 OK/);
    assert.match(res, /esm 10\.77\.0\.5 8080$/);
    assert.ok(app.output.some((l) => l === 'web: listening on 8080'), app.output.join('\n'));
  });

  it('dns: a Resolver finds overlay names, unknown names are ENOTFOUND for lookup and connect', async function () {
    const res = await rawHttpGet(me.net, 'web', 8080, '/names');
    assert.match(res, /10\.77\.0\.6 ENOTFOUND nosuchhost ENOTFOUND$/);
  });

  it('a CommonJS program: net and http servers on the same host', async function () {
    const res = await rawHttpGet(me.net, '10.77.0.6', 8080, '/x');
    assert.match(res, /cjs \/x$/);
    const raw = await new Promise<string>((resolve, reject) => {
      const s = me.net.connect({ host: '10.77.0.6', port: 7000 });
      let t = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (t += d));
      s.on('end', () => resolve(t));
      s.on('error', reject);
    });
    assert.equal(raw, 'cjs raw\n');
  });

  it('a drain delivers SIGTERM to the program, whose handler runs', async function () {
    await rawHttpGet(me.net, 'web', 8080, '/again');
    await waitFor(() => app.output.includes('web: SIGTERM: closing'), 'the SIGTERM handler (idle 1s)', 15_000);
    await waitFor(() => app.output.includes('web: closed'), 'the server closed');
  });

  it('localhost is the host itself, and the program exiting releases the host', async function () {
    // A ping starts the host (an allocation signal); the program exits on its own.
    await me.ping('10.77.0.7').catch(() => 0);
    await waitFor(() => app.output.includes('self: self said: to myself'), 'the self connection');
    await waitFor(() => app.output.some((l) => /^self: .*host ended.*program exited/.test(l)), 'the host released');
  });

  it('a run: module that binds a real port by mistake gets a warning in its log', async function () {
    await me.ping('10.77.0.9').catch(() => 0);
    await waitFor(() => app.output.some((l) => /^mistaken: .*listens on a port of the real machine.*127\.0\.0\.1:\d+/.test(l)), 'the warning');
  });

  it('egress: none refuses addresses outside the overlay with ENETUNREACH and a clear message', async function () {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = me.net.connect({ host: '10.77.0.8', port: 7000 });
      let t = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (t += d));
      s.on('end', () => resolve(t));
      s.on('error', reject);
    });
    assert.equal(raw, 'ENETUNREACH 192.0.2.1:80 true');
  });
});
