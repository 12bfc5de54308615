// imach's TCP/IP stack: the public entry point.

export { Stack, type SocketStats, type StackTableSizes } from './stack.js';
export type { StackOptions, StackLimits, LookupFunction } from './options.js';
export { DEFAULT_LIMITS, DEFAULT_MTU, DEFAULT_PREFIX_LENGTH, DEFAULT_TTL, DEFAULT_EPHEMERAL_PORTS } from './options.js';
export type { StackCounters } from './counters.js';
export type { Link, PacketHandler } from './link/link.js';
export { createLinkPair, MemoryLink, type LinkPairOptions, type LinkCounters } from './link/memory.js';
export { createPcapTap, PcapTap, type PcapSink, type PcapTapOptions } from './link/pcap.js';
export { mulberry32, type Random } from './link/prng.js';
export { VirtualClock, RealClock, realClock, type Clock, type TimerHandle } from './time.js';
export { createLogger, silentLogger, type Logger, type LogLevel, type LogFields, type LogSink } from './log.js';
export { createDgramApi, UdpSocket, type DgramApi, type RemoteInfo, type SocketOptions as DgramSocketOptions } from './api/dgram.js';
export { createDnsResolver, type DnsResolver, type DnsResolverOptions } from './api/dns.js';
export type { PingOptions } from './api/ping.js';
export { createNetApi, NetSocket, NetServer, type NetApi } from './api/net.js';
export type {
  TcpHost,
  TcpConnectionApi,
  TcpConnectionEvents,
  TcpListenerHandle,
  TcpConnectOptions,
  TcpErrorCode,
  TcpState,
  FourTuple,
} from './tcp/types.js';
export { DEFAULT_TCP_CONFIG, type TcpConfig } from './tcp/config.js';
export * from './wire/index.js';
