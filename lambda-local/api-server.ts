// The Lambda API over HTTP (REST-JSON, the paths and headers @aws-sdk/client-lambda
// uses). Requests are not authenticated: any SigV4 signature is accepted.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { LambdaApiError } from './errors.js';
import { MAX_SYNC_PAYLOAD_BYTES, type InvocationType, type LambdaLocalLogger, type LambdaService } from './service.js';

/** Lambda's quota on a CreateFunction / UpdateFunctionCode request (a 50 MB zip, base64 in JSON). */
const MAX_CODE_REQUEST_BYTES = 70_167_211;
const MAX_CONFIG_REQUEST_BYTES = 1_048_576;
/** A body beyond its limit is read and dropped up to this size, so the client sees the 413. */
const MAX_DRAIN_BYTES = 128 * 1024 * 1024;

type Handler = (ctx: RequestContext) => Promise<Reply> | Reply;

interface RequestContext {
  functionName: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

interface Reply {
  status: number;
  body?: unknown;
  raw?: Buffer;
  headers?: Record<string, string>;
}

interface Route {
  /** The API operation's name, as in the service's messages. */
  operation: string;
  method: string;
  pattern: RegExp;
  bodyLimit: number;
  handle: Handler;
}

export function createApiServer(service: LambdaService, logger: LambdaLocalLogger): Server {
  const json = (status: number, body: unknown): Reply => ({ status, body });
  const orError = (status: number, r: Record<string, unknown> | LambdaApiError): Reply => (r instanceof LambdaApiError ? errorReply(r) : json(status, r));
  const withFunction = (f: (fn: Exclude<ReturnType<LambdaService['lookup']>, LambdaApiError>, ctx: RequestContext) => Promise<Reply> | Reply): Handler => {
    return (ctx) => {
      const fn = service.lookup(ctx.functionName, ctx.query.get('Qualifier') ?? undefined);
      return fn instanceof LambdaApiError ? errorReply(fn) : f(fn, ctx);
    };
  };
  const fnPath = (prefix: string, suffix = '') => new RegExp(`^/${prefix}/functions/([^/]+)${suffix}/?$`);
  const routes: Route[] = [
    { operation: 'CreateFunction', method: 'POST', pattern: /^\/2015-03-31\/functions\/?$/, bodyLimit: MAX_CODE_REQUEST_BYTES, handle: (c) => orError(201, service.createFunction(parseJson(c.body))) },
    { operation: 'GetFunction', method: 'GET', pattern: fnPath('2015-03-31'), bodyLimit: 0, handle: withFunction((fn) => json(200, service.getFunction(fn))) },
    {
      operation: 'DeleteFunction', method: 'DELETE',
      pattern: fnPath('2015-03-31'),
      bodyLimit: 0,
      handle: withFunction(async (fn, c) => {
        if (c.query.has('Qualifier')) return errorReply(new LambdaApiError('InvalidParameterValueException', 'lambda-local has no versions to delete'));
        await service.deleteFunction(fn);
        return { status: 204 };
      }),
    },
    { operation: 'GetFunctionConfiguration', method: 'GET', pattern: fnPath('2015-03-31', '/configuration'), bodyLimit: 0, handle: withFunction((fn) => json(200, service.configuration(fn))) },
    {
      operation: 'UpdateFunctionConfiguration', method: 'PUT',
      pattern: fnPath('2015-03-31', '/configuration'),
      bodyLimit: MAX_CONFIG_REQUEST_BYTES,
      handle: withFunction((fn, c) => orError(200, service.updateFunctionConfiguration(fn, parseJson(c.body)))),
    },
    {
      operation: 'UpdateFunctionCode', method: 'PUT',
      pattern: fnPath('2015-03-31', '/code'),
      bodyLimit: MAX_CODE_REQUEST_BYTES,
      handle: withFunction((fn, c) => orError(200, service.updateFunctionCode(fn, parseJson(c.body)))),
    },
    {
      operation: 'PutFunctionConcurrency', method: 'PUT',
      pattern: fnPath('2017-10-31', '/concurrency'),
      bodyLimit: MAX_CONFIG_REQUEST_BYTES,
      handle: withFunction((fn, c) => orError(200, service.putFunctionConcurrency(fn, parseJson(c.body)))),
    },
    {
      operation: 'DeleteFunctionConcurrency', method: 'DELETE',
      pattern: fnPath('2017-10-31', '/concurrency'),
      bodyLimit: 0,
      handle: withFunction((fn) => (service.deleteFunctionConcurrency(fn), { status: 204 })),
    },
    {
      operation: 'GetFunctionConcurrency', method: 'GET',
      pattern: fnPath('2019-09-30', '/concurrency'),
      bodyLimit: 0,
      handle: withFunction((fn) => json(200, fn.reservedConcurrency === null ? {} : { ReservedConcurrentExecutions: fn.reservedConcurrency })),
    },
    {
      operation: 'PutFunctionEventInvokeConfig', method: 'PUT',
      pattern: fnPath('2019-09-25', '/event-invoke-config'),
      bodyLimit: MAX_CONFIG_REQUEST_BYTES,
      handle: withFunction((fn, c) => orError(200, service.putEventInvokeConfig(fn, parseJson(c.body)))),
    },
    {
      operation: 'GetFunctionEventInvokeConfig', method: 'GET',
      pattern: fnPath('2019-09-25', '/event-invoke-config'),
      bodyLimit: 0,
      handle: withFunction((fn) => {
        const config = service.eventInvokeConfig(fn);
        return config ? json(200, config) : errorReply(new LambdaApiError('ResourceNotFoundException', `The function ${fn.arn} doesn't have an EventInvokeConfig`));
      }),
    },
    {
      operation: 'Invoke', method: 'POST',
      pattern: fnPath('2015-03-31', '/invocations'),
      bodyLimit: MAX_SYNC_PAYLOAD_BYTES,
      handle: async (c) => {
        const type = c.headers['x-amz-invocation-type'] ?? 'RequestResponse';
        if (type !== 'RequestResponse' && type !== 'Event' && type !== 'DryRun') {
          return errorReply(new LambdaApiError('InvalidParameterValueException', `Unsupported invocation type: ${String(type)}`));
        }
        const clientContext = c.headers['x-amz-client-context'];
        const r = await service.invoke({
          functionName: c.functionName,
          qualifier: c.query.get('Qualifier') ?? undefined,
          invocationType: type as InvocationType,
          logTail: c.headers['x-amz-log-type'] === 'Tail' && type === 'RequestResponse',
          clientContext: typeof clientContext === 'string' ? Buffer.from(clientContext, 'base64').toString('utf8') : undefined,
          payload: c.body,
        });
        if (r instanceof LambdaApiError) return errorReply(r);
        const headers: Record<string, string> = { 'x-amzn-requestid': r.requestId };
        if (r.functionError) headers['x-amz-function-error'] = r.functionError;
        if (r.logResult !== undefined) headers['x-amz-log-result'] = r.logResult;
        if (r.executedVersion) headers['x-amz-executed-version'] = r.executedVersion;
        return { status: r.status, raw: r.payload, headers };
      },
    },
  ];

  return createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://lambda-local');
    } catch {
      req.resume();
      return send(res, errorReply(new LambdaApiError('UnknownOperationException', 'Malformed request URL')));
    }
    const path = url.pathname;
    const route = routes.find((r) => r.method === req.method && r.pattern.test(path));
    if (!route) {
      req.resume();
      const known = routes.some((r) => r.pattern.test(path));
      const err = known
        ? new LambdaApiError('UnknownOperationException', `Method ${req.method} is not allowed on ${path}`)
        : new LambdaApiError('UnknownOperationException', `Unknown operation ${req.method} ${path}`);
      return send(res, errorReply(err));
    }
    const m = route.pattern.exec(path);
    let functionName = '';
    try {
      functionName = m?.[1] ? decodeURIComponent(m[1]) : '';
    } catch {
      functionName = m?.[1] ?? '';
    }
    void readLimited(req, route.bodyLimit).then(
      async (body) => {
        if (body === null) {
          return send(res, errorReply(new LambdaApiError('RequestEntityTooLargeException', `Request must be smaller than ${route.bodyLimit} bytes for the ${route.operation} operation`)));
        }
        let reply: Reply;
        try {
          reply = await route.handle({ functionName, query: url.searchParams, headers: req.headers, body });
        } catch (err) {
          if (err instanceof BadJson) reply = errorReply(new LambdaApiError('InvalidRequestContentException', err.message));
          else {
            logger.error('lambda api failure', { method: req.method, path, err: (err as Error)?.stack ?? String(err) });
            reply = errorReply(new LambdaApiError('ServiceException', 'lambda-local internal error'));
          }
        }
        send(res, reply);
      },
      () => res.destroy(),
    );
  });
}

class BadJson extends Error {}

function parseJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new BadJson(`Could not parse request body into json: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadJson('Could not parse request body into json: not an object');
  return v as Record<string, unknown>;
}

function errorReply(err: LambdaApiError): Reply {
  return { status: err.status, body: err.body(), headers: err.headers() };
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.headersSent) return;
  const headers: Record<string, string | number> = { 'x-amzn-requestid': randomUUID(), ...reply.headers };
  let data: Buffer | undefined;
  if (reply.raw) {
    data = reply.raw;
    headers['content-type'] = 'application/json';
  } else if (reply.body !== undefined) {
    data = Buffer.from(JSON.stringify(reply.body));
    headers['content-type'] = 'application/json';
  }
  headers['content-length'] = data?.length ?? 0;
  res.writeHead(reply.status, headers);
  res.end(data);
}

/** The body, or null when it exceeds `limit` (then it is drained up to MAX_DRAIN_BYTES, or the connection closed). */
function readLimited(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= limit) parts.push(d);
      else if (size > MAX_DRAIN_BYTES) {
        resolve(null);
        req.destroy();
      }
    });
    req.on('end', () => resolve(size > limit ? null : Buffer.concat(parts)));
    req.on('error', reject);
  });
}
