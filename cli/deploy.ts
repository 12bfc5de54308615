// `imach deploy [manifest] [--dry-run] [--json]`: build the deployment package of the
// manifest's Lambda hosts and create or update their functions, idempotently.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Runtime,
  CreateFunctionCommand,
  GetFunctionCommand,
  GetFunctionEventInvokeConfigCommand,
  LambdaClient,
  PutFunctionEventInvokeConfigCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  type FunctionConfiguration,
} from '@aws-sdk/client-lambda';
import { writeZip, type ZipEntry } from '../lambda-local/zip.js';
import type { LambdaSpec, Manifest } from '../relay/manifest.js';
import { APP_BASE_ENV } from '../relay/protocol.js';
import { CliError, EXIT, flag, parseCommand } from './args.js';
import { manifestPath, readManifest } from './config.js';
import { USAGE } from './usage.js';


export const DEPLOY_RUNTIME = Runtime.nodejs20x;
export const DEPLOY_HANDLER = 'dist/hostfn/lambda.handler';
/** Events are not how the provider invokes; should one arrive, it is not retried and not kept. */
const EVENT_MAX_RETRIES = 0;
const EVENT_MAX_AGE_S = 60;
/** Lambda's limit on a package's unzipped size. */
const MAX_PACKAGE_BYTES = 250 * 1024 * 1024;
const STATE_WAIT_MS = 120_000;

const REPO_DIST = fileURLToPath(new URL('../', import.meta.url));
/** What the handler needs of this repository's build (no node_modules: it imports none). */
const RUNTIME_DIRS = ['hostfn', 'netstack', 'transport'];
const RUNTIME_FILES = ['relay/protocol.js', 'relay/provider.js'];
/** The provider runs in the relay, not in the function (and imports the SDK). */
const RUNTIME_EXCLUDE = new Set(['hostfn/lambda-provider.js']);
const APP_EXCLUDE = new Set(['.imach', '.git']);

export interface FunctionPlan {
  function: string;
  hosts: string[];
  region: string;
  endpoint?: string;
  /** what changes: 'create', 'code', 'configuration: MemorySize, ...', 'event-invoke-config' */
  changes: string[];
}

function walk(dir: string, base: string, skip: (rel: string) => boolean, out: ZipEntry[], budget: { bytes: number }): void {
  for (const name of readdirSync(dir).sort()) {
    const abs = join(dir, name);
    const rel = relative(base, abs).split(sep).join('/');
    if (skip(rel)) continue;
    const st = statSync(abs);
    if (st.isDirectory()) walk(abs, base, skip, out, budget);
    else if (st.isFile()) {
      budget.bytes += st.size;
      if (budget.bytes > MAX_PACKAGE_BYTES) throw new CliError(`the deployment package is over Lambda's ${MAX_PACKAGE_BYTES / 1024 / 1024} MB unzipped`);
      out.push({ name: rel, data: readFileSync(abs), mode: st.mode & 0o111 ? 0o755 : 0o644 });
    }
  }
}

/** The package: the runtime under dist/, the manifest folder (app and its node_modules) under app/. */
export function buildPackage(manifest: Manifest): Buffer {
  const entries: ZipEntry[] = [];
  const budget = { bytes: 0 };
  for (const d of RUNTIME_DIRS) {
    const inner: ZipEntry[] = [];
    walk(join(REPO_DIST, d), REPO_DIST, (rel) => RUNTIME_EXCLUDE.has(rel) || /\.(d\.ts|map)$/.test(rel), inner, budget);
    entries.push(...inner.map((e) => ({ ...e, name: `dist/${e.name}` })));
  }
  for (const f of RUNTIME_FILES) entries.push({ name: `dist/${f}`, data: readFileSync(join(REPO_DIST, f)) });
  entries.push({ name: 'package.json', data: Buffer.from('{"type":"module"}\n') });
  const app: ZipEntry[] = [];
  // The manifest is the relay's, not the app's: a change of memory is not a code change.
  const manifestRel = manifest.path !== '' ? relative(manifest.baseDir, manifest.path).split(sep).join('/') : '';
  walk(manifest.baseDir, manifest.baseDir, (rel) => APP_EXCLUDE.has(rel.split('/')[0]!) || rel === manifestRel, app, budget);
  entries.push(...app.map((e) => ({ ...e, name: `app/${e.name}` })));
  return writeZip(entries);
}

/** Lambda's CodeSha256: base64 SHA-256 of the zip. */
export function codeSha256(zip: Uint8Array): string {
  return createHash('sha256').update(zip).digest('base64');
}

function clientFor(spec: LambdaSpec): LambdaClient {
  const local = spec.endpoint !== undefined && /^https?:\/\/(127\.|localhost|\[::1\])/.test(spec.endpoint) && process.env.AWS_ACCESS_KEY_ID === undefined;
  return new LambdaClient({
    region: spec.region,
    maxAttempts: 3,
    ...(spec.endpoint !== undefined ? { endpoint: spec.endpoint } : {}),
    ...(local ? { credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'lambda-local' } } : {}),
  });
}

function desiredConfig(spec: LambdaSpec, manifest: Manifest) {
  return {
    Runtime: DEPLOY_RUNTIME,
    Handler: DEPLOY_HANDLER,
    MemorySize: spec.memory,
    Timeout: spec.timeout,
    Environment: { Variables: { [APP_BASE_ENV]: manifest.baseDir } },
    ...(spec.role !== undefined ? { Role: spec.role } : {}),
  };
}

function configDiff(have: FunctionConfiguration, want: ReturnType<typeof desiredConfig>): string[] {
  const diff: string[] = [];
  if (have.Runtime !== want.Runtime) diff.push('Runtime');
  if (have.Handler !== want.Handler) diff.push('Handler');
  if (have.MemorySize !== want.MemorySize) diff.push('MemorySize');
  if (have.Timeout !== want.Timeout) diff.push('Timeout');
  if (want.Role !== undefined && have.Role !== want.Role) diff.push('Role');
  if (JSON.stringify(have.Environment?.Variables ?? {}) !== JSON.stringify(want.Environment.Variables)) diff.push('Environment');
  return diff;
}

async function waitReady(client: LambdaClient, name: string): Promise<void> {
  const end = Date.now() + STATE_WAIT_MS;
  for (;;) {
    const c = (await client.send(new GetFunctionCommand({ FunctionName: name }))).Configuration;
    if (c?.State === 'Failed' || c?.LastUpdateStatus === 'Failed') throw new CliError(`${name}: ${c.StateReason ?? c.LastUpdateStatusReason ?? 'failed'}`);
    if (c?.State === 'Active' && (c.LastUpdateStatus === undefined || c.LastUpdateStatus === 'Successful')) return;
    if (Date.now() > end) throw new CliError(`${name}: not ready after ${STATE_WAIT_MS / 1000} s (${c?.State}/${c?.LastUpdateStatus})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function isNotFound(e: unknown): boolean {
  return (e as { name?: string })?.name === 'ResourceNotFoundException';
}

/** Plan (and unless dryRun, apply) every Lambda function of the manifest. */
export async function deployManifest(manifest: Manifest, options: { dryRun?: boolean } = {}): Promise<FunctionPlan[]> {
  const byFunction = new Map<string, { spec: LambdaSpec; hosts: string[] }>();
  for (const h of manifest.hosts) {
    if (h.lambda === undefined) continue;
    if (h.program !== undefined) throw new CliError(`hosts.${h.name}: command: hosts cannot run on Lambda yet`);
    const key = `${h.lambda.region} ${h.lambda.endpoint ?? ''} ${h.lambda.function}`;
    const seen = byFunction.get(key);
    if (seen === undefined) byFunction.set(key, { spec: h.lambda, hosts: [h.name] });
    else {
      if (JSON.stringify(seen.spec) !== JSON.stringify(h.lambda)) throw new CliError(`hosts.${h.name}.lambda: function ${h.lambda.function} is also ${seen.hosts[0]}'s, with other settings`);
      seen.hosts.push(h.name);
    }
  }
  if (byFunction.size === 0) return [];
  const zip = buildPackage(manifest);
  const sha = codeSha256(zip);
  const plans: FunctionPlan[] = [];
  for (const { spec, hosts } of byFunction.values()) {
    const client = clientFor(spec);
    const plan: FunctionPlan = { function: spec.function, hosts, region: spec.region, changes: [], ...(spec.endpoint !== undefined ? { endpoint: spec.endpoint } : {}) };
    plans.push(plan);
    try {
      const want = desiredConfig(spec, manifest);
      let have: FunctionConfiguration | undefined;
      try {
        have = (await client.send(new GetFunctionCommand({ FunctionName: spec.function }))).Configuration;
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      if (have === undefined) {
        if (spec.role === undefined) throw new CliError(`${spec.function}: does not exist, and creating it needs lambda.role (an execution role ARN)`);
        plan.changes.push('create');
        if (!options.dryRun) {
          await client.send(new CreateFunctionCommand({ FunctionName: spec.function, ...want, Role: spec.role, Architectures: [spec.architecture], Code: { ZipFile: zip } }));
          await waitReady(client, spec.function);
        }
      } else {
        if (have.CodeSha256 !== sha) {
          plan.changes.push('code');
          if (!options.dryRun) {
            await waitReady(client, spec.function);
            await client.send(new UpdateFunctionCodeCommand({ FunctionName: spec.function, ZipFile: zip, Architectures: [spec.architecture] }));
            await waitReady(client, spec.function);
          }
        }
        const diff = configDiff(have, want);
        if (diff.length > 0) {
          plan.changes.push(`configuration: ${diff.join(', ')}`);
          if (!options.dryRun) {
            await waitReady(client, spec.function);
            await client.send(new UpdateFunctionConfigurationCommand({ FunctionName: spec.function, ...want }));
            await waitReady(client, spec.function);
          }
        }
      }
      let eic: { MaximumRetryAttempts?: number; MaximumEventAgeInSeconds?: number } | undefined;
      if (have !== undefined) {
        try {
          eic = await client.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: spec.function }));
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
      }
      if (eic?.MaximumRetryAttempts !== EVENT_MAX_RETRIES || eic.MaximumEventAgeInSeconds !== EVENT_MAX_AGE_S) {
        plan.changes.push('event-invoke-config');
        if (!options.dryRun) {
          await client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: spec.function, MaximumRetryAttempts: EVENT_MAX_RETRIES, MaximumEventAgeInSeconds: EVENT_MAX_AGE_S }));
        }
      }
    } catch (e) {
      if (e instanceof CliError) throw e;
      const err = e as { name?: string; message?: string; code?: string };
      throw new CliError(`${spec.function} (${spec.endpoint ?? spec.region}): ${err.code ?? err.name ?? 'Error'}: ${err.message ?? String(e)}`);
    } finally {
      client.destroy();
    }
  }
  return plans;
}

export async function deploy(argv: string[]): Promise<number> {
  const p = parseCommand('deploy', argv, { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } }, 1);
  if (p.help) {
    process.stdout.write(USAGE.deploy!);
    return EXIT.ok;
  }
  const mpath = manifestPath(p.positionals[0], true)!;
  const manifest = await readManifest(mpath);
  const dryRun = flag(p, 'dry-run');
  const plans = await deployManifest(manifest, { dryRun });
  const out = (line: string) => process.stdout.write(line + '\n');
  if (flag(p, 'json')) {
    out(JSON.stringify({ type: 'deploy', dryRun, functions: plans }));
    return EXIT.ok;
  }
  if (plans.length === 0) out('imach deploy: no host has provider: lambda; nothing to deploy');
  for (const pl of plans) {
    const what = pl.changes.length === 0 ? 'no change' : `${dryRun ? 'would change' : 'changed'}: ${pl.changes.join('; ')}`;
    out(`${pl.function.padEnd(20)} ${pl.hosts.join(',').padEnd(16)} ${what}`);
  }
  if (plans.length > 0 && plans.every((pl) => pl.changes.length === 0)) out('imach deploy: everything is up to date');
  return EXIT.ok;
}
