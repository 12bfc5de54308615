// The relay protocol as a host sees it: re-exported from relay/protocol.ts (the contract),
// so hostfn and `imach join` import one place.

export {
  ACTIVITY_INTERVAL_MS,
  DEFAULT_MTU,
  ERROR_HEADER,
  JOIN_PATH,
  LAUNCH_ENV,
  MAX_PACKETS_PER_FRAME,
  PROTOCOL_VERSION,
  RECONNECT_MAX_MS,
  RECONNECT_MIN_MS,
  SUBPROTOCOL,
  decodeControl,
  encodeControl,
  isProtocolError,
  maxFrameBytes,
  parseLaunch,
} from '../relay/protocol.js';
export type {
  ActivityMessage,
  ControlMessage,
  DrainMessage,
  ErrorMessage,
  HostToRelayMessage,
  Launch,
  ProgramSpec,
  ProtocolError,
  ReleasedMessage,
  RelayToHostMessage,
  UnknownControlMessage,
  WelcomeMessage,
} from '../relay/protocol.js';
