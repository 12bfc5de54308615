// AWS Lambda entry: the invocation event is the launch; the handler returns when the host
// ends (drained, app exited, or before the invocation's deadline).

import { createLogger, jsonSink, type Logger } from './log.js';
import { join } from 'node:path';
import { APP_BASE_ENV, isProtocolError, parseLaunch, type Launch } from './protocol.js';
import { HostRuntime, preloadDefaultStack, type HostExit, type RunHostOptions } from './runtime.js';

/** The part of Lambda's context object the handler uses. */
export interface LambdaContextLike {
  getRemainingTimeInMillis(): number;
  awsRequestId?: string;
}

export interface LambdaResult extends HostExit {
  host: string | null;
}

let defaultLog: Logger | null = null;


/**
 * In a package built by `imach deploy`, a launch's paths (the relay machine's) under the
 * manifest folder are the package's `app/` folder in LAMBDA_TASK_ROOT.
 */
export function deployedLaunch(launch: Launch, env: NodeJS.ProcessEnv): Launch {
  const base = env[APP_BASE_ENV];
  const root = env.LAMBDA_TASK_ROOT;
  if (base === undefined || base === '' || root === undefined) return launch;
  const map = (p: string): string => (p === base ? join(root, 'app') : p.startsWith(base + '/') ? join(root, 'app', p.slice(base.length + 1)) : p);
  const out: Launch = { ...launch, run: launch.run === '' ? '' : map(launch.run) };
  if (launch.program !== undefined) out.program = { ...launch.program, cwd: map(launch.program.cwd) };
  return out;
}

/** Build a handler with options (tests inject a stack factory or logger). */
export function createHandler(
  options: RunHostOptions = {},
): (event: unknown, context: LambdaContextLike) => Promise<LambdaResult> {
  // Load netstack while Lambda initializes the function, not in the first invocation.
  if (options.createStack === undefined) void preloadDefaultStack().catch(() => {});
  return async (event, context) => {
    const log = options.logger ?? (defaultLog ??= createLogger({ sink: jsonSink((l) => process.stdout.write(l)) }));
    const parsed = parseLaunch(event);
    if (isProtocolError(parsed)) {
      log.error('bad launch event', { field: parsed.field, err: parsed.message });
      return { host: null, code: 2, reason: `bad launch: ${parsed.message}` };
    }
    const launch = deployedLaunch(parsed, process.env);
    const runtime = new HostRuntime(launch, {
      // apps may read process.env; the runtime restores it when the run ends, so a warm
      // container does not pass one host's env (passwords) to the next invocation
      setProcessEnv: true,
      remainingMs: () => context.getRemainingTimeInMillis(),
      ...options,
      logger: log.child({ requestId: context.awsRequestId }),
    });
    const exit = await runtime.run();
    return { host: launch.host, ...exit };
  };
}

export const handler = createHandler();
