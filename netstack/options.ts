// Every Stack option and its default, in one place.

import type { TcpConfig } from './tcp/config.js';
import type { Clock } from './time.js';
import type { Logger } from './log.js';

/** Resolve a host name to one IPv4 address (dotted quad). */
export type LookupFunction = (hostname: string) => Promise<string>;

export interface StackLimits {
  /** Bytes held across all partially reassembled datagrams (RFC 815 buffers). */
  reassemblyMemory: number;
  /** RFC 791 section 3.2 suggests a reassembly timer of about 15 s; Linux uses 30 s. */
  reassemblyTimeoutMs: number;
  /** Datagrams being reassembled at once; the oldest is evicted beyond this. */
  reassemblyMaxDatagrams: number;
  /** Fragments held per datagram. */
  reassemblyMaxFragments: number;
  /** Bound UDP sockets. */
  maxUdpSockets: number;
  /** TCP connections in the demultiplexing table (any state). */
  maxTcpConnections: number;
  /** TCP listeners. */
  maxTcpListeners: number;
  /** ICMP errors this stack sends per second, with a burst (RFC 1812 section 4.3.2.8). */
  icmpErrorsPerSecond: number;
  icmpErrorBurst: number;
  /** Outstanding ping requests. */
  maxPendingPings: number;
}

export interface StackOptions {
  /** Our IPv4 address (dotted quad). Required. */
  address: string;
  /** Overlay prefix length; default 16 (10.77.0.0/16). */
  prefixLength?: number;
  /** Largest packet we send or accept; TCP MSS is mtu - 40. Default 65535. */
  mtu?: number;
  /** The relay's gateway address (ICMP, DNS); default the first address of the prefix. */
  gateway?: string;
  /** Default realClock. */
  clock?: Clock;
  /** TCP tunables over DEFAULT_TCP_CONFIG; mss defaults to mtu - 40. */
  tcp?: Partial<TcpConfig>;
  limits?: Partial<StackLimits>;
  /** TTL of packets we send; default 64 (RFC 1700 recommended default). */
  ttl?: number;
  /** Name resolution for connect/send by host name; default: IPv4 literals only. */
  lookup?: LookupFunction;
  /** Ephemeral ports [first, last]; default [49152, 65535] (RFC 6335 section 6). */
  ephemeralPorts?: readonly [number, number];
  /** Verify IPv4/ICMP/UDP/TCP checksums on input; default true. */
  verifyChecksums?: boolean;
  /** Seeds the ephemeral port choice (deterministic simulations); default random. */
  seed?: number;
  logger?: Logger;
}

/**
 * DF and fragmentation of a datagram we send, named after Linux's IP_MTU_DISCOVER modes:
 * 'do' sets DF and refuses what exceeds the MTU (TCP); 'want' sets DF on what fits and
 * fragments the rest with DF clear (Linux's default for UDP); 'dont' never sets DF and
 * fragments as needed (Linux's ICMP replies and ping).
 */
export type FragmentPolicy = 'do' | 'want' | 'dont';

export interface SendDatagramOptions {
  /** default the stack's ttl */
  ttl?: number;
  /** default 'want' */
  fragment?: FragmentPolicy;
}

export const DEFAULT_LIMITS: Readonly<StackLimits> = Object.freeze({
  reassemblyMemory: 4 * 1024 * 1024,
  reassemblyTimeoutMs: 30_000,
  reassemblyMaxDatagrams: 64,
  reassemblyMaxFragments: 128,
  maxUdpSockets: 1024,
  maxTcpConnections: 16_384,
  maxTcpListeners: 1024,
  icmpErrorsPerSecond: 100,
  icmpErrorBurst: 50,
  maxPendingPings: 1024,
});

export const DEFAULT_PREFIX_LENGTH = 16;
export const DEFAULT_MTU = 65535;
export const DEFAULT_TTL = 64;
export const DEFAULT_EPHEMERAL_PORTS: readonly [number, number] = [49152, 65535];
/** RFC 791 section 3.2: every host must accept 576-byte datagrams. */
export const MIN_MTU = 576;
