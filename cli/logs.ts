// `imach logs <host> [-f] [--since 10m]`: a host's output, as the relay collected it.

import type { LogLine } from '../relay/index.js';
import { followLogs, getLogs } from './admin-client.js';
import { EXIT, UsageError, flag, parseCommand, parseDuration, str } from './args.js';
import { adminTarget } from './config.js';
import { USAGE } from './usage.js';

export function logLine(l: LogLine): string {
  const t = new Date(l.time);
  const hhmmss = Number.isNaN(t.getTime()) ? l.time : t.toISOString().slice(11, 23);
  return `${hhmmss} ${l.stream === 'stderr' ? 'E' : ' '} ${l.line}`;
}

export async function logs(argv: string[]): Promise<number> {
  const p = parseCommand(
    'logs',
    argv,
    { relay: { type: 'string' }, manifest: { type: 'string' }, 'state-dir': { type: 'string' }, follow: { type: 'boolean', short: 'f' }, since: { type: 'string' }, json: { type: 'boolean' } },
    1,
  );
  if (p.help) {
    process.stdout.write(USAGE.logs!);
    return EXIT.ok;
  }
  const host = p.positionals[0];
  if (host === undefined) throw new UsageError('missing host name', 'logs');
  const sinceText = str(p, 'since');
  const since = sinceText !== undefined ? Date.now() - parseDuration(sinceText, '--since', 'logs') * 1000 : 0;
  const t = await adminTarget({ relay: str(p, 'relay'), manifest: str(p, 'manifest'), stateDir: str(p, 'state-dir') });
  const print = (l: LogLine): void => {
    process.stdout.write((flag(p, 'json') ? JSON.stringify(l) : logLine(l)) + '\n');
  };
  if (!flag(p, 'follow')) {
    for (const l of await getLogs(t, host, since)) print(l);
    return EXIT.ok;
  }
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await followLogs(t, host, since, print, ac.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return EXIT.ok;
}
