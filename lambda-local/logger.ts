// The structured logger lambda-local takes (hostfn's and netstack's loggers fit it).

export interface LambdaLocalLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: LambdaLocalLogger = { debug() {}, info() {}, warn() {}, error() {} };
