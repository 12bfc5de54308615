// `imach flows [host] [--follow]`: the TCP and UDP flows the relay sees.

import type { FlowRecord } from '../relay/index.js';
import { getFlows } from './admin-client.js';
import { EXIT, flag, parseCommand, str } from './args.js';
import { adminTarget } from './config.js';
import { bytes, duration, table } from './format.js';
import { USAGE } from './usage.js';

/** How often --follow redraws. */
const FOLLOW_INTERVAL_MS = 1000;

export function flowsTable(flows: readonly FlowRecord[]): string {
  const rows = flows.map((f) => [
    f.protocol,
    f.src,
    f.dst,
    f.state,
    `${bytes(f.bytesOut)}/${f.packetsOut}`,
    `${bytes(f.bytesIn)}/${f.packetsIn}`,
    duration(f.ageMs) === '-' ? '0s' : duration(f.ageMs),
    duration(f.idleMs) === '-' ? '0s' : duration(f.idleMs),
  ]);
  return table(['PROTO', 'SRC', 'DST', 'STATE', 'OUT(B/PKTS)', 'IN(B/PKTS)', 'AGE', 'IDLE'], rows);
}

export async function flows(argv: string[]): Promise<number> {
  const p = parseCommand(
    'flows',
    argv,
    { relay: { type: 'string' }, manifest: { type: 'string' }, 'state-dir': { type: 'string' }, follow: { type: 'boolean', short: 'f' }, json: { type: 'boolean' } },
    1,
  );
  if (p.help) {
    process.stdout.write(USAGE.flows!);
    return EXIT.ok;
  }
  const host = p.positionals[0];
  const t = await adminTarget({ relay: str(p, 'relay'), manifest: str(p, 'manifest'), stateDir: str(p, 'state-dir') });
  const show = async (): Promise<void> => {
    const list = await getFlows(t, host);
    process.stdout.write(flag(p, 'json') ? JSON.stringify(list) + '\n' : flowsTable(list));
  };
  if (!flag(p, 'follow')) {
    await show();
    return EXIT.ok;
  }
  let stopped = false;
  let wake: (() => void) | null = null;
  const stop = (): void => {
    stopped = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    while (!stopped) {
      if (!flag(p, 'json') && process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J');
      await show();
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, FOLLOW_INTERVAL_MS);
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return EXIT.ok;
}
