// A relay welcome for tests that need one without a relay.

import type { WelcomeMessage } from '../../relay/protocol.js';

export function testWelcome(overrides: Partial<WelcomeMessage> = {}): WelcomeMessage {
  return {
    type: 'welcome',
    version: 1,
    host: 'web',
    address: '10.77.0.10',
    network: '10.77.0.0/16',
    prefixLength: 16,
    mtu: 65535,
    gateway: '10.77.0.1',
    dns: '10.77.0.1',
    domain: 'imach',
    idleMs: null,
    session: 'test-session',
    ...overrides,
  };
}
