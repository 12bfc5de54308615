// A Link carries whole IPv4 packets between a stack and something else: another stack
// in memory, the relay over a WebSocket, or a TUN device.

export type PacketHandler = (packet: Uint8Array) => void;

export interface Link {
  /** Send one IPv4 packet. The link owns the buffer afterwards: callers must not reuse it. */
  send(packet: Uint8Array): void;
  /** Set the handler for received packets (one handler; a later call replaces it). */
  onReceive(handler: PacketHandler): void;
  close(): void;
  /**
   * Optional: set the handler called after the packets of one input batch (one relay frame,
   * one device read) have been handed to the receive handler, so that the stack can answer
   * a batch with one ACK. A link that has this calls it after every batch it delivers.
   */
  onBatchEnd?(handler: () => void): void;
  /** Largest packet this link carries, if it has a limit. */
  readonly mtu?: number;
}
