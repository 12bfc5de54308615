// For the --expose tests: a host on the imaginary network (netstack on a RelayLink, as in a
// host function), and small stream helpers used on both its sockets and kernel ones.

import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { silentLogger } from '../../hostfn/log.js';
import { RelayLink, isRelayLinkError } from '../../transport/relay-link.js';
import type { NetSocket } from '../../netstack/api/net.js';
import { Stack } from '../../netstack/stack.js';

export interface OverlayHost {
  readonly address: string;
  /** a TCP connection from this host (half-open allowed); resolves once connected */
  connect(host: string, port: number): Promise<NetSocket>;
  close(): void;
}

export async function startOverlayHost(url: string, token: string): Promise<OverlayHost> {
  const link = await RelayLink.connect({ url, token, logger: silentLogger, giveUpAfterMs: 5000 });
  if (isRelayLinkError(link)) throw new Error(`host could not join: ${link.kind}: ${link.message}`);
  const w = link.welcome;
  const stack = new Stack({ address: w.address, prefixLength: w.prefixLength, mtu: w.mtu, gateway: w.gateway, logger: silentLogger });
  stack.attach(link);
  const sockets = new Set<NetSocket>();
  return {
    address: w.address,
    connect: (host, port) =>
      new Promise((resolve, reject) => {
        const s = stack.net.createConnection({ host, port, allowHalfOpen: true });
        sockets.add(s);
        s.once('close', () => sockets.delete(s));
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      }),
    close: () => {
      for (const s of sockets) s.destroy();
      stack.close();
      link.close();
    },
  };
}

export interface Received {
  data: Buffer;
  /** the error that ended the stream, or null after a clean end */
  error: NodeJS.ErrnoException | null;
}

/** Everything a stream delivers until its end ('end') or its failure ('error' or 'close' without end). */
export function readAll(s: Duplex): Promise<Received> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (error: NodeJS.ErrnoException | null) => {
      if (done) return;
      done = true;
      resolve({ data: Buffer.concat(chunks), error });
    };
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => finish(null));
    s.once('error', (e: NodeJS.ErrnoException) => finish(e));
    s.once('close', () => finish(Object.assign(new Error('closed before its end'), { code: 'ECLOSED' })));
  });
}

/** How a stream ends: the error code, or 'end'/'close' without an error. */
export function endOf(s: Duplex): Promise<string> {
  return new Promise((resolve) => {
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.once('close', () => setImmediate(() => resolve('close')));
    s.resume();
  });
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
