// Flag parsing for the imach subcommands: node:util parseArgs, with usage errors as values.

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Bad flags or missing arguments: the CLI prints the message and exits with code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

/** A failure at run time (no relay, bad manifest): message and exit code 1. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}

export const EXIT = { ok: 0, error: 1, usage: 2 } as const;

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
  help: boolean;
}

/** Parse argv for `command`; unknown flags and extra positionals are UsageErrors. */
export function parseCommand(command: string, argv: string[], options: Options, maxPositionals: number): Parsed {
  let r: ReturnType<typeof parseArgs>;
  try {
    r = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(cleanParseError((e as Error).message), command);
  }
  const values = r.values as Parsed['values'];
  const help = values.help === true;
  if (!help && r.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument '${r.positionals[maxPositionals]}'`, command);
  }
  return { values, positionals: r.positionals, help };
}

function cleanParseError(msg: string): string {
  // parseArgs' messages suggest `--` for positionals that look like flags; keep the first sentence.
  const dot = msg.indexOf('. ');
  return dot > 0 ? msg.slice(0, dot) : msg;
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** `host:port`, `:port` or `port`. */
export function parseListen(text: string, command: string): { host: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new UsageError(`--listen must be host:port (got '${text}')`, command);
  }
  const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : '127.0.0.1';
  return { host, port };
}

/** A duration like `90`, `90s`, `15m`, `1h`, `2d` in seconds. */
export function parseDuration(text: string, flagName: string, command: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${flagName} must be a duration like 90s, 15m, 1h or 2d (got '${text}')`, command);
  const mult = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  const seconds = Math.round(Number(m[1]) * mult);
  if (seconds <= 0) throw new UsageError(`${flagName} must be positive`, command);
  return seconds;
}

export function parsePositiveInt(text: string, flagName: string, command: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new UsageError(`${flagName} must be a positive integer (got '${text}')`, command);
  }
  return Number(text);
}
