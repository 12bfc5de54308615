// The TUN addon and `imach join` against the Linux kernel, each inside a network namespace
// created for the test and removed after it.

import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JOIN_EXIT } from '../../cli/join.js';
import { TUN_TX_QUEUE_LEN } from '../../join/join-session.js';
import { Fixture, NetNs, exec, fixturePath, tunTestBlocker, type Exec } from '../support/join-netns.js';
import { skipOrFail } from '../support/require-all.js';

/**
 * node -e: `n` connects to `address`:9 at once; exits 0 once every one has an answer (or
 * after 10 s), 3 if a socket could not be opened (EMFILE).
 */
const CONNECT_BURST = `const net = require('net');
const [address, n] = [process.argv[1], Number(process.argv[2])];
let settled = 0;
const done = (e) => {
  if (e && e.code === 'EMFILE') { console.log('EMFILE'); process.exit(3); }
  if (++settled === n) process.exit(0);
};
for (let i = 0; i < n; i++) {
  const s = net.connect({ host: address, port: 9 });
  s.on('error', done);
  s.on('connect', () => (s.destroy(), done()));
}
setTimeout(() => process.exit(0), 10000);`;

const cliPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

describe('join: TUN device in a network namespace', function () {
  let ns: NetNs | null = null;
  let fixture: Fixture | null = null;

  before(async function () {
    const blocker = await tunTestBlocker({ needPing: true });
    if (blocker) {
      skipOrFail(this, blocker);
    }
  });

  beforeEach(async function () {
    const made = await NetNs.create();
    if (typeof made === 'string') {
      skipOrFail(this, made);
    }
    ns = made as NetNs;
  });

  afterEach(async function () {
    if (fixture) await fixture.stop();
    fixture = null;
    if (ns) await ns.remove();
    ns = null;
  });

  it('answers ping through the device, then removes the device and its route on close', async function () {
    const n = ns!;
    fixture = Fixture.spawn(n, ['echo', 'imtun0', '10.77.0.2', '10.77.0.0/16']);
    const ready = await fixture.waitFor((o) => o.ready === true, 'the device was ready');
    assert.equal(ready.name, 'imtun0');

    const route = await n.ip(['route', 'show', '10.77.0.0/16']);
    assert.match(route.stdout, /dev imtun0/);
    assert.match(route.stdout, /src 10\.77\.0\.2/);

    const ping = await n.exec('ping', ['-c', '3', '-i', '0.2', '-W', '5', '10.77.0.9']);
    assert.equal(ping.code, 0, `ping failed: ${ping.stdout}${ping.stderr}`);
    assert.match(ping.stdout, /3 packets transmitted, 3 received/);

    fixture.child.stdin.end();
    const closed = await fixture.waitFor((o) => o.closed === true, 'the device was closed');
    assert.ok((closed.echoed as number) >= 3, `echoed ${String(closed.echoed)}`);
    assert.equal(closed.exists, false);
    assert.equal(await fixture.exited, 0);
    assert.equal(await n.linkExists('imtun0'), false);
    assert.equal((await n.ip(['route', 'show', '10.77.0.0/16'])).stdout.trim(), '');
  });

  it('the kernel removes the device when its process is killed', async function () {
    const n = ns!;
    fixture = Fixture.spawn(n, ['echo', 'imtun1', '10.77.0.3', '10.77.0.0/16']);
    await fixture.waitFor((o) => o.ready === true, 'the device was ready');
    assert.equal(await n.linkExists('imtun1'), true);
    await fixture.stop('SIGKILL');
    assert.equal(await n.linkExists('imtun1'), false);
  });

  it('reports failures as errno codes and counts failed writes', async function () {
    const n = ns!;
    fixture = Fixture.spawn(n, ['errors', 'imtun2']);
    const r = await fixture.waitFor((o) => 'sameNameTwice' in o || 'error' in o, 'the error report');
    assert.equal(r.error, undefined, `fixture failed: ${String(r.error)}`);
    assert.equal(r.longName, 'ERR_OUT_OF_RANGE');
    assert.equal(r.name, 'imtun2');
    assert.equal(r.sameNameTwice, 'EBUSY');
    const stats = r.stats as { writeErrors: Record<string, number>; drops: Record<string, number>; packetsOut: number };
    // a packet whose version nibble is neither 4 nor 6 is refused by the kernel
    assert.equal(stats.writeErrors.EINVAL, 1);
    assert.equal(stats.drops['write-error'], 1);
    assert.equal(stats.drops.empty, 1);
    assert.equal(stats.packetsOut, 0);
    assert.equal(r.afterClose, 1);
    assert.equal(r.existsAfterClose, false);
    assert.match(String(r.patternName), /^imt\d+$/);
  });

  it('imach join carries ping to the relay and back, refuses a bad token, and cleans up on SIGTERM', async function () {
    const n = ns!;
    fixture = Fixture.spawn(n, ['join', 'imjoin0']);
    const ready = await fixture.waitFor((o) => o.ready === true || 'exit' in o || 'error' in o, 'join was up');
    assert.equal(ready.ready, true, `join did not come up: ${JSON.stringify(ready)} ${fixture.stderr}`);
    const lines = (ready.lines as string[]).join('\n');
    assert.match(lines, /address 10\.77\.0\.200/);
    assert.match(lines, /route 10\.77\.0\.0\/16 via imjoin0/);
    assert.match(lines, /dig @10\.77\.0\.1 web\.imach/);

    const ping = await n.exec('ping', ['-c', '3', '-i', '0.2', '-W', '5', '10.77.0.1']);
    assert.equal(ping.code, 0, `ping failed: ${ping.stdout}${ping.stderr}`);
    assert.match(ping.stdout, /3 packets transmitted, 3 received/);

    fixture.child.kill('SIGTERM');
    const end = await fixture.waitFor((o) => 'exit' in o, 'join ended');
    assert.equal(end.exit, 0);
    assert.equal(end.refused, 4);
    assert.equal(end.exists, false);
    assert.ok((end.echoed as number) >= 3, `relay echoed ${String(end.echoed)}`);
    assert.equal(await fixture.exited, 0);
    assert.equal(await n.linkExists('imjoin0'), false);
  });
});

describe('join: imach join with the real relay, in a network namespace', function () {
  let ns: NetNs | null = null;
  let fixture: Fixture | null = null;

  before(async function () {
    const blocker = await tunTestBlocker({ needPing: true });
    if (blocker) {
      skipOrFail(this, blocker);
    }
    const made = await NetNs.create();
    if (typeof made === 'string') {
      skipOrFail(this, made);
    }
    ns = made as NetNs;
  });

  after(async function () {
    if (fixture) await fixture.stop();
    if (ns) await ns.remove();
  });

  it('a SOCKS5 client of `join --userspace` (netstack) reaches a kernel TCP server joined through TUN', async function () {
    const n = ns!;
    fixture = Fixture.spawn(n, ['interop', 'iminterop0']);
    const r = await fixture.waitFor((o) => o.interop === true || 'error' in o, 'the interop report');
    assert.equal(r.error, undefined, `${String(r.error)} ${fixture.stderr}`);
    assert.notEqual(r.tunAddress, r.userspaceAddress);
    assert.equal(r.reply, 0);
    assert.equal(r.echoedBytes, 100_000);
    assert.equal(r.echoedIntact, true);
    // the kernel answers a closed port with RST: ECONNREFUSED, SOCKS5 reply 5
    assert.equal(r.refusedReply, 5);
    assert.equal(await fixture.exited, 0);
    assert.equal(await n.linkExists('iminterop0'), false);
    fixture = null;
  });

  it('the kernel reaches the gateway (ping, DNS) and the relay reaches the joined address', async function () {
    const n = ns!;
    fixture = Fixture.spawn(n, ['relay', 'imrelay0']);
    const ready = await fixture.waitFor((o) => o.ready === true || 'exit' in o || 'error' in o, 'join was up');
    assert.equal(ready.ready, true, `join did not come up: ${JSON.stringify(ready)} ${fixture.stderr}`);
    const address = ready.address as string;
    assert.match(address, /^10\.77\.\d+\.\d+$/);
    assert.match((ready.lines as string[]).join('\n'), new RegExp(`address ${address.replace(/\./g, '\\.')}`));
    assert.equal((ready.pinged as { address?: string }).address, address, JSON.stringify(ready.pinged));
    assert.deepEqual(ready.resolved, [address]);

    const ping = await n.exec('ping', ['-c', '2', '-i', '0.2', '-W', '5', ready.gateway as string]);
    assert.equal(ping.code, 0, `ping failed: ${ping.stdout}${ping.stderr}`);

    // The device's queue holds a burst of 5,000 connects (5,000 SYNs from the kernel at
    // once, to an address without a host): Linux's default of 500 drops most of them.
    const stat = async (name: string) => {
      const r = await n.exec('cat', [`/sys/class/net/imrelay0/${name}`]);
      assert.equal(r.code, 0, r.stderr);
      return Number(r.stdout.trim());
    };
    assert.equal(await stat('tx_queue_len'), TUN_TX_QUEUE_LEN);
    const sentBefore = await stat('statistics/tx_packets');
    const burst = await n.exec(process.execPath, ['-e', CONNECT_BURST, '10.77.250.250', '5000']);
    assert.equal(burst.code, 0, `the burst could not open its sockets (node raises its file limit to the hard limit): ${burst.stdout}${burst.stderr}`);
    assert.ok((await stat('statistics/tx_packets')) - sentBefore >= 5000, 'the burst went through the device');
    assert.equal(await stat('statistics/tx_dropped'), 0, 'packets dropped on the device\'s queue');

    fixture.child.kill('SIGTERM');
    const end = await fixture.waitFor((o) => 'exit' in o, 'join ended');
    assert.equal(end.exit, 0);
    assert.equal(end.exists, false);
    assert.equal(await n.linkExists('imrelay0'), false);
  });
});

describe('join: without /dev/net/tun (hidden in a private mount namespace)', function () {
  let ns: NetNs | null = null;

  before(async function () {
    const blocker = await tunTestBlocker();
    const unshare = blocker ? null : await exec('unshare', ['--version']);
    const reason = blocker ?? (unshare && unshare.code !== 0 ? 'unshare (util-linux) is missing' : null);
    if (reason) {
      skipOrFail(this, reason);
    }
    const made = await NetNs.create();
    if (typeof made === 'string') {
      skipOrFail(this, made);
    }
    ns = made as NetNs;
  });

  after(async function () {
    if (ns) await ns.remove();
  });

  /** Run argv in the namespace with an empty tmpfs over /dev/net. */
  function withoutTun(argv: string[]): Promise<Exec> {
    return exec('unshare', ['-m', '--', 'sh', '-c', 'mount -t tmpfs none /dev/net && exec "$@"', 'sh', 'ip', 'netns', 'exec', ns!.name, ...argv]);
  }

  it('opening the device fails with ENOENT', async function () {
    const r = await withoutTun([process.execPath, fixturePath, 'open', 'imnotun0']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { open: 'ENOENT' });
    assert.equal(await ns!.linkExists('imnotun0'), false);
  });

  it('imach join fails at once, says /dev/net/tun is missing and suggests --userspace', async function () {
    const r = await withoutTun([process.execPath, cliPath, 'join', '--relay', 'ws://127.0.0.1:9', '--token', 't']);
    assert.equal(r.code, JOIN_EXIT.missing, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /\/dev\/net\/tun/);
    assert.match(r.stderr, /--userspace/);
    assert.doesNotMatch(r.stderr, /cannot reach relay/);
  });
});
