// Parsing untrusted bytes never throws: a parser returns a record or a WireError whose
// `reason` is a short stable string, used by callers as a drop-counter key.

export interface WireError {
  readonly wireError: true;
  /** e.g. 'ipv4-bad-checksum', 'tcp-truncated' */
  readonly reason: string;
}

const cache = new Map<string, WireError>();

/** Error values are interned per reason so that the drop path does not allocate. */
export function wireError(reason: string): WireError {
  let e = cache.get(reason);
  if (e === undefined) {
    e = Object.freeze({ wireError: true as const, reason });
    if (cache.size < 1024) cache.set(reason, e);
  }
  return e;
}

export function isWireError(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && (value as { wireError?: unknown }).wireError === true;
}
