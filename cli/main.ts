// The imach command: dispatch to a subcommand; usage errors exit 2, failures exit 1.

import { createRequire } from 'node:module';
import { CliError, EXIT, UsageError } from './args.js';
import { describe, events, host, ping, ps, token } from './commands.js';
import { relay, up } from './up.js';
import { TOP, USAGE } from './usage.js';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  up,
  relay,
  host,
  token,
  ps,
  describe,
  events,
  ping,
  deploy: async (argv) => (await import('./deploy.js')).deploy(argv),
  perf: async (argv) => (await import('./perf.js')).perf(argv),
  logs: async (argv) => (await import('./logs.js')).logs(argv),
  flows: async (argv) => (await import('./flows.js')).flows(argv),
  capture: async (argv) => (await import('./capture.js')).capture(argv),
  'lambda-local': async (argv) => (await import('./lambda-local.js')).lambdaLocal(argv),
  join: async (argv) => {
    const { runJoin } = await import('./join.js');
    return runJoin(argv);
  },
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) {
    process.stderr.write(TOP);
    return EXIT.usage;
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    if (cmd === 'help' && rest[0] && USAGE[rest[0]]) process.stdout.write(USAGE[rest[0]]);
    else process.stdout.write(TOP);
    return EXIT.ok;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
    process.stdout.write(`imach ${pkg.version} (node ${process.version})\n`);
    return EXIT.ok;
  }
  const run = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!run) {
    process.stderr.write(`imach: unknown command '${cmd}'\nRun 'imach --help' for the list of commands.\n`);
    return EXIT.usage;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`imach ${e.command}: ${e.message}\nRun 'imach ${e.command} --help' for usage.\n`);
      return EXIT.usage;
    }
    if (e instanceof CliError) {
      process.stderr.write(`imach ${cmd}: ${e.message}\n`);
      return e.code;
    }
    process.stderr.write(`imach ${cmd}: ${(e as Error)?.stack ?? String(e)}\n`);
    return EXIT.error;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  () => process.exit(EXIT.error),
);
