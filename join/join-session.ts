// A developer machine on the imaginary network: a RelayLink (the machine is just another
// host of the relay) pumped to and from a TUN device that the kernel routes the overlay
// network into.

import { RelayLink, isRelayLinkError, type RelayLinkError } from '../transport/relay-link.js';
import type { TlsTrust } from '../transport/dial.js';
import { createLogger, type Logger } from '../hostfn/log.js';
import type { WelcomeMessage } from '../relay/protocol.js';
import {
  configureInterface,
  configureSplitDns,
  execRunner,
  revertSplitDns,
  unconfigureInterface,
  type CommandRunner,
  type InterfaceConfig,
} from './iproute.js';
import { openTun, type OpenTunOptions, type TunDevice } from './tun-device.js';
import { ImpairedLink, formatImpair, impairLink, type ImpairSpec } from './impair.js';
import type { Link } from '../netstack/link/link.js';

export interface JoinOptions {
  /** ws://host:port of the relay */
  relay: string;
  /** the join token, or a function minting a fresh one for every (re)connect */
  token: string | (() => string | Promise<string>);
  /** TUN device name (default imach0) */
  dev?: string;
  /** configure split DNS for the overlay domain with resolvectl */
  dns?: boolean;
  logger?: Logger;
  /** injected by tests */
  run?: CommandRunner;
  openTun?: (name: string, options?: OpenTunOptions) => TunDevice;
  /** how long the relay may stay unreachable before the session ends (ms) */
  giveUpAfterMs?: number;
  /** seeded faults between the device and the relay (`--impair`, tests and debugging) */
  impair?: ImpairSpec;
  /** how to trust a wss:// relay (default: the system's CAs) */
  tls?: TlsTrust;
}

export const DEFAULT_DEV = 'imach0';

/**
 * The TUN device's transmit queue: packets from the kernel waiting for the pump to read
 * them. Linux's default of 500 dropped about 9,000 packets per 10 s of `wrk -c400`; a
 * burst of 5,000 connects (5,000 SYNs at once) fits twice over.
 */
export const TUN_TX_QUEUE_LEN = 10_000;

/** Why a join failed before it was up; `stage` says which step. */
export interface JoinError {
  readonly joinError: true;
  stage: 'relay' | 'device' | 'interface' | 'dns';
  message: string;
  /** for stage 'relay': the RelayLink error kind (auth, forbidden, network, ...) */
  kind?: string;
  /** for stage 'device': the errno code (EPERM, ENOENT, EBUSY, ...) */
  code?: string;
}

export function isJoinError(v: unknown): v is JoinError {
  return typeof v === 'object' && v !== null && (v as { joinError?: unknown }).joinError === true;
}

/** How a running session ended. */
export interface JoinEnd {
  reason: 'stopped' | 'relay-gone' | 'drained' | 'device-error';
  message: string;
}

export type JoinDropReason = 'notIPv4' | 'tooShort';

export class JoinSession {
  readonly drops: Record<JoinDropReason, number> = { notIPv4: 0, tooShort: 0 };
  /** Resolves once the session has ended and cleaned up. */
  readonly ended: Promise<JoinEnd>;
  private endResolve!: (e: JoinEnd) => void;
  private stopping: Promise<void> | null = null;
  /** what the device's packets go through: the relay link, or an ImpairedLink around it */
  readonly data: Link;

  private constructor(
    readonly link: RelayLink,
    readonly device: TunDevice,
    readonly welcome: WelcomeMessage,
    readonly iface: InterfaceConfig,
    private dnsConfigured: boolean,
    private readonly run: CommandRunner,
    private readonly log: Logger,
    impair: ImpairSpec | undefined,
  ) {
    this.ended = new Promise((r) => (this.endResolve = r));
    this.data = impairLink(link, impair);
    if (this.data !== link) this.log.warn('impairing the relay path', { impair: formatImpair(impair!) });
  }

  /**
   * Connect to the relay, create and configure the device, and start pumping. Every step
   * done is undone if a later one fails. Never throws: failures are JoinError values.
   */
  static async start(options: JoinOptions): Promise<JoinSession | JoinError> {
    const log = options.logger ?? createLogger({ fields: { component: 'join' } });
    const run = options.run ?? execRunner;
    const open = options.openTun ?? openTun;
    const dev = options.dev ?? DEFAULT_DEV;

    const link = await RelayLink.connect({
      url: options.relay,
      token: options.token,
      logger: log.child({ component: 'relay-link' }),
      ...(options.tls !== undefined ? { tls: options.tls } : {}),
      ...(options.giveUpAfterMs !== undefined ? { giveUpAfterMs: options.giveUpAfterMs } : {}),
    });
    if (isRelayLinkError(link)) {
      return { joinError: true, stage: 'relay', kind: link.kind, message: link.message };
    }
    const welcome = link.welcome;

    let device: TunDevice;
    try {
      device = open(dev, { mtu: welcome.mtu });
    } catch (err) {
      link.close();
      const e = err as NodeJS.ErrnoException;
      return { joinError: true, stage: 'device', code: e.code, message: `cannot create TUN device ${dev}: ${e.message}` };
    }

    const iface: InterfaceConfig = {
      dev: device.name,
      address: welcome.address,
      network: welcome.network,
      mtu: Math.min(65535, Math.max(576, welcome.mtu)),
      txQueueLen: TUN_TX_QUEUE_LEN,
    };
    try {
      await configureInterface(iface, run);
    } catch (err) {
      device.close();
      link.close();
      return { joinError: true, stage: 'interface', message: (err as Error).message };
    }

    let dnsConfigured = false;
    if (options.dns) {
      try {
        await configureSplitDns({ dev: device.name, dns: welcome.dns, domain: welcome.domain }, run);
        dnsConfigured = true;
      } catch (err) {
        await revertSplitDns(device.name, run);
        await unconfigureInterface(iface, run);
        device.close();
        link.close();
        return { joinError: true, stage: 'dns', message: (err as Error).message };
      }
    }

    const session = new JoinSession(link, device, welcome, iface, dnsConfigured, run, log, options.impair);
    session.wire();
    return session;
  }

  private wire(): void {
    const { link, device, data } = this;
    device.onPacket((p) => {
      if (p.length < 20) {
        this.drops.tooShort++;
        return;
      }
      // The kernel also routes IPv6 (router solicitations, MLD) into the device; the overlay is IPv4.
      if (p[0]! >> 4 !== 4) {
        this.drops.notIPv4++;
        return;
      }
      data.send(p);
    });
    data.onReceive((p) => device.send(p));
    device.onError((err) => {
      this.log.error('TUN device failed', { dev: device.name, err });
      void this.stop({ reason: 'device-error', message: err.message });
    });
    link.onStateChange((state, err?: RelayLinkError) => {
      if (state === 'reconnecting') this.log.warn('relay connection lost, reconnecting', { relay: link.options.url });
      if (state === 'open') this.log.info('relay connection back', { address: link.welcome.address });
      if (state === 'closed' && err) void this.stop({ reason: 'relay-gone', message: err.message });
    });
    link.onControl((msg) => {
      if (msg.type === 'drain') {
        void this.stop({ reason: 'drained', message: `relay asked to leave: ${msg.reason}` });
      }
    });
  }

  /** Tear down: DNS, route, device, relay connection. Idempotent; resolves when done. */
  stop(end: JoinEnd = { reason: 'stopped', message: 'stopped' }): Promise<void> {
    if (!this.stopping) this.stopping = this.teardown(end);
    return this.stopping;
  }

  private async teardown(end: JoinEnd): Promise<void> {
    if (this.dnsConfigured) await revertSplitDns(this.device.name, this.run);
    const failures = await unconfigureInterface(this.iface, this.run);
    if (failures.length > 0) this.log.debug('cleanup left nothing to undo', { failures });
    this.device.close();
    await leaveRelay(this.link, this.data, this.log, end);
    this.endResolve(end);
  }
}

/**
 * The end of a join, TUN or userspace: close the relay link politely, report the
 * impairment counters when `data` is an ImpairedLink around it, and log why we left.
 */
export async function leaveRelay(link: RelayLink, data: Link, log: Logger, end: JoinEnd): Promise<void> {
  await link.closeGracefully(500).catch(() => link.close());
  if (data instanceof ImpairedLink) {
    data.close();
    log.info('impairment counters', { ...data.counters });
  }
  log.info('left the network', { reason: end.reason, message: end.message });
}
