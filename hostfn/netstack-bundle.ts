// The default stack of a host: netstack's Stack on the relay link, with name resolution
// through the relay's DNS service on the gateway.

import type { Link } from '../netstack/link/link.js';
import { Stack } from '../netstack/stack.js';
import { createNetApi, type NetApi } from '../netstack/api/net.js';
import { createDnsResolver } from '../netstack/api/dns.js';
import type { DgramApi } from '../netstack/api/dgram.js';
import type { TcpConfig } from '../netstack/tcp/config.js';
import type { Logger } from './log.js';
import type { WelcomeMessage } from './protocol.js';
import type { StackBundle } from './runtime.js';

/**
 * TCP buffers of a host's connections: Linux's default maxima (tcp_wmem 4 MiB, tcp_rmem
 * 6 MiB). Measured through the relay at MTU 65535 (bench relay): netstack's 1 MiB default
 * carried 1.1-1.6 Gbit/s host to host; a 4 MiB receive buffer, whose window stands at
 * 3 MiB while a 1 MiB relay frame waits for the application, about 10 % less than 6 MiB
 * in alternating runs (5.8 against 6.4 Gbit/s, medians of four). At MTU 1500 no
 * difference. Buffers fill on demand, so idle connections do not pay for the size.
 */
export const HOST_TCP_BUFFERS: Readonly<Pick<TcpConfig, 'sendBufferSize' | 'receiveBufferSize'>> = {
  sendBufferSize: 4 << 20,
  receiveBufferSize: 6 << 20,
};

export function createNetstackBundle(
  welcome: WelcomeMessage,
  link: Link,
  log?: Logger,
  tcp: Partial<TcpConfig> = HOST_TCP_BUFFERS,
): StackBundle<NetApi, DgramApi> {
  const stack = new Stack({
    address: welcome.address,
    prefixLength: welcome.prefixLength,
    mtu: welcome.mtu,
    gateway: welcome.gateway,
    logger: log,
    tcp,
    // Packets from the relay arrive over TCP (and TLS in production), which already
    // protects them on every hop: like Linux on loopback and veth (CHECKSUM_UNNECESSARY),
    // the host does not check them again. It still computes the checksums it sends, for
    // joined kernels and packet captures.
    verifyChecksums: false,
  });
  const net = (typeof stack.net === 'object' && stack.net !== null ? stack.net : createNetApi(stack)) as NetApi;
  stack.attach(link);
  const resolver = createDnsResolver(stack, welcome.dns, { domain: welcome.domain });
  stack.setResolver((name) => resolver.lookup(name));
  return {
    stack: {
      net,
      dgram: stack.dgram,
      socketStats: () => stack.socketStats(),
      close: () => {
        resolver.close();
        stack.close();
      },
    },
    dns: {
      lookup: (name: string) => resolver.lookup(name),
      resolve4: (name: string) => resolver.resolve4(name),
    },
  };
}
