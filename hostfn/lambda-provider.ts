// `LambdaProvider implements Provider`: a host function is one RequestResponse invocation
// of the host's Lambda function, the launch as its event (see README, "Lambda provider").

import { InvokeCommand, LambdaClient, type InvokeCommandOutput } from '@aws-sdk/client-lambda';
import type { Logger } from './log.js';
import type { Launch } from './protocol.js';
import type { HostInstance, Provider } from '../relay/provider.js';

/** Where a host's function is (the manifest's merged `lambda:` settings fit this). */
export interface LambdaFunctionRef {
  function: string;
  region: string;
  /** Lambda API endpoint; default AWS's own for the region */
  endpoint?: string;
  /** the function's timeout (s): the invoke's HTTP request may last this long */
  timeout: number;
}

export interface LambdaProviderOptions {
  /** the function of each host this provider starts */
  functions: Record<string, LambdaFunctionRef>;
  /** static credentials (lambda-local); default: the SDK's default chain */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /**
   * How long start() waits for an invoke to fail before it counts as started (a throttle,
   * a missing function or an unreachable endpoint is answered well within it). 1500 ms.
   */
  acceptWindowMs?: number;
  /** TCP connect timeout of the Lambda API (ms, default 5000) */
  connectTimeoutMs?: number;
  logger?: Logger;
}

/** Time over the function's timeout before the SDK gives up on an invoke's answer. */
const INVOKE_ANSWER_MARGIN_MS = 30_000;
/** Largest Lambda error message kept in a reason. */
const MAX_REASON_CHARS = 300;

/** Why an invoke failed, as a relay reason: `throttled: ...`, `function not found: ...`. */
export function describeInvokeError(e: unknown, ref: LambdaFunctionRef): string {
  const err = e as { name?: unknown; message?: unknown; Reason?: unknown; code?: unknown; cause?: unknown };
  const name = typeof err?.name === 'string' ? err.name : 'Error';
  const message = (typeof err?.message === 'string' ? err.message : String(e)).slice(0, MAX_REASON_CHARS);
  switch (name) {
    case 'TooManyRequestsException':
      return `throttled: ${typeof err.Reason === 'string' ? err.Reason : 'TooManyRequests'}: ${message}`;
    case 'ResourceNotFoundException':
      return `function not found: ${ref.function} in ${ref.region} (imach deploy creates it): ${message}`;
    case 'ResourceConflictException':
      return `function not ready: ${ref.function}: ${message}`;
    case 'AbortError':
      return 'stopped';
    default: {
      const code = typeof err?.code === 'string' ? err.code : undefined;
      if (code !== undefined && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|ETIMEDOUT|EHOSTUNREACH)$/.test(code)) {
        return `cannot reach the Lambda API at ${ref.endpoint ?? `lambda.${ref.region}.amazonaws.com`}: ${code}`;
      }
      return `invoke failed: ${name}: ${message}`;
    }
  }
}

/** The host's exit from an invoke's answer (the handler returns `{ host, code, reason }`). */
export function exitOfInvoke(out: InvokeCommandOutput): { code: number | null; reason: string } {
  const text = out.Payload !== undefined ? Buffer.from(out.Payload).toString('utf8').slice(0, 64 * 1024) : '';
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  const o = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  if (out.FunctionError !== undefined) {
    const type = typeof o.errorType === 'string' ? o.errorType : out.FunctionError;
    const msg = typeof o.errorMessage === 'string' ? o.errorMessage.slice(0, MAX_REASON_CHARS) : '';
    return { code: null, reason: `function error ${type}${msg ? `: ${msg}` : ''}` };
  }
  const code = typeof o.code === 'number' ? o.code : null;
  const reason = typeof o.reason === 'string' ? o.reason.slice(0, MAX_REASON_CHARS) : 'invocation ended';
  return { code, reason };
}

class LambdaInstance implements HostInstance {
  readonly exited: Promise<{ code: number | null; reason: string }>;
  private readonly abort = new AbortController();

  constructor(invoke: (signal: AbortSignal) => Promise<{ code: number | null; reason: string }>) {
    this.exited = invoke(this.abort.signal);
  }

  /**
   * Stops waiting for the invocation. Lambda has no call that ends one: the relay drains the
   * host over its session, and a rejoin with the retired launch's token is refused (403),
   * which ends the host's runtime.
   */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.exited;
  }
}

export class LambdaProvider implements Provider {
  readonly name = 'lambda';
  private readonly clients = new Map<string, LambdaClient>();
  private readonly live = new Set<LambdaInstance>();
  private closed = false;

  constructor(private readonly options: LambdaProviderOptions) {}

  /** One client per (region, endpoint, timeout): no SDK retries, so one start is one invocation. */
  private client(ref: LambdaFunctionRef): LambdaClient {
    const key = `${ref.region} ${ref.endpoint ?? ''} ${ref.timeout}`;
    let c = this.clients.get(key);
    if (c === undefined) {
      c = new LambdaClient({
        region: ref.region,
        ...(ref.endpoint !== undefined ? { endpoint: ref.endpoint } : {}),
        ...(this.options.credentials !== undefined ? { credentials: this.options.credentials } : {}),
        maxAttempts: 1,
        requestHandler: { connectionTimeout: this.options.connectTimeoutMs ?? 5000, requestTimeout: ref.timeout * 1000 + INVOKE_ANSWER_MARGIN_MS },
      });
      this.clients.set(key, c);
    }
    return c;
  }

  async start(launch: Launch): Promise<HostInstance> {
    if (this.closed) throw new Error('lambda provider: closed');
    const ref = this.options.functions[launch.host];
    if (ref === undefined) throw new Error(`lambda provider: no function configured for host ${launch.host}`);
    const client = this.client(ref);
    const log = this.options.logger?.child({ host: launch.host, function: ref.function });
    let failedEarly: string | null = null;
    let settled = false;
    const inst = new LambdaInstance(async (signal) => {
      try {
        const out = await client.send(
          new InvokeCommand({ FunctionName: ref.function, InvocationType: 'RequestResponse', Payload: Buffer.from(JSON.stringify(launch)) }),
          { abortSignal: signal },
        );
        const exit = exitOfInvoke(out);
        log?.debug('invocation ended', exit);
        return exit;
      } catch (e) {
        const reason = signal.aborted ? 'stopped' : describeInvokeError(e, ref);
        failedEarly = reason;
        if (!signal.aborted) log?.warn('invoke failed', { reason });
        return { code: null, reason };
      } finally {
        settled = true;
      }
    });
    this.live.add(inst);
    void inst.exited.then(() => this.live.delete(inst));
    const windowMs = this.options.acceptWindowMs ?? 1500;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([inst.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, windowMs)))]);
    clearTimeout(timer);
    // An invoke refused at once (throttled, no such function, no endpoint) is a failed start.
    if (settled && failedEarly !== null) throw new Error(failedEarly);
    return inst;
  }

  /** Stop waiting for every invocation and release the clients' sockets. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.live].map((i) => i.stop()));
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}
