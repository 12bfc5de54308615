// What TUN mode needs from this machine, checked before anything is connected so that
// `imach join` fails at once with a list of what is missing.

import { accessSync, constants, readFileSync } from 'node:fs';
import { execRunner, type CommandRunner } from './iproute.js';
import { tunAddonAvailable } from './tun-device.js';

export const TUN_PATH = '/dev/net/tun';
/** capability(7): CAP_NET_ADMIN */
const CAP_NET_ADMIN = 12;

export interface PreflightProbes {
  /** effective uid */
  uid(): number;
  /** the CapEff line of /proc/self/status as a bigint, or null when unknown */
  effectiveCaps(): bigint | null;
  /** whether the TUN clone device can be opened for reading and writing */
  tunAccessible(path: string): boolean | 'missing';
  addonAvailable(): boolean;
  /** whether the `ip` command runs */
  iproute(): Promise<boolean>;
}

export function systemProbes(run: CommandRunner = execRunner): PreflightProbes {
  return {
    uid: () => (typeof process.geteuid === 'function' ? process.geteuid() : -1),
    effectiveCaps: () => {
      try {
        const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
        return m ? BigInt(`0x${m[1]}`) : null;
      } catch {
        return null;
      }
    },
    tunAccessible: (path) => {
      try {
        accessSync(path, constants.R_OK | constants.W_OK);
        return true;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : false;
      }
    },
    addonAvailable: () => tunAddonAvailable(),
    iproute: async () => {
      try {
        await run('ip', ['-V']);
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** What is missing for TUN mode, one readable line each; empty when all is there. */
export async function checkTunPrerequisites(probes: PreflightProbes = systemProbes()): Promise<string[]> {
  const missing: string[] = [];
  const caps = probes.effectiveCaps();
  const netAdmin = caps !== null && (caps >> BigInt(CAP_NET_ADMIN)) & 1n ? true : false;
  if (probes.uid() !== 0 && !netAdmin) {
    missing.push('root or CAP_NET_ADMIN to create and configure a network device (run it with sudo)');
  }
  const tun = probes.tunAccessible(TUN_PATH);
  if (tun === 'missing') {
    missing.push(`${TUN_PATH} (load the tun module: modprobe tun; in a container pass --device ${TUN_PATH})`);
  } else if (!tun && probes.uid() === 0) {
    missing.push(`read/write access to ${TUN_PATH}`);
  }
  if (!probes.addonAvailable()) {
    missing.push('the TUN addon native/tun (build it with `node scripts/build-native.mjs`; needs python3, make and a C compiler)');
  }
  if (!(await probes.iproute())) missing.push('iproute2 (the `ip` command; Debian package iproute2)');
  return missing;
}
