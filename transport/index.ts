// transport: the WebSocket codec (RFC 6455) that the relay, hosts and joined machines share,
// and the client end of the relay protocol (RelayLink).

export { acceptUpgrade, acceptKey, checkUpgrade, isUpgradeRefusal, refuseUpgrade, WEBSOCKET_VERSION } from './handshake.js';
export type { AcceptOptions, UpgradeRefusal } from './handshake.js';
export { dialWebSocket, isDialError, certSha256, normalizeCertSha256, isLoopbackHost } from './dial.js';
export type { DialError, DialOptions, TlsTrust } from './dial.js';
export { WebSocketConnection } from './websocket.js';
export type { MaskMode, WebSocketCounters, WebSocketHandlers, WebSocketOptions, WebSocketRole, WebSocketState } from './websocket.js';
export { FrameParser } from './frame-parser.js';
export type { FrameHandlers, FrameParserOptions } from './frame-parser.js';
export * from './frame.js';
export { MaskPool } from './mask-pool.js';
export { PacketWalker, checkPacket, splitPackets, readSrc, readDst, MALFORMED_REASONS } from './packet-walker.js';
export { RelayLink, isRelayLinkError, joinUrl, CLOSE_REPLACED } from './relay-link.js';
export type { ControlHandler, DropReason, LinkLogger, PacketHandler, RelayLinkCounters, RelayLinkError, RelayLinkOptions, RelayLinkState } from './relay-link.js';
