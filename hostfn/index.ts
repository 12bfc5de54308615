// hostfn: what runs inside a host (runtime, Lambda handler, local provider) and the relay link.

export { RelayLink, isRelayLinkError, joinUrl, splitPackets } from '../transport/relay-link.js';
export type {
  ControlHandler,
  DropReason,
  RelayLinkCounters,
  RelayLinkError,
  RelayLinkOptions,
  RelayLinkState,
} from '../transport/relay-link.js';
export { HostRuntime, runHost, defaultStackFactory, preloadDefaultStack } from './runtime.js';
export type {
  HostApp,
  HostContext,
  HostExit,
  RunHostOptions,
  RuntimeDns,
  RuntimeSocketStats,
  RuntimeStack,
  StackBundle,
  StackFactory,
} from './runtime.js';
/** The context a TypeScript app gets with the default (netstack) stack. */
export type AppContext = HostContext<NetApi, DgramApi>;
export type { NetApi } from '../netstack/api/net.js';
export type { DgramApi } from '../netstack/api/dgram.js';
import type { NetApi } from '../netstack/api/net.js';
import type { DgramApi } from '../netstack/api/dgram.js';
import type { HostContext } from './runtime.js';

export { LocalProvider } from './local-provider.js';
export type { LocalProviderOptions } from './local-provider.js';
export { createHandler, handler } from './lambda.js';
export type { LambdaContextLike, LambdaResult } from './lambda.js';
export { createLogger, jsonSink, silentLogger, textSink } from './log.js';
export type { LogFields, LogLevel, Logger, LogSink } from './log.js';
