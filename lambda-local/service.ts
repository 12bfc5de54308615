// The Lambda service behind the API: functions, their execution environments (reused
// while warm, frozen between invocations, reclaimed when idle), concurrency limits per
// function and per account, and timeouts. Code on disk is the CodeStore's, Event
// invocations the EventQueue's.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { LambdaApiError, invalidParameter, notFound, throttled, validation, type ThrottleReason } from './errors.js';
import {
  CUSTOM_RUNTIMES,
  LATEST,
  checkConfiguration,
  checkFunctionName,
  functionConfiguration,
  lambdaTimestamp,
  newRevisionId,
  type ConfigurationInput,
  type FunctionRecord,
} from './functions.js';
import { CodeStore } from './code-store.js';
import { DEFAULT_MAX_EVENT_AGE_S, DEFAULT_MAX_RETRY_ATTEMPTS, EventQueue, type QueuedEvent } from './event-queue.js';
import type { LambdaLocalLogger } from './logger.js';
import { ExecutionEnvironment, LOG_TAIL_BYTES, MAX_RESPONSE_BYTES, type InvocationOutcome } from './environment.js';
import { Watchdog } from './watchdog.js';

export { LOCAL_CODE_BUCKET } from './code-store.js';
export type { LambdaLocalLogger } from './logger.js';

export interface LambdaServiceOptions {
  region: string;
  accountId: string;
  /** Where zip packages are unpacked (one folder per code upload). */
  codeDir: string;
  /** Account concurrency limit (Lambda's default quota is 1000). */
  accountConcurrency: number;
  /** Unreserved concurrency that PutFunctionConcurrency must leave (Lambda: 100). */
  minUnreservedConcurrency: number;
  /** Limit of the init phase (Lambda: 10 s). */
  initTimeoutMs: number;
  /** A warm environment unused this long is reclaimed. */
  idleEnvironmentMs: number;
  /** How long a function stays Pending after CreateFunction, and InProgress after an update. */
  stateTransitionMs: number;
  /** Bound of queued Event invocations (all functions together). */
  eventQueueLimit: number;
  /** Delay before the first retry of a failed Event invocation; doubled per retry (Lambda: about 1 min). */
  eventRetryDelayMs: number;
  /** The Runtime API client that runs Node.js handlers (a .js file run with this node). */
  nodeRuntimeClient: string;
  /** Accept `Code.S3Bucket = LOCAL_CODE_BUCKET` with a folder path as S3Key. */
  allowLocalFolders: boolean;
  output: (functionName: string, line: string) => void;
  logger: LambdaLocalLogger;
}

export type InvocationType = 'RequestResponse' | 'Event' | 'DryRun';

export interface InvokeInput {
  functionName: string;
  qualifier?: string;
  invocationType: InvocationType;
  logTail: boolean;
  clientContext?: string;
  payload: Buffer;
}

export interface InvokeResult {
  status: 200 | 202 | 204;
  requestId: string;
  payload: Buffer;
  functionError?: 'Unhandled';
  logResult?: string;
  executedVersion?: string;
}

export interface LambdaLocalStats {
  /** Live execution environments (child process groups). */
  environments: number;
  coldStarts: number;
  warmStarts: number;
  throttles: number;
  timeouts: number;
  eventsQueued: number;
  eventsSucceeded: number;
  /** Event invocations dropped after their retries or their maximum age. */
  eventsDiscarded: number;
}

interface PooledEnvironment {
  env: ExecutionEnvironment;
  functionName: string;
  generation: number;
  codeDir: string;
}

interface Execution {
  payload: Buffer;
  failed: boolean;
  logs: string;
}

/** Lambda's quotas on an invocation's request payload. */
export const MAX_SYNC_PAYLOAD_BYTES = 6_291_456;
export const MAX_EVENT_PAYLOAD_BYTES = 262_144;

export class LambdaService {
  private readonly functions = new Map<string, FunctionRecord>();
  private readonly pools = new Map<string, Set<PooledEnvironment>>();
  private readonly inflight = new Map<string, number>();
  private readonly code: CodeStore;
  private readonly events: EventQueue;
  private readonly stateTimers = new Set<NodeJS.Timeout>();
  private readonly reaper: NodeJS.Timeout;
  private closed = false;
  private readonly counts = { coldStarts: 0, warmStarts: 0, throttles: 0, timeouts: 0 };

  /** If this process ends without close() (an uncaught error, process.exit), frozen groups must not outlive it. */
  private readonly killAllNow = () => {
    for (const pool of this.pools.values()) for (const p of pool) void p.env.kill();
    rmSync(this.options.codeDir, { recursive: true, force: true });
    this.watchdog.stop();
  };

  private readonly watchdog: Watchdog;

  constructor(private readonly options: LambdaServiceOptions) {
    process.on('exit', this.killAllNow);
    this.code = new CodeStore(options.codeDir, options.allowLocalFolders, options.logger);
    this.watchdog = new Watchdog(options.codeDir);
    this.events = new EventQueue(
      {
        lookup: (name) => this.functions.get(name),
        acquire: (fn) => this.acquire(fn) === null,
        run: async (fn, ev) => {
          const exec = await this.execute(fn, ev.requestId, ev.payload, ev.clientContext).finally(() => this.release(fn));
          return !exec.failed;
        },
      },
      { limit: options.eventQueueLimit, retryDelayMs: options.eventRetryDelayMs, logger: options.logger },
    );
    this.reaper = setInterval(() => this.reclaimIdle(), Math.min(options.idleEnvironmentMs, 1000));
    this.reaper.unref();
  }

  arn(name: string): string {
    return `arn:aws:lambda:${this.options.region}:${this.options.accountId}:function:${name}`;
  }

  stats(): LambdaLocalStats {
    let environments = 0;
    for (const pool of this.pools.values()) environments += pool.size;
    return {
      environments,
      ...this.counts,
      eventsQueued: this.events.size,
      eventsSucceeded: this.events.counts.succeeded,
      eventsDiscarded: this.events.counts.discarded,
    };
  }

  /** Pids of the live environments' runtime processes (each leads its own process group). */
  environmentPids(): number[] {
    const pids: number[] = [];
    for (const pool of this.pools.values()) for (const p of pool) if (p.env.pid !== undefined) pids.push(p.env.pid);
    return pids;
  }

  /** A function name, partial ARN or ARN (with an optional qualifier) -> the function. */
  lookup(raw: string, qualifier?: string): FunctionRecord | LambdaApiError {
    const m = /^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:|\d{12}:function:)?([a-zA-Z0-9_-]{1,64})(?::(\$LATEST|[a-zA-Z0-9_-]{1,128}))?$/.exec(raw);
    if (!m) {
      return validation(raw, 'functionName', 'Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?');
    }
    if (m[2] !== undefined && qualifier !== undefined && m[2] !== qualifier) {
      return invalidParameter('The derived qualifier from the function name does not match the specified qualifier.');
    }
    const q = m[2] ?? qualifier;
    const fn = this.functions.get(m[1]);
    if (!fn || (q !== undefined && q !== LATEST)) return notFound(this.arn(m[1]) + (q !== undefined && fn ? `:${q}` : ''));
    return fn;
  }

  createFunction(input: Record<string, unknown>): Record<string, unknown> | LambdaApiError {
    const name = checkFunctionName(input.FunctionName);
    if (name instanceof LambdaApiError) return name;
    const config = checkConfiguration(input as ConfigurationInput, true);
    if (config instanceof LambdaApiError) return config;
    if (this.functions.has(name)) return new LambdaApiError('ResourceConflictException', `Function already exist: ${name}`);
    if (!CUSTOM_RUNTIMES.includes(config.runtime ?? '') && !config.handler) return invalidParameter('Handler is required');
    const code = this.code.store(name, input.Code);
    if (code instanceof LambdaApiError) return code;
    // a second create of the same name may have raced the unpacking
    if (this.functions.has(name)) {
      this.code.retire(code, this.codeInUse());
      return new LambdaApiError('ResourceConflictException', `Function already exist: ${name}`);
    }
    const fn: FunctionRecord = {
      name,
      arn: this.arn(name),
      runtime: config.runtime ?? '',
      handler: config.handler ?? '',
      role: config.role ?? '',
      description: config.description ?? '',
      timeout: config.timeout ?? 3,
      memorySize: config.memorySize ?? 128,
      architectures: config.architectures ?? ['x86_64'],
      environment: config.environment ?? {},
      code,
      revisionId: newRevisionId(),
      lastModified: lambdaTimestamp(),
      state: 'Pending',
      stateReason: 'The function is being created.',
      stateReasonCode: 'Creating',
      generation: 1,
      reservedConcurrency: null,
      eventInvokeConfig: null,
    };
    this.functions.set(name, fn);
    this.options.logger.info('function created', { function: name, runtime: fn.runtime, code: code.dir });
    this.later(() => {
      fn.state = 'Active';
      fn.stateReason = undefined;
      fn.stateReasonCode = undefined;
      fn.lastUpdateStatus = 'Successful';
      fn.revisionId = newRevisionId();
    });
    return functionConfiguration(fn);
  }

  getFunction(fn: FunctionRecord): Record<string, unknown> {
    const out: Record<string, unknown> = {
      Configuration: functionConfiguration(fn),
      Code: { RepositoryType: 'S3', Location: `file://${fn.code.dir}` },
      Tags: {},
    };
    if (fn.reservedConcurrency !== null) out.Concurrency = { ReservedConcurrentExecutions: fn.reservedConcurrency };
    return out;
  }

  configuration(fn: FunctionRecord): Record<string, unknown> {
    return functionConfiguration(fn);
  }

  updateFunctionCode(fn: FunctionRecord, input: Record<string, unknown>): Record<string, unknown> | LambdaApiError {
    const busy = this.checkUpdatable(fn, input.RevisionId);
    if (busy) return busy;
    if (input.Architectures !== undefined) {
      const a = checkConfiguration({ Architectures: input.Architectures }, false);
      if (a instanceof LambdaApiError) return a;
      fn.architectures = a.architectures ?? fn.architectures;
    }
    const code = this.code.store(fn.name, { ZipFile: input.ZipFile, S3Bucket: input.S3Bucket, S3Key: input.S3Key, ImageUri: input.ImageUri });
    if (code instanceof LambdaApiError) return code;
    if (input.DryRun === true) {
      this.code.retire(code, this.codeInUse());
      return functionConfiguration(fn);
    }
    this.code.retire(fn.code, this.codeInUse());
    fn.code = code;
    this.startUpdate(fn);
    return functionConfiguration(fn);
  }

  updateFunctionConfiguration(fn: FunctionRecord, input: Record<string, unknown>): Record<string, unknown> | LambdaApiError {
    const busy = this.checkUpdatable(fn, input.RevisionId);
    if (busy) return busy;
    const patch = checkConfiguration(input as ConfigurationInput, false);
    if (patch instanceof LambdaApiError) return patch;
    const runtime = patch.runtime ?? fn.runtime;
    const handler = patch.handler ?? fn.handler;
    if (!CUSTOM_RUNTIMES.includes(runtime) && !handler) return invalidParameter('Handler is required');
    Object.assign(fn, patch);
    this.startUpdate(fn);
    return functionConfiguration(fn);
  }

  async deleteFunction(fn: FunctionRecord): Promise<void> {
    this.functions.delete(fn.name);
    this.events.dropFunction(fn.name);
    this.code.retire(fn.code, this.codeInUse());
    this.options.logger.info('function deleted', { function: fn.name });
    await Promise.all([...(this.pools.get(fn.name) ?? [])].map((p) => p.env.kill()));
  }

  putFunctionConcurrency(fn: FunctionRecord, input: Record<string, unknown>): Record<string, unknown> | LambdaApiError {
    const r = input.ReservedConcurrentExecutions;
    if (!Number.isInteger(r) || (r as number) < 0) {
      return validation(r ?? 'null', 'reservedConcurrentExecutions', 'Member must have value greater than or equal to 0');
    }
    let others = 0;
    for (const f of this.functions.values()) if (f !== fn && f.reservedConcurrency !== null) others += f.reservedConcurrency;
    const { accountConcurrency: account, minUnreservedConcurrency: min } = this.options;
    if (account - others - (r as number) < min) {
      return invalidParameter(
        `Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [${min}].`,
      );
    }
    fn.reservedConcurrency = r as number;
    this.events.pump();
    return { ReservedConcurrentExecutions: r };
  }

  deleteFunctionConcurrency(fn: FunctionRecord): void {
    fn.reservedConcurrency = null;
    this.events.pump();
  }

  putEventInvokeConfig(fn: FunctionRecord, input: Record<string, unknown>): Record<string, unknown> | LambdaApiError {
    const retries = input.MaximumRetryAttempts ?? DEFAULT_MAX_RETRY_ATTEMPTS;
    const age = input.MaximumEventAgeInSeconds ?? DEFAULT_MAX_EVENT_AGE_S;
    if (!Number.isInteger(retries) || (retries as number) < 0 || (retries as number) > 2) {
      return validation(retries, 'maximumRetryAttempts', 'Member must have value less than or equal to 2 and greater than or equal to 0');
    }
    if (!Number.isInteger(age) || (age as number) < 60 || (age as number) > 21_600) {
      return validation(age, 'maximumEventAgeInSeconds', 'Member must have value less than or equal to 21600 and greater than or equal to 60');
    }
    if (input.DestinationConfig !== undefined) return invalidParameter('lambda-local does not support DestinationConfig');
    fn.eventInvokeConfig = { maximumRetryAttempts: retries as number, maximumEventAgeInSeconds: age as number, lastModified: Date.now() / 1000 };
    return this.eventInvokeConfig(fn) ?? {};
  }

  eventInvokeConfig(fn: FunctionRecord): Record<string, unknown> | null {
    const c = fn.eventInvokeConfig;
    if (!c) return null;
    return { FunctionArn: `${fn.arn}:${LATEST}`, MaximumRetryAttempts: c.maximumRetryAttempts, MaximumEventAgeInSeconds: c.maximumEventAgeInSeconds, LastModified: c.lastModified };
  }

  async invoke(input: InvokeInput): Promise<InvokeResult | LambdaApiError> {
    const fn = this.lookup(input.functionName, input.qualifier);
    if (fn instanceof LambdaApiError) return fn;
    if (fn.state !== 'Active') {
      return new LambdaApiError('ResourceConflictException', `The operation cannot be performed at this time. The function is currently in the following state: ${fn.state}`);
    }
    const requestId = randomUUID();
    if (input.invocationType === 'DryRun') return { status: 204, requestId, payload: Buffer.alloc(0) };
    const limit = input.invocationType === 'Event' ? MAX_EVENT_PAYLOAD_BYTES : MAX_SYNC_PAYLOAD_BYTES;
    if (input.payload.length > limit) return tooLarge(limit);
    if (input.payload.length > 0) {
      try {
        JSON.parse(input.payload.toString('utf8'));
      } catch (err) {
        return new LambdaApiError('InvalidRequestContentException', `Could not parse request body into json: ${(err as Error).message}`);
      }
    }
    const payload = input.payload.length > 0 ? input.payload : Buffer.from('{}');
    if (input.invocationType === 'Event') {
      const now = Date.now();
      const ev: QueuedEvent = { requestId, payload, clientContext: input.clientContext, enqueuedMs: now, notBeforeMs: now, attempts: 0 };
      if (!this.events.enqueue(fn.name, ev)) return throttled('CallerRateLimitExceeded');
      return { status: 202, requestId, payload: Buffer.alloc(0) };
    }
    const slot = this.acquire(fn);
    if (slot !== null) {
      this.counts.throttles++;
      return throttled(slot);
    }
    const exec = await this.execute(fn, requestId, payload, input.clientContext).finally(() => this.release(fn));
    const result: InvokeResult = { status: 200, requestId, payload: exec.payload, executedVersion: LATEST };
    if (exec.failed) result.functionError = 'Unhandled';
    if (input.logTail) result.logResult = Buffer.from(tail(exec.logs)).toString('base64');
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    process.off('exit', this.killAllNow);
    clearInterval(this.reaper);
    this.events.close();
    for (const t of this.stateTimers) clearTimeout(t);
    this.stateTimers.clear();
    const all: Promise<void>[] = [];
    for (const pool of this.pools.values()) for (const p of pool) all.push(p.env.kill());
    await Promise.all(all);
    for (const fn of this.functions.values()) this.code.retire(fn.code, new Set());
    this.functions.clear();
    this.watchdog.stop();
  }

  /** Pid of the watchdog that ends the environments if this process dies without close(). */
  watchdogPid(): number | undefined {
    return this.watchdog.pid;
  }

  /** Code folders that live environments run from. */
  private codeInUse(): Set<string> {
    const used = new Set<string>();
    for (const pool of this.pools.values()) for (const p of pool) used.add(p.codeDir);
    return used;
  }

  // --- updates and states ---

  private checkUpdatable(fn: FunctionRecord, revisionId: unknown): LambdaApiError | null {
    if (fn.state === 'Pending' || fn.lastUpdateStatus === 'InProgress') {
      return new LambdaApiError('ResourceConflictException', `The operation cannot be performed at this time. An update is in progress for resource: ${fn.arn}`);
    }
    if (revisionId !== undefined && revisionId !== fn.revisionId) {
      return new LambdaApiError('PreconditionFailedException', 'The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id');
    }
    return null;
  }

  private startUpdate(fn: FunctionRecord): void {
    fn.generation++;
    fn.revisionId = newRevisionId();
    fn.lastModified = lambdaTimestamp();
    fn.lastUpdateStatus = 'InProgress';
    fn.lastUpdateStatusReason = 'The function is being created.';
    fn.lastUpdateStatusReasonCode = 'Creating';
    for (const p of this.pools.get(fn.name) ?? []) if (p.env.state === 'idle') void p.env.kill();
    this.later(() => {
      fn.lastUpdateStatus = 'Successful';
      fn.lastUpdateStatusReason = undefined;
      fn.lastUpdateStatusReasonCode = undefined;
      fn.revisionId = newRevisionId();
    });
  }

  private later(f: () => void): void {
    const t = setTimeout(() => {
      this.stateTimers.delete(t);
      f();
    }, this.options.stateTransitionMs);
    this.stateTimers.add(t);
  }

  // --- concurrency ---

  private acquire(fn: FunctionRecord): ThrottleReason | null {
    const mine = this.inflight.get(fn.name) ?? 0;
    if (fn.reservedConcurrency !== null) {
      if (mine >= fn.reservedConcurrency) return 'ReservedFunctionConcurrentInvocationLimitExceeded';
    } else {
      let reserved = 0;
      let unreservedInflight = 0;
      for (const f of this.functions.values()) {
        if (f.reservedConcurrency !== null) reserved += f.reservedConcurrency;
        else unreservedInflight += this.inflight.get(f.name) ?? 0;
      }
      if (unreservedInflight >= this.options.accountConcurrency - reserved) return 'ConcurrentInvocationLimitExceeded';
    }
    this.inflight.set(fn.name, mine + 1);
    return null;
  }

  private release(fn: FunctionRecord): void {
    const n = (this.inflight.get(fn.name) ?? 1) - 1;
    if (n > 0) this.inflight.set(fn.name, n);
    else this.inflight.delete(fn.name);
    this.events.pump();
  }

  // --- environments ---

  private async execute(fn: FunctionRecord, requestId: string, payload: Buffer, clientContext?: string): Promise<Execution> {
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
    if (pooled.generation !== fn.generation || this.functions.get(fn.name) !== fn) void env.kill();
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
      const current = this.functions.get(name);
      if (this.closed || current === undefined || current.generation !== pooled.generation) void environment.kill();
      else {
        environment.freeze();
        this.events.pump();
      }
    };
    environment.onStarted = () => this.watchdog.setGroups(this.environmentPids());
    environment.onDead = () => {
      pool.delete(pooled);
      this.watchdog.setGroups(this.environmentPids());
      if (pool.size === 0 && this.pools.get(name) === pool) this.pools.delete(name);
      void environment.ended.then(() => this.code.sweep(this.codeInUse()));
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

function tail(text: string): string {
  const b = Buffer.from(text);
  return b.length <= LOG_TAIL_BYTES ? text : b.subarray(b.length - LOG_TAIL_BYTES).toString('utf8');
}

function tooLarge(limit: number): LambdaApiError {
  return new LambdaApiError('RequestEntityTooLargeException', `Request must be smaller than ${limit} bytes for the Invoke operation`);
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
