// Interface configuration with iproute2 (and split DNS with resolvectl), through execFile:
// no shell, every argument validated first because addresses come from the relay.

import { execFile } from 'node:child_process';
import { Address4 } from 'ip-address';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** Runs one program with arguments; rejects with a CommandError. Injected by tests. */
export type CommandRunner = (file: string, args: readonly string[]) => Promise<CommandResult>;

export class CommandError extends Error {
  constructor(
    readonly file: string,
    readonly args: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | null,
    readonly code?: string,
  ) {
    const first = stderr.trim().split('\n')[0] ?? '';
    super(`${file} ${args.join(' ')} failed: ${first || code || `exit ${exitCode}`}`);
  }
}

const COMMAND_TIMEOUT_MS = 10_000;

export const execRunner: CommandRunner = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException & { code?: string | number };
        const exitCode = typeof e.code === 'number' ? e.code : null;
        const code = typeof e.code === 'string' ? e.code : undefined;
        reject(new CommandError(file, args, String(stderr ?? ''), exitCode, code));
        return;
      }
      resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });

export interface InterfaceConfig {
  dev: string;
  /** this machine's overlay address, e.g. 10.77.0.200 */
  address: string;
  /** the overlay network, e.g. 10.77.0.0/16 */
  network: string;
  mtu?: number;
  /** packets the kernel may queue on the device for its reader (`txqueuelen`) */
  txQueueLen?: number;
}

/** Largest txqueuelen accepted: a bound on what a queue of the kernel may hold for us. */
export const MAX_TX_QUEUE_LEN = 100_000;

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function isInterfaceName(s: string): boolean {
  return IFNAME.test(s) && s !== '.' && s !== '..';
}

/** 'a.b.c.d' with no prefix and no leading zeroes (parsed by ip-address). */
export function isIPv4(s: string): boolean {
  return !s.includes('/') && Address4.isValid(s);
}

/** 'a.b.c.d/len', len 1..32 (host bits may be set: a route's `ip` accepts them). */
export function isIPv4Cidr(s: string): boolean {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined || len === undefined || !/^\d{1,2}$/.test(len)) return false;
  return isIPv4(addr) && Number(len) >= 1 && Number(len) <= 32 && Address4.isValid(s);
}

/** Why a config cannot be applied, or null when it is valid. */
export function validateInterfaceConfig(cfg: InterfaceConfig): string | null {
  if (!isInterfaceName(cfg.dev)) return `invalid interface name ${JSON.stringify(cfg.dev)}`;
  if (!isIPv4(cfg.address)) return `invalid address ${JSON.stringify(cfg.address)}`;
  if (!isIPv4Cidr(cfg.network)) return `invalid network ${JSON.stringify(cfg.network)}`;
  if (cfg.mtu !== undefined && (!Number.isInteger(cfg.mtu) || cfg.mtu < 576 || cfg.mtu > 65535)) {
    return `invalid MTU ${cfg.mtu}`;
  }
  if (cfg.txQueueLen !== undefined && (!Number.isInteger(cfg.txQueueLen) || cfg.txQueueLen < 1 || cfg.txQueueLen > MAX_TX_QUEUE_LEN)) {
    return `invalid txqueuelen ${cfg.txQueueLen}`;
  }
  return null;
}

/** The iproute2 commands that bring the device up, in order. */
export function setupCommands(cfg: InterfaceConfig): string[][] {
  const cmds: string[][] = [];
  if (cfg.mtu !== undefined) cmds.push(['link', 'set', 'dev', cfg.dev, 'mtu', String(cfg.mtu)]);
  if (cfg.txQueueLen !== undefined) cmds.push(['link', 'set', 'dev', cfg.dev, 'txqueuelen', String(cfg.txQueueLen)]);
  cmds.push(['addr', 'add', `${cfg.address}/32`, 'dev', cfg.dev]);
  cmds.push(['link', 'set', 'dev', cfg.dev, 'up']);
  cmds.push(['route', 'add', cfg.network, 'dev', cfg.dev, 'src', cfg.address]);
  return cmds;
}

/** The commands that undo setupCommands (each may fail harmlessly if already gone). */
export function teardownCommands(cfg: InterfaceConfig): string[][] {
  return [
    ['route', 'del', cfg.network, 'dev', cfg.dev],
    ['link', 'set', 'dev', cfg.dev, 'down'],
  ];
}

/**
 * Give the device its address, bring it up and route the network through it. On a failure
 * the steps already done are undone and the CommandError is rethrown.
 */
export async function configureInterface(cfg: InterfaceConfig, run: CommandRunner = execRunner): Promise<void> {
  const invalid = validateInterfaceConfig(cfg);
  if (invalid) throw new Error(invalid);
  try {
    for (const args of setupCommands(cfg)) await run('ip', args);
  } catch (err) {
    await unconfigureInterface(cfg, run);
    throw err;
  }
}

/** Remove the route and take the device down; never throws (the device may be gone). */
export async function unconfigureInterface(cfg: InterfaceConfig, run: CommandRunner = execRunner): Promise<string[]> {
  const failures: string[] = [];
  if (validateInterfaceConfig(cfg)) return failures;
  for (const args of teardownCommands(cfg)) {
    try {
      await run('ip', args);
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  return failures;
}

/** Whether an interface of that name exists (in this network namespace). */
export async function interfaceExists(dev: string, run: CommandRunner = execRunner): Promise<boolean> {
  if (!isInterfaceName(dev)) return false;
  try {
    await run('ip', ['link', 'show', 'dev', dev]);
    return true;
  } catch {
    return false;
  }
}

// ---- split DNS (systemd-resolved) ----

export interface SplitDnsConfig {
  dev: string;
  /** the relay's DNS server, e.g. 10.77.0.1 */
  dns: string;
  /** the overlay domain, e.g. imach */
  domain: string;
}

const DOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Whether resolvectl is there and systemd-resolved answers; a reason string if not. */
export async function resolvedAvailable(run: CommandRunner = execRunner): Promise<true | string> {
  try {
    await run('resolvectl', ['status']);
    return true;
  } catch (err) {
    const e = err as CommandError;
    if (e.code === 'ENOENT') return 'resolvectl is not installed (systemd-resolved is needed for --dns)';
    return `systemd-resolved is not running (${e.message})`;
  }
}

/** Send lookups of `*.domain` (and only those) to the relay's DNS server through this interface. */
export async function configureSplitDns(cfg: SplitDnsConfig, run: CommandRunner = execRunner): Promise<void> {
  if (!isInterfaceName(cfg.dev)) throw new Error(`invalid interface name ${JSON.stringify(cfg.dev)}`);
  if (!isIPv4(cfg.dns)) throw new Error(`invalid DNS server ${JSON.stringify(cfg.dns)}`);
  if (!DOMAIN.test(cfg.domain)) throw new Error(`invalid domain ${JSON.stringify(cfg.domain)}`);
  await run('resolvectl', ['dns', cfg.dev, cfg.dns]);
  // `~domain` makes it a routing-only domain: only these names go to this server.
  await run('resolvectl', ['domain', cfg.dev, `~${cfg.domain}`]);
}

export async function revertSplitDns(dev: string, run: CommandRunner = execRunner): Promise<void> {
  if (!isInterfaceName(dev)) return;
  try {
    await run('resolvectl', ['revert', dev]);
  } catch {
    // the device is usually gone already, which reverts it too
  }
}
