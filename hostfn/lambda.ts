// AWS Lambda entry: the invocation event is the launch; the handler returns when the host
// ends (drained, app exited, or before the invocation's deadline).

import { createLogger, jsonSink, type Logger } from './log.js';
import { isProtocolError, parseLaunch } from './protocol.js';
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

/** Build a handler with options (tests inject a stack factory or logger). */
export function createHandler(
  options: RunHostOptions = {},
): (event: unknown, context: LambdaContextLike) => Promise<LambdaResult> {
  // Load netstack while Lambda initializes the function, not in the first invocation.
  if (options.createStack === undefined) void preloadDefaultStack().catch(() => {});
  return async (event, context) => {
    const log = options.logger ?? (defaultLog ??= createLogger({ sink: jsonSink((l) => process.stdout.write(l)) }));
    const launch = parseLaunch(event);
    if (isProtocolError(launch)) {
      log.error('bad launch event', { field: launch.field, err: launch.message });
      return { host: null, code: 2, reason: `bad launch: ${launch.message}` };
    }
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
