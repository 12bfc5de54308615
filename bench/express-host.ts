// The express app the http and queue groups load: as a `command:` host (the register module,
// a launch for host `web`) or on kernel loopback, inside a network namespace.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LineProcess } from '../test/support/interop-netns.js';
import type { NetNs } from '../test/support/join-netns.js';
import { LAUNCH_ENV, type Launch } from '../relay/protocol.js';
import { REGISTER_PATH } from '../hostfn/program.js';

export const APP = fileURLToPath(new URL('../../bench/apps/express-app.mjs', import.meta.url));

/** The app in `ns` with `env`; with `register`, as a host under the register module. */
export function appProcess(ns: NetNs, env: Record<string, string>, register: boolean, what: string): LineProcess {
  const argv = [process.execPath, ...(register ? ['--import', REGISTER_PATH] : []), APP];
  const child = spawn('ip', ['netns', 'exec', ns.name, 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new LineProcess(child, what);
}

/** The app as host `web` of the relay at `relayUrl`, port 3000 (not yet ready: wait for its `ready` line). */
export function expressHost(ns: NetNs, relayUrl: string, token: string): LineProcess {
  const launch: Launch = {
    host: 'web',
    relay: relayUrl,
    token,
    run: '',
    program: { argv: ['node', APP], cwd: process.cwd(), egress: 'host' },
    env: {},
    idleMs: null,
    mtu: 65535,
  };
  return appProcess(ns, { [LAUNCH_ENV]: JSON.stringify(launch), PORT: '3000' }, true, 'express as a host');
}
