// TCP segment records (RFC 9293 section 3.1). Protocol code works with these plain
// records; parse/emit (added below by the wire layer) are the only bridge to bytes.

/** TCP header flags (RFC 9293 section 3.1). */
export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;
export const ECE = 0x40;
export const CWR = 0x80;

/** A SACK block (RFC 2018 section 3): left edge inclusive, right edge exclusive, both uint32. */
export interface SackBlock {
  left: number;
  right: number;
}

/** TCP options this stack understands; unknown options are skipped on parse. */
export interface TcpOptions {
  /** RFC 9293 section 3.7.1 */
  mss?: number;
  /** RFC 7323 section 2: shift count 0..14 */
  windowScale?: number;
  /** RFC 2018 section 2 */
  sackPermitted?: boolean;
  /** RFC 2018 section 3: at most 4 blocks (3 with timestamps) */
  sack?: SackBlock[];
  /** RFC 7323 section 3: TSval and TSecr, uint32 */
  timestamp?: { value: number; echo: number };
}

/**
 * One TCP segment as protocol code sees it. Ports are the TCP header's; addresses live
 * in the IP layer. `seq`, `ack` are uint32; `window` is the raw 16-bit header field
 * (unscaled). `payload` is a view: for received segments it aliases the packet buffer
 * and is only valid during the input call unless copied or retained deliberately.
 */
export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  options: TcpOptions;
  payload: Uint8Array;
}

/**
 * An outgoing segment. The payload may be a gather list so that the sender can avoid
 * copying data that spans several send-buffer chunks; the emitter copies it once into
 * the packet.
 */
export interface TcpSegmentOut extends Omit<TcpSegment, 'payload'> {
  payload: Uint8Array | readonly Uint8Array[];
  /** total payload bytes (sum over the gather list) */
  payloadLength: number;
}
