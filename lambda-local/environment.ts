// One execution environment: a child process (its own process group) that speaks the
// Lambda Runtime API to a server of its own, as a Lambda sandbox does. Between
// invocations the whole group is frozen with SIGSTOP while the runtime's `next` request
// is held open; an invocation thaws it (SIGCONT) and answers that request.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';

/** Lambda's quota on an invocation's response payload (the runtime's `response` body). */
export const MAX_RESPONSE_BYTES = 6_291_556;
/** Bytes of function output kept per invocation for `X-Amz-Log-Type: Tail`. */
export const LOG_TAIL_BYTES = 4096;
const MAX_ERROR_BODY_BYTES = 1_048_576;
const MAX_LOG_LINE = 16_384;
const RUNTIME_PREFIX = '/2018-06-01/runtime';

export interface EnvironmentSpec {
  functionArn: string;
  /** Program and arguments that start the runtime (a `bootstrap`, or node with a runtime client). */
  command: string;
  args: string[];
  cwd: string;
  /** The complete environment of the child. `AWS_LAMBDA_RUNTIME_API` is added. */
  env: Record<string, string>;
  /** Each line the function writes to stdout or stderr. */
  output: (line: string) => void;
}

export interface InvocationRequest {
  requestId: string;
  payload: Buffer;
  /** Epoch ms. */
  deadlineMs: number;
  clientContext?: string;
  traceId: string;
}

export type InvocationOutcome =
  | { kind: 'response'; payload: Buffer }
  | { kind: 'function-error'; payload: Buffer }
  | { kind: 'response-too-large' }
  | { kind: 'exited'; detail: string };

export type InitOutcome =
  | { kind: 'ready' }
  | { kind: 'init-error'; payload: Buffer }
  | { kind: 'exited'; detail: string };

type EnvironmentState = 'init' | 'idle' | 'busy' | 'dead';

interface Current {
  request: InvocationRequest;
  delivered: boolean;
  settle: (o: InvocationOutcome) => void;
}

let nextEnvironmentId = 1;

export class ExecutionEnvironment {
  readonly id = nextEnvironmentId++;
  state: EnvironmentState = 'init';
  frozen = false;
  /** The runtime's held `next` request while it waits for work. */
  private waiting: ServerResponse | null = null;
  private current: Current | null = null;
  private child: ChildProcess | null = null;
  private server: Server;
  private initSettle: ((o: InitOutcome) => void) | null = null;
  private logTail = '';
  private lineBuffers = ['', ''];
  /** Resolves once the child has exited and the server is closed. */
  readonly ended: Promise<void>;
  private resolveEnded!: () => void;
  /** Called when the runtime asks for work and none is assigned (the pool freezes it). */
  onIdle: () => void = () => {};
  /** Called once the process has been started (its pid is known). */
  onStarted: () => void = () => {};
  /** Called once when the environment has ended. */
  onDead: () => void = () => {};
  lastUsedMs = Date.now();

  constructor(private readonly spec: EnvironmentSpec) {
    this.server = createServer((req, res) => this.handleRuntimeRequest(req, res));
    this.server.requestTimeout = 0;
    this.server.keepAliveTimeout = 0;
    this.ended = new Promise((r) => (this.resolveEnded = r));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Start the process; resolves when it first asks for work, reports an init error, or exits. */
  async init(initTimeoutMs: number): Promise<InitOutcome | { kind: 'init-timeout' }> {
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(0, '127.0.0.1', () => resolve());
      });
    } catch (err) {
      this.markDead();
      return { kind: 'exited', detail: `cannot start the Runtime API server: ${(err as Error).message}` };
    }
    const port = (this.server.address() as AddressInfo).port;
    const outcome = new Promise<InitOutcome>((r) => (this.initSettle = r));
    let child: ChildProcess;
    try {
      child = spawn(this.spec.command, this.spec.args, {
        cwd: this.spec.cwd,
        env: { ...this.spec.env, AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}` },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (err) {
      this.markDead();
      return { kind: 'exited', detail: `cannot start runtime: ${(err as Error).message}` };
    }
    this.child = child;
    this.onStarted();
    // decoded per stream, so a character split across two reads stays whole
    child.stdout?.setEncoding('utf8').on('data', (d: string) => this.collectOutput(0, d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => this.collectOutput(1, d));
    child.on('error', (err) => this.onExit(`cannot start runtime: ${err.message}`));
    child.on('exit', (code, signal) => this.onExit(signal ? `signal: ${signal === 'SIGKILL' ? 'killed' : signal}` : `exit status ${code}`));
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      outcome,
      new Promise<{ kind: 'init-timeout' }>((r) => (timer = setTimeout(() => r({ kind: 'init-timeout' }), initTimeoutMs))),
    ]);
    clearTimeout(timer);
    this.initSettle = null;
    if (result.kind !== 'ready') this.kill();
    return result;
  }

  /** Run one invocation (the environment must be idle, or between its response and its next `next`). */
  invoke(request: InvocationRequest): Promise<InvocationOutcome> {
    if (this.state === 'dead') return Promise.resolve({ kind: 'exited', detail: 'environment ended' });
    this.state = 'busy';
    this.logTail = '';
    this.lastUsedMs = Date.now();
    return new Promise((settle) => {
      this.current = { request, delivered: false, settle };
      if (this.waiting) this.deliver();
    });
  }

  /** Output of the current (or last) invocation, at most LOG_TAIL_BYTES. */
  logs(): string {
    return this.logTail;
  }

  /** Peak resident memory of the runtime process in MB (Linux), for the REPORT line. */
  maxMemoryMb(): number {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child?.pid}/status`, 'utf8'));
      return m ? Math.ceil(Number(m[1]) / 1024) : 0;
    } catch {
      return 0;
    }
  }

  freeze(): void {
    if (this.frozen || this.state !== 'idle' || !this.signalGroup('SIGSTOP')) return;
    this.frozen = true;
  }

  private thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    this.signalGroup('SIGCONT');
  }

  /** Kill the whole process group (also when frozen); `ended` resolves when it is gone. */
  kill(): Promise<void> {
    if (!this.signalGroup('SIGKILL')) this.markDead();
    return this.ended;
  }

  private signalGroup(signal: NodeJS.Signals): boolean {
    const pid = this.child?.pid;
    if (pid === undefined || this.child?.exitCode !== null || this.child?.signalCode !== null) return false;
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  private deliver(): void {
    const cur = this.current;
    const res = this.waiting;
    if (!cur || !res || cur.delivered) return;
    this.waiting = null;
    cur.delivered = true;
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': cur.request.payload.length,
      'lambda-runtime-aws-request-id': cur.request.requestId,
      'lambda-runtime-deadline-ms': cur.request.deadlineMs,
      'lambda-runtime-invoked-function-arn': this.spec.functionArn,
      'lambda-runtime-trace-id': cur.request.traceId,
    };
    if (cur.request.clientContext) headers['lambda-runtime-client-context'] = cur.request.clientContext;
    res.writeHead(200, headers);
    res.end(cur.request.payload);
    this.thaw();
  }

  private finish(outcome: InvocationOutcome): void {
    const cur = this.current;
    if (!cur) return;
    this.current = null;
    if (this.state === 'busy') this.state = 'idle';
    this.lastUsedMs = Date.now();
    cur.settle(outcome);
  }

  private handleRuntimeRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === `${RUNTIME_PREFIX}/invocation/next`) {
      if (this.waiting) return reply(res, 400, { errorMessage: 'a next request is already waiting', errorType: 'InvalidStateTransition' });
      this.waiting = res;
      res.on('close', () => {
        if (this.waiting === res) this.waiting = null;
      });
      if (this.initSettle) {
        // the pool invokes a new environment at once: no freeze in between
        this.state = 'idle';
        this.initSettle({ kind: 'ready' });
        this.initSettle = null;
        return;
      }
      if (this.current && !this.current.delivered) this.deliver();
      else if (!this.current) this.onIdle();
      return;
    }
    if (req.method === 'POST' && path === `${RUNTIME_PREFIX}/init/error`) {
      return void readBody(req, MAX_ERROR_BODY_BYTES).then((body) => {
        reply(res, 202, { status: 'OK' });
        if (this.initSettle) this.initSettle({ kind: 'init-error', payload: errorPayload(body, req, 'Runtime.Unknown') });
        this.initSettle = null;
      });
    }
    const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(path);
    if (req.method === 'POST' && m) {
      let id: string;
      try {
        id = decodeURIComponent(m[1]);
      } catch {
        id = '';
      }
      const cur = this.current;
      if (!cur || !cur.delivered || cur.request.requestId !== id) {
        req.resume();
        return reply(res, 400, { errorMessage: 'Invalid request ID', errorType: 'InvalidRequestID' });
      }
      const limit = m[2] === 'response' ? MAX_RESPONSE_BYTES : MAX_ERROR_BODY_BYTES;
      return void readBody(req, limit).then((body) => {
        if (this.current !== cur) return reply(res, 400, { errorMessage: 'Invalid request ID', errorType: 'InvalidRequestID' });
        if (body === null && m[2] === 'response') {
          reply(res, 413, { errorMessage: `Exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`, errorType: 'RequestEntityTooLarge' });
          return this.finish({ kind: 'response-too-large' });
        }
        reply(res, 202, { status: 'OK' });
        if (m[2] === 'response') this.finish({ kind: 'response', payload: body ?? Buffer.alloc(0) });
        else this.finish({ kind: 'function-error', payload: errorPayload(body, req, 'Unhandled') });
      });
    }
    req.resume();
    reply(res, 404, { errorMessage: 'not found', errorType: 'InvalidRequest' });
  }

  private collectOutput(stream: 0 | 1, data: string): void {
    let text = this.lineBuffers[stream] + data;
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      this.emitLine(text.slice(0, nl));
      text = text.slice(nl + 1);
    }
    if (text.length > MAX_LOG_LINE) {
      this.emitLine(text);
      text = '';
    }
    this.lineBuffers[stream] = text;
  }

  private emitLine(line: string): void {
    this.logTail = (this.logTail + line + '\n').slice(-LOG_TAIL_BYTES);
    this.spec.output(line);
  }

  private onExit(detail: string): void {
    if (this.state === 'dead') return;
    for (const i of [0, 1] as const) if (this.lineBuffers[i]) this.emitLine(this.lineBuffers[i]);
    this.lineBuffers = ['', ''];
    // the group may still hold the runtime's children (a bootstrap's curl)
    const pid = this.child?.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // group already empty
      }
    }
    if (this.initSettle) this.initSettle({ kind: 'exited', detail });
    this.initSettle = null;
    this.finish({ kind: 'exited', detail });
    this.markDead();
  }

  private markDead(): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.frozen = false;
    this.waiting = null;
    this.server.closeAllConnections();
    this.server.close(() => this.resolveEnded());
    this.onDead();
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The body, or null when it is longer than `limit` (the rest is read and dropped). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= limit) parts.push(d);
    });
    req.on('end', () => resolve(size > limit ? null : Buffer.concat(parts)));
    req.on('error', () => resolve(null));
  });
}

/** An error body as the runtime sent it, or Lambda's shape when it sent none or too much. */
function errorPayload(body: Buffer | null, req: IncomingMessage, fallbackType: string): Buffer {
  if (body && body.length > 0) return body;
  const type = req.headers['lambda-runtime-function-error-type'];
  return Buffer.from(JSON.stringify({ errorType: typeof type === 'string' ? type : fallbackType, errorMessage: 'no error body' }));
}
