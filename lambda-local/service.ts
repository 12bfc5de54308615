// The Lambda service behind the API: functions and their states, invocations, and
// concurrency limits per function and per account. Execution environments are the
// EnvironmentPool's, code on disk the CodeStore's, Event invocations the EventQueue's.

import { rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
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
import { LOG_TAIL_BYTES } from './environment.js';
import { EnvironmentPool, type Execution } from './environment-pool.js';

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

/** Lambda's quotas on an invocation's request payload. */
export const MAX_SYNC_PAYLOAD_BYTES = 6_291_456;
export const MAX_EVENT_PAYLOAD_BYTES = 262_144;

export class LambdaService {
  private readonly functions = new Map<string, FunctionRecord>();
  private readonly environments: EnvironmentPool;
  private readonly inflight = new Map<string, number>();
  private readonly code: CodeStore;
  private readonly events: EventQueue;
  private readonly stateTimers = new Set<NodeJS.Timeout>();
  private closed = false;
  private throttles = 0;

  /** If this process ends without close() (an uncaught error, process.exit), frozen groups must not outlive it. */
  private readonly killAllNow = () => {
    this.environments.killAllNow();
    rmSync(this.options.codeDir, { recursive: true, force: true });
  };

  constructor(private readonly options: LambdaServiceOptions) {
    process.on('exit', this.killAllNow);
    this.code = new CodeStore(options.codeDir, options.allowLocalFolders, options.logger);
    this.environments = new EnvironmentPool(options, {
      isCurrent: (name, generation) => !this.closed && this.functions.get(name)?.generation === generation,
      onIdle: () => this.events.pump(),
      onEnded: () => this.code.sweep(this.environments.codeInUse()),
    });
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
  }

  arn(name: string): string {
    return `arn:aws:lambda:${this.options.region}:${this.options.accountId}:function:${name}`;
  }

  stats(): LambdaLocalStats {
    return {
      environments: this.environments.size,
      ...this.environments.counts,
      throttles: this.throttles,
      eventsQueued: this.events.size,
      eventsSucceeded: this.events.counts.succeeded,
      eventsDiscarded: this.events.counts.discarded,
    };
  }

  /** Pids of the live environments' runtime processes (each leads its own process group). */
  environmentPids(): number[] {
    return this.environments.pids();
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
      this.code.retire(code, this.environments.codeInUse());
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
      this.code.retire(code, this.environments.codeInUse());
      return functionConfiguration(fn);
    }
    this.code.retire(fn.code, this.environments.codeInUse());
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
    this.code.retire(fn.code, this.environments.codeInUse());
    this.options.logger.info('function deleted', { function: fn.name });
    await this.environments.killFunction(fn.name);
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
      this.throttles++;
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
    this.events.close();
    for (const t of this.stateTimers) clearTimeout(t);
    this.stateTimers.clear();
    await this.environments.close();
    for (const fn of this.functions.values()) this.code.retire(fn.code, new Set());
    this.functions.clear();
  }

  private execute(fn: FunctionRecord, requestId: string, payload: Buffer, clientContext?: string): Promise<Execution> {
    return this.environments.execute(fn, requestId, payload, clientContext);
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
    this.environments.retireIdle(fn.name);
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
}

function tail(text: string): string {
  const b = Buffer.from(text);
  return b.length <= LOG_TAIL_BYTES ? text : b.subarray(b.length - LOG_TAIL_BYTES).toString('utf8');
}

function tooLarge(limit: number): LambdaApiError {
  return new LambdaApiError('RequestEntityTooLargeException', `Request must be smaller than ${limit} bytes for the Invoke operation`);
}
