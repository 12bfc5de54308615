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
  /**
   * Optional: send one IPv4 packet of `length` bytes given as `header` (the IPv4 header
   * and the transport header) followed by the `payload` views, without joining them. The
   * link owns `header` afterwards; the payload views belong to the sender, which may
   * overwrite their bytes once the peer has acknowledged them (a packet still queued by
   * then is a stale retransmission: see tcp/send-buffer.ts). So only a link that puts the
   * bytes on a wire has this; one that hands packets to a receiver in the same process
   * (which may keep views of them) must not. The stack uses it for large TCP segments.
   */
  sendGather?(header: Uint8Array, payload: readonly Uint8Array[], length: number): void;
  /** Largest packet this link carries, if it has a limit. */
  readonly mtu?: number;
}
