// Network namespaces for the join tests: created per test run, removed afterwards, so the
// host's own interfaces and routes are never touched.

import { spawn, execFile, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tunAddonAvailable } from '../../join/tun-device.js';

export interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

export function exec(file: string, args: string[], timeoutMs = 20_000): Promise<Exec> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (e && typeof e.code === 'string' ? e.code : '') });
    });
  });
}

/** Why TUN tests cannot run here, or null when they can. */
export async function tunTestBlocker(opts: { needPing?: boolean } = {}): Promise<string | null> {
  if (process.platform !== 'linux') return `TUN tests need Linux, this is ${process.platform}`;
  if (typeof process.geteuid !== 'function' || process.geteuid() !== 0) return 'TUN tests need root (ip netns, /dev/net/tun)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  if (!tunAddonAvailable()) return 'the TUN addon is not built (node scripts/build-native.mjs)';
  const ip = await exec('ip', ['-V']);
  if (ip.code !== 0) return 'iproute2 (ip) is missing';
  if (opts.needPing) {
    const ping = await exec('ping', ['-V']);
    if (ping.code !== 0) return 'ping is missing (Debian package iputils-ping)';
  }
  return null;
}

export class NetNs {
  private constructor(readonly name: string) {}

  /** Create `imach-test-<random>` with lo up; a string says why it could not be made. */
  static async create(): Promise<NetNs | string> {
    const name = `imach-test-${randomBytes(4).toString('hex')}`;
    const add = await exec('ip', ['netns', 'add', name]);
    if (add.code !== 0) return `ip netns add failed: ${add.stderr.trim()}`;
    const ns = new NetNs(name);
    const lo = await ns.ip(['link', 'set', 'lo', 'up']);
    if (lo.code !== 0) {
      await ns.remove();
      return `cannot bring lo up in ${name}: ${lo.stderr.trim()}`;
    }
    return ns;
  }

  ip(args: string[]): Promise<Exec> {
    return exec('ip', ['-n', this.name, ...args]);
  }

  exec(file: string, args: string[]): Promise<Exec> {
    return exec('ip', ['netns', 'exec', this.name, file, ...args]);
  }

  async linkExists(dev: string): Promise<boolean> {
    return (await this.ip(['link', 'show', 'dev', dev])).code === 0;
  }

  async remove(): Promise<void> {
    await exec('ip', ['netns', 'del', this.name]);
  }
}

export const fixturePath = path.join(path.dirname(fileURLToPath(import.meta.url)), 'join-tun-fixture.js');

type Obj = Record<string, unknown>;

/** A child process printing JSON lines on stdout. */
export class LineProcess {
  readonly lines: Obj[] = [];
  private waiters: { pred: (o: Obj) => boolean; resolve: (o: Obj) => void; reject: (e: Error) => void }[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  constructor(
    readonly child: ChildProcessWithoutNullStreams,
    readonly what: string,
  ) {
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let obj: Obj;
        try {
          const v: unknown = JSON.parse(line);
          obj = typeof v === 'object' && v !== null ? (v as Obj) : { text: line };
        } catch {
          obj = { text: line };
        }
        this.lines.push(obj);
        for (const w of [...this.waiters]) {
          if (w.pred(obj)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(obj);
          }
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => {
      if (this.stderr.length < 32_768) this.stderr += c;
    });
    this.exited = new Promise((resolve) =>
      child.once('close', (code: number | null) => {
        this.exitCode = code;
        for (const w of this.waiters.splice(0)) {
          w.reject(new Error(`${this.what} exited (${code}); last line ${JSON.stringify(this.lines.at(-1))}; stderr: ${this.stderr.trim().slice(-2000)}`));
        }
        resolve(code);
      }),
    );
  }

  /** The first line matching pred, seen or to come; rejects if the process ends first or after timeoutMs. */
  waitFor(pred: (o: Obj) => boolean, what: string, timeoutMs = 60_000): Promise<Obj> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    if (this.exitCode !== undefined) return Promise.reject(new Error(`${this.what} already exited before ${what}: ${this.stderr.trim().slice(-2000)}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.what}: no ${what} within ${timeoutMs} ms; stderr: ${this.stderr.trim().slice(-2000)}`));
      }, timeoutMs);
      const w = {
        pred,
        resolve: (o: Obj) => {
          clearTimeout(timer);
          resolve(o);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(w);
    });
  }

  /** End stdin (the fixtures' signal to close), then signal, then kill; waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<number | null> {
    if (this.exitCode !== undefined) return this.exitCode;
    this.child.stdin.end();
    const t1 = setTimeout(() => this.child.kill(signal), graceMs);
    const t2 = setTimeout(() => this.child.kill('SIGKILL'), 2 * graceMs);
    const code = await this.exited;
    clearTimeout(t1);
    clearTimeout(t2);
    return code;
  }
}

/** A fixture process inside a namespace, read as JSON lines. */
export class Fixture extends LineProcess {
  static spawn(ns: NetNs, args: string[]): Fixture {
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, fixturePath, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new Fixture(child, 'fixture');
  }

  /** Kill the fixture if it is still running and wait for it. */
  override async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}
