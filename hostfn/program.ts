// A `command:` host under the local provider: the program itself is the child process,
// started as `node --import <register> program args`, so the register module puts the
// host's stack under Node's networking before the program's first line runs. Any other
// program is started by `node preload-host.js` with the preload library (LD_PRELOAD).

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PRELOAD_HOST_PATH, PRELOAD_LIB_PATH } from './preload-host.js';
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
  const env = { ...baseEnv, ...launch.env, [LAUNCH_ENV]: JSON.stringify(launch) };
  if (!isNodeProgram(program.argv[0]!)) {
    // Any other program runs under preload-host.js, which joins and starts it with LD_PRELOAD.
    if (!existsSync(PRELOAD_LIB_PATH)) {
      throw new Error(`cannot start ${launch.host}: ${program.argv[0]} is not a Node program and the preload library is not built (${PRELOAD_LIB_PATH}; run node scripts/build-native.mjs)`);
    }
    return { file: process.execPath, args: [...nodeArgs, PRELOAD_HOST_PATH], cwd: program.cwd, env };
  }
  return {
    // argv[0] is `node`: the same node that runs the relay.
    file: process.execPath,
    args: [...nodeArgs, '--import', REGISTER_PATH, ...program.argv.slice(1)],
    cwd: program.cwd,
    env,
  };
}

/** `node` or a path ending in /node: the register module makes it a host. */
export function isNodeProgram(file: string): boolean {
  return /(^|\/)node$/.test(file);
}
