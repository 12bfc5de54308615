// A `run:` module gets the host's stack as `net`; one that listens with Node's own net
// (express's app.listen, http.createServer().listen) binds a port of the real machine,
// which no overlay client can reach. The listen still happens, with a warning in the
// host's log that says what to do instead.

import { createRequire } from 'node:module';
import type * as NodeNet from 'node:net';
import type { Logger } from './log.js';

const net = createRequire(import.meta.url)('node:net') as typeof NodeNet;

/** Warn in `log` whenever Node's own net.Server (and http, https, tls servers) listens. */
export function warnOnRealListen(log: Logger, host: string): void {
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (this: NodeNet.Server, ...args: unknown[]) {
    this.once('listening', () => {
      const a = this.address();
      log.warn("the app listens on a port of the real machine, not on the host's stack: overlay clients cannot reach it", {
        host,
        address: typeof a === 'string' ? a : a === null ? '' : `${a.address}:${a.port}`,
        hint: "use the `net` the app is given, or run the program unchanged with `command: node app.js`",
      });
    });
    return (listen as (...a: unknown[]) => NodeNet.Server).apply(this, args);
  } as typeof listen;
}
