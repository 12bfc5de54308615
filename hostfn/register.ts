// The register module (`node --import imach/register program.js`): makes an ordinary
// Node program a host. Before the program's first line runs it joins the relay with the
// launch in IMACH_LAUNCH, brings up the host's stack, and installs it under Node's
// networking (node-hooks.ts). Then:
// - the held packets that started the host are delivered once the program listens or
//   dials (or after LISTEN_WAIT_MS), so the connect that started it is not refused;
// - activity is reported from the stack's counters, as hostfn/runtime.ts does;
// - a drain delivers SIGTERM to the program (its handlers run, or Node ends it), and the
//   host ends after the grace time;
// - the link to the relay does not keep the process alive: when the program's own
//   handles are gone, the host says `released` and the process exits as Node would.

import { ActivityReporter } from './activity.js';
import type { Socket } from 'node:net';
import { createLogger, textSink } from './log.js';
import { createNetstackBundle } from './netstack-bundle.js';
import { installNodeHooks } from './node-hooks.js';
import {
  LAUNCH_ENV,
  isProtocolError,
  parseLaunch,
} from './protocol.js';
import { RelayLink, isRelayLinkError } from '../transport/relay-link.js';

/**
 * Longest wait for the program to listen (or dial) before held packets are delivered.
 * Longer than the module runtime's 500 ms: a program may load a framework or a database
 * before it listens, and a SYN delivered before that would be refused.
 */
const LISTEN_WAIT_MS = 30_000;
const POLL_MS = 200;

const log = createLogger({ sink: textSink() });

function die(message: string, fields: Record<string, unknown> = {}): never {
  log.error(message, fields);
  process.exit(2);
}

const launchText = process.env[LAUNCH_ENV];
if (launchText === undefined) die(`imach/register: no ${LAUNCH_ENV} in the environment (run the program as a host of a manifest)`);
const launch = parseLaunch(launchText);
if (isProtocolError(launch)) die('bad launch', { variable: LAUNCH_ENV, field: launch.field, err: launch.message });
delete process.env[LAUNCH_ENV];
const program = launch.program;
if (program === undefined) die('the launch has no program', { run: launch.run });
for (const [k, v] of Object.entries(launch.env)) process.env[k] = v;

const hostLog = log.child({ host: launch.host });
const relayUrl = new URL(launch.relay);
const relay = { host: relayUrl.hostname, port: Number(relayUrl.port || (relayUrl.protocol === 'wss:' ? 443 : 80)) };

// Kernel sockets to the relay: unref'd once joined, so only the program's handles keep
// the process alive (a reconnect's socket as well).
let joined = false;
let programDialed = false;
const relaySockets = new Set<Socket>();
const onRelaySocket = (s: Socket): void => {
  relaySockets.add(s);
  s.once('close', () => relaySockets.delete(s));
  if (joined) s.unref();
};

const joinResult = await RelayLink.connect({
  url: launch.relay,
  token: launch.token,
  logger: hostLog.child({ component: 'relay-link' }),
  ...(launch.relayCertSha256 !== undefined ? { tls: { certSha256: launch.relayCertSha256 } } : {}),
});
if (isRelayLinkError(joinResult)) die('cannot join the relay', { kind: joinResult.kind, err: joinResult.message });
const link: RelayLink = joinResult;
link.pauseReceive();
const welcome = link.welcome;
hostLog.info('joined', { address: welcome.address, session: welcome.session, program: program.argv.join(' ') });

const { stack, dns } = createNetstackBundle(welcome, link, hostLog.child({ component: 'netstack' }));
installNodeHooks({
  net: stack.net,
  dgram: stack.dgram,
  lookup: (n) => dns.lookup(n),
  resolve4: (n) => dns.resolve4(n),
  address: welcome.address,
  prefixLength: welcome.prefixLength,
  domain: welcome.domain,
  egress: program.egress,
  relay,
  onRelaySocket,
  onStackUse: () => (programDialed = true),
  log: hostLog,
});
joined = true;
// only the program's own handles keep the process alive (the link's reconnects as well)
link.unref();
for (const s of relaySockets) s.unref();

// ---- activity, drain, end ----

const activity = new ActivityReporter((m) => link.sendControl(m));
function reportActivity(): void {
  activity.update(stack.socketStats(), Date.now());
}
setInterval(reportActivity, POLL_MS).unref();

let ending = false;
link.onControl((m) => {
  if (m.type === 'drain') {
    hostLog.info('draining: SIGTERM to the program', { reason: m.reason, graceMs: m.graceMs });
    setTimeout(() => {
      hostLog.info('host ended', { reason: `drained (${m.reason}), grace time over` });
      process.exit(0);
    }, m.graceMs).unref();
    process.kill(process.pid, 'SIGTERM');
  } else if (m.type === 'error') hostLog.warn('relay says', { code: m.code, message: m.message });
});
void link.ended.then((err) => {
  if (err === null || err === undefined || ending) return;
  hostLog.error('relay lost', { err: err.message });
  process.exit(1);
});

// The program's handles are gone: release the host, then let Node exit.
process.on('beforeExit', () => {
  if (ending) return;
  ending = true;
  reportActivity();
  if (link.state === 'open') link.sendControl({ type: 'released', reason: 'program exited' });
  const hold = setTimeout(() => {}, 1500);
  void link.closeGracefully(1000).finally(() => {
    clearTimeout(hold);
    stack.close();
    hostLog.info('host ended', { reason: 'program exited' });
  });
});

// The packets that started this host are delivered once the program listens.
{
  const until = Date.now() + LISTEN_WAIT_MS;
  const poll = (): void => {
    const s = stack.socketStats();
    if (s.listening + s.udp > 0 || programDialed || Date.now() >= until) {
      link.resumeReceive();
      reportActivity();
    } else setTimeout(poll, 5).unref();
  };
  setImmediate(poll);
}
