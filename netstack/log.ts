// A tiny structured logger for the stack: levels and fields. The host runtime may pass
// its own logger of the same shape.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogSink = (level: Exclude<LogLevel, 'silent'>, msg: string, fields: LogFields) => void;

/** One JSON line per record on stderr. */
export const stderrSink: LogSink = (level, msg, fields) => {
  let line: string;
  try {
    line = JSON.stringify({ level, msg, ...fields });
  } catch {
    line = JSON.stringify({ level, msg });
  }
  process.stderr.write(line + '\n');
};

export function createLogger(options: { level?: LogLevel; sink?: LogSink; fields?: LogFields } = {}): Logger {
  const min = ORDER[options.level ?? 'warn'];
  const sink = options.sink ?? stderrSink;
  const base = options.fields ?? {};
  const emit = (level: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields): void => {
    if (ORDER[level] >= min) sink(level, msg, fields === undefined ? base : { ...base, ...fields });
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ level: options.level, sink, fields: { ...base, ...fields } }),
  };
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
