// The warm-start handshake between LocalProvider and a pre-started main.js (over the
// child's IPC channel): the child loads its modules, says `ready`, and waits for `launch`.

import type { Launch } from './protocol.js';

/** Set to '1' in the environment of a pre-started (warm) host function. */
export const WARM_ENV = 'IMACH_WARM';

export interface WarmReadyMessage {
  type: 'imach-warm-ready';
}

export interface WarmLaunchMessage {
  type: 'imach-warm-launch';
  launch: Launch;
}

export function isWarmReady(m: unknown): m is WarmReadyMessage {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'imach-warm-ready';
}

export function isWarmLaunch(m: unknown): m is WarmLaunchMessage {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'imach-warm-launch';
}
