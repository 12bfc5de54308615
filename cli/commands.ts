// `imach host`, `token`, `ps`, `describe`, `events` and `ping`.

import { basename, extname, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { createLogger, textSink } from '../hostfn/log.js';
import { HostRuntime } from '../hostfn/runtime.js';
import { mintToken } from '../relay/auth.js';
import { isDnsLabel } from '../relay/manifest.js';
import { ADMIN_HOST, DEFAULT_MTU, DEFAULT_TOKEN_TTL_S, peekTokenHost } from '../relay/protocol.js';
import { followEvents, getEvents, getHost, getHosts, ping as pingOnce } from './admin-client.js';
import { CliError, EXIT, UsageError, flag, parseCommand, parseDuration, parsePositiveInt, str, type Parsed } from './args.js';
import { adminTarget, manifestPath, readManifest, relayUrl, secret, stateDir } from './config.js';
import { bytes, describeText, duration, eventLine, table } from './format.js';
import { USAGE } from './usage.js';

const ADMIN_FLAGS = {
  relay: { type: 'string' },
  manifest: { type: 'string' },
  'state-dir': { type: 'string' },
} as const;

function help(cmd: string): number {
  process.stdout.write(USAGE[cmd]!);
  return EXIT.ok;
}

function target(p: Parsed) {
  return adminTarget({ relay: str(p, 'relay'), manifest: str(p, 'manifest'), stateDir: str(p, 'state-dir') });
}

function checkName(name: string, command: string): void {
  if (name !== ADMIN_HOST && !isDnsLabel(name)) {
    throw new UsageError(`host name must be a DNS label (a-z, 0-9, -), got '${name}'`, command);
  }
}

export async function token(argv: string[]): Promise<number> {
  const p = parseCommand('token', argv, { ttl: { type: 'string' }, manifest: { type: 'string' }, 'state-dir': { type: 'string' } }, 1);
  if (p.help) return help('token');
  const name = p.positionals[0];
  if (name === undefined) throw new UsageError('missing host name', 'token');
  checkName(name, 'token');
  const ttlText = str(p, 'ttl');
  const ttl = ttlText !== undefined ? parseDuration(ttlText, '--ttl', 'token') : DEFAULT_TOKEN_TTL_S;
  const mpath = manifestPath(str(p, 'manifest'), false);
  const s = await secret(stateDir(str(p, 'state-dir'), mpath), false);
  process.stdout.write(mintToken(s, name, ttl) + '\n');
  return EXIT.ok;
}

export async function host(argv: string[]): Promise<number> {
  const p = parseCommand('host', argv, { ...ADMIN_FLAGS, token: { type: 'string' }, name: { type: 'string' }, ttl: { type: 'string' } }, 1);
  if (p.help) return help('host');
  const module = p.positionals[0];
  if (module === undefined) throw new UsageError('missing <module>', 'host');
  const given = str(p, 'token') ?? process.env.IMACH_TOKEN;
  if (str(p, 'token') !== undefined && str(p, 'name') !== undefined) {
    throw new UsageError('--token and --name cannot be used together', 'host');
  }
  const run = resolve(module);
  if (!existsSync(run)) throw new CliError(`module not found: ${run}`);
  const mpath = manifestPath(str(p, 'manifest'), false);
  const manifest = mpath ? await readManifest(mpath) : null;
  const url = relayUrl(str(p, 'relay'), manifest);
  let name = str(p, 'name') ?? basename(run, extname(run)).toLowerCase();
  let tok = given;
  if (tok === undefined) {
    checkName(name, 'host');
    const ttlText = str(p, 'ttl');
    const ttl = ttlText !== undefined ? parseDuration(ttlText, '--ttl', 'host') : 3600;
    tok = mintToken(await secret(stateDir(str(p, 'state-dir'), mpath), false), name, ttl);
  } else {
    name = peekTokenHost(tok) ?? name;
  }
  const log = createLogger({ sink: textSink() });
  const rt = new HostRuntime(
    { host: name, relay: url, token: tok, run, env: {}, idleMs: null, mtu: DEFAULT_MTU },
    { logger: log, setProcessEnv: false },
  );
  const onSig = () => rt.drain('signal');
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  const exit = await rt.run();
  process.off('SIGINT', onSig);
  process.off('SIGTERM', onSig);
  if (exit.code !== 0) process.stderr.write(`imach host: ${exit.reason}\n`);
  return exit.code;
}

export async function ps(argv: string[]): Promise<number> {
  const p = parseCommand('ps', argv, { ...ADMIN_FLAGS, json: { type: 'boolean' } }, 0);
  if (p.help) return help('ps');
  const hosts = await getHosts(await target(p));
  if (flag(p, 'json')) {
    process.stdout.write(JSON.stringify(hosts, null, 2) + '\n');
    return EXIT.ok;
  }
  const rows = hosts.map((h) => [
    h.name,
    h.address,
    h.state,
    h.provider,
    duration(h.uptimeMs),
    String(h.connections),
    bytes(h.bytesIn),
    bytes(h.bytesOut),
    String(h.starts),
    h.lastReason.length > 0 ? h.lastReason : '-',
  ]);
  process.stdout.write(table(['NAME', 'ADDRESS', 'STATE', 'PROVIDER', 'UPTIME', 'CONNS', 'IN', 'OUT', 'STARTS', 'REASON'], rows));
  return EXIT.ok;
}

export async function describe(argv: string[]): Promise<number> {
  const p = parseCommand('describe', argv, { ...ADMIN_FLAGS, json: { type: 'boolean' } }, 1);
  if (p.help) return help('describe');
  const name = p.positionals[0];
  if (name === undefined) throw new UsageError('missing host name', 'describe');
  const d = await getHost(await target(p), name);
  if (flag(p, 'json')) {
    process.stdout.write(JSON.stringify(d, null, 2) + '\n');
    return EXIT.ok;
  }
  process.stdout.write(describeText(d));
  return EXIT.ok;
}

export async function events(argv: string[]): Promise<number> {
  const p = parseCommand('events', argv, { ...ADMIN_FLAGS, follow: { type: 'boolean', short: 'f' }, json: { type: 'boolean' } }, 0);
  if (p.help) return help('events');
  const t = await target(p);
  const print = (e: Parameters<typeof eventLine>[0]) =>
    process.stdout.write((flag(p, 'json') ? JSON.stringify(e) : eventLine(e)) + '\n');
  if (!flag(p, 'follow')) {
    for (const e of await getEvents(t)) print(e);
    return EXIT.ok;
  }
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await followEvents(t, print, ac.signal);
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  return EXIT.ok;
}

export async function ping(argv: string[]): Promise<number> {
  const p = parseCommand(
    'ping',
    argv,
    { ...ADMIN_FLAGS, count: { type: 'string', short: 'c' }, interval: { type: 'string' }, timeout: { type: 'string' } },
    1,
  );
  if (p.help) return help('ping');
  const dest = p.positionals[0];
  if (dest === undefined) throw new UsageError('missing <name|address>', 'ping');
  const count = parsePositiveInt(str(p, 'count') ?? '4', '--count', 'ping');
  const interval = parsePositiveInt(str(p, 'interval') ?? '1000', '--interval', 'ping');
  const timeout = parsePositiveInt(str(p, 'timeout') ?? '5000', '--timeout', 'ping');
  const t = await target(p);
  let ok = 0;
  let sent = 0;
  const rtts: number[] = [];
  let stopped = false;
  const stop = () => (stopped = true);
  process.once('SIGINT', stop);
  for (let i = 0; i < count && !stopped; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, interval));
    sent++;
    const r = await pingOnce(t, dest, timeout);
    if ('error' in r) {
      process.stdout.write(`${dest}: seq=${i + 1} ${r.error}\n`);
    } else {
      ok++;
      rtts.push(r.rttMs);
      process.stdout.write(`reply from ${r.address} (${dest}): seq=${i + 1} time=${r.rttMs.toFixed(2)} ms\n`);
    }
  }
  process.off('SIGINT', stop);
  const loss = sent === 0 ? 0 : Math.round(((sent - ok) / sent) * 100);
  let summary = `--- ${dest}: ${sent} sent, ${ok} received, ${loss}% loss`;
  if (rtts.length) {
    const min = Math.min(...rtts);
    const max = Math.max(...rtts);
    const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
    summary += `, rtt min/avg/max ${min.toFixed(2)}/${avg.toFixed(2)}/${max.toFixed(2)} ms`;
  }
  process.stdout.write(summary + '\n');
  return ok > 0 ? EXIT.ok : EXIT.error;
}
