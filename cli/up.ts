// `imach up` and `imach relay`: the relay, its lifecycle controller and the local provider.

import { LambdaProvider, type LambdaFunctionRef } from '../hostfn/lambda-provider.js';
import { LocalProvider } from '../hostfn/local-provider.js';
import { createLogger, jsonSink, textSink, type Logger } from '../hostfn/log.js';
import { startRelay, type Manifest, type Relay } from '../relay/index.js';
import { checkRunFiles } from '../relay/manifest.js';
import { CliError, EXIT, UsageError, flag, parseCommand, parseListen, str, type Parsed } from './args.js';
import { manifestPath, readManifest, secret, stateDir } from './config.js';
import { eventLine } from './format.js';
import { USAGE } from './usage.js';

interface Running {
  relay: Relay;
  provider: LocalProvider;
  lambda: LambdaProvider | null;
  manifest: Manifest | null;
  /** spares of the warm pool ready when boot() returned */
  warmReady: number;
}

/** Most spares `up` keeps warm (one per local host up to this): each is a node process, about 13 MB of its own. */
export const MAX_WARM = 8;
/** How long boot waits for the warm pool before it says the relay is up anyway. */
const WARM_BOOT_WAIT_MS = 15_000;

/** Refuse a manifest whose local hosts' modules do not exist (before anything starts). */
function checkRuns(mpath: string | null, manifest: Manifest | null): void {
  const e = manifest !== null ? checkRunFiles(manifest) : null;
  if (e !== null) throw new CliError(`${mpath}: ${e.message}`);
}

/** The providers `up` and `relay` run hosts with. */
const AVAILABLE_PROVIDERS: readonly string[] = ['local', 'lambda'];

function isLoopbackUrl(url: string): boolean {
  const h = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || h.startsWith('127.');
}

/**
 * The warning when Lambda hosts would dial a loopback relay URL (they run elsewhere), or
 * null. `publicUrl` is relay.public; without it hosts dial the listen URL.
 */
export function loopbackWarning(manifest: Manifest | null, listenUrl: string): string | null {
  const lambdaHosts = (manifest?.hosts ?? []).filter((h) => h.provider === 'lambda');
  if (lambdaHosts.length === 0) return null;
  // Against a Lambda on this machine (an endpoint on loopback, imach lambda-local) loopback works.
  const remote = lambdaHosts.filter((h) => h.lambda?.endpoint === undefined || !isLoopbackUrl(h.lambda.endpoint));
  if (remote.length === 0) return null;
  const url = manifest?.relay.public ?? listenUrl;
  if (!isLoopbackUrl(url)) return null;
  return `warning: Lambda hosts (${remote.map((h) => h.name).join(', ')}) would dial ${url}, a loopback address they cannot reach; set relay.public (e.g. wss://relay.example.com)`;
}

/** Static credentials for a Lambda API on loopback (lambda-local) when none are in the environment. */
function lambdaProvider(manifest: Manifest | null, log: Logger): LambdaProvider | null {
  const functions: Record<string, LambdaFunctionRef> = {};
  let allLoopback = true;
  for (const h of manifest?.hosts ?? []) {
    if (h.lambda === undefined) continue;
    functions[h.name] = h.lambda;
    if (h.lambda.endpoint === undefined || !isLoopbackUrl(h.lambda.endpoint)) allLoopback = false;
  }
  if (Object.keys(functions).length === 0) return null;
  const local = allLoopback && process.env.AWS_ACCESS_KEY_ID === undefined;
  return new LambdaProvider({ functions, logger: log, ...(local ? { credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'lambda-local' } } : {}) });
}

/** Refuse a manifest whose hosts need a provider this command cannot run (before anything starts). */
function checkProviders(manifest: Manifest | null): void {
  for (const h of manifest?.hosts ?? []) {
    if (!AVAILABLE_PROVIDERS.includes(h.provider)) {
      throw new CliError(
        `hosts.${h.name}.provider: ${h.provider}: the ${h.provider === 'lambda' ? 'Lambda' : h.provider} provider is not available yet; use provider: local`,
      );
    }
  }
}

async function boot(
  p: Parsed,
  command: string,
  mpath: string | null,
  manifest: Manifest | null,
  log: Logger,
  output: (host: string, stream: 'stdout' | 'stderr', line: string) => void,
): Promise<Running> {
  const listenText = str(p, 'listen') ?? nonEmpty(process.env[LISTEN_ENV]);
  const listen = listenText !== undefined ? parseListen(listenText, command) : undefined;
  const warmText = str(p, 'warm');
  const warm = warmText !== undefined ? parseWarm(warmText, command) : warmPoolSize(manifest);
  const dir = stateDir(str(p, 'state-dir'), mpath);
  const s = await secret(dir, true);
  let relay: Relay | undefined;
  // every output line is also kept by the relay (`imach logs`)
  const collect = (host: string, stream: 'stdout' | 'stderr', line: string): void => {
    relay?.hostOutput(host, stream, line);
    output(host, stream, line);
  };
  const provider = new LocalProvider({ logger: log, output: collect, warm });
  const lambda = lambdaProvider(manifest, log);
  // A start that takes a spare still loading waits for it (node's start and the modules:
  // about 0.5 s here), so the relay is not announced before the pool is ready.
  const poolReady = provider.ready(WARM_BOOT_WAIT_MS);
  try {
    relay = await startRelay({
      manifest: manifest ?? undefined,
      listen,
      secret: s,
      stateDir: dir,
      providers: lambda !== null ? { local: provider, lambda } : { local: provider },
      logger: log,
    });
  } catch (e) {
    await provider.close();
    await lambda?.close();
    throw new CliError(`cannot start the relay: ${(e as Error).message}`);
  }
  const warmReady = await poolReady;
  const warning = loopbackWarning(manifest, relay.url);
  if (warning !== null) log.warn(warning);
  return { relay, provider, lambda, manifest, warmReady };
}

/**
 * Spares `up` keeps warm: one per local host, up to MAX_WARM, so that hosts started one
 * after another each find a loaded process (a spare is only worth its memory when there
 * are local hosts to start).
 */
export function warmPoolSize(manifest: Manifest | null): number {
  const localHosts = manifest?.hosts.filter((h) => h.provider === 'local').length ?? 0;
  return Math.min(MAX_WARM, localHosts);
}

/** `npm start` and `imach up` take the relay's listen address from here when --listen is absent. */
export const LISTEN_ENV = 'IMACH_LISTEN';

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim() !== '' ? v.trim() : undefined;
}

function parseWarm(text: string, command: string): number {
  if (!/^\d+$/.test(text) || Number(text) > MAX_WARM) {
    throw new UsageError(`--warm must be a number of spares from 0 to ${MAX_WARM} (got '${text}')`, command);
  }
  return Number(text);
}

/** Resolve on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => () => {
      process.off('SIGINT', int);
      process.off('SIGTERM', term);
      resolve(sig);
    };
    const int = on('SIGINT');
    const term = on('SIGTERM');
    process.on('SIGINT', int);
    process.on('SIGTERM', term);
  });
}

async function shutdown(r: Running): Promise<void> {
  const hard = setTimeout(() => process.exit(EXIT.ok), 15_000);
  hard.unref();
  try {
    await r.relay.close();
  } finally {
    await r.provider.stopAll();
    await r.lambda?.close();
    clearTimeout(hard);
  }
}

export async function up(argv: string[]): Promise<number> {
  const p = parseCommand(
    'up',
    argv,
    {
      listen: { type: 'string' },
      'state-dir': { type: 'string' },
      start: { type: 'string', multiple: true },
      warm: { type: 'string' },
      quiet: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    1,
  );
  if (p.help) return help('up');
  const mpath = manifestPath(p.positionals[0], true);
  const json = flag(p, 'json');
  const quiet = flag(p, 'quiet');
  const out = (line: string) => process.stdout.write(line + '\n');
  // The relay's own log goes to stderr at warn; `up` shows lifecycle events instead.
  const log = createLogger({ level: (process.env.IMACH_LOG_LEVEL as 'debug') ?? 'warn', sink: textSink() });
  const manifest = mpath ? await readManifest(mpath) : null;
  checkProviders(manifest);
  const starts = startList(p, manifest);
  checkRuns(mpath, manifest);
  const r = await boot(p, 'up', mpath, manifest, log, (host, _s, line) => {
    if (!quiet) out(`${`[${host}]`.padEnd(12)} ${line}`);
  });
  const hosts = r.manifest?.hosts ?? [];
  if (json) {
    out(
      JSON.stringify({
        type: 'up',
        relay: r.relay.url,
        network: r.relay.network,
        warmReady: r.warmReady,
        hosts: hosts.map((h) => ({ name: h.name, address: h.address })),
      }),
    );
  } else {
    out(`imach: relay on ${r.relay.url}, network ${r.relay.network}, gateway ${r.relay.gateway}`);
    if (r.relay.certSha256 !== undefined) out(`imach: TLS certificate SHA-256 ${r.relay.certSha256} (imach join --relay-cert-sha256 ${r.relay.certSha256})`);
    for (const h of hosts) {
      out(`  ${h.name.padEnd(10)} ${h.address.padEnd(15)} ${h.provider.padEnd(6)} idle ${h.idleMs === null ? 'never' : `${h.idleMs / 1000}s`}`);
    }
    out(`all hosts are cold; they start when a packet or a DNS lookup needs them (${r.warmReady} spare processes ready). Ctrl-C stops.`);
  }
  const unsubscribe = r.relay.onEvent((e) => out(json ? JSON.stringify(e) : eventLine(e)));
  for (const name of starts) {
    // An ICMP echo from the gateway is an allocation signal: the relay starts the host.
    r.relay.ping(name, 30_000).then(
      (reply) => !json && out(`imach: ${name} answered ping in ${reply.rttMs.toFixed(0)} ms`),
      (e: Error) => out(json ? JSON.stringify({ type: 'start-failed', host: name, reason: e.message }) : `imach: could not start ${name}: ${e.message}`),
    );
  }
  const sig = await untilSignal();
  unsubscribe();
  if (!json) out(`imach: ${sig}, stopping`);
  await shutdown(r);
  return EXIT.ok;
}

export async function relay(argv: string[]): Promise<number> {
  const p = parseCommand('relay', argv, { manifest: { type: 'string' }, listen: { type: 'string' }, 'state-dir': { type: 'string' }, warm: { type: 'string' } }, 0);
  if (p.help) return help('relay');
  const mpath = manifestPath(str(p, 'manifest'), false);
  const log = createLogger({ sink: jsonSink() });
  const manifest = mpath ? await readManifest(mpath) : null;
  checkProviders(manifest);
  checkRuns(mpath, manifest);
  const r = await boot(p, 'relay', mpath, manifest, log, (host, stream, line) => log.info('host output', { host, stream, line }));
  log.info('relay listening', { url: r.relay.url, network: r.relay.network, manifest: mpath ?? undefined, hosts: r.manifest?.hosts.length ?? 0, warmReady: r.warmReady, certSha256: r.relay.certSha256 });
  const sig = await untilSignal();
  log.info('stopping', { signal: sig });
  await shutdown(r);
  return EXIT.ok;
}

function startList(p: Parsed, manifest: Manifest | null): string[] {
  const raw = p.values.start;
  const names = (Array.isArray(raw) ? raw : []).flatMap((v) => String(v).split(',')).map((n) => n.trim()).filter(Boolean);
  const known = new Set(manifest?.hosts.map((h) => h.name) ?? []);
  for (const n of names) if (!known.has(n)) throw new UsageError(`--start ${n}: no such host in the manifest`, 'up');
  return names;
}

function help(cmd: string): number {
  process.stdout.write(USAGE[cmd]!);
  return EXIT.ok;
}
