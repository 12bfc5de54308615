// Where the CLI finds the manifest, the state directory, the secret and the relay.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadOrCreateSecret, mintToken } from '../relay/auth.js';
import { isManifestError, loadManifest, type Manifest } from '../relay/manifest.js';
import { ADMIN_HOST, SECRET_ENV } from '../relay/protocol.js';
import { CliError } from './args.js';

export const DEFAULT_MANIFEST = 'imach.yaml';
export const STATE_DIR_NAME = '.imach';

/** The manifest path from a flag, IMACH_MANIFEST, or ./imach.yaml if it exists. */
export function manifestPath(flagValue: string | undefined, required: boolean): string | null {
  const p = flagValue ?? process.env.IMACH_MANIFEST ?? (existsSync(DEFAULT_MANIFEST) || required ? DEFAULT_MANIFEST : undefined);
  if (p === undefined) return null;
  const abs = resolve(p);
  if (!existsSync(abs)) {
    if (required || flagValue !== undefined) throw new CliError(`manifest not found: ${abs}`);
    return null;
  }
  return abs;
}

export async function readManifest(path: string): Promise<Manifest> {
  const m = await loadManifest(path);
  if (isManifestError(m)) throw new CliError(`${path}: ${m.message}`);
  return m;
}

/** --state-dir, IMACH_STATE_DIR, .imach/ beside the manifest, or ./.imach. */
export function stateDir(flagValue: string | undefined, manifest: string | null): string {
  if (flagValue) return resolve(flagValue);
  if (process.env.IMACH_STATE_DIR) return resolve(process.env.IMACH_STATE_DIR);
  return manifest ? join(dirname(manifest), STATE_DIR_NAME) : resolve(STATE_DIR_NAME);
}

/** Why a command that only uses the network secret cannot find one. */
export function noSecretMessage(dir: string): string {
  return `no network secret in ${dir} (start the relay with imach up, or set ${SECRET_ENV})`;
}

/**
 * IMACH_SECRET, or the secret file in the state directory. Only the relay's commands (`up`,
 * `relay`) create it (`create`); for the others a missing secret is an error, since a new
 * one would sign tokens the running relay refuses as forged.
 */
export async function secret(dir: string, create = false): Promise<string> {
  const fromEnv = process.env[SECRET_ENV];
  if (fromEnv) return fromEnv;
  if (!create && !existsSync(join(dir, 'secret'))) throw new CliError(noSecretMessage(dir));
  try {
    return await loadOrCreateSecret(dir);
  } catch (e) {
    throw new CliError(`cannot read the network secret in ${dir}: ${(e as Error).message}`);
  }
}

/** --relay, IMACH_RELAY, the manifest's relay.listen, or ws://127.0.0.1:7000. */
export function relayUrl(flagValue: string | undefined, manifest: Manifest | null): string {
  const v = flagValue ?? process.env.IMACH_RELAY;
  if (v) {
    if (!/^(wss?|https?):\/\//.test(v)) throw new CliError(`relay must be a ws:// or http:// URL (got '${v}')`);
    return v.replace(/^http/, 'ws').replace(/\/+$/, '');
  }
  const l = manifest?.relay.listen ?? { host: '127.0.0.1', port: 7000 };
  const host = l.host === '0.0.0.0' ? '127.0.0.1' : l.host === '::' ? '[::1]' : l.host.includes(':') ? `[${l.host}]` : l.host;
  return `${manifest?.relay.tls !== undefined ? 'wss' : 'ws'}://${host}:${l.port}`;
}

export function httpUrl(wsUrl: string): string {
  return wsUrl.replace(/^ws/, 'http');
}

/** Everything an admin command needs: the relay's HTTP URL and a fresh '@admin' token. */
export async function adminTarget(flags: { relay?: string; manifest?: string; stateDir?: string }): Promise<{ http: string; token: string }> {
  const mpath = manifestPath(flags.manifest, false);
  const manifest = mpath ? await readManifest(mpath) : null;
  const url = relayUrl(flags.relay, manifest);
  const s = await secret(stateDir(flags.stateDir, mpath), false);
  return { http: httpUrl(url), token: mintToken(s, ADMIN_HOST, 300) };
}
