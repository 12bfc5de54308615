// `imach lambda-local`: run the local Lambda until Ctrl-C / SIGTERM.

import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { CliError, EXIT, flag, parseCommand, parseDuration, parseListen, parsePositiveInt, str } from './args.js';
import { createLogger, textSink } from '../hostfn/log.js';
import { startLambdaLocal } from '../lambda-local/index.js';

export const LAMBDA_LOCAL_USAGE = `usage: imach lambda-local [options]

A local AWS Lambda for development and tests: the Lambda API that @aws-sdk/client-lambda
and the AWS CLI call (--endpoint-url), with functions run in execution environments (child
processes speaking the Lambda Runtime API, frozen between invocations). Node.js functions
(nodejs20.x, nodejs22.x, ...) run with imach's Runtime API client; provided.al2023 functions
run their zip's bootstrap. Any credentials are accepted. Ctrl-C or SIGTERM stops it and
every environment.

  --listen <host:port>         listen address (default 127.0.0.1:9001)
  --state-dir <dir>            where uploaded code is unpacked (default: the temp dir)
  --region <region>            region in ARNs and AWS_REGION (default us-east-1)
  --account-concurrency <n>    account concurrency limit (default 1000)
  --idle <duration>            reclaim environments unused this long (default 5m)
  --quiet                      do not print the functions' output
`;

export async function lambdaLocal(argv: string[]): Promise<number> {
  const p = parseCommand(
    'lambda-local',
    argv,
    {
      listen: { type: 'string' },
      'state-dir': { type: 'string' },
      region: { type: 'string' },
      'account-concurrency': { type: 'string' },
      idle: { type: 'string' },
      quiet: { type: 'boolean' },
    },
    0,
  );
  if (p.help) {
    process.stdout.write(LAMBDA_LOCAL_USAGE);
    return EXIT.ok;
  }
  const listen = parseListen(str(p, 'listen') ?? '127.0.0.1:9001', 'lambda-local');
  const accountText = str(p, 'account-concurrency');
  const idleText = str(p, 'idle');
  const accountConcurrency = accountText === undefined ? undefined : parsePositiveInt(accountText, '--account-concurrency', 'lambda-local');
  const idleEnvironmentMs = idleText === undefined ? undefined : parseDuration(idleText, '--idle', 'lambda-local') * 1000;
  const region = str(p, 'region') ?? 'us-east-1';
  if (!/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(region)) throw new CliError(`--region must look like us-east-1 (got '${region}')`, EXIT.usage);
  const stateDirFlag = str(p, 'state-dir');
  const stateDir = stateDirFlag === undefined ? undefined : resolve(stateDirFlag);
  if (stateDir !== undefined && !existsSync(stateDir)) mkdirSync(stateDir, { recursive: true });
  const log = createLogger({ sink: textSink() });
  const quiet = flag(p, 'quiet');
  let local;
  try {
    local = await startLambdaLocal({
      host: listen.host,
      port: listen.port,
      stateDir,
      region,
      accountConcurrency,
      idleEnvironmentMs,
      logger: log,
      output: quiet ? () => {} : (fn, line) => process.stdout.write(`[${fn}] ${line}\n`),
    });
  } catch (err) {
    throw new CliError(`cannot listen on ${listen.host}:${listen.port}: ${(err as Error).message}`);
  }
  process.stdout.write(`lambda-local: Lambda API on ${local.url} (region ${region})\n`);
  await new Promise<void>((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  await local.close();
  return EXIT.ok;
}
