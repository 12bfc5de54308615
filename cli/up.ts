// `imach up` and `imach relay`: the relay, its lifecycle controller and the local provider.

import { LocalProvider } from '../hostfn/local-provider.js';
import { createLogger, jsonSink, textSink, type Logger } from '../hostfn/log.js';
import { startRelay, type Manifest, type Relay } from '../relay/index.js';
import { CliError, EXIT, UsageError, flag, parseCommand, parseListen, str, type Parsed } from './args.js';
import { manifestPath, readManifest, secret, stateDir } from './config.js';
import { eventLine } from './format.js';
import { USAGE } from './usage.js';

interface Running {
  relay: Relay;
  provider: LocalProvider;
  manifest: Manifest | null;
}

/** The providers `up` and `relay` run hosts with. */
const AVAILABLE_PROVIDERS: readonly string[] = ['local'];

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
  const listenText = str(p, 'listen');
  const listen = listenText !== undefined ? parseListen(listenText, command) : undefined;
  const dir = stateDir(str(p, 'state-dir'), mpath);
  const s = await secret(dir, true);
  // A warm spare process is only worth its memory when the manifest has local hosts to start.
  const localHosts = manifest?.hosts.some((h) => h.provider === 'local') ?? false;
  const provider = new LocalProvider({ logger: log, output, ...(localHosts ? {} : { warm: 0 }) });
  let relay: Relay;
  try {
    relay = await startRelay({
      manifest: manifest ?? undefined,
      listen,
      secret: s,
      stateDir: dir,
      providers: { local: provider },
      logger: log,
    });
  } catch (e) {
    throw new CliError(`cannot start the relay: ${(e as Error).message}`);
  }
  return { relay, provider, manifest };
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
    clearTimeout(hard);
  }
}

export async function up(argv: string[]): Promise<number> {
  const p = parseCommand(
    'up',
    argv,
    { listen: { type: 'string' }, 'state-dir': { type: 'string' }, start: { type: 'string', multiple: true }, quiet: { type: 'boolean' }, json: { type: 'boolean' } },
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
  const r = await boot(p, 'up', mpath, manifest, log, (host, _s, line) => {
    if (!quiet) out(`${`[${host}]`.padEnd(12)} ${line}`);
  });
  const hosts = r.manifest?.hosts ?? [];
  if (json) {
    out(JSON.stringify({ type: 'up', relay: r.relay.url, network: r.relay.network, hosts: hosts.map((h) => ({ name: h.name, address: h.address })) }));
  } else {
    out(`imach: relay on ${r.relay.url}, network ${r.relay.network}, gateway ${r.relay.gateway}`);
    if (r.relay.certSha256 !== undefined) out(`imach: TLS certificate SHA-256 ${r.relay.certSha256} (imach join --relay-cert-sha256 ${r.relay.certSha256})`);
    for (const h of hosts) {
      out(`  ${h.name.padEnd(10)} ${h.address.padEnd(15)} ${h.provider.padEnd(6)} idle ${h.idleMs === null ? 'never' : `${h.idleMs / 1000}s`}`);
    }
    out('all hosts are cold; they start when a packet or a DNS lookup needs them. Ctrl-C stops.');
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
  const p = parseCommand('relay', argv, { manifest: { type: 'string' }, listen: { type: 'string' }, 'state-dir': { type: 'string' } }, 0);
  if (p.help) return help('relay');
  const mpath = manifestPath(str(p, 'manifest'), false);
  const log = createLogger({ sink: jsonSink() });
  const manifest = mpath ? await readManifest(mpath) : null;
  checkProviders(manifest);
  const r = await boot(p, 'relay', mpath, manifest, log, (host, stream, line) => log.info('host output', { host, stream, line }));
  log.info('relay listening', { url: r.relay.url, network: r.relay.network, manifest: mpath ?? undefined, hosts: r.manifest?.hosts.length ?? 0, certSha256: r.relay.certSha256 });
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
