// End-to-end harness: a real relay on loopback with the local provider (real child
// processes running dist/hostfn/main.js), apps written to a temp dir, and "test hosts":
// this process joined to the network with its own stack, to connect from.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProvider } from '../../hostfn/local-provider.js';
import type { RuntimeDns } from '../../hostfn/runtime.js';
import { createLogger, silentLogger, type Logger } from '../../hostfn/log.js';
import { Stack } from '../../netstack/stack.js';
import { createNetApi } from '../../netstack/api/net.js';
import { createDnsResolver } from '../../netstack/api/dns.js';
import { RelayLink, isRelayLinkError, type RelayLinkOptions } from '../../transport/relay-link.js';
import { isManifestError, parseManifest, startRelay, type Manifest, type Provider, type Relay, type RelayOptions } from '../../relay/index.js';
import type { NetApi } from '../../netstack/api/net.js';
import type { DgramApi } from '../../netstack/api/dgram.js';

export interface E2eApp {
  dir: string;
  manifest: Manifest;
  relay: Relay;
  provider: LocalProvider;
  secret: string;
  /** host output lines, `name: line` */
  output: string[];
  /**
   * Close the relay without stopping the host functions (as when a relay process dies
   * and its hosts live on), wait `downMs`, and start a new relay on the same port,
   * secret and manifest.
   */
  restartRelay(downMs: number): Promise<Relay>;
  close(): Promise<void>;
}

const verbose = process.env.IMACH_E2E_VERBOSE === '1';

export function e2eLogger(): Logger {
  return verbose ? createLogger({ level: 'debug' }) : silentLogger;
}

/**
 * Write `files` (name -> source) and `manifestYaml` into a temp dir, then start a relay
 * for it on 127.0.0.1 (a free port) with the local provider.
 */
export async function startE2eApp(
  manifestYaml: string,
  files: Record<string, string>,
  relayOptions: Partial<RelayOptions> = {},
): Promise<E2eApp> {
  const dir = mkdtempSync(join(tmpdir(), 'imach-e2e-'));
  for (const [name, src] of Object.entries(files)) writeFileSync(join(dir, name), src);
  const m = parseManifest(manifestYaml, dir, join(dir, 'imach.yaml'));
  if (isManifestError(m)) throw new Error(`test manifest: ${m.message}`);
  const output: string[] = [];
  const log = e2eLogger();
  const provider = new LocalProvider({
    logger: log,
    stopGraceMs: 2000,
    output: (host, _s, line) => {
      if (output.length < 5000) output.push(`${host}: ${line}`);
      if (verbose) process.stderr.write(`[${host}] ${line}\n`);
    },
  });
  const secret = 'e2e-secret-' + Math.random().toString(36).slice(2);
  let keepHosts = false;
  const relayProvider: Provider = {
    name: 'local',
    async start(launch) {
      const inst = await provider.start(launch);
      return { exited: inst.exited, stop: () => (keepHosts ? Promise.resolve() : inst.stop()) };
    },
  };
  const opts = (port: number): RelayOptions => ({
    manifest: m,
    listen: { host: '127.0.0.1', port },
    secret,
    providers: { local: relayProvider },
    logger: log,
    ...relayOptions,
  });
  const app: E2eApp = {
    dir,
    manifest: m,
    relay: await startRelay(opts(0)),
    provider,
    secret,
    output,
    async restartRelay(downMs) {
      const port = Number(new URL(app.relay.url).port);
      keepHosts = true;
      await app.relay.close();
      keepHosts = false;
      await new Promise((r) => setTimeout(r, downMs));
      app.relay = await startRelay(opts(port));
      return app.relay;
    },
    async close() {
      await app.relay.close().catch(() => {});
      await provider.stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return app;
}

export interface TestHost {
  net: NetApi;
  dgram: DgramApi;
  dns: RuntimeDns;
  link: RelayLink;
  address: string;
  stats(): { established: number; listening: number; udp: number; bytesIn: number; bytesOut: number };
  ping(address: string, timeoutMs?: number): Promise<number>;
  close(): void;
}

/** Join this process to the relay as host `name` with its own stack. */
export async function joinTestHost(
  relayUrl: string | (() => string),
  token: string | (() => string),
  linkOptions: Partial<RelayLinkOptions> = {},
): Promise<TestHost> {
  const url = typeof relayUrl === 'function' ? relayUrl() : relayUrl;
  const link = await RelayLink.connect({ url, token, logger: e2eLogger(), ...linkOptions });
  if (isRelayLinkError(link)) throw new Error(`test host could not join: ${link.message}`);
  const w = link.welcome;
  const stack = new Stack({ address: w.address, prefixLength: w.prefixLength, mtu: w.mtu, gateway: w.gateway, logger: e2eLogger() });
  const net = (typeof stack.net === 'object' && stack.net !== null ? stack.net : createNetApi(stack)) as NetApi;
  stack.attach(link);
  const resolver = createDnsResolver(stack, w.dns, { domain: w.domain });
  stack.setResolver((n) => resolver.lookup(n));
  return {
    net,
    dgram: stack.dgram,
    dns: { lookup: (n) => resolver.lookup(n), resolve4: (n) => resolver.resolve4(n) },
    link,
    address: w.address,
    stats: () => stack.socketStats(),
    ping: (address, timeoutMs = 5000) => stack.ping(address, { timeout: timeoutMs }),
    close: () => {
      resolver.close();
      stack.close();
      link.close();
    },
  };
}

export async function waitFor(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
