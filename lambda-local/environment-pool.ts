// The execution environments of every function: a warm one (frozen, of the function's
// current generation) is reused, else a new one is started and initialized; the timeout
// is enforced, idle ones are reclaimed, and a watchdog outlives this process to end them.

import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CUSTOM_RUNTIMES, LATEST, type FunctionRecord } from './functions.js';
import { ExecutionEnvironment, MAX_RESPONSE_BYTES, type InvocationOutcome } from './environment.js';
import type { LambdaLocalLogger } from './logger.js';
import { Watchdog } from './watchdog.js';

export interface EnvironmentPoolOptions {
  region: string;
  /** Where unpacked code lives; the watchdog removes it if this process dies. */
  codeDir: string;
  initTimeoutMs: number;
  idleEnvironmentMs: number;
  nodeRuntimeClient: string;
  output: (functionName: string, line: string) => void;
  logger: LambdaLocalLogger;
}

export interface EnvironmentPoolHost {
  /** Whether `generation` is still the live function's (else its environments retire). */
  isCurrent(functionName: string, generation: number): boolean;
  /** An environment is free again (queued events may run). */
  onIdle(): void;
  /** An environment has ended (its code folder may be unused now). */
  onEnded(): void;
}

/** What an invocation came to: the payload to answer with, whether it is a function error, and its log. */
export interface Execution {
  payload: Buffer;
  failed: boolean;
  logs: string;
}

interface PooledEnvironment {
  env: ExecutionEnvironment;
  functionName: string;
  generation: number;
  codeDir: string;
}

export class EnvironmentPool {
  private readonly pools = new Map<string, Set<PooledEnvironment>>();
  private readonly watchdog: Watchdog;
  private readonly reaper: NodeJS.Timeout;
  private closed = false;
  readonly counts = { coldStarts: 0, warmStarts: 0, timeouts: 0 };

  constructor(
    private readonly options: EnvironmentPoolOptions,
    private readonly host: EnvironmentPoolHost,
  ) {
    this.watchdog = new Watchdog(options.codeDir);
    this.reaper = setInterval(() => this.reclaimIdle(), Math.min(options.idleEnvironmentMs, 1000));
    this.reaper.unref();
  }

  get size(): number {
    let n = 0;
    for (const pool of this.pools.values()) n += pool.size;
    return n;
  }

  /** Pids of the live environments' runtime processes (each leads its own process group). */
  pids(): number[] {
    const pids: number[] = [];
    for (const pool of this.pools.values()) for (const p of pool) if (p.env.pid !== undefined) pids.push(p.env.pid);
    return pids;
  }

  /** Code folders that live environments run from. */
  codeInUse(): Set<string> {
    const used = new Set<string>();
    for (const pool of this.pools.values()) for (const p of pool) used.add(p.codeDir);
    return used;
  }

  /** Kill the function's idle environments (an update made them stale); busy ones end after their invocation. */
  retireIdle(functionName: string): void {
    for (const p of this.pools.get(functionName) ?? []) if (p.env.state === 'idle') void p.env.kill();
  }

  /** Kill all of the function's environments (it is deleted). */
  async killFunction(functionName: string): Promise<void> {
    await Promise.all([...(this.pools.get(functionName) ?? [])].map((p) => p.env.kill()));
  }

  /** Kill every environment at once, without waiting (the process is exiting). */
  killAllNow(): void {
    for (const pool of this.pools.values()) for (const p of pool) void p.env.kill();
    this.watchdog.stop();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.reaper);
    const all: Promise<void>[] = [];
    for (const pool of this.pools.values()) for (const p of pool) all.push(p.env.kill());
    await Promise.all(all);
    this.watchdog.stop();
  }

  /** Pid of the watchdog that ends the environments if this process dies without close(). */
  watchdogPid(): number | undefined {
    return this.watchdog.pid;
  }

  async execute(fn: FunctionRecord, requestId: string, payload: Buffer, clientContext?: string): Promise<Execution> {
    const startMs = performance.now();
    if (this.closed) return { payload: lambdaError('Runtime.Unknown', requestId, 'lambda-local is closing'), failed: true, logs: '' };
    let pooled = this.takeWarm(fn);
    let initMs: number | null = null;
    if (pooled) this.counts.warmStarts++;
    else {
      this.counts.coldStarts++;
      pooled = this.spawn(fn);
      const init = await pooled.env.init(this.options.initTimeoutMs);
      initMs = performance.now() - startMs;
      if (init.kind !== 'ready') {
        const payload =
          init.kind === 'init-error'
            ? init.payload
            : init.kind === 'init-timeout'
              ? lambdaError('Sandbox.Timedout', requestId, `Task timed out after ${(this.options.initTimeoutMs / 1000).toFixed(2)} seconds`)
              : exitError(requestId, init.detail, fn);
        this.options.logger.warn('init failed', { function: fn.name, requestId, kind: init.kind });
        return { payload, failed: true, logs: this.report(fn, pooled.env, requestId, startMs, initMs) };
      }
    }
    const env = pooled.env;
    let timedOut = false;
    const timeoutMs = fn.timeout * 1000;
    const timer = setTimeout(() => {
      timedOut = true;
      void env.kill();
    }, timeoutMs);
    const outcome: InvocationOutcome = await env.invoke({
      requestId,
      payload,
      deadlineMs: Date.now() + timeoutMs,
      clientContext,
      traceId: `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=0`,
    });
    clearTimeout(timer);
    if (!this.host.isCurrent(fn.name, pooled.generation)) void env.kill();
    const logs = this.report(fn, env, requestId, startMs, initMs);
    if (timedOut) {
      this.counts.timeouts++;
      this.options.logger.info('invocation timed out', { function: fn.name, requestId, timeoutS: fn.timeout });
      return { payload: lambdaError('Sandbox.Timedout', requestId, `Task timed out after ${fn.timeout.toFixed(2)} seconds`), failed: true, logs };
    }
    switch (outcome.kind) {
      case 'response':
        return { payload: outcome.payload, failed: false, logs };
      case 'function-error':
        return { payload: outcome.payload, failed: true, logs };
      case 'response-too-large':
        return {
          payload: Buffer.from(JSON.stringify({ errorType: 'Function.ResponseSizeTooLarge', errorMessage: `Response payload size exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).` })),
          failed: true,
          logs,
        };
      case 'exited':
        return { payload: exitError(requestId, outcome.detail, fn), failed: true, logs };
    }
  }

  /** AWS's START / END / REPORT lines around the function's output; also sent to `output`. */
  private report(fn: FunctionRecord, env: ExecutionEnvironment, requestId: string, startMs: number, initMs: number | null): string {
    const duration = performance.now() - startMs - (initMs ?? 0);
    const report =
      `REPORT RequestId: ${requestId}\tDuration: ${duration.toFixed(2)} ms\tBilled Duration: ${Math.ceil(duration)} ms\t` +
      `Memory Size: ${fn.memorySize} MB\tMax Memory Used: ${env.maxMemoryMb()} MB\t` +
      (initMs !== null ? `Init Duration: ${initMs.toFixed(2)} ms\t` : '');
    this.options.output(fn.name, `END RequestId: ${requestId}`);
    this.options.output(fn.name, report);
    return `START RequestId: ${requestId} Version: ${LATEST}\n${env.logs()}END RequestId: ${requestId}\n${report}\n`;
  }

  private takeWarm(fn: FunctionRecord): PooledEnvironment | null {
    let best: PooledEnvironment | null = null;
    for (const p of this.pools.get(fn.name) ?? []) {
      if (p.generation !== fn.generation || p.env.state !== 'idle') continue;
      // a frozen environment waits in `next`; one between its response and `next` is a second choice
      if (!best || (p.env.frozen && !best.env.frozen)) best = p;
    }
    return best;
  }

  private spawn(fn: FunctionRecord): PooledEnvironment {
    const custom = CUSTOM_RUNTIMES.includes(fn.runtime);
    const stream = `${new Date().toISOString().slice(0, 10).replace(/-/g, '/')}/[${LATEST}]${randomBytes(16).toString('hex')}`;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      LAMBDA_TASK_ROOT: fn.code.dir,
      LAMBDA_RUNTIME_DIR: custom ? fn.code.dir : join(this.options.nodeRuntimeClient, '..'),
      _HANDLER: fn.handler,
      AWS_REGION: this.options.region,
      AWS_DEFAULT_REGION: this.options.region,
      AWS_LAMBDA_FUNCTION_NAME: fn.name,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize),
      AWS_LAMBDA_FUNCTION_VERSION: LATEST,
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.name}`,
      AWS_LAMBDA_LOG_STREAM_NAME: stream,
      ...(custom ? {} : { AWS_EXECUTION_ENV: `AWS_Lambda_${fn.runtime}` }),
      ...fn.environment,
    };
    const name = fn.name;
    const environment = new ExecutionEnvironment({
      functionArn: fn.arn,
      command: custom ? join(fn.code.dir, 'bootstrap') : process.execPath,
      args: custom ? [] : [this.options.nodeRuntimeClient],
      cwd: fn.code.dir,
      env,
      output: (line) => this.options.output(name, line),
    });
    const pooled: PooledEnvironment = { env: environment, functionName: name, generation: fn.generation, codeDir: fn.code.dir };
    const pool = this.pools.get(name) ?? new Set();
    this.pools.set(name, pool);
    pool.add(pooled);
    environment.onIdle = () => {
      if (this.closed || !this.host.isCurrent(name, pooled.generation)) void environment.kill();
      else {
        environment.freeze();
        this.host.onIdle();
      }
    };
    environment.onStarted = () => this.watchdog.setGroups(this.pids());
    environment.onDead = () => {
      pool.delete(pooled);
      this.watchdog.setGroups(this.pids());
      if (pool.size === 0 && this.pools.get(name) === pool) this.pools.delete(name);
      void environment.ended.then(() => this.host.onEnded());
    };
    this.options.logger.debug('environment started', { function: name, environment: environment.id });
    return pooled;
  }

  private reclaimIdle(): void {
    const cutoff = Date.now() - this.options.idleEnvironmentMs;
    for (const pool of this.pools.values()) {
      for (const p of pool) {
        if (p.env.state === 'idle' && p.env.lastUsedMs < cutoff) {
          this.options.logger.debug('idle environment reclaimed', { function: p.functionName, environment: p.env.id });
          void p.env.kill();
        }
      }
    }
  }
}

function lambdaError(type: string, requestId: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ errorType: type, errorMessage: `RequestId: ${requestId} Error: ${message}` }));
}

function exitError(requestId: string, detail: string, fn: FunctionRecord): Buffer {
  if (detail.startsWith('cannot start runtime')) {
    // Lambda's wording for a bootstrap that is missing or not executable
    const bootstrap = join(fn.code.dir, 'bootstrap');
    const message = /ENOENT/.test(detail)
      ? `Couldn't find valid bootstrap(s): [${bootstrap}]`
      : /EACCES/.test(detail)
        ? `fork/exec ${bootstrap}: permission denied`
        : detail;
    return lambdaError('Runtime.InvalidEntrypoint', requestId, message);
  }
  return lambdaError('Runtime.ExitError', requestId, `Runtime exited with error: ${detail}`);
}
