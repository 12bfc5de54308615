// What the lifecycle controller needs from a way of running host functions. The local
// (child process) and Lambda providers live in hostfn/ and implement this.

import type { Launch } from './protocol.js';
export type { Launch } from './protocol.js';

export interface HostInstance {
  /** Resolves once when the instance has ended, for whatever reason. Never rejects. */
  readonly exited: Promise<{ code: number | null; reason: string }>;
  /** End the instance (idempotent); resolves when it has ended. */
  stop(): Promise<void>;
}

export interface Provider {
  readonly name: string;
  /** Start a host function for `launch`. Rejects if it cannot be started at all. */
  start(launch: Launch): Promise<HostInstance>;
}
