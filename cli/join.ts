// `imach join`: put this machine on the imaginary network through a TUN device.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, type Logger } from '../hostfn/log.js';
import { resolvedAvailable, isInterfaceName, isIPv4, execRunner, type CommandRunner } from '../join/iproute.js';
import { DEFAULT_DEV, JoinSession, isJoinError, type JoinEnd, type JoinError, type JoinOptions } from '../join/join-session.js';
import { formatExposeTarget, parseExpose, type ExposeSpec } from '../join/expose.js';
import { formatImpair, parseImpair, type ImpairSpec } from '../join/impair.js';
import { checkTunPrerequisites } from '../join/preflight.js';
import { UserspaceSession, parseForward, type ForwardSpec, type UserspaceOptions } from '../join/userspace.js';
import { mintToken } from '../relay/auth.js';
import { normalizeCertSha256, type TlsTrust } from '../transport/dial.js';
import { isDnsLabel, isManifestError, loadManifest } from '../relay/manifest.js';
import { DEFAULT_TOKEN_TTL_S, SECRET_ENV } from '../relay/protocol.js';
import { noSecretMessage } from './config.js';

/** Exit codes of `imach join`. */
export const JOIN_EXIT = {
  /** left on Ctrl-C / SIGTERM, or the relay asked us to leave */
  ok: 0,
  /** the session failed after it was up (relay gone for good, device error), or no network secret to mint a token */
  failed: 1,
  /** bad flags or manifest */
  usage: 2,
  /** this machine lacks something TUN mode needs (root, /dev/net/tun, the addon, ip) */
  missing: 3,
  /** the relay refused the token (HTTP 401/403) */
  refused: 4,
  /** the relay could not be reached or broke the protocol */
  unreachable: 5,
  /** the device was created but could not be configured */
  config: 6,
  /** a userspace listener (SOCKS5, --forward, --expose) could not be opened */
  listen: 7,
} as const;

export const JOIN_USAGE = `usage: imach join --relay <ws://host:port> --token <token> [options]
       imach join --manifest <imach.yaml> [--host <name>] [options]
       imach join --userspace [--socks <host:port>] [--forward <[bind:]port:host:port>]...
                  [--expose <[overlayPort=][host:]localPort>]... ...

Put this machine on the imaginary network through a TUN device, so that ping, curl, psql
or a browser reach the application's hosts by address (and by name with --dns).
With --userspace it needs neither root nor TUN: a TCP/IP stack in this process carries
connections made through a SOCKS5 proxy or port forwards on loopback, and --expose lets
hosts reach TCP servers on this machine at its overlay address.

  --relay <url>       the relay (ws:// or wss://); default with --manifest: its listen address
  --token <token>     a join token (or IMACH_TOKEN in the environment)
  --relay-cert-sha256 <hex>
                      with a wss:// relay: trust exactly the certificate with this SHA-256
                      fingerprint (a self-signed relay); default: the system's CAs
  --manifest <file>   take the relay from the manifest and mint a token with the network
                      secret in the state directory (IMACH_SECRET overrides it)
  --host <name>       host name to join as when minting a token (default: laptop)
  --state-dir <dir>   where the secret lives (default: IMACH_STATE_DIR, else .imach beside
                      the manifest); join never creates a secret: start the relay first
  --ttl <seconds>     lifetime of a minted token (default: ${DEFAULT_TOKEN_TTL_S})
  --dev <name>        TUN device name (default: ${DEFAULT_DEV})
  --dns               resolve *.<domain> through the relay (systemd-resolved split DNS)
  --userspace         join without TUN or root (TCP through SOCKS5 and forwards only)
  --socks <addr>      SOCKS5 listen address with --userspace (default 127.0.0.1:1080;
                      'off' for none), e.g. curl --socks5-hostname 127.0.0.1:1080 http://web.imach/
  --forward <spec>    with --userspace: [bind:]localPort:host:port, e.g. 8080:web:80 (repeatable)
  --expose <spec>     with --userspace: [overlayPort=][host:]localPort (repeatable); hosts
                      connecting to this machine's overlay address on overlayPort reach
                      host:localPort through this machine's TCP (host default 127.0.0.1),
                      e.g. --expose 5432 (psql -h laptop.imach on a host reaches the local
                      database) or --expose 8080=192.168.1.20:80. With --expose and neither
                      --socks nor --forward, no SOCKS5 proxy is started
  --allow-remote      let --socks and --forward listen on an address other than loopback:
                      they have no authentication, so anyone who reaches that address
                      reaches the imaginary network as this machine
  --impair <faults>   for tests and debugging: seeded faults on the path to the relay, both
                      directions, e.g. loss=0.01,reorder=0.02,duplicate=0.01,delay=20,seed=7
                      (loss/reorder/duplicate are probabilities 0..1, delay and
                      reorderDelay are ms, seed an integer; the same seed repeats the faults)
  -h, --help          this text

TUN mode needs root (or CAP_NET_ADMIN), /dev/net/tun and the TUN addon. Ctrl-C leaves the
network and removes the device and its route.

exit codes: 0 left normally, 1 failed while joined (or no network secret), 2 usage,
3 missing prerequisite, 4 token refused, 5 relay unreachable, 6 interface configuration
failed, 7 a userspace listener (SOCKS5, --forward, --expose) could not be opened`;

export interface JoinCliArgs {
  relay?: string;
  token?: string;
  /** `--relay-cert-sha256`: the wss:// relay's pinned certificate fingerprint */
  relayCertSha256?: string;
  manifest?: string;
  host: string;
  stateDir?: string;
  ttl: number;
  dev: string;
  dns: boolean;
  userspace: boolean;
  socks: { host: string; port: number } | null;
  forwards: ForwardSpec[];
  exposes: ExposeSpec[];
  impair?: ImpairSpec;
  allowRemote: boolean;
  help: boolean;
}

/** Parse the flags after `join`. Never throws: a string says what is wrong. */
export function parseJoinArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): JoinCliArgs | string {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        relay: { type: 'string' },
        token: { type: 'string' },
        'relay-cert-sha256': { type: 'string' },
        manifest: { type: 'string' },
        host: { type: 'string' },
        'state-dir': { type: 'string' },
        ttl: { type: 'string' },
        dev: { type: 'string' },
        dns: { type: 'boolean' },
        userspace: { type: 'boolean' },
        socks: { type: 'string' },
        forward: { type: 'string', multiple: true },
        expose: { type: 'string', multiple: true },
        impair: { type: 'string' },
        'allow-remote': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    return (err as Error).message;
  }
  const out: JoinCliArgs = {
    relay: values.relay,
    token: values.token ?? (env.IMACH_TOKEN || undefined),
    ...(values['relay-cert-sha256'] !== undefined ? { relayCertSha256: values['relay-cert-sha256'] } : {}),
    manifest: values.manifest,
    host: values.host ?? 'laptop',
    stateDir: values['state-dir'],
    ttl: DEFAULT_TOKEN_TTL_S,
    dev: values.dev ?? DEFAULT_DEV,
    dns: values.dns ?? false,
    userspace: values.userspace ?? false,
    socks: { host: '127.0.0.1', port: 1080 },
    forwards: [],
    exposes: [],
    allowRemote: values['allow-remote'] ?? false,
    help: values.help ?? false,
  };
  if (out.help) return out;
  if (!out.userspace && (values.socks !== undefined || values.forward !== undefined)) return '--socks and --forward go with --userspace';
  if (!out.userspace && values.expose !== undefined) {
    return '--expose goes with --userspace (in TUN mode hosts reach servers on this machine at its overlay address directly)';
  }
  if (values.socks !== undefined) {
    const socks = parseListenAddress(values.socks);
    if (typeof socks === 'string') return socks;
    out.socks = socks;
  }
  for (const f of values.forward ?? []) {
    const spec = parseForward(f);
    if (typeof spec === 'string') return spec;
    out.forwards.push(spec);
  }
  for (const e of values.expose ?? []) {
    const spec = parseExpose(e);
    if (typeof spec === 'string') return spec;
    const same = out.exposes.find((x) => x.overlayPort === spec.overlayPort);
    if (same) return `--expose ${e}: overlay port ${spec.overlayPort} is already exposed (to ${formatExposeTarget(same)})`;
    out.exposes.push(spec);
  }
  if (out.exposes.length > 0 && values.socks === undefined && out.forwards.length === 0) out.socks = null;
  if (!out.allowRemote) {
    const open = [
      ...(out.socks !== null && !isLoopbackHost(out.socks.host) ? [`--socks ${values.socks}`] : []),
      ...out.forwards.filter((f) => !isLoopbackHost(f.bindHost)).map((f) => `--forward ${f.bindHost}:${f.bindPort}:${f.host}:${f.port}`),
    ];
    if (open.length > 0) {
      return `${open[0]} would listen beyond this machine, and the proxy and forwards have no authentication: anyone who reaches it reaches the imaginary network as this machine. Add --allow-remote to accept that`;
    }
  }
  if (values.impair !== undefined) {
    const impair = parseImpair(values.impair);
    if (typeof impair === 'string') return impair;
    out.impair = impair;
  }
  if (out.userspace && out.socks === null && out.forwards.length === 0 && out.exposes.length === 0) {
    return '--userspace with --socks off needs at least one --forward or --expose';
  }
  if (out.userspace && out.dns) return '--dns is for TUN mode; with --userspace names resolve through the SOCKS5 proxy (use --socks5-hostname)';
  if (values.ttl !== undefined) {
    if (!/^\d{1,9}$/.test(values.ttl) || Number(values.ttl) < 1) return `--ttl must be a positive number of seconds, not ${JSON.stringify(values.ttl)}`;
    out.ttl = Number(values.ttl);
  }
  if (!isInterfaceName(out.dev)) return `--dev must be an interface name of 1 to 15 letters, digits, '-', '_' or '.', not ${JSON.stringify(out.dev)}`;
  if (!isDnsLabel(out.host)) return `--host must be a DNS label (a-z, 0-9, '-'), not ${JSON.stringify(out.host)}`;
  if (out.relayCertSha256 !== undefined && normalizeCertSha256(out.relayCertSha256) === null) {
    return `--relay-cert-sha256 must be a SHA-256 fingerprint (64 hex digits, colons allowed), not ${JSON.stringify(out.relayCertSha256)}`;
  }
  if (out.relay !== undefined && !isRelayUrl(out.relay)) return `--relay must be a ws:// or wss:// URL, not ${JSON.stringify(out.relay)}`;
  if (!out.manifest) {
    if (out.relay === undefined) return 'give --relay <url> (or --manifest <file>)';
    if (out.token === undefined) return 'give --token <token> or IMACH_TOKEN (or --manifest <file> to mint one)';
  }
  return out;
}

/** 127.0.0.0/8 or localhost. */
function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** `off`, `port` or `host:port` (IPv4 or localhost). */
function parseListenAddress(text: string): { host: string; port: number } | null | string {
  if (text === 'off') return null;
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|localhost):)?(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535 || (m[1] !== undefined && m[1] !== 'localhost' && !isIPv4(m[1]))) {
    return `--socks wants host:port, a port, or off, not ${JSON.stringify(text)}`;
  }
  return { host: m[1] ?? '127.0.0.1', port: Number(m[2]) };
}

/**
 * IMACH_SECRET, or the secret file the relay made in the state directory. A missing one is an
 * error: a secret made here would sign tokens the running relay refuses as forged.
 */
async function readSecret(env: NodeJS.ProcessEnv, stateDir: string): Promise<{ value: string; error?: undefined } | { error: string }> {
  const fromEnv = env[SECRET_ENV];
  if (fromEnv) return { value: fromEnv };
  let text: string;
  try {
    text = (await readFile(path.join(stateDir, 'secret'), 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { error: noSecretMessage(stateDir) };
    return { error: `cannot read the network secret in ${stateDir}: ${(err as Error).message}` };
  }
  return text.length > 0 ? { value: text } : { error: noSecretMessage(stateDir) };
}

function isRelayUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return ['ws:', 'wss:', 'http:', 'https:'].includes(u.protocol) && u.hostname !== '';
  } catch {
    return false;
  }
}

export interface JoinCliDeps {
  out: (line: string) => void;
  err: (line: string) => void;
  logger: Logger;
  preflight: () => Promise<string[]>;
  run: CommandRunner;
  start: (options: JoinOptions) => Promise<JoinSession | JoinError>;
  startUserspace: (options: UserspaceOptions) => Promise<UserspaceSession | JoinError>;
  /** where SIGINT/SIGTERM/SIGHUP are listened for */
  signals: Pick<NodeJS.Process, 'once' | 'off'>;
  env: NodeJS.ProcessEnv;
}

function defaultDeps(): JoinCliDeps {
  return {
    out: (l) => process.stdout.write(l + '\n'),
    err: (l) => process.stderr.write(l + '\n'),
    logger: createLogger({ fields: { component: 'join' } }),
    preflight: () => checkTunPrerequisites(),
    run: execRunner,
    start: (o) => JoinSession.start(o),
    startUserspace: (o) => UserspaceSession.start(o),
    signals: process,
    env: process.env,
  };
}

/** Run `imach join` with the arguments after `join`; resolves to the exit code. */
export async function runJoin(argv: string[], deps: Partial<JoinCliDeps> = {}): Promise<number> {
  const d: JoinCliDeps = { ...defaultDeps(), ...deps };
  const args = parseJoinArgs(argv[0] === 'join' ? argv.slice(1) : argv, d.env);
  if (typeof args === 'string') {
    d.err(`imach join: ${args}`);
    d.err('try `imach join --help`');
    return JOIN_EXIT.usage;
  }
  if (args.help) {
    d.out(JOIN_USAGE);
    return JOIN_EXIT.ok;
  }
  if (!args.userspace) {
    const missing = await d.preflight();
    if (missing.length > 0) {
      d.err('imach join: TUN mode cannot run on this machine; missing:');
      for (const m of missing) d.err(`  - ${m}`);
      d.err('without root or TUN, `imach join --userspace` joins through a SOCKS5 proxy instead');
      return JOIN_EXIT.missing;
    }
  }

  let relay = args.relay;
  let token: JoinOptions['token'] | undefined = args.token;
  if (args.manifest) {
    const m = await loadManifest(args.manifest);
    if (isManifestError(m)) {
      d.err(`imach join: ${args.manifest}: ${m.field}: ${m.message}`);
      return JOIN_EXIT.usage;
    }
    if (relay === undefined) {
      const { host, port } = m.relay.listen;
      const h = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
      relay = `${m.relay.tls !== undefined ? 'wss' : 'ws'}://${h}:${port}`;
    }
    if (token === undefined) {
      const stateDir = path.resolve(args.stateDir ?? (d.env.IMACH_STATE_DIR || path.join(m.baseDir, '.imach')));
      const secret = await readSecret(d.env, stateDir);
      if (secret.error !== undefined) {
        d.err(`imach join: ${secret.error}`);
        return JOIN_EXIT.failed;
      }
      const key = secret.value;
      const host = args.host;
      const ttl = args.ttl;
      token = () => mintToken(key, host, ttl);
    }
  }
  if (relay === undefined || token === undefined) {
    d.err('imach join: no relay or token');
    return JOIN_EXIT.usage;
  }

  if (args.userspace) return runUserspace(d, args, relay, token);

  let dns = args.dns;
  if (dns) {
    const ok = await resolvedAvailable(d.run);
    if (ok !== true) {
      d.err(`imach join: --dns needs systemd-resolved: ${ok}; joining without split DNS`);
      dns = false;
    }
  }

  const session = await d.start({ relay, token, dev: args.dev, dns, logger: d.logger, run: d.run, ...(args.impair ? { impair: args.impair } : {}), ...relayTrust(args) });
  if (isJoinError(session)) {
    d.err(`imach join: ${session.message}`);
    return exitFor(session);
  }

  const w = session.welcome;
  d.out(`joined ${relay} as ${w.host}: address ${w.address}`);
  d.out(`route ${w.network} via ${session.device.name} (gateway ${w.gateway})`);
  if (dns) {
    d.out(`names: *.${w.domain} resolve through ${w.dns} (split DNS on ${session.device.name}), e.g. curl http://web.${w.domain}/`);
  } else {
    d.out(`names: dig @${w.dns} web.${w.domain}   (or join with --dns to resolve *.${w.domain} directly)`);
  }
  if (args.impair) d.out(`impairing the relay path (testing): ${formatImpair(args.impair)}`);
  d.out('Ctrl-C leaves the network and removes the device');

  return untilEnd(d, session);
}

/** The pinned relay certificate, as the link's TLS trust. */
function relayTrust(args: JoinCliArgs): { tls?: TlsTrust } {
  return args.relayCertSha256 !== undefined ? { tls: { certSha256: args.relayCertSha256 } } : {};
}

async function runUserspace(d: JoinCliDeps, args: JoinCliArgs, relay: string, token: JoinOptions['token']): Promise<number> {
  const session = await d.startUserspace({
    relay,
    token,
    socks: args.socks,
    forwards: args.forwards,
    exposes: args.exposes,
    logger: d.logger,
    ...(args.impair ? { impair: args.impair } : {}),
    ...relayTrust(args),
  });
  if (isJoinError(session)) {
    d.err(`imach join: ${session.message}`);
    return session.stage === 'interface' ? JOIN_EXIT.listen : exitFor(session);
  }
  const w = session.welcome;
  d.out(`joined ${relay} as ${w.host}: address ${w.address} (userspace: TCP only, no TUN)`);
  if (session.socks) {
    const a = session.socks.address;
    d.out(`SOCKS5 proxy on ${a.host}:${a.port}, e.g. curl --socks5-hostname ${a.host}:${a.port} http://web.${w.domain}/`);
  }
  for (const f of session.forwards) {
    d.out(`forward ${f.spec.bindHost}:${f.port} -> ${f.spec.host}:${f.spec.port}`);
  }
  for (const e of session.exposed) {
    d.out(`expose ${w.address}:${e.spec.overlayPort} -> ${formatExposeTarget(e.spec)}`);
  }
  if (args.impair) d.out(`impairing the relay path (testing): ${formatImpair(args.impair)}`);
  d.out('Ctrl-C leaves the network');
  return untilEnd(d, session);
}

async function untilEnd(d: JoinCliDeps, session: { stop(end: JoinEnd): Promise<void>; readonly ended: Promise<JoinEnd> }): Promise<number> {
  const onSignal = (sig: NodeJS.Signals) => {
    void session.stop({ reason: 'stopped', message: `got ${sig}` });
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of sigs) d.signals.once(s, onSignal);
  const end = await session.ended;
  for (const s of sigs) d.signals.off(s, onSignal);
  if (end.reason === 'stopped' || end.reason === 'drained') {
    d.out(`left the network (${end.message})`);
    return JOIN_EXIT.ok;
  }
  d.err(`imach join: ${end.message}; left the network`);
  return JOIN_EXIT.failed;
}

function exitFor(e: JoinError): number {
  switch (e.stage) {
    case 'relay':
      return e.kind === 'auth' || e.kind === 'forbidden' ? JOIN_EXIT.refused : JOIN_EXIT.unreachable;
    case 'device':
      return e.code === 'EPERM' || e.code === 'EACCES' || e.code === 'ENOENT' || e.code === 'ERR_TUN_ADDON_MISSING'
        ? JOIN_EXIT.missing
        : JOIN_EXIT.config;
    default:
      return JOIN_EXIT.config;
  }
}
