// Environments are process groups that sit frozen (SIGSTOP) between invocations, so they
// cannot notice on their own that lambda-local is gone. A tiny shell watchdog holds the
// read end of a pipe from this process: when this process ends in any way (SIGKILL
// included) the pipe reaches EOF, and the watchdog kills the groups listed in a file and
// removes the unpacked code.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SCRIPT = 'cat >/dev/null; for g in $(cat "$1" 2>/dev/null); do kill -KILL -"$g" 2>/dev/null; done; rm -rf "$2"';

export class Watchdog {
  private readonly child: ChildProcess | null;
  private readonly groupsFile: string;

  constructor(codeDir: string) {
    this.groupsFile = join(codeDir, '.process-groups');
    writeFileSync(this.groupsFile, '');
    let child: ChildProcess | null = null;
    try {
      // detached: a Ctrl-C to the terminal's process group must not end it before this process
      child = spawn('/bin/sh', ['-c', SCRIPT, 'lambda-local-watchdog', this.groupsFile, codeDir], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
      child.on('error', () => {});
      child.stdin?.on('error', () => {});
    } catch {
      child = null;
    }
    this.child = child;
  }

  /** The process groups to kill if this process dies. */
  setGroups(pgids: number[]): void {
    try {
      writeFileSync(this.groupsFile, pgids.join('\n'));
    } catch {
      // the code dir is gone: closing
    }
  }

  /** Stop watching (after close() has ended every group itself): the shell and its cat. */
  stop(): void {
    const pid = this.child?.pid;
    if (pid !== undefined && this.child?.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.child?.stdin?.destroy();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }
}
