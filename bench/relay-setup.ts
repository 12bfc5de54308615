// The imach relay as the relay benchmarks run it, in this process or in a peer process.

import { startRelay, type Relay } from '../relay/index.js';
import { silentLogger } from '../relay/log.js';

export function startBenchRelay(mtu: number): Promise<Relay> {
  return startRelay({
    listen: { host: '127.0.0.1', port: 0 },
    secret: 'bench-secret-' + process.pid,
    network: '10.77.0.0/16',
    mtu,
    limits: { rateBytesPerSec: 64 * 1024 * 1024 * 1024, rateBurstBytes: 1024 * 1024 * 1024 },
    logger: silentLogger,
  });
}
