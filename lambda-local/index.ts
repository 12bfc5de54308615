// lambda-local: a local AWS Lambda for development and tests. Entry point.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { createApiServer } from './api-server.js';
import { LambdaService, type LambdaLocalStats, type LambdaServiceOptions } from './service.js';
import { silentLogger } from './logger.js';

export { LOCAL_CODE_BUCKET, MAX_EVENT_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES } from './service.js';
export type { LambdaLocalLogger, LambdaLocalStats } from './service.js';
export { writeZip, readZip, isZipError, type ZipEntry, type ZipError } from './zip.js';

export interface LambdaLocalOptions extends Partial<Omit<LambdaServiceOptions, 'codeDir'>> {
  /** Default 127.0.0.1, port 9001 (0 for any free port). */
  host?: string;
  port?: number;
  /** Where code is unpacked (a `code-<random>` folder inside it, removed on close). Default: the temp dir. */
  stateDir?: string;
}

export interface LambdaLocal {
  /** The endpoint to give the SDK, e.g. http://127.0.0.1:9001. */
  url: string;
  stats(): LambdaLocalStats;
  /** Pids of the live environments' runtime processes. */
  environmentPids(): number[];
  /** Stop serving, kill every environment (frozen or not) and remove unpacked code. */
  close(): Promise<void>;
}

/** The project's Runtime API client, which runs Node.js handlers (built next to this folder). */
export const DEFAULT_NODE_RUNTIME_CLIENT = fileURLToPath(new URL('../hostfn/lambda-runtime.js', import.meta.url));

export async function startLambdaLocal(options: LambdaLocalOptions = {}): Promise<LambdaLocal> {
  const codeDir = mkdtempSync(join(options.stateDir ?? tmpdir(), 'lambda-local-code-'));
  const logger = options.logger ?? silentLogger;
  const service = new LambdaService({
    region: options.region ?? 'us-east-1',
    accountId: options.accountId ?? '123456789012',
    codeDir,
    accountConcurrency: options.accountConcurrency ?? 1000,
    minUnreservedConcurrency: options.minUnreservedConcurrency ?? Math.min(100, Math.floor((options.accountConcurrency ?? 1000) / 10)),
    initTimeoutMs: options.initTimeoutMs ?? 10_000,
    idleEnvironmentMs: options.idleEnvironmentMs ?? 300_000,
    stateTransitionMs: options.stateTransitionMs ?? 300,
    eventQueueLimit: options.eventQueueLimit ?? 1000,
    eventRetryDelayMs: options.eventRetryDelayMs ?? 1000,
    nodeRuntimeClient: options.nodeRuntimeClient ?? DEFAULT_NODE_RUNTIME_CLIENT,
    allowLocalFolders: options.allowLocalFolders ?? true,
    output: options.output ?? (() => {}),
    logger,
  });
  const server = createApiServer(service, logger);
  server.keepAliveTimeout = 5000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 9001, options.host ?? '127.0.0.1', () => resolve());
    });
  } catch (err) {
    await service.close();
    rmSync(codeDir, { recursive: true, force: true });
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host}:${addr.port}`,
    stats: () => service.stats(),
    environmentPids: () => service.environmentPids(),
    close: () =>
      (closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeAllConnections();
        await service.close();
        await closed;
        rmSync(codeDir, { recursive: true, force: true });
      })()),
  };
}
