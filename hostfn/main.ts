// Entry of a local host function (a child process started by LocalProvider): reads the
// launch from IMACH_LAUNCH, runs the host, and exits with its code. SIGTERM drains.
// A warm (pre-started) one loads its modules first and gets the launch over IPC.

import { createLogger, textSink } from './log.js';
import { LAUNCH_ENV, isProtocolError, parseLaunch } from './protocol.js';
import { warnOnRealListen } from './real-port-warning.js';
import { HostRuntime, preloadDefaultStack } from './runtime.js';
import { WARM_ENV, isWarmLaunch, type WarmReadyMessage } from './warm.js';

// If the process that started us dies, our output pipes break; the host keeps running
// (and reconnects to a restarted relay) rather than dying of EPIPE.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

const log = createLogger({ sink: textSink() });

/** A warm child: load what a host needs, say ready, and wait for the launch (JSON, unparsed). */
async function warmLaunch(): Promise<unknown> {
  delete process.env[WARM_ENV];
  const launch = new Promise<unknown>((resolve) => {
    const onMessage = (m: unknown) => {
      if (!isWarmLaunch(m)) return;
      process.off('message', onMessage);
      process.off('disconnect', onOrphaned);
      resolve(m.launch);
    };
    process.on('message', onMessage);
  });
  // A spare whose provider went away has nothing to become.
  const onOrphaned = () => process.exit(0);
  process.on('disconnect', onOrphaned);
  await preloadDefaultStack();
  process.send?.({ type: 'imach-warm-ready' } satisfies WarmReadyMessage);
  const l = await launch;
  // From here on it is an ordinary host function: it outlives the provider's process.
  process.disconnect?.();
  return l;
}

async function main(): Promise<number> {
  const warm = process.env[WARM_ENV] === '1' && typeof process.send === 'function';
  const launch = parseLaunch(warm ? await warmLaunch() : (process.env[LAUNCH_ENV] ?? ''));
  if (isProtocolError(launch)) {
    log.error('bad launch', { variable: warm ? 'IPC launch' : LAUNCH_ENV, field: launch.field, err: launch.message });
    return 2;
  }
  delete process.env[LAUNCH_ENV];
  warnOnRealListen(log, launch.host);
  const runtime = new HostRuntime(launch, { logger: log, setProcessEnv: true });
  const onSignal = (sig: string) => () => runtime.drain(sig);
  process.on('SIGTERM', onSignal('SIGTERM'));
  process.on('SIGINT', onSignal('SIGINT'));
  process.on('uncaughtException', (e) => {
    log.error('uncaught exception in app', { err: e.stack ?? e.message });
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log.error('unhandled rejection in app', { err: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    process.exit(1);
  });
  const exit = await runtime.run();
  return exit.code;
}

// The app may leave timers behind: the host ends when the runtime says so.
main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    log.error('host failed', { err: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  },
);
