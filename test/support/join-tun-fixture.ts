// Runs inside a network namespace (`ip netns exec <ns> node join-tun-fixture.js <mode> ...`)
// for test/join: it owns a TUN device there and reports what happens as JSON lines on stdout.
//
//   echo <dev> <address> <network>   open + configure the device, answer ICMP echo requests
//                                    itself; on stdin EOF close it and report
//   errors <dev>                     exercise the addon's error paths and report the codes
//   join <dev>                       `imach join` against a FakeRelay in this process; on
//                                    SIGTERM it leaves, and the fixture reports the exit code
//   interop <dev>                    the real relay, `imach join` (TUN, kernel TCP server) and
//                                    `imach join --userspace` (netstack) in this process: a
//                                    SOCKS5 client reaches the kernel's server through netstack
//   open <dev>                       try to open the device once and report the error code
//   relay <dev>                      `imach join` against the real relay (relay/index.ts) in
//                                    this process; the relay pings the joined address

import { Resolver } from 'node:dns/promises';
import netKernel from 'node:net';
import { runJoin } from '../../cli/join.js';
import { silentLogger } from '../../hostfn/log.js';
import { startRelay } from '../../relay/index.js';
import { silentLogger as relaySilentLogger } from '../../relay/log.js';
import { configureInterface, interfaceExists, unconfigureInterface } from '../../join/iproute.js';
import { JoinSession, isJoinError } from '../../join/join-session.js';
import { openTun, type TunDevice } from '../../join/tun-device.js';
import { UserspaceSession } from '../../join/userspace.js';
import { exchange, socksConnect } from './join-socks-client.js';
import { FakeRelay } from './join-fake-relay.js';
import { echoReplyTo } from './join-packets.js';

function report(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'none';
  } catch (err) {
    return String((err as NodeJS.ErrnoException).code);
  }
}

async function echo(dev: string, address: string, network: string): Promise<void> {
  const device = openTun(dev);
  let echoed = 0;
  device.onPacket((p) => {
    const reply = echoReplyTo(p);
    if (reply) {
      echoed++;
      device.send(reply);
    }
  });
  const cfg = { dev: device.name, address, network, mtu: 65535 };
  await configureInterface(cfg);
  report({ ready: true, name: device.name });
  process.stdin.resume();
  process.stdin.on('end', () => {
    void (async () => {
      await unconfigureInterface(cfg);
      device.close();
      report({ closed: true, echoed, stats: device.stats, exists: await interfaceExists(dev) });
    })();
  });
}

async function errors(dev: string): Promise<void> {
  const out: Record<string, unknown> = {};
  out.longName = codeOf(() => openTun('x'.repeat(16)));
  const a: TunDevice = openTun(dev);
  out.name = a.name;
  out.sameNameTwice = codeOf(() => openTun(dev));
  a.send(new Uint8Array([0x00, 1, 2, 3]));
  a.send(new Uint8Array(0));
  out.stats = a.stats;
  a.close();
  a.close();
  a.send(new Uint8Array(20));
  out.afterClose = a.stats.drops.closed;
  out.existsAfterClose = await interfaceExists(dev);
  const pattern = openTun('imt%d');
  out.patternName = pattern.name;
  pattern.close();
  report(out);
}

async function join(dev: string): Promise<void> {
  const token = 'test-token';
  const relay = await FakeRelay.start({ token });
  const lines: string[] = [];
  const refused = await runJoin(['--relay', relay.url, '--token', 'wrong', '--dev', dev], {
    out: () => {},
    err: () => {},
    logger: silentLogger,
  });
  const code = await runJoin(['--relay', relay.url, '--token', token, '--dev', dev], {
    out: (l) => {
      lines.push(l);
      if (l.startsWith('Ctrl-C')) report({ ready: true, lines });
    },
    err: (l) => lines.push(l),
    logger: silentLogger,
  });
  const exists = await interfaceExists(dev);
  const echoed = relay.echoed;
  await relay.close();
  report({ exit: code, refused, exists, echoed, lines });
}

async function realRelay(dev: string): Promise<void> {
  const relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, logger: relaySilentLogger });
  const token = relay.mintToken('laptop');
  const lines: string[] = [];
  let joined: (() => void) | undefined;
  const up = new Promise<void>((r) => (joined = r));
  const exit = runJoin(['--relay', relay.url, '--token', token, '--dev', dev], {
    out: (l) => {
      lines.push(l);
      if (l.startsWith('Ctrl-C')) joined?.();
    },
    err: (l) => lines.push(l),
    logger: silentLogger,
  });
  await Promise.race([up, exit]);
  const host = relay.hosts().find((h) => h.name === 'laptop');
  let pinged: unknown = null;
  if (host) {
    try {
      pinged = await relay.ping(host.address, 5000);
    } catch (err) {
      pinged = { error: (err as Error).message };
    }
  }
  // the kernel's UDP through the device to the relay's DNS server
  let resolved: unknown = null;
  try {
    const resolver = new Resolver({ timeout: 2000, tries: 2 });
    resolver.setServers([relay.gateway]);
    resolved = await resolver.resolve4('laptop.imach');
  } catch (err) {
    resolved = { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
  report({ ready: true, lines, address: host?.address ?? null, gateway: relay.gateway, pinged, resolved });
  const code = await exit;
  const exists = await interfaceExists(dev);
  await relay.close();
  report({ exit: code, exists, lines });
}

async function interop(dev: string): Promise<void> {
  const relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, logger: relaySilentLogger });
  const server = netKernel.createServer({ allowHalfOpen: true }, (c) => {
    c.on('error', () => {});
    c.pipe(c);
  });
  await new Promise<void>((r) => server.listen(8000, '0.0.0.0', r));
  const tun = await JoinSession.start({ relay: relay.url, token: relay.mintToken('laptop'), dev, logger: silentLogger });
  if (isJoinError(tun)) throw new Error(`TUN join failed: ${tun.message}`);
  const us = await UserspaceSession.start({
    relay: relay.url,
    token: relay.mintToken('phone'),
    socks: { host: '127.0.0.1', port: 0 },
    forwards: [],
    logger: silentLogger,
  });
  if (isJoinError(us)) throw new Error(`userspace join failed: ${us.message}`);
  const result: Record<string, unknown> = { tunAddress: tun.welcome.address, userspaceAddress: us.welcome.address };
  try {
    const r = await socksConnect(us.socks!.address, 'laptop.imach', 8000);
    result.reply = r.reply;
    const payload = 'x'.repeat(100_000);
    const back = r.reply === 0 ? await exchange(r.socket, payload, r.rest) : '';
    result.echoedBytes = back.length;
    result.echoedIntact = back === payload;
    const refused = await socksConnect(us.socks!.address, tun.welcome.address, 8001);
    result.refusedReply = refused.reply;
    refused.socket.destroy();
  } catch (err) {
    result.error = (err as Error).message;
  }
  await us.stop();
  await tun.stop();
  await new Promise<void>((r) => server.close(() => r()));
  await relay.close();
  report({ interop: true, ...result });
}

function openOnce(dev: string): void {
  report({ open: codeOf(() => openTun(dev).close()) });
}

const [mode, ...rest] = process.argv.slice(2);
const run =
  mode === 'echo' ? echo(rest[0]!, rest[1]!, rest[2]!) : mode === 'errors' ? errors(rest[0]!) : mode === 'join' ? join(rest[0]!) : mode === 'relay' ? realRelay(rest[0]!) : mode === 'open' ? Promise.resolve(openOnce(rest[0]!)) : mode === 'interop' ? interop(rest[0]!) : null;
if (!run) {
  report({ error: `unknown mode ${mode}` });
  process.exitCode = 2;
} else {
  run.catch((err: NodeJS.ErrnoException) => {
    report({ error: err.message, code: err.code });
    process.exitCode = 1;
  });
}
