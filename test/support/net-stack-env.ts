// The facade over two real Stacks joined by a memory link pair. NET_FACADES=model (or
// =stack) restricts which facade environments net tests run.

import { createNetApi } from '../../netstack/api/net.js';
import { createLinkPair, type LinkPairOptions } from '../../netstack/link/memory.js';
import { Stack } from '../../netstack/stack.js';
import type { NetEnv, NetEnvFactory, TestNet } from './net-harness.js';

export interface StackEnv extends NetEnv {
  readonly clientStack: Stack;
  readonly serverStack: Stack;
}

export function createStackEnv(link: LinkPairOptions = {}, names: Record<string, string> = {}): StackEnv {
  const lookup = async (name: string): Promise<string> => {
    const a = names[name];
    if (a === undefined) throw Object.assign(new Error(`no such host ${name}`), { code: 'ENOTFOUND' });
    return a;
  };
  const clientStack = new Stack({ address: '10.77.0.2', lookup, mtu: link.mtu });
  const serverStack = new Stack({ address: '10.77.0.3', lookup, mtu: link.mtu });
  const [a, b] = createLinkPair(link);
  clientStack.attach(a);
  serverStack.attach(b);
  return {
    name: 'facade over two Stacks',
    clientStack,
    serverStack,
    client: createNetApi(clientStack) as unknown as TestNet,
    server: createNetApi(serverStack) as unknown as TestNet,
    serverHost: serverStack.address,
    bulkBytes: 8 << 20,
    close: async () => {
      clientStack.close();
      serverStack.close();
      a.close();
      b.close();
    },
  };
}

export function stackEnvFactories(): NetEnvFactory[] {
  const only = process.env['NET_FACADES'];
  if (only !== undefined && only !== 'stack') return [];
  return [{ name: 'facade over two Stacks', create: async () => createStackEnv() }];
}
