import assert from 'node:assert/strict';
import { joinTestHost, startE2eApp, waitFor, type E2eApp, type TestHost } from '../support/e2e-harness.js';

// Echoes lines; the line "crash" ends the whole host process at once, as a crash would.
const CRASHER = `export default ({ net }) => {
  net.createServer((s) => {
    s.on('error', () => {});
    s.setEncoding('utf8');
    s.on('data', (d) => {
      if (d.includes('crash')) process.exit(3);
      s.write(d);
    });
  }).listen(7000);
};
`;

const THROWER = `export default () => { throw new Error('config missing: DATABASE_URL'); };
`;

const MANIFEST = `network: 10.77.0.0/16
hosts:
  crasher:
    run: ./crasher.mjs
    address: 10.77.0.20
    idle: 60s
  thrower:
    run: ./thrower.mjs
    address: 10.77.0.21
`;

type Socket = ReturnType<TestHost['net']['connect']>;

function connect(h: TestHost, host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = h.net.connect({ host, port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function nextData(s: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.once('error', reject);
  });
}

function connectError(h: TestHost, host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = h.net.connect({ host, port });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('e2e: failures as users meet them', function () {
  this.timeout(60_000);
  let app: E2eApp;
  let me: TestHost;

  before(async () => {
    // the reconnect window is also how long after its start the relay holds segments of
    // connections a host from before a relay restart may own: short, so the test need not wait
    app = await startE2eApp(MANIFEST, { 'crasher.mjs': CRASHER, 'thrower.mjs': THROWER }, { limits: { reconnectHoldMs: 500 } });
    me = await joinTestHost(app.relay.url, app.relay.mintToken('tester', 3600));
  });
  after(async () => {
    me?.close();
    await app?.close();
  });

  const host = (name: string) => app.relay.hosts().find((h) => h.name === name)!;

  it('a peer of a host whose app crashed gets ECONNRESET at once on its next write (RST for the dead instance)', async () => {
    const kept = await connect(me, 'crasher', 7000);
    kept.write('hello\n');
    assert.equal(await nextData(kept), 'hello\n');
    // a delayed ACK of kept's may reach the relay after the crash and be reset already
    let wrote = false;
    const reset = new Promise<NodeJS.ErrnoException>((resolve) => kept.on('error', resolve));
    const killer = await connect(me, 'crasher', 7000);
    killer.on('error', () => {});
    killer.write('crash\n');
    await waitFor(() => host('crasher').state === 'cold', 'crasher released after its crash', 20_000);
    const t0 = performance.now();
    if (!kept.destroyed) {
      wrote = true;
      kept.write('anyone there?\n');
    }
    const err = await reset;
    const ms = performance.now() - t0;
    assert.equal(err.code, 'ECONNRESET');
    // not a retransmission timeout: the first segment after the crash is answered
    if (wrote) assert.ok(ms < 500, `reset after ${Math.round(ms)}ms`);
    assert.ok((app.relay.counters()['hosts.crasher.stale-rst'] ?? 0) >= 1, JSON.stringify(app.relay.counters()));
    killer.destroy();
    kept.destroy();
  });

  it('an app that throws at start is failed with backoff, not restarted on every SYN', async () => {
    const codes: string[] = [];
    const end = Date.now() + 6000;
    while (Date.now() < end) {
      codes.push(await connectError(me, 'thrower', 80));
      await new Promise((r) => setTimeout(r, 100));
    }
    const h = host('thrower');
    // backoff 1 s, 2 s, 4 s: starts at about 0, 1 and 3 s into the window
    assert.ok(h.starts >= 2 && h.starts <= 4, `${h.starts} starts in 6 s`);
    assert.ok(codes.length >= 10, `${codes.length} connects`);
    assert.ok(codes.every((c) => c === 'EHOSTUNREACH'), codes.join(','));
    assert.equal(h.state, 'failed');
    assert.match(h.lastReason, /failed: app failed at start: app threw: config missing: DATABASE_URL/);
    const events = app.relay.events().filter((e) => e.host === 'thrower');
    const failed = events.filter((e) => e.type === 'failed');
    const started = events.filter((e) => e.type === 'started');
    assert.equal(failed.length, h.starts);
    assert.equal(started.length, h.starts);
    // each restart waits out the backoff after the failure before it: 1 s, then 2 s
    for (let i = 1; i < started.length; i++) {
      const waited = Date.parse(started[i].time) - Date.parse(failed[i - 1].time);
      assert.ok(waited >= 1000 * 2 ** (i - 1), `start ${i + 1} came ${waited} ms after failure ${i}`);
    }
  });
});
