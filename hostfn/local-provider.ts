// The local provider: every host function is a child process running dist/hostfn/main.js
// with the launch in IMACH_LAUNCH. Its output is prefixed with the host name.
// A warm pool keeps spare children with their modules loaded, waiting on IPC for a
// launch, so a start skips process spawn and module loading.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { StringDecoder } from 'node:string_decoder';
import type { HostInstance, Provider } from '../relay/provider.js';
import { createLogger, type Logger } from './log.js';
import { LAUNCH_ENV, type Launch } from './protocol.js';
import { programSpawn } from './program.js';
import { WARM_ENV, isWarmReady, type WarmLaunchMessage } from './warm.js';

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
  /**
   * Spare children kept pre-started (modules loaded, waiting for a launch); a start takes
   * one and a new one is pre-started. Default 1 with the default mainPath, else 0 (a
   * custom entry script may not speak the warm handshake). Spares never keep this process
   * alive, end when it goes, and are killed by stopAll() and close().
   */
  warm?: number;
}

/** Longest output line passed on; the rest of a longer line is dropped (and counted). */
export const MAX_LINE = 8192;
type Output = (host: string, stream: 'stdout' | 'stderr', line: string) => void;

/** A pre-started child: not yet a host. */
interface Spare {
  child: ChildProcess;
  ready: boolean;
  /** the launch to send once the child is ready (it was taken before that) */
  pending: Launch | null;
  /** the host it became (null while spare): its output lines carry this name */
  host: string | null;
}

export class LocalProvider implements Provider {
  readonly name = 'local';
  private readonly log: Logger;
  private readonly live = new Set<LocalInstance>();
  private readonly spares = new Set<Spare>();
  private readonly warm: number;
  private closed = false;
  /** starts past the instance check that have not yet joined `live` (spawn in progress) */
  private reserved = 0;
  private truncated = 0;
  private startsOnLoadingSpare = 0;
  /** woken whenever a spare becomes ready or ends (see ready()) */
  private spareChanged: (() => void)[] = [];

  constructor(private readonly options: LocalProviderOptions = {}) {
    this.log = options.logger ?? createLogger({ fields: { component: 'local-provider' } });
    this.warm = Math.max(0, Math.min(8, Math.floor(options.warm ?? (options.mainPath === undefined ? 1 : 0))));
    this.refill(this.warm);
  }

  get mainPath(): string {
    return this.options.mainPath ?? fileURLToPath(new URL('./main.js', import.meta.url));
  }

  async start(launch: Launch): Promise<HostInstance> {
    const max = this.options.maxInstances ?? 256;
    if (this.live.size + this.reserved >= max) {
      throw new Error(`local provider: ${this.live.size + this.reserved} host functions already running (max ${max})`);
    }
    // The slot is taken before the first await, so concurrent starts cannot all pass the check.
    this.reserved++;
    let inst: LocalInstance;
    let spare: Spare | null = null;
    try {
      // A `command:` host is its own program: no spare can become it.
      const program = programSpawn(launch, { ...process.env, ...this.options.env, IMACH_STOP_GRACE_MS: String(this.options.stopGraceMs ?? 5000) }, this.options.nodeArgs);
      if (program === null) spare = this.takeSpare();
      if (spare !== null) {
        inst = this.launchSpare(spare, launch);
      } else {
        const child =
          program !== null
            ? spawn(program.file, program.args, { env: program.env, cwd: program.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
            : spawn(process.execPath, [...(this.options.nodeArgs ?? []), this.mainPath], {
                env: { ...process.env, ...this.options.env, [LAUNCH_ENV]: JSON.stringify(launch) },
                stdio: ['ignore', 'pipe', 'pipe'],
              });
        await new Promise<void>((resolve, reject) => {
          child.once('spawn', () => resolve());
          child.once('error', (e) => reject(new Error(`cannot start ${launch.host}: ${e.message}`)));
        });
        this.pipeOutput(child, () => launch.host);
        inst = new LocalInstance(child, launch.host, this.options.stopGraceMs ?? 5000);
      }
    } finally {
      this.reserved--;
    }
    this.live.add(inst);
    void inst.exited.then(() => this.live.delete(inst));
    this.log.debug('started', { host: launch.host, pid: inst.pid, warm: spare !== null });
    this.refill(1);
    return inst;
  }

  /** Stop every child this provider started, spares included (the next start() makes new spares). */
  async stopAll(): Promise<void> {
    const spares = [...this.spares];
    this.spares.clear();
    await Promise.all([...spares.map((s) => killSpare(s)), ...[...this.live].map((i) => i.stop())]);
  }

  /** stopAll(), and no more spares from now on. */
  async close(): Promise<void> {
    this.closed = true;
    this.notifySpareChanged();
    await this.stopAll();
  }

  get running(): number {
    return this.live.size;
  }

  /** Output lines cut at MAX_LINE characters so far (the rest of each was dropped). */
  get truncatedLines(): number {
    return this.truncated;
  }

  /**
   * Starts that took a spare still loading its modules (they wait for it, as long as a
   * spawn takes); after ready() there are none until the pool runs dry.
   */
  get startsOnLoadingSpareCount(): number {
    return this.startsOnLoadingSpare;
  }

  /** Spares that have loaded their modules and wait for a launch. */
  get readySpareCount(): number {
    let n = 0;
    for (const s of this.spares) if (s.ready) n++;
    return n;
  }

  /**
   * Resolves once the whole warm pool is ready (every spare has loaded its modules), no
   * spare is loading any more (one that ended is not replaced until the next start), or
   * after timeoutMs, with the number of ready spares. A start before that waits for its
   * spare to finish loading: `imach up` awaits this while the relay starts.
   */
  async ready(timeoutMs = 10_000): Promise<number> {
    const end = Date.now() + timeoutMs;
    while (!this.closed && this.readySpareCount < this.warm && this.readySpareCount < this.spares.size && Date.now() < end) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, Math.max(0, end - Date.now()));
        function wake(): void {
          clearTimeout(timer);
          resolve();
        }
        this.spareChanged.push(wake);
      });
    }
    return this.readySpareCount;
  }

  private notifySpareChanged(): void {
    const waiters = this.spareChanged;
    this.spareChanged = [];
    for (const w of waiters) w();
  }

  /** Spares alive now (pre-started, not yet hosts). */
  get spareCount(): number {
    return this.spares.size;
  }

  /** Process ids of the spares. */
  get sparePids(): number[] {
    return [...this.spares].map((s) => s.child.pid).filter((p): p is number => p !== undefined);
  }

  /** Whether a spare has loaded its modules and waits for a launch. */
  get warmReady(): boolean {
    for (const s of this.spares) if (s.ready) return true;
    return false;
  }

  private get output(): Output {
    return this.options.output ?? ((host, _s, line) => this.log.info(`[${host}] ${line}`));
  }

  private pipeOutput(child: ChildProcess, host: () => string | null): void {
    for (const [name, stream] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ] as const) {
      if (!stream) continue;
      const lines = new LineSplitter(MAX_LINE, (line, truncated) => {
        if (truncated) this.truncated++;
        const text = truncated ? line + '…' : line;
        const h = host();
        if (h !== null) this.output(h, name, text);
        else this.log.debug('warm host function says', { stream: name, line: text });
      });
      stream.on('data', (chunk: Buffer) => lines.push(chunk));
      stream.once('end', () => lines.end());
      stream.on('error', () => lines.end());
    }
  }

  /**
   * Pre-start spares up to the pool size, with at most `loadingAtOnce` loading at a time
   * (the whole pool at construction; one after a start, so that refills do not take the
   * CPU from the hosts being started: the next one is spawned when it is ready).
   */
  private refill(loadingAtOnce: number): void {
    let loading = this.spares.size - this.readySpareCount;
    while (!this.closed && this.spares.size < this.warm && loading < loadingAtOnce) {
      loading++;
      const s = this.spawnSpare();
      if (s === null) return;
    }
  }

  private spawnSpare(): Spare | null {
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...(this.options.nodeArgs ?? []), this.mainPath], {
        env: { ...process.env, ...this.options.env, [WARM_ENV]: '1' },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      });
    } catch (e) {
      this.log.warn('cannot pre-start a host function', { err: (e as Error).message });
      return null;
    }
    const spare: Spare = { child, ready: false, pending: null, host: null };
    this.spares.add(spare);
    // A spare is no reason for this process to stay alive.
    setRef(child, false);
    child.on('error', (e) => {
      this.log.debug('warm host function failed', { err: e.message });
      this.spares.delete(spare);
      this.notifySpareChanged();
    });
    child.once('exit', () => {
      this.spares.delete(spare);
      this.notifySpareChanged();
    });
    child.on('message', (m: unknown) => {
      if (!isWarmReady(m) || spare.ready) return;
      spare.ready = true;
      if (spare.pending !== null) this.sendLaunch(spare, spare.pending);
      this.notifySpareChanged();
      this.refill(1);
    });
    this.pipeOutput(child, () => spare.host);
    return spare;
  }

  /** A live spare (ready ones first), out of the pool; null when there is none. */
  private takeSpare(): Spare | null {
    let pick: Spare | null = null;
    for (const s of this.spares) {
      if (s.child.exitCode !== null || s.child.signalCode !== null || !s.child.connected) continue;
      if (pick === null || (s.ready && !pick.ready)) pick = s;
    }
    if (pick !== null) this.spares.delete(pick);
    return pick;
  }

  private launchSpare(spare: Spare, launch: Launch): LocalInstance {
    spare.host = launch.host;
    setRef(spare.child, true);
    const inst = new LocalInstance(spare.child, launch.host, this.options.stopGraceMs ?? 5000);
    if (spare.ready) this.sendLaunch(spare, launch);
    else {
      this.startsOnLoadingSpare++;
      spare.pending = launch;
    }
    return inst;
  }

  private sendLaunch(spare: Spare, launch: Launch): void {
    spare.pending = null;
    const msg: WarmLaunchMessage = { type: 'imach-warm-launch', launch };
    try {
      spare.child.send(msg, (err) => {
        if (err) this.failLaunch(spare, err);
      });
    } catch (e) {
      this.failLaunch(spare, e as Error);
    }
  }

  /** The launch did not reach the child: it would wait forever, so it ends (the relay sees an exit). */
  private failLaunch(spare: Spare, err: Error): void {
    this.log.warn('cannot hand the launch to a warm host function', { host: spare.host, err: err.message });
    spare.child.kill('SIGKILL');
  }
}

function setRef(child: ChildProcess, ref: boolean): void {
  const handles: ({ ref?(): unknown; unref?(): unknown } | null | undefined)[] = [
    child,
    child.channel,
    child.stdout as Readable & { ref?(): unknown; unref?(): unknown },
    child.stderr as Readable & { ref?(): unknown; unref?(): unknown },
  ];
  for (const h of handles) {
    if (ref) h?.ref?.();
    else h?.unref?.();
  }
}

async function killSpare(s: Spare): Promise<void> {
  const c = s.child;
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  // whoever waits for it keeps this process alive until it is gone
  setRef(c, true);
  c.kill('SIGKILL');
  await exited;
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
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        this.done = true;
        const reason =
          signal !== null ? `killed by ${signal}` : code === 0 ? 'exited' : `exited with code ${code}`;
        resolve({ code, reason });
      };
      if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode);
      else child.once('exit', onExit);
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

/**
 * Splits a byte stream into UTF-8 lines (LF or CRLF) holding at most `max` characters of the
 * current line: a longer line is passed on cut at `max` as soon as it reaches it, and the
 * rest of it up to the next newline is dropped, so output without newlines costs no memory.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';
  /** the current line was already passed on cut: drop until its newline */
  private dropping = false;
  private ended = false;

  constructor(
    private readonly max: number,
    private readonly emit: (line: string, truncated: boolean) => void,
  ) {}

  push(chunk: Uint8Array): void {
    if (this.ended) return;
    this.take(this.decoder.write(chunk));
  }

  /** The stream ended: pass on a last line that had no newline. */
  end(): void {
    if (this.ended) return;
    this.take(this.decoder.end());
    this.ended = true;
    if (!this.dropping && this.buf.length > 0) this.emit(stripCr(this.buf), false);
    this.buf = '';
  }

  private take(text: string): void {
    let from = 0;
    while (from < text.length) {
      const nl = text.indexOf('\n', from);
      const stop = nl < 0 ? text.length : nl;
      if (!this.dropping) {
        const endsInCr = stop > from ? text.charCodeAt(stop - 1) === 13 : this.buf.endsWith('\r');
        // a last CR may be the first half of a CRLF: it does not count against the cap
        const length = this.buf.length + (stop - from) - (endsInCr ? 1 : 0);
        if (length <= this.max) {
          this.buf += text.slice(from, stop);
        } else {
          const line = (this.buf + text.slice(from, from + this.max - this.buf.length + 1)).slice(0, this.max);
          this.buf = '';
          this.dropping = true;
          this.emit(line, true);
        }
      }
      if (nl < 0) break;
      if (!this.dropping) this.emit(stripCr(this.buf), false);
      this.buf = '';
      this.dropping = false;
      from = nl + 1;
    }
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
