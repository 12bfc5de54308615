// A small imaginary network inside one network namespace for the interop tests and the join
// benchmark: the real relay, a netstack host on a RelayLink, the real `imach join` (TUN, the
// kernel's side) and a helper using the kernel's own sockets, each its own process, plus
// tcpdump on the TUN device. Nothing outside the namespace is touched.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineProcess, NetNs, exec, tunTestBlocker } from './join-netns.js';

export { LineProcess };

type Obj = Record<string, unknown>;

const here = path.dirname(fileURLToPath(import.meta.url));
export const interopFixturePath = path.join(here, 'interop-fixture.js');
export const cliPath = path.resolve(here, '..', '..', 'cli', 'main.js');

/** Extra node flags for every spawned process, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` (debugging). */
function nodeArgs(): string[] {
  return (process.env.IMACH_INTEROP_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
}

/** Why the interop tests cannot run here (naming what is missing), or null. */
export async function interopBlocker(tools: readonly string[]): Promise<string | null> {
  const tun = await tunTestBlocker();
  if (tun) return tun;
  const missing: string[] = [];
  for (const t of tools) {
    const r = await exec(t, [t === 'ping' ? '-V' : '--version']);
    if (r.code !== 0 && /ENOENT/.test(r.stderr)) missing.push(`${t} (Debian package ${DEBIAN_PACKAGE[t] ?? t})`);
  }
  return missing.length > 0 ? `missing: ${missing.join(', ')}` : null;
}

const DEBIAN_PACKAGE: Record<string, string> = { ping: 'iputils-ping', nft: 'nftables', ip: 'iproute2' };

export function spawnInNs(ns: NetNs, argv: string[], what: string): LineProcess {
  const child = spawn('ip', ['netns', 'exec', ns.name, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
  return new LineProcess(child, what);
}

/** A fixture process (relay, host or kernel mode) driven by JSON-line commands. */
export class Agent extends LineProcess {
  private nextId = 1;

  static spawn(ns: NetNs, mode: string, args: string[] = []): Agent {
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, interopFixturePath, mode, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    return new Agent(child, `${mode} fixture`);
  }

  ready(timeoutMs = 20_000): Promise<Obj> {
    return this.waitFor((o) => o.ready === true || 'error' in o, 'ready line', timeoutMs).then((o) => {
      if (o.ready !== true) throw new Error(`${this.what} failed: ${String(o.error)} ${this.stderr}`);
      return o;
    });
  }

  cmd(c: Obj, timeoutMs = 120_000): Promise<Obj> {
    const id = this.nextId++;
    const reply = this.waitFor((o) => o.id === id, `reply to ${String(c.cmd)}`, timeoutMs);
    this.child.stdin.write(JSON.stringify({ id, ...c }) + '\n');
    return reply;
  }
}

/** `imach join` (the real CLI) in the namespace; resolves once it says it is up. */
export async function startJoin(ns: NetNs, args: string[], what = 'imach join'): Promise<{ proc: LineProcess; address: string; lines: string[] }> {
  const proc = spawnInNs(ns, [process.execPath, ...nodeArgs(), cliPath, 'join', ...args], what);
  await proc.waitFor((o) => typeof o.text === 'string' && o.text.startsWith('Ctrl-C'), 'the joined message', 20_000);
  const lines = proc.lines.map((o) => String(o.text));
  const m = /address (\d+\.\d+\.\d+\.\d+)/.exec(lines.join('\n'));
  if (!m) throw new Error(`imach join printed no address: ${lines.join('\n')}`);
  return { proc, address: m[1]!, lines };
}

export interface SynRecord {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** true for SYN-ACK */
  ack: boolean;
  /** ECE and CWR flags (an ECN-setup SYN has both, RFC 3168 section 6.1.1) */
  ece: boolean;
  cwr: boolean;
  mss?: number;
  wscale?: number;
  sackOK: boolean;
  timestamps: boolean;
  raw: string;
}

/** The SYNs and SYN-ACKs in `tcpdump -n -v` text. */
export function parseSyns(text: string): SynRecord[] {
  const out: SynRecord[] = [];
  const re = /(\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): Flags \[(S[EW]*\.?)\][^\n]*/g;
  for (const m of text.matchAll(re)) {
    const opts = /options \[([^\]]*)\]/.exec(m[0])?.[1] ?? '';
    const mss = /\bmss (\d+)/.exec(opts);
    const ws = /\bwscale (\d+)/.exec(opts);
    out.push({
      src: m[1]!,
      srcPort: Number(m[2]),
      dst: m[3]!,
      dstPort: Number(m[4]),
      ack: m[5]!.endsWith('.'),
      ece: m[5]!.includes('E'),
      cwr: m[5]!.includes('W'),
      ...(mss ? { mss: Number(mss[1]) } : {}),
      ...(ws ? { wscale: Number(ws[1]) } : {}),
      sackOK: /\bsackOK\b/.test(opts),
      timestamps: /\bTS val \d+ ecr \d+/.test(opts),
      raw: m[0],
    });
  }
  return out;
}

/** tcpdump -v of the SYNs on a device in the namespace. */
export class SynCapture {
  private constructor(private readonly proc: LineProcess) {}

  static async start(ns: NetNs, dev: string): Promise<SynCapture> {
    const proc = spawnInNs(ns, ['tcpdump', '-i', dev, '--immediate-mode', '-n', '-v', '-l', 'tcp[tcpflags] & tcp-syn != 0'], 'tcpdump');
    const cap = new SynCapture(proc);
    for (let i = 0; i < 100 && !/listening on/.test(proc.stderr); i++) {
      if (proc.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!/listening on/.test(proc.stderr)) {
      await proc.stop('SIGKILL', 100);
      throw new Error(`tcpdump did not start: ${proc.stderr}`);
    }
    return cap;
  }

  /** Stop tcpdump (SIGINT flushes) and return what it printed. */
  async stop(): Promise<string> {
    this.proc.child.kill('SIGINT');
    await this.proc.stop('SIGKILL', 2000);
    return this.proc.lines.map((o) => String(o.text ?? JSON.stringify(o))).join('\n');
  }
}

export interface WorldOptions {
  /** the relay's overlay MTU */
  mtu: number;
  /** TUN device name */
  dev: string;
  /** `imach join --impair` value */
  impair?: string;
  /** TcpConfig overrides for the host's stack */
  hostTcp?: Record<string, number | boolean>;
}

/** One namespace with relay, `imach join` (TUN), a netstack host `web` and a kernel helper. */
export class World {
  private constructor(
    readonly ns: NetNs,
    readonly relay: Agent,
    readonly join: LineProcess,
    readonly host: Agent,
    readonly kernel: Agent,
    readonly relayUrl: string,
    readonly tokens: Record<string, string>,
    /** the kernel's address on the TUN device */
    readonly kernelAddress: string,
    readonly hostAddress: string,
    readonly gateway: string,
  ) {}

  static async start(o: WorldOptions): Promise<World> {
    const made = await NetNs.create();
    if (typeof made === 'string') throw new Error(made);
    const ns = made;
    const started: LineProcess[] = [];
    try {
      const relay = Agent.spawn(ns, 'relay', [String(o.mtu)]);
      started.push(relay);
      const r = await relay.ready();
      const url = String(r.url);
      const tokens = r.tokens as Record<string, string>;
      const join = await startJoin(ns, ['--relay', url, '--token', tokens.laptop!, '--dev', o.dev, ...(o.impair ? ['--impair', o.impair] : [])]);
      started.push(join.proc);
      const host = Agent.spawn(ns, 'host', [url, tokens.web!, ...(o.hostTcp ? [JSON.stringify(o.hostTcp)] : [])]);
      started.push(host);
      const h = await host.ready();
      const kernel = Agent.spawn(ns, 'kernel');
      started.push(kernel);
      await kernel.ready();
      return new World(ns, relay, join.proc, host, kernel, url, tokens, join.address, String(h.address), String(r.gateway));
    } catch (err) {
      for (const p of started.reverse()) await p.stop('SIGKILL', 500);
      await ns.remove();
      throw err;
    }
  }

  /** Run a shell command line in the namespace (bash, pipefail). */
  sh(script: string, timeoutMs = 120_000): ReturnType<typeof exec> {
    return exec('ip', ['netns', 'exec', this.ns.name, 'bash', '-o', 'pipefail', '-c', script], timeoutMs);
  }

  async close(): Promise<void> {
    await this.kernel.stop();
    await this.host.stop();
    this.join.child.kill('SIGTERM');
    await this.join.stop('SIGKILL', 3000);
    await this.relay.stop();
    await this.ns.remove();
  }
}
