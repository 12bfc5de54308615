// A `command:` host under the local provider: the program itself is the child process,
// started as `node --import <register> program args`, so the register module puts the
// host's stack under Node's networking before the program's first line runs.

import { fileURLToPath } from 'node:url';
import { LAUNCH_ENV, type Launch } from './protocol.js';

/** The register module's path (package export `imach/register`). */
export const REGISTER_PATH = fileURLToPath(new URL('./register.js', import.meta.url));

export interface ProgramSpawn {
  file: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

/** How to spawn the host of `launch` if it is a program (null: a `run:` module). */
export function programSpawn(launch: Launch, baseEnv: NodeJS.ProcessEnv, nodeArgs: readonly string[] = []): ProgramSpawn | null {
  const program = launch.program;
  if (program === undefined) return null;
  return {
    // argv[0] is `node`: the same node that runs the relay.
    file: process.execPath,
    args: [...nodeArgs, '--import', REGISTER_PATH, ...program.argv.slice(1)],
    cwd: program.cwd,
    env: { ...baseEnv, ...launch.env, [LAUNCH_ENV]: JSON.stringify(launch) },
  };
}
