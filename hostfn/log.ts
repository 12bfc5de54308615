// Logging for host functions and the CLI: netstack's structured logger (levels + fields)
// with text and JSON line sinks.

import {
  createLogger as createNetstackLogger,
  silentLogger,
  type LogFields,
  type LogLevel,
  type LogSink,
  type Logger,
} from '../netstack/log.js';

export { silentLogger };
export type { LogFields, LogLevel, LogSink, Logger };

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === 'bigint') return v.toString();
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** `level msg k=v k=v`, to stderr by default. */
export function textSink(write: (line: string) => void = (l) => process.stderr.write(l)): LogSink {
  return (level, msg, fields) => {
    let line = `${level.padEnd(5)} ${msg}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
    }
    write(line + '\n');
  };
}

export function jsonSink(write: (line: string) => void = (l) => process.stderr.write(l)): LogSink {
  return (level, msg, fields) => {
    const rec: LogFields = { t: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields)) rec[k] = v instanceof Error ? v.message : v;
    let text: string;
    try {
      text = JSON.stringify(rec);
    } catch {
      text = JSON.stringify({ t: rec.t, level, msg });
    }
    write(text + '\n');
  };
}

/** netstack's logger with the host defaults: level from IMACH_LOG_LEVEL (else info), text lines. */
export function createLogger(options: { level?: LogLevel; sink?: LogSink; fields?: LogFields } = {}): Logger {
  return createNetstackLogger({
    level: options.level ?? envLevel() ?? 'info',
    sink: options.sink ?? textSink(),
    fields: options.fields,
  });
}

function envLevel(): LogLevel | undefined {
  const v = process.env.IMACH_LOG_LEVEL;
  return v === 'debug' || v === 'info' || v === 'warn' || v === 'error' || v === 'silent' ? v : undefined;
}
