// The local provider: every host function is a child process running dist/hostfn/main.js
// with the launch in IMACH_LAUNCH. Its output is prefixed with the host name.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { HostInstance, Provider } from '../relay/provider.js';
import { createLogger, type Logger } from './log.js';
import { LAUNCH_ENV, type Launch } from './protocol.js';

export interface LocalProviderOptions {
  logger?: Logger;
  /** Where a host's output lines go; default: the logger at info, `[host] line`. */
  output?: (host: string, stream: 'stdout' | 'stderr', line: string) => void;
  /** Time between SIGTERM and SIGKILL in stop(). Default 5000. */
  stopGraceMs?: number;
  /** The entry script; default main.js beside this file. */
  mainPath?: string;
  /** Extra arguments for node before the script. */
  nodeArgs?: string[];
  /** Extra environment for every child. */
  env?: Record<string, string>;
  /** Most children alive at once; start() rejects beyond it. Default 256. */
  maxInstances?: number;
}

const MAX_LINE = 8192;

export class LocalProvider implements Provider {
  readonly name = 'local';
  private readonly log: Logger;
  private readonly live = new Set<LocalInstance>();

  constructor(private readonly options: LocalProviderOptions = {}) {
    this.log = options.logger ?? createLogger({ fields: { component: 'local-provider' } });
  }

  get mainPath(): string {
    return this.options.mainPath ?? fileURLToPath(new URL('./main.js', import.meta.url));
  }

  async start(launch: Launch): Promise<HostInstance> {
    if (this.live.size >= (this.options.maxInstances ?? 256)) {
      throw new Error(`local provider: ${this.live.size} host functions already running`);
    }
    const child = spawn(process.execPath, [...(this.options.nodeArgs ?? []), this.mainPath], {
      env: { ...process.env, ...this.options.env, [LAUNCH_ENV]: JSON.stringify(launch) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => reject(new Error(`cannot start ${launch.host}: ${e.message}`)));
    });
    const output =
      this.options.output ?? ((host: string, _s: string, line: string) => this.log.info(`[${host}] ${line}`));
    for (const [name, stream] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ] as const) {
      if (!stream) continue;
      const rl = createInterface({ input: stream, crlfDelay: Infinity });
      rl.on('line', (line) => output(launch.host, name, line.length > MAX_LINE ? line.slice(0, MAX_LINE) + '…' : line));
    }
    const inst = new LocalInstance(child, launch.host, this.options.stopGraceMs ?? 5000);
    this.live.add(inst);
    void inst.exited.then(() => this.live.delete(inst));
    this.log.debug('started', { host: launch.host, pid: child.pid });
    return inst;
  }

  /** Stop every child this provider started. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((i) => i.stop()));
  }

  get running(): number {
    return this.live.size;
  }
}

class LocalInstance implements HostInstance {
  readonly exited: Promise<{ code: number | null; reason: string }>;
  private done = false;

  constructor(
    private readonly child: ChildProcess,
    readonly host: string,
    private readonly graceMs: number,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.done = true;
        const reason =
          signal !== null ? `killed by ${signal}` : code === 0 ? 'exited' : `exited with code ${code}`;
        resolve({ code, reason });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async stop(): Promise<void> {
    if (this.done) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => {
      if (!this.done) this.child.kill('SIGKILL');
    }, this.graceMs);
    await this.exited;
    clearTimeout(t);
  }
}
