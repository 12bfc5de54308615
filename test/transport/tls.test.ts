// wss:// end to end: the relay serves TLS, RelayLink verifies it by CA or by a pinned
// certificate fingerprint, and sends nothing (no token) to a server it does not trust.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { startRelay, parseLaunch, parseManifest, isManifestError, isProtocolError, type Launch, type Provider, type Relay } from '../../relay/index.js';
import { silentLogger } from '../../relay/log.js';
import { skipOrFail } from '../support/require-all.js';
import { certSha256 } from '../../transport/dial.js';
import { RelayLink, isRelayLinkError } from '../../transport/relay-link.js';

interface Certs {
  dir: string;
  caCert: string;
  /** signed by the CA, for 127.0.0.1 */
  cert: string;
  key: string;
  /** self-signed, for 127.0.0.1 */
  selfCert: string;
  selfKey: string;
}

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function makeCerts(): Certs {
  const dir = mkdtempSync(join(tmpdir(), 'imach-tls-'));
  const ossl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ext = join(dir, 'san.cnf');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=imach test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'relay.key', '-out', 'relay.csr');
  ossl('x509', '-req', '-in', 'relay.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', 'relay.pem');
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', 'self.key', '-out', 'self.pem');
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  return { dir, caCert: read('ca.pem'), cert: read('relay.pem'), key: read('relay.key'), selfCert: read('self.pem'), selfKey: read('self.key') };
}

describe('transport over TLS (wss://)', function () {
  let certs: Certs;
  before(function () {
    if (!hasOpenssl()) skipOrFail(this, 'openssl is missing (Debian package openssl): the tests make their certificates with it');
    certs = makeCerts();
  });
  after(() => {
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  const relays: Relay[] = [];
  const links: RelayLink[] = [];
  afterEach(async () => {
    for (const l of links.splice(0)) l.close();
    for (const r of relays.splice(0)) await r.close();
  });

  async function relayWith(cert: string, key: string): Promise<Relay> {
    const r = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, secret: 'tls-test-secret', logger: silentLogger, tls: { cert, key } });
    relays.push(r);
    return r;
  }

  it('joins a relay whose certificate a given CA signed', async () => {
    const relay = await relayWith(certs.cert, certs.key);
    assert.match(relay.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
    const link = await RelayLink.connect({ url: relay.url, token: relay.mintToken('alpha', 60), tls: { ca: certs.caCert } });
    assert.ok(!isRelayLinkError(link), isRelayLinkError(link) ? link.message : '');
    links.push(link);
    assert.equal(link.welcome.host, 'alpha');
  });

  it('joins a self-signed relay by its pinned SHA-256 fingerprint, with no CA', async () => {
    const relay = await relayWith(certs.selfCert, certs.selfKey);
    const pin = certSha256(certs.selfCert);
    assert.equal(relay.certSha256, pin, 'the relay knows the fingerprint it pins in launches');
    // the colon form that openssl and browsers print is accepted too
    const colons = pin.toUpperCase().match(/../g)!.join(':');
    const link = await RelayLink.connect({ url: relay.url, token: relay.mintToken('beta', 60), tls: { certSha256: colons } });
    assert.ok(!isRelayLinkError(link), isRelayLinkError(link) ? link.message : '');
    links.push(link);
    assert.equal(link.welcome.host, 'beta');
  });

  it('refuses an unverified certificate, and a wrong pin, with a clear error', async () => {
    const relay = await relayWith(certs.selfCert, certs.selfKey);
    const unverified = await RelayLink.connect({ url: relay.url, token: relay.mintToken('gamma', 60), giveUpAfterMs: 0 });
    assert.ok(isRelayLinkError(unverified));
    assert.equal(unverified.kind, 'tls');
    assert.match(unverified.message, /not trusted/);
    const wrongPin = await RelayLink.connect({ url: relay.url, token: relay.mintToken('gamma', 60), tls: { certSha256: certSha256(certs.caCert) } });
    assert.ok(isRelayLinkError(wrongPin));
    assert.equal(wrongPin.kind, 'tls');
    assert.match(wrongPin.message, /does not match the pinned SHA-256 fingerprint/);
    const otherCa = await RelayLink.connect({ url: relay.url, token: relay.mintToken('gamma', 60), tls: { ca: certs.caCert } });
    assert.ok(isRelayLinkError(otherCa));
    assert.equal(otherCa.kind, 'tls');
    assert.equal(relay.counters().sessions, 0);
  });

  it('sends no byte (so no token) to a server whose certificate does not match the pin', async () => {
    let received = 0;
    let connections = 0;
    const server = createTlsServer({ cert: certs.selfCert, key: certs.selfKey }, (s) => {
      s.on('data', (d: Buffer) => (received += d.length));
      s.on('error', () => {});
    });
    server.on('connection', () => connections++);
    server.on('tlsClientError', () => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const r = await RelayLink.connect({ url: `wss://127.0.0.1:${port}`, token: 'imach1.secret.token', tls: { certSha256: certSha256(certs.caCert) } });
      assert.ok(isRelayLinkError(r));
      assert.equal(r.kind, 'tls');
      await new Promise((res) => setTimeout(res, 100));
      assert.equal(connections, 1, 'the client connected');
      assert.equal(received, 0, 'and then nothing was sent');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a host function the relay launches trusts the self-signed relay by the launch\'s pin alone', async () => {
    const run = join(certs.dir, 'app.js');
    writeFileSync(run, 'export default function () {}\n');
    const manifest = parseManifest(`hosts:\n  web:\n    run: ./app.js\n`, certs.dir);
    assert.ok(!isManifestError(manifest));
    const launches: Launch[] = [];
    const joined: RelayLink[] = [];
    const provider: Provider = {
      name: 'local',
      async start(launch) {
        launches.push(launch);
        // as hostfn's runtime does: the launch's pin is the link's only trust
        const link = await RelayLink.connect({ url: launch.relay, token: launch.token, tls: { certSha256: launch.relayCertSha256! }, giveUpAfterMs: 0 });
        if (isRelayLinkError(link)) throw new Error(link.message);
        joined.push(link);
        links.push(link);
        return { exited: link.ended.then(() => ({ code: 0, reason: 'closed' })), stop: async () => link.close() };
      },
    };
    const relay = await startRelay({ manifest, listen: { host: '127.0.0.1', port: 0 }, secret: 'tls-test-secret', logger: silentLogger, providers: { local: provider }, tls: { cert: certs.selfCert, key: certs.selfKey } });
    relays.push(relay);
    // a ping of the cold host is an allocation signal; its answer does not matter here
    relay.ping('web', 5000).catch(() => {});
    const end = Date.now() + 5000;
    while (joined.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(launches.length, 1);
    assert.match(launches[0]!.relay, /^wss:\/\//);
    assert.equal(launches[0]!.relayCertSha256, certSha256(certs.selfCert));
    assert.equal(joined.length, 1, 'the launched host joined');
    assert.equal(joined[0]!.welcome.host, 'web');
  });

  it('carries the pin in the launch: parseLaunch takes relayCertSha256 and refuses a malformed one', () => {
    const base = { host: 'web', relay: 'wss://relay:7000', token: 't', run: '/a.js', env: {}, idleMs: null, mtu: 1500 };
    const pin = 'ab'.repeat(32);
    const ok = parseLaunch({ ...base, relayCertSha256: pin });
    assert.ok(!isProtocolError(ok));
    assert.equal(ok.relayCertSha256, pin);
    const bad = parseLaunch({ ...base, relayCertSha256: 'abc' });
    assert.ok(isProtocolError(bad));
    assert.equal(bad.field, 'relayCertSha256');
  });
});
