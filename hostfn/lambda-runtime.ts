// A Lambda Runtime API client for Node.js handlers, the project's own (no aws-lambda-ric):
// load `_HANDLER` (`file.export`) from LAMBDA_TASK_ROOT, then loop: `next` -> handler ->
// `response` or `error`. A failed load is reported to `init/error`. Run as a program
// (`node dist/hostfn/lambda-runtime.js`), it serves until the environment is ended.

import { Agent, request } from 'node:http';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';

const API_VERSION = '2018-06-01';

export type LambdaHandler = (event: unknown, context: LambdaContext, callback?: (err: unknown, result?: unknown) => void) => unknown;

/** The context object Lambda's Node.js runtime passes to handlers (the commonly used part). */
export interface LambdaContext {
  awsRequestId: string;
  invokedFunctionArn: string;
  functionName: string;
  functionVersion: string;
  memoryLimitInMB: string;
  logGroupName: string;
  logStreamName: string;
  callbackWaitsForEmptyEventLoop: boolean;
  clientContext?: unknown;
  getRemainingTimeInMillis(): number;
}

interface RuntimeReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface RuntimeError {
  errorType: string;
  errorMessage: string;
  trace: string[];
}

export function toRuntimeError(err: unknown, fallbackType = 'Error'): RuntimeError {
  if (err instanceof Error) {
    return { errorType: err.name || fallbackType, errorMessage: err.message, trace: (err.stack ?? '').split('\n') };
  }
  return { errorType: fallbackType, errorMessage: typeof err === 'string' ? err : JSON.stringify(err) ?? String(err), trace: [] };
}

export class RuntimeApiClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private readonly host: string;
  private readonly port: number;

  constructor(address: string) {
    const i = address.lastIndexOf(':');
    this.host = address.slice(0, i);
    this.port = Number(address.slice(i + 1));
  }

  next(): Promise<RuntimeReply> {
    return this.call('GET', `/${API_VERSION}/runtime/invocation/next`);
  }

  respond(requestId: string, body: Buffer): Promise<RuntimeReply> {
    return this.call('POST', `/${API_VERSION}/runtime/invocation/${encodeURIComponent(requestId)}/response`, body);
  }

  fail(requestId: string, err: RuntimeError): Promise<RuntimeReply> {
    return this.call('POST', `/${API_VERSION}/runtime/invocation/${encodeURIComponent(requestId)}/error`, errorBody(err), {
      'lambda-runtime-function-error-type': err.errorType,
    });
  }

  initError(err: RuntimeError): Promise<RuntimeReply> {
    return this.call('POST', `/${API_VERSION}/runtime/init/error`, errorBody(err), { 'lambda-runtime-function-error-type': err.errorType });
  }

  private call(method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<RuntimeReply> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: this.host, port: this.port, method, path, agent: this.agent, headers: { ...headers, ...(body ? { 'content-type': 'application/json', 'content-length': body.length } : {}) } },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }
}

function errorBody(err: RuntimeError): Buffer {
  return Buffer.from(JSON.stringify(err));
}

function header(reply: RuntimeReply, name: string): string {
  const v = reply.headers[name];
  return typeof v === 'string' ? v : '';
}

/** Resolve `file.export` in `taskRoot` as Lambda's Node.js runtime does (.js, .mjs, .cjs). */
export async function loadHandler(taskRoot: string, handlerSpec: string): Promise<LambdaHandler | RuntimeError> {
  const dot = handlerSpec.lastIndexOf('.');
  if (dot <= 0 || dot === handlerSpec.length - 1) {
    return { errorType: 'Runtime.MalformedHandlerName', errorMessage: `Bad handler ${handlerSpec}: expected file.export`, trace: [] };
  }
  const base = join(taskRoot, handlerSpec.slice(0, dot));
  const exportName = handlerSpec.slice(dot + 1);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => existsSync(f));
  if (!file) {
    return { errorType: 'Runtime.ImportModuleError', errorMessage: `Error: Cannot find module '${handlerSpec.slice(0, dot)}'`, trace: [] };
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const e = toRuntimeError(err, 'Runtime.ImportModuleError');
    return { ...e, errorType: 'Runtime.ImportModuleError', errorMessage: `${e.errorType}: ${e.errorMessage}` };
  }
  const fn = mod[exportName] ?? (mod.default as Record<string, unknown> | undefined)?.[exportName];
  if (typeof fn !== 'function') {
    return { errorType: 'Runtime.HandlerNotFound', errorMessage: `${handlerSpec.slice(0, dot)}.${exportName} is undefined or not exported`, trace: [] };
  }
  return fn as LambdaHandler;
}

function callHandler(handler: LambdaHandler, event: unknown, context: LambdaContext): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const callback = (err: unknown, result?: unknown) => (err ? reject(err) : resolve(result));
    try {
      const r = handler.length >= 3 ? handler(event, context, callback) : handler(event, context);
      if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(resolve, reject);
      else if (handler.length < 3) resolve(r);
    } catch (err) {
      reject(err);
    }
  });
}

/**
 * Console output as Lambda's Node.js runtime writes it: one line per call, `time requestId
 * LEVEL message`, newlines inside the message turned into \r so a record stays one line.
 */
export function patchConsole(requestId: () => string | null): void {
  const levels = [['log', 'INFO'], ['info', 'INFO'], ['warn', 'WARN'], ['error', 'ERROR'], ['debug', 'DEBUG'], ['trace', 'TRACE']] as const;
  for (const [method, level] of levels) {
    console[method] = (...args: unknown[]) => {
      process.stdout.write(`${new Date().toISOString()}\t${requestId() ?? 'undefined'}\t${level}\t${format(...args).replace(/\n/g, '\r')}\n`);
    };
  }
}

/** Serve invocations until the process is ended (it never returns normally). */
export async function runLambdaRuntime(env: NodeJS.ProcessEnv = process.env): Promise<never> {
  const api = env.AWS_LAMBDA_RUNTIME_API;
  if (!api) throw new Error('AWS_LAMBDA_RUNTIME_API is not set: this program runs inside a Lambda execution environment');
  const client = new RuntimeApiClient(api);
  let currentId: string | null = null;
  patchConsole(() => currentId);
  const handler = await loadHandler(env.LAMBDA_TASK_ROOT ?? process.cwd(), env._HANDLER ?? '');
  if (typeof handler !== 'function') {
    await client.initError(handler).catch(() => {});
    process.exit(1);
  }
  const failCurrent = (err: unknown) => {
    const id = currentId;
    currentId = null;
    const report = id ? client.fail(id, toRuntimeError(err)) : Promise.resolve();
    // as Lambda's runtime does: an error outside the handler's promise ends the environment
    void report.catch(() => {}).finally(() => process.exit(1));
  };
  process.on('uncaughtException', failCurrent);
  process.on('unhandledRejection', failCurrent);
  for (;;) {
    const inv = await client.next();
    if (inv.status !== 200) throw new Error(`runtime api next: status ${inv.status}`);
    const requestId = header(inv, 'lambda-runtime-aws-request-id');
    const deadlineMs = Number(header(inv, 'lambda-runtime-deadline-ms'));
    const clientContext = header(inv, 'lambda-runtime-client-context');
    const context: LambdaContext = {
      awsRequestId: requestId,
      invokedFunctionArn: header(inv, 'lambda-runtime-invoked-function-arn'),
      functionName: env.AWS_LAMBDA_FUNCTION_NAME ?? '',
      functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION ?? '$LATEST',
      memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ?? '128',
      logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME ?? '',
      logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME ?? '',
      callbackWaitsForEmptyEventLoop: true,
      clientContext: clientContext ? safeJson(clientContext) : undefined,
      getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
    };
    process.env._X_AMZN_TRACE_ID = header(inv, 'lambda-runtime-trace-id');
    currentId = requestId;
    let event: unknown;
    try {
      event = JSON.parse(inv.body.toString('utf8') || 'null');
    } catch (err) {
      currentId = null;
      await client.fail(requestId, toRuntimeError(err, 'Runtime.UnmarshalError'));
      continue;
    }
    let result: unknown;
    try {
      result = await callHandler(handler, event, context);
    } catch (err) {
      if (currentId === requestId) {
        currentId = null;
        await client.fail(requestId, toRuntimeError(err));
      }
      continue;
    }
    if (currentId !== requestId) continue;
    currentId = null;
    let body: Buffer;
    try {
      body = Buffer.from(JSON.stringify(result) ?? 'null');
    } catch (err) {
      await client.fail(requestId, toRuntimeError(err, 'Runtime.SerializationError'));
      continue;
    }
    await client.respond(requestId, body);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isMainModule(): boolean {
  try {
    // a package may reach this file through a symlink (argv[1]); import.meta.url is the real path
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1] ?? '')).href;
  } catch {
    return false;
  }
}

if (isMainModule()) {
  runLambdaRuntime().catch((err: unknown) => {
    process.stderr.write(`lambda-runtime: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  });
}
