// What runs inside a host function: join the relay, bring up a stack with the welcome's
// address, run the application module, report activity, and end on drain or app exit.

import { ActivityReporter } from './activity.js';
import { IPERF3_PORT, startIperf3Server, type NetLike } from './iperf3-server.js';
import { pathToFileURL } from 'node:url';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { Link } from '../netstack/link/link.js';
import { createLogger, type Logger } from './log.js';
import { ACTIVITY_INTERVAL_MS, type Launch, type WelcomeMessage } from './protocol.js';
import { RelayLink, isRelayLinkError, type RelayLinkOptions } from '../transport/relay-link.js';

export interface HostExit {
  code: number;
  reason: string;
}

/** The socket counters the runtime reads (a subset of netstack's socketStats()). */
export interface RuntimeSocketStats {
  established: number;
  listening: number;
  udp: number;
  bytesIn: number;
  bytesOut: number;
}

/** What the runtime needs from a stack; the real one comes from netstack. */
export interface RuntimeStack<Net extends object = object, Dgram extends object = object> {
  readonly net: Net;
  readonly dgram: Dgram;
  socketStats(): RuntimeSocketStats;
  close(): void;
}

/** Name resolution through the relay's DNS on the gateway (a lookup of a cold host starts it). */
export interface RuntimeDns {
  lookup(name: string): Promise<string>;
  resolve4(name: string): Promise<string[]>;
}

export interface StackBundle<Net extends object = object, Dgram extends object = object> {
  stack: RuntimeStack<Net, Dgram>;
  dns: RuntimeDns;
}

export type StackFactory = (welcome: WelcomeMessage, link: Link, log: Logger) => StackBundle | Promise<StackBundle>;

/** The object an application's default export is called with. */
export interface HostContext<Net extends object = object, Dgram extends object = object> {
  net: Net;
  dgram: Dgram;
  dns: RuntimeDns;
  host: { name: string; address: string };
  /** Fired when the host is asked to drain: stop accepting work and finish. */
  signal: AbortSignal;
  env: Record<string, string>;
  log: Logger;
  /** End the host now with this exit code (like process.exit). */
  exit(code?: number): void;
}

export type HostApp = (ctx: HostContext) => unknown;

export interface RunHostOptions {
  logger?: Logger;
  /**
   * Copy the launch env into process.env for the run; the environment as it was before is
   * restored exactly when the run ends (a warm Lambda container runs other hosts next).
   * Default false.
   */
  setProcessEnv?: boolean;
  /** Time left before the platform kills us (Lambda); the runtime drains before it. */
  remainingMs?: () => number;
  /** Margin kept before remainingMs() reaches 0. Default 2000. */
  deadlineMarginMs?: number;
  /** Build the stack; default: netstack's Stack plus its DNS resolver through the gateway. */
  createStack?: StackFactory;
  link?: Partial<RelayLinkOptions>;
  /** Activity report at least this often (and on a change of established). */
  activityIntervalMs?: number;
  /** How often socket counters are read. Default 200. */
  pollMs?: number;
  /** Longest wait for the app to listen before held packets are delivered. Default 500. */
  listenWaitMs?: number;
  /** Grace when the runtime drains on its own (deadline, SIGTERM without a value). */
  defaultGraceMs?: number;
}

type Phase = 'starting' | 'running' | 'draining' | 'done';

export class HostRuntime {
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private phase: Phase = 'starting';
  private link: RelayLink | null = null;
  private stack: RuntimeStack | null = null;
  private readonly servers = new Set<{ close(cb?: (err?: Error) => void): unknown }>();
  private pollTimer: NodeJS.Timeout | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  private appSettled = false;
  private drainReason = '';
  private activity: ActivityReporter | null = null;
  private resolveExit!: (e: HostExit) => void;
  private readonly exit: Promise<HostExit>;
  private pendingDrain: { reason: string; graceMs: number } | null = null;
  /** process.env before setProcessEnv changed it (null: untouched) */
  private savedEnv: Record<string, string | undefined> | null = null;
  /** Wakes resumeWhenReady when a server or UDP socket of the app starts listening. */
  private listenWake: (() => void) | null = null;

  constructor(
    readonly launch: Launch,
    private readonly options: RunHostOptions = {},
  ) {
    this.log = (options.logger ?? createLogger()).child({ host: launch.host });
    this.exit = new Promise((r) => (this.resolveExit = r));
  }

  /** Join, run the app, and resolve when the host function should end. Never rejects. */
  run(): Promise<HostExit> {
    void this.start().catch((e: unknown) => {
      this.log.error('host runtime failed', { err: e as Error });
      void this.finish(1, `runtime error: ${(e as Error)?.message ?? String(e)}`);
    });
    return this.exit;
  }

  /** Stop accepting work, let connections finish for up to graceMs, then end. */
  drain(reason: string, graceMs: number = this.options.defaultGraceMs ?? 5000): void {
    if (this.phase === 'starting') {
      this.pendingDrain = { reason, graceMs };
      return;
    }
    if (this.phase !== 'running') return;
    this.phase = 'draining';
    this.drainReason = reason;
    this.log.info('draining', { reason, graceMs });
    this.abort.abort(new Error(`drain: ${reason}`));
    for (const s of this.servers) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
    this.servers.clear();
    this.drainTimer = setTimeout(() => void this.finish(0, `drained (${reason})`), graceMs);
    this.tick();
  }

  private async start(): Promise<void> {
    const { launch } = this;
    if (this.options.setProcessEnv) {
      this.savedEnv = { ...process.env };
      for (const [k, v] of Object.entries(launch.env)) process.env[k] = v;
    }

    const t0 = performance.now();
    const factory = this.options.createStack ?? defaultStackFactory;
    // The stack's modules load while the app loads and the link joins: a cold start
    // waits for all three.
    if (factory === defaultStackFactory) void preloadDefaultStack().catch(() => {});
    const linkOptions: RelayLinkOptions = {
      url: launch.relay,
      token: launch.token,
      logger: this.log.child({ component: 'relay-link' }),
      ...(launch.relayCertSha256 !== undefined ? { tls: { certSha256: launch.relayCertSha256 } } : {}),
      ...this.options.link,
    };
    // Load the app before joining: a module that cannot load fails the start, and the
    // relay answers the packets held for this host with ICMP unreachable.
    let app: HostApp;
    try {
      app = await loadApp(launch.run);
    } catch (e) {
      this.log.error('cannot load the app module', { run: launch.run, err: errorText(e) });
      return void this.finish(1, `cannot load ${launch.run}: ${errorMessage(e)}`);
    }
    const tLoaded = performance.now();
    const link = await RelayLink.connect(linkOptions);
    if (isRelayLinkError(link)) {
      this.log.error('cannot join the relay', { kind: link.kind, err: link.message });
      return void this.finish(1, `join failed: ${link.message}`);
    }
    this.link = link;
    this.activity = new ActivityReporter((m) => link.sendControl(m), this.options.activityIntervalMs ?? ACTIVITY_INTERVAL_MS);
    link.pauseReceive();
    const welcome = link.welcome;
    this.log.info('joined', { address: welcome.address, session: welcome.session, mtu: welcome.mtu });
    link.onControl((m) => {
      if (m.type === 'drain') this.drain(m.reason, m.graceMs);
      else if (m.type === 'error') this.log.warn('relay says', { code: m.code, message: m.message });
    });
    void link.ended.then((err) => {
      if (err) void this.finish(1, `relay lost: ${err.message}`);
    });

    const tJoined = performance.now();
    const { stack, dns } = await factory(welcome, link, this.log);
    this.stack = stack;
    if (this.isDone()) {
      stack.close();
      return;
    }

    this.phase = 'running';
    this.pollTimer = setInterval(() => this.tick(), this.options.pollMs ?? 200);
    const ctx: HostContext = {
      net: trackServers(stack.net, 'createServer', (s) => {
        this.servers.add(s);
        onEvent(s, 'listening', () => this.listenWake?.());
        onEvent(s, 'close', () => this.servers.delete(s));
      }),
      dgram: trackServers(stack.dgram, 'createSocket', (s) => onEvent(s, 'listening', () => this.listenWake?.())),
      dns,
      host: { name: launch.host, address: welcome.address },
      signal: this.abort.signal,
      env: { ...launch.env },
      log: this.log.child({ app: launch.host }),
      exit: (code = 0) => void this.finish(code, `app called exit(${code})`),
    };
    if (launch.perf === true) {
      startIperf3Server(ctx.net as unknown as NetLike, IPERF3_PORT).then(
        () => this.log.info('answering iperf3', { port: IPERF3_PORT }),
        (e: unknown) => this.log.warn('cannot answer iperf3', { port: IPERF3_PORT, err: errorText(e) }),
      );
    }
    this.tick();
    const tStack = performance.now();
    const result = Promise.resolve().then(() => app(ctx));
    void this.resumeWhenReady(link, stack, result).then(() => {
      const ms = (t: number) => Math.round((t - t0) * 10) / 10;
      this.log.debug('start phases (ms since the launch)', {
        appLoaded: ms(tLoaded),
        joined: ms(tJoined),
        stack: ms(tStack),
        delivering: ms(performance.now()),
        processUptimeMs: Math.round(process.uptime() * 1000),
      });
    });
    const pending = this.pendingDrain;
    if (pending !== null) {
      // asked to drain while starting: the app has registered its abort listeners by now
      // (it ran up to its first await in the microtask above), so it sees the signal fire
      this.pendingDrain = null;
      queueMicrotask(() => this.drain(pending.reason, pending.graceMs));
    }
    result
      .then(
        () => {
          this.appSettled = true;
          this.tick();
        },
        (e: unknown) => {
          this.log.error('app threw', { err: errorText(e) });
          // before any traffic it is a failed start: the relay backs off instead of
          // restarting the host on every SYN retransmission
          void this.finish(1, `app threw: ${errorMessage(e)}`, !this.carriedTraffic(stack));
        },
      );
  }

  /**
   * The packets that started this host (a SYN, a datagram) were held by the relay and
   * arrive right after the join: deliver them once the app listens, has finished its
   * start, or had a short moment, so the first connect is not refused.
   */
  private async resumeWhenReady(link: RelayLink, stack: RuntimeStack, result: Promise<unknown>): Promise<void> {
    let settled = false;
    void result.then(
      () => (settled = true),
      () => (settled = true),
    );
    const until = Date.now() + (this.options.listenWaitMs ?? 500);
    await new Promise((r) => setImmediate(r));
    // Woken by a facade server's (or UDP socket's) 'listening' event; the poll covers
    // listeners opened on the stack directly.
    while (!settled && Date.now() < until && !this.isDone()) {
      const s = stack.socketStats();
      if (s.listening + s.udp > 0) break;
      await new Promise<void>((r) => {
        const t = setTimeout(() => {
          this.listenWake = null;
          r();
        }, 5);
        this.listenWake = () => {
          clearTimeout(t);
          this.listenWake = null;
          r();
        };
      });
    }
    link.resumeReceive();
  }

  private isDone(): boolean {
    return this.phase === 'done';
  }

  /** Read the counters: report activity, and end when the app's handles are gone. */
  private tick(): void {
    const stack = this.stack;
    const link = this.link;
    if (!stack || !link || this.phase === 'done' || this.phase === 'starting') return;
    const s = stack.socketStats();
    this.activity?.update(s, Date.now());
    if (this.phase === 'running' && this.appSettled && s.established === 0 && s.listening === 0 && s.udp === 0) {
      void this.finish(0, 'app exited');
      return;
    }
    if (this.phase === 'draining' && s.established === 0) {
      void this.finish(0, `drained (${this.drainReason})`);
      return;
    }
    const remaining = this.options.remainingMs?.();
    if (remaining !== undefined && this.phase === 'running') {
      const margin = this.options.deadlineMarginMs ?? 2000;
      const grace = this.options.defaultGraceMs ?? 5000;
      if (remaining < margin + grace) this.drain('deadline', Math.max(0, remaining - margin));
    }
  }

  /** Whether the host's stack has had a connection or carried payload bytes. */
  private carriedTraffic(stack: RuntimeStack): boolean {
    const s = stack.socketStats();
    return (this.activity?.reportedEstablished ?? 0) > 0 || s.established > 0 || s.bytesIn + s.bytesOut > 0;
  }

  private async finish(code: number, reason: string, startFailed = false): Promise<void> {
    if (this.isDone()) return;
    this.phase = 'done';
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.drainTimer) clearTimeout(this.drainTimer);
    if (!this.abort.signal.aborted) this.abort.abort(new Error(`host ending: ${reason}`));
    const link = this.link;
    if (link) {
      if (link.state === 'open') link.sendControl(startFailed ? { type: 'released', reason, startFailed } : { type: 'released', reason });
      await link.closeGracefully(1000);
    }
    try {
      this.stack?.close();
    } catch (e) {
      this.log.warn('stack close failed', { err: e as Error });
    }
    this.restoreEnv();
    this.log.info('host ended', { code, reason });
    this.resolveExit({ code, reason });
  }

  /** Put process.env back exactly as it was before the run (keys added by the launch or the app go). */
  private restoreEnv(): void {
    const saved = this.savedEnv;
    if (saved === null) return;
    this.savedEnv = null;
    for (const k of Object.keys(process.env)) if (!Object.hasOwn(saved, k)) delete process.env[k];
    for (const [k, v] of Object.entries(saved)) if (v !== undefined && process.env[k] !== v) process.env[k] = v;
  }

  /** Servers the app created and has not closed (closed on drain). */
  get openServers(): number {
    return this.servers.size;
  }
}

/** Run a host function to its end. */
export function runHost(launch: Launch, options?: RunHostOptions): Promise<HostExit> {
  return new HostRuntime(launch, options).run();
}

async function loadApp(run: string): Promise<HostApp> {
  const path = isAbsolute(run) ? run : resolvePath(run);
  const mod: unknown = await import(pathToFileURL(path).href);
  const fn = (mod as { default?: unknown }).default;
  if (typeof fn !== 'function') throw new Error(`${run} has no default export function`);
  return fn as HostApp;
}

/** Call `fn` on an emitter's first `event` (net.Server, dgram.Socket). */
function onEvent(s: unknown, event: string, fn: () => void): void {
  const once = (s as { once?: unknown }).once;
  if (typeof once === 'function') (once as (e: string, f: () => void) => unknown).call(s, event, fn);
}

/** Wrap a facade so every object made by `method` is reported (to close listeners on drain). */
function trackServers<T extends object>(
  target: T,
  method: string,
  onCreate: (s: { close(cb?: (err?: Error) => void): unknown }) => void,
): T {
  return new Proxy(target, {
    get(t, prop) {
      const v: unknown = Reflect.get(t, prop, t);
      if (typeof v !== 'function') return v;
      if (prop === method) {
        return (...args: unknown[]) => {
          const s: unknown = (v as (...a: unknown[]) => unknown).apply(t, args);
          if (s && typeof (s as { close?: unknown }).close === 'function') {
            onCreate(s as { close(): unknown });
          }
          return s;
        };
      }
      // Methods (no prototype) are bound to the real facade; classes are returned as they are.
      return (v as { prototype?: unknown }).prototype === undefined
        ? (v as (...a: unknown[]) => unknown).bind(t)
        : v;
    },
  });
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function errorText(e: unknown): string {
  return e instanceof Error ? (e.stack ?? e.message) : String(e);
}

let stackModule: Promise<typeof import('./netstack-bundle.js')> | null = null;

/** Start loading netstack (the default stack's modules) now; a warm host function calls this early. */
export function preloadDefaultStack(): Promise<unknown> {
  stackModule ??= import('./netstack-bundle.js');
  return stackModule;
}

/** netstack's Stack with its DNS resolver through the gateway (loaded on first use). */
export const defaultStackFactory: StackFactory = async (welcome, link, log) => {
  stackModule ??= import('./netstack-bundle.js');
  const { createNetstackBundle } = await stackModule;
  return createNetstackBundle(welcome, link, log.child({ component: 'netstack' })) as StackBundle;
};
