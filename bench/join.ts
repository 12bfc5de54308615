// A kernel joined through TUN (`imach join`) and a netstack host behind the real relay, each
// its own process inside a network namespace made for the run: bulk goodput both ways at
// overlay MTU 1500, 16384 and 65535. Baselines in the same run: kernel TCP over loopback
// (iperf3, else Node net) and iperf3 through slirp4netns, a userspace TCP/IP stack in C.
// Needs root, /dev/net/tun and the TUN addon; without them it returns rows saying why.

import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { exec, NetNs } from '../test/support/join-netns.js';
import { World, interopBlocker } from '../test/support/interop-netns.js';
import { bulk } from './netstack.js';
import { HOST_TCP_BUFFERS } from '../hostfn/netstack-bundle.js';
import type { BenchRow } from './report.js';

const GROUP = 'join';
const MiB = 1 << 20;

function note(msg: string): void {
  process.stderr.write(`bench join: ${msg}\n`);
}

function skipRow(name: string, reason: string): BenchRow {
  note(`${name}: skipped: ${reason}`);
  return { group: GROUP, name, metric: `skipped: ${reason}`, value: 0 };
}

async function has(tool: string): Promise<boolean> {
  const r = await exec(tool, ['--version'], 5000);
  return !(r.code !== 0 && /ENOENT/.test(r.stderr));
}

function iperfGbps(json: string): number | string {
  try {
    const r = JSON.parse(json) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
    if (r.error) return r.error;
    const bps = r.end?.sum_received?.bits_per_second;
    return typeof bps === 'number' ? bps / 1e9 : 'no sum_received in iperf3 output';
  } catch {
    return `unreadable iperf3 output: ${json.slice(0, 200)}`;
  }
}

function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 30_000);
}

/** An iperf3 server on 127.0.0.1, in `ns` or (null) this namespace, until killed. */
async function iperfServer(ns: NetNs | null, port: number): Promise<ChildProcess> {
  const argv = ['iperf3', '-s', '-B', '127.0.0.1', '-p', String(port)];
  const child = ns ? spawn('ip', ['netns', 'exec', ns.name, ...argv], { stdio: 'ignore' }) : spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  // ready once it accepts connections
  for (let i = 0; i < 50; i++) {
    const ok = ns
      ? (await exec('ip', ['netns', 'exec', ns.name, 'bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], 2000)).code === 0
      : await new Promise<boolean>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(t);
}

/** Kernel TCP over loopback in a fresh namespace: iperf3, or Node net without it. */
async function kernelLoopback(secs: number, bytes: number): Promise<{ name: string; gbps: number } | string> {
  if (!(await has('iperf3'))) {
    note('iperf3 is not installed: the loopback baseline is Node net');
    const gbps = await bulk({ client: net, server: net, serverHost: '127.0.0.1', close() {} }, bytes);
    return { name: 'baseline: Node net over loopback', gbps };
  }
  const ns = await NetNs.create();
  if (typeof ns === 'string') return ns;
  const port = randomPort();
  const server = await iperfServer(ns, port);
  try {
    const r = await ns.exec('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(secs), '-J']);
    const g = iperfGbps(r.stdout);
    return typeof g === 'string' ? `iperf3 over loopback: ${g}` : { name: 'baseline: kernel TCP over loopback (iperf3)', gbps: g };
  } finally {
    await stopChild(server);
    await ns.remove();
  }
}

/** iperf3 from a namespace through slirp4netns (MTU 65520) to this machine's loopback. */
async function slirpBaseline(secs: number): Promise<{ up: number; down: number } | string> {
  for (const t of ['slirp4netns', 'iperf3']) if (!(await has(t))) return `${t} is not installed`;
  const ns = await NetNs.create();
  if (typeof ns === 'string') return ns;
  const port = randomPort();
  const server = await iperfServer(null, port);
  const slirp = spawn('slirp4netns', ['--configure', '--mtu=65520', '--netns-type=path', `/run/netns/${ns.name}`, 'tap0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let slirpErr = '';
  slirp.stderr!.on('data', (c: Buffer) => {
    if (slirpErr.length < 4096) slirpErr += c.toString();
  });
  try {
    let up = false;
    for (let i = 0; i < 50 && !up && slirp.exitCode === null; i++) {
      up = /10\.0\.2\.100/.test((await ns.ip(['-4', 'addr', 'show', 'dev', 'tap0'])).stdout);
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    if (!up) return `slirp4netns did not configure tap0: ${slirpErr.trim()}`;
    const run = async (reverse: boolean) => {
      const r = await ns.exec('iperf3', ['-c', '10.0.2.2', '-p', String(port), '-t', String(secs), '-J', ...(reverse ? ['-R'] : [])]);
      return iperfGbps(r.stdout);
    };
    const upG = await run(false);
    const downG = await run(true);
    if (typeof upG === 'string') return `iperf3 through slirp4netns: ${upG}`;
    if (typeof downG === 'string') return `iperf3 through slirp4netns: ${downG}`;
    return { up: upG, down: downG };
  } finally {
    await stopChild(slirp);
    await stopChild(server);
    await ns.remove();
  }
}

/** Goodput of one bulk transfer between the kernel and a host, in Gbit/s. */
async function transfer(w: World, dir: 'kernel->host' | 'host->kernel', port: number, bytes: number): Promise<number> {
  const [from, to, toAddress] = dir === 'kernel->host' ? [w.kernel, w.host, w.hostAddress] : [w.host, w.kernel, w.kernelAddress];
  const l = await to.cmd({ cmd: 'sink', port, hash: false });
  if (l.listening !== port) throw new Error(`sink on ${port}: ${JSON.stringify(l)}`);
  const r = await from.cmd({ cmd: 'upload', host: toAddress, port, bytes, seed: 0, fast: true }, 300_000);
  const sunk = await to.waitFor((o) => o.event === 'sunk' && o.port === port, 'the sink report', 30_000);
  if (r.error !== undefined || sunk.bytes !== bytes) throw new Error(`${dir}: ${JSON.stringify(r)} / ${JSON.stringify(sunk)}`);
  return (bytes * 8) / (Number(r.ms) / 1000) / 1e9;
}

export async function runJoinBench(opts: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const secs = opts.quick ? 2 : 5;
  const bytes = opts.quick ? 128 * MiB : 512 * MiB;

  const blocker = await interopBlocker([]);
  if (blocker) return [skipRow('kernel through TUN and the relay', blocker)];

  const base = await kernelLoopback(secs, bytes);
  let loopback: number | undefined;
  if (typeof base === 'string') rows.push(skipRow('baseline: kernel TCP over loopback', base));
  else {
    loopback = base.gbps;
    rows.push({ group: GROUP, name: base.name, metric: 'goodput Gbit/s', value: base.gbps });
  }
  const slirp = await slirpBaseline(secs);
  if (typeof slirp === 'string') rows.push(skipRow('baseline: iperf3 through slirp4netns, MTU 65520', slirp));
  else {
    rows.push({ group: GROUP, name: 'baseline: iperf3 through slirp4netns, MTU 65520', metric: 'ns -> host Gbit/s', value: slirp.up });
    rows.push({ group: GROUP, name: 'baseline: iperf3 through slirp4netns, MTU 65520', metric: 'host -> ns Gbit/s', value: slirp.down });
  }

  for (const mtu of [1500, 16384, 65535]) {
    const n = mtu === 1500 ? bytes / 4 : bytes;
    let w: World;
    try {
      // the host's TCP buffers are those of a real host function (hostfn/netstack-bundle.ts)
      w = await World.start({ mtu, dev: 'imbench0', hostTcp: { ...HOST_TCP_BUFFERS } });
    } catch (err) {
      rows.push(skipRow(`kernel through TUN + relay, MTU ${mtu}`, (err as Error).message.split('\n')[0]!));
      continue;
    }
    try {
      let port = 9000;
      // One unmeasured transfer each way first: the host is a fresh Node process, and its
      // first bulk transfer measures JIT warm-up, not the path (as the relay group's loops).
      for (const dir of ['kernel->host', 'host->kernel'] as const) await transfer(w, dir, port++, n / 4);
      for (const dir of ['kernel->host', 'host->kernel'] as const) {
        const g = await transfer(w, dir, port++, n);
        const name = `${dir}, TUN + relay, MTU ${mtu} (after a warm-up transfer)`;
        const big = mtu === 65535;
        rows.push({
          group: GROUP,
          name,
          metric: 'goodput Gbit/s',
          value: g,
          ...(loopback ? { ratio: g / loopback } : {}),
          ...(big ? { goal: '>= 1 Gbit/s', pass: g >= 1 } : {}),
        });
        if (big && typeof slirp !== 'string') {
          // slirp4netns "up" is the namespace's kernel sending into the userspace stack
          const ref = dir === 'kernel->host' ? slirp.up : slirp.down;
          rows.push({ group: GROUP, name, metric: 'x slirp4netns', value: g / ref, goal: '>= 0.5', pass: g / ref >= 0.5 });
        }
      }
    } catch (err) {
      rows.push(skipRow(`kernel through TUN + relay, MTU ${mtu}`, `failed: ${(err as Error).message.slice(0, 300)}`));
    } finally {
      await w.close();
    }
  }
  return rows;
}
