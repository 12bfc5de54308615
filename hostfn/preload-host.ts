// A `command:` host whose program is not Node (redis-server, postgres, python3...): this
// process joins the relay, brings up the host's stack, and runs the program as its child
// with the preload library (native/preload) in LD_PRELOAD. The library turns each of the
// program's AF_INET TCP sockets into a Unix connection to this process's listener
// (IMACH_PRELOAD_SOCKET), opened by one request (hostfn/preload-wire.ts); this file
// carries those connections over the stack. Then, as register.ts does for Node programs:
// - held packets are delivered once the program listens or dials (LISTEN_WAIT_MS at most);
// - activity is reported from the stack's counters;
// - a drain (or SIGTERM to this process) sends SIGTERM to the program and SIGKILL to its
//   process group after the grace time;
// - the host is released once the program's process group is gone.
// Every connection has TCP_NODELAY (the library cannot pass the program's setsockopt on):
// the servers that matter set it, and with Nagle their replies waited for delayed ACKs
// (redis-benchmark SET at 50 clients: 1,234 requests/s, 40 ms each).

import { ActivityReporter } from './activity.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { isIP, createServer as createUnixServer, type Server as UnixServer, type Socket as UnixSocket } from 'node:net';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createLogger, textSink } from './log.js';
import { createNetstackBundle } from './netstack-bundle.js';
import {
  LAUNCH_ENV,
  isProtocolError,
  parseLaunch,
} from './protocol.js';
import {
  MAX_NAME_BYTES,
  OP_ACCEPT,
  OP_CONNECT,
  OP_LISTEN,
  OP_RESOLVE,
  REQUEST_BYTES,
  decodeRequest,
  encodeReply,
  errnoOf,
  type PreloadReply,
  type PreloadRequest,
} from './preload-wire.js';
import { RelayLink, isRelayLinkError } from '../transport/relay-link.js';
import type { NetServer, NetSocket } from '../netstack/api/net.js';

/** Where install puts the library (scripts/build-native.mjs); IMACH_PRELOAD_LIB overrides. */
export const PRELOAD_LIB_PATH =
  process.env.IMACH_PRELOAD_LIB ?? fileURLToPath(new URL('../../native/preload/build/imach_preload.so', import.meta.url));
/** This module's path: the provider runs `node preload-host.js` with the launch. */
export const PRELOAD_HOST_PATH = fileURLToPath(import.meta.url);

const LISTEN_WAIT_MS = 30_000;
const POLL_MS = 200;
const HEADER_TIMEOUT_MS = 10_000;
/** Pending overlay connections per listener beyond the program's backlog are refused (reset). */
const MAX_BACKLOG = 4096;
/**
 * SIGTERM to this process (the provider's stop): the program's grace before SIGKILL, three
 * quarters of the provider's own (IMACH_STOP_GRACE_MS), so the group is killed before this
 * process is.
 */
const STOP_GRACE_MS = Math.max(0, Math.floor((Number(process.env.IMACH_STOP_GRACE_MS) || 5000) * 0.75));

// Only when run as the host's process, not when imported for its paths.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();

async function main(): Promise<void> {
  const log = createLogger({ sink: textSink() });
  const die = (message: string, fields: Record<string, unknown> = {}): never => {
    log.error(message, fields);
    process.exit(2);
  };

  const launchText = process.env[LAUNCH_ENV];
  if (launchText === undefined) die(`preload-host: no ${LAUNCH_ENV} in the environment`);
  const launch = parseLaunch(launchText!);
  if (isProtocolError(launch)) return die('bad launch', { field: launch.field, err: launch.message });
  delete process.env[LAUNCH_ENV];
  const program = launch.program;
  if (program === undefined) return die('the launch has no program', { run: launch.run });
  if (!existsSync(PRELOAD_LIB_PATH)) {
    return die('the preload library is not built: only Node programs can be hosts here', { path: PRELOAD_LIB_PATH, fix: 'node scripts/build-native.mjs' });
  }
  const hostLog = log.child({ host: launch.host });

  const joinResult = await RelayLink.connect({
    url: launch.relay,
    token: launch.token,
    logger: hostLog.child({ component: 'relay-link' }),
    ...(launch.relayCertSha256 !== undefined ? { tls: { certSha256: launch.relayCertSha256 } } : {}),
  });
  if (isRelayLinkError(joinResult)) return die('cannot join the relay', { kind: joinResult.kind, err: joinResult.message });
  const link: RelayLink = joinResult;
  link.pauseReceive();
  const welcome = link.welcome;
  hostLog.info('joined', { address: welcome.address, session: welcome.session, program: program.argv.join(' ') });
  const { stack, dns } = createNetstackBundle(welcome, link, hostLog.child({ component: 'netstack' }));

  // ---- the bridge: the library's Unix connections <-> the stack ----

  let programUsedNetwork = false;
  let nextListenerId = 1;
  interface Listener {
    server: NetServer;
    control: UnixSocket;
    pending: NetSocket[];
    backlog: number;
  }
  const listeners = new Map<number, Listener>();
  let refusedOverBacklog = 0;

  const reply = (sock: UnixSocket, r: PreloadReply): void => {
    sock.write(encodeReply(r));
  };
  const fail = (sock: UnixSocket, err: number): void => {
    sock.end(encodeReply({ err }));
  };

  /** Both directions, each end's half-close passed on; an error on one side destroys the other. */
  const splice = (unix: UnixSocket, tcp: NetSocket): void => {
    unix.pipe(tcp as unknown as NodeJS.WritableStream);
    tcp.pipe(unix);
    unix.on('error', () => tcp.destroy());
    tcp.on('error', () => unix.destroy());
    tcp.on('close', () => {
      if (!unix.writableEnded) unix.destroy();
    });
    unix.on('close', () => {
      if (!tcp.destroyed && !tcp.writableEnded) tcp.destroy();
    });
  };

  const onConnect = (sock: UnixSocket, req: PreloadRequest): void => {
    const tcp = stack.net.connect({ port: req.port, host: req.address, allowHalfOpen: true, noDelay: true });
    const onError = (e: Error & { code?: string }): void => fail(sock, errnoOf(e.code));
    tcp.once('error', onError);
    tcp.once('connect', () => {
      tcp.off('error', onError);
      reply(sock, { err: 0, localAddress: tcp.localAddress, localPort: tcp.localPort, peerAddress: tcp.remoteAddress, peerPort: tcp.remotePort });
      splice(sock, tcp);
    });
    sock.once('close', () => {
      if (tcp.connecting) tcp.destroy();
    });
  };

  const onListen = (sock: UnixSocket, req: PreloadRequest): void => {
    const host = req.address === '0.0.0.0' ? welcome.address : req.address;
    if (host !== welcome.address) return fail(sock, errnoOf('EADDRNOTAVAIL'));
    const id = nextListenerId++;
    const l: Listener = { server: undefined as unknown as NetServer, control: sock, pending: [], backlog: Math.max(1, Math.min(MAX_BACKLOG, req.arg)) };
    l.server = stack.net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (tcp) => {
      hostLog.debug('overlay connection', { port: req.port, pending: l.pending.length });
      if (l.pending.length >= l.backlog) {
        refusedOverBacklog++;
        tcp.destroy();
        return;
      }
      l.pending.push(tcp);
      tcp.on('error', () => {});
      sock.write(Buffer.of(1));
    });
    l.server.once('error', (e: Error & { code?: string }) => {
      hostLog.warn('the program cannot listen', { port: req.port, err: e.message, pid: req.pid });
      listeners.delete(id);
      fail(sock, errnoOf(e.code));
    });
    l.server.listen(req.port, host, () => {
      listeners.set(id, l);
      const a = l.server.address();
      const port = typeof a === 'object' && a !== null ? a.port : req.port;
      hostLog.info('the program listens', { port, pid: req.pid });
      reply(sock, { err: 0, id, localAddress: req.address, localPort: port });
      startDelivery(`a listen on port ${port}`);
    });
    sock.on('error', () => {});
    sock.once('close', () => {
      hostLog.debug('the program closed a listener', { port: req.port, pid: req.pid });
      listeners.delete(id);
      l.server.close();
      for (const p of l.pending) p.destroy();
      l.pending.length = 0;
    });
    // a listener's connection carries nothing from the program after its request
    sock.resume();
  };

  const onAccept = (sock: UnixSocket, req: PreloadRequest): void => {
    const l = listeners.get(req.arg);
    let tcp: NetSocket | undefined;
    while (l !== undefined && (tcp = l.pending.shift()) !== undefined && tcp.destroyed);
    if (tcp === undefined || tcp.destroyed) return fail(sock, errnoOf('ECONNABORTED'));
    reply(sock, { err: 0, localAddress: tcp.localAddress, localPort: tcp.localPort, peerAddress: tcp.remoteAddress, peerPort: tcp.remotePort });
    splice(sock, tcp);
  };

  const onResolve = (sock: UnixSocket, name: string): void => {
    // Programs look up their machine's own name before they listen (python's getfqdn):
    // that is the machine's to answer, and must not deliver the held packets early.
    if (name === machineName || name.startsWith(machineName + '.') || isIP(name) !== 0) return fail(sock, errnoOf('ENOENT'));
    // the relay's answer comes through the link
    startDelivery(`a lookup of ${name}`);
    dns.lookup(name).then(
      (address) => sock.end(encodeReply({ err: 0, peerAddress: address })),
      (e: Error & { code?: string }) => {
        hostLog.debug('lookup failed', { name, err: e.message });
        fail(sock, errnoOf(e.code === 'ENOTFOUND' ? 'ENOENT' : e.code));
      },
    );
  };

  const onUnixConnection = (sock: UnixSocket): void => {
    sock.setTimeout(HEADER_TIMEOUT_MS, () => sock.destroy());
    sock.on('error', () => {});
    let got: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
      if (got.length < REQUEST_BYTES) return;
      const req = decodeRequest(got);
      const need = REQUEST_BYTES + (req.op === OP_RESOLVE ? req.arg : 0);
      if (req.op === OP_RESOLVE && req.arg > MAX_NAME_BYTES) {
        sock.off('data', onData);
        return fail(sock, errnoOf('EINVAL'));
      }
      if (got.length < need) return;
      sock.off('data', onData);
      sock.pause();
      sock.setTimeout(0);
      if (got.length > need) sock.unshift(got.subarray(need));
      if (req.op === OP_CONNECT) startDelivery(`a connect to ${req.address}:${req.port}`);
      switch (req.op) {
        case OP_CONNECT:
          return onConnect(sock, req);
        case OP_LISTEN:
          return onListen(sock, req);
        case OP_ACCEPT:
          return onAccept(sock, req);
        case OP_RESOLVE:
          return onResolve(sock, got.subarray(REQUEST_BYTES, need).toString('latin1'));
        default:
          hostLog.warn('preload: unknown request', { op: req.op, pid: req.pid });
          return fail(sock, errnoOf('EINVAL'));
      }
    };
    sock.on('data', onData);
  };

  const machineName = hostname();
  const socketName = `@imach-preload-${process.pid}-${randomBytes(6).toString('hex')}`;
  const unixServer: UnixServer = createUnixServer({ allowHalfOpen: true }, onUnixConnection);
  await new Promise<void>((resolve, reject) => {
    unixServer.once('error', reject);
    unixServer.listen('\0' + socketName.slice(1), () => resolve());
  });

  // ---- the packets that started the host: delivered once the program listens or dials ----

  let delivering = false;
  function startDelivery(why: string): void {
    programUsedNetwork = true;
    if (delivering) return;
    delivering = true;
    hostLog.debug('delivering the held packets', { after: why });
    // the listen is registered in the stack by now (its reply waits for it) or the next turn
    setImmediate(() => {
      link.resumeReceive();
      reportActivity();
    });
  }
  setTimeout(() => {
    if (!delivering) {
      delivering = true;
      link.resumeReceive();
    }
  }, LISTEN_WAIT_MS).unref();

  // ---- activity ----

  const activity = new ActivityReporter((m) => link.sendControl(m));
  function reportActivity(): void {
    activity.update(stack.socketStats(), Date.now());
  }
  const activityTimer = setInterval(reportActivity, POLL_MS);

  // ---- the program ----

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...launch.env,
    LD_PRELOAD: [PRELOAD_LIB_PATH, process.env.LD_PRELOAD].filter(Boolean).join(' '),
    IMACH_PRELOAD_SOCKET: socketName,
    IMACH_PRELOAD_NET: `${networkOf(welcome.address, welcome.prefixLength)}/${welcome.prefixLength}`,
    IMACH_PRELOAD_EGRESS: program.egress,
    IMACH_PRELOAD_PARENT: String(process.pid),
  };
  let child: ChildProcess;
  try {
    child = spawn(program.argv[0]!, program.argv.slice(1), { cwd: program.cwd, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  } catch (e) {
    return finish(127, `cannot start the program: ${(e as Error).message}`, true);
  }
  const pgid = child.pid;
  const killGroup = (signal: NodeJS.Signals): void => {
    if (pgid === undefined) return;
    try {
      process.kill(-pgid, signal);
    } catch {
      // the group is gone
    }
  };
  process.on('exit', () => killGroup('SIGKILL'));
  child.once('error', (e) => void finish(127, `cannot start the program: ${e.message}`, true));
  child.once('exit', (code, signal) => {
    const status = signal !== null ? 128 : (code ?? 1);
    const reason = signal !== null ? `program killed by ${signal}` : `program exited with code ${code}`;
    // its children (forked backends, workers) share its process group: wait for them too
    const waitGroup = (): void => {
      if (pgid !== undefined && groupAlive(pgid)) setTimeout(waitGroup, POLL_MS);
      else void finish(status, reason, status !== 0 && !programUsedNetwork && !draining);
    };
    waitGroup();
  });

  let draining = false;
  const drain = (reason: string, graceMs: number): void => {
    if (draining) return;
    draining = true;
    hostLog.info('draining: SIGTERM to the program', { reason, graceMs });
    if (child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    setTimeout(() => {
      hostLog.info('grace time over: SIGKILL to the program\'s process group');
      killGroup('SIGKILL');
    }, graceMs).unref();
  };
  link.onControl((m) => {
    if (m.type === 'drain') drain(m.reason, m.graceMs);
    else if (m.type === 'error') hostLog.warn('relay says', { code: m.code, message: m.message });
  });
  process.on('SIGTERM', () => drain('stopped', STOP_GRACE_MS));
  process.on('SIGINT', () => drain('interrupted', STOP_GRACE_MS));
  void link.ended.then((err) => {
    if (err === null || err === undefined || ending) return;
    hostLog.error('relay lost', { err: err.message });
    killGroup('SIGKILL');
    process.exit(1);
  });

  let ending = false;
  async function finish(code: number, reason: string, startFailed: boolean): Promise<void> {
    if (ending) return;
    ending = true;
    clearInterval(activityTimer);
    killGroup('SIGKILL');
    if (refusedOverBacklog > 0) hostLog.warn('connections refused over the program\'s backlog', { count: refusedOverBacklog });
    reportActivity();
    if (link.state === 'open') link.sendControl(startFailed ? { type: 'released', reason, startFailed } : { type: 'released', reason });
    await link.closeGracefully(1000);
    stack.close();
    unixServer.close();
    hostLog.info('host ended', { reason });
    process.exit(code);
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function networkOf(address: string, prefixLength: number): string {
  const n = address.split('.').reduce((acc, p) => (acc << 8) | Number(p), 0) >>> 0;
  const mask = prefixLength === 0 ? 0 : (~0 << (32 - prefixLength)) >>> 0;
  const net = (n & mask) >>> 0;
  return [24, 16, 8, 0].map((s) => (net >>> s) & 0xff).join('.');
}
