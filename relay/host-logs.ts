// Hosts' output lines as the relay collects them from its providers (`imach logs`): a
// bounded ring per host the relay knows, and listeners for `logs -f`.

export interface LogLine {
  /** ISO time the relay got the line */
  time: string;
  host: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface HostLogLimits {
  /** lines kept per host */
  linesPerHost: number;
  /** characters kept of one line (the rest is cut) */
  maxLineChars: number;
}

export const DEFAULT_HOST_LOG_LIMITS: HostLogLimits = { linesPerHost: 1000, maxLineChars: 4096 };

type LogListener = (line: LogLine, at: number) => void;

class Ring {
  readonly lines: { at: number; line: LogLine }[] = [];
  next = 0;
}

export class HostLogs {
  private readonly rings = new Map<string, Ring>();
  private readonly listeners = new Set<LogListener>();

  constructor(private readonly limits: HostLogLimits = DEFAULT_HOST_LOG_LIMITS) {}

  push(host: string, stream: 'stdout' | 'stderr', text: string, now: number): void {
    let ring = this.rings.get(host);
    if (ring === undefined) this.rings.set(host, (ring = new Ring()));
    const line: LogLine = { time: new Date(now).toISOString(), host, stream, line: text.length > this.limits.maxLineChars ? text.slice(0, this.limits.maxLineChars) : text };
    if (ring.lines.length < this.limits.linesPerHost) ring.lines.push({ at: now, line });
    else ring.lines[ring.next] = { at: now, line };
    ring.next = (ring.next + 1) % this.limits.linesPerHost;
    for (const fn of [...this.listeners]) fn(line, now);
  }

  /** A host's lines at or after `since` (ms), oldest first. */
  list(host: string, since = 0): LogLine[] {
    const ring = this.rings.get(host);
    if (ring === undefined) return [];
    const ordered = ring.lines.length < this.limits.linesPerHost ? ring.lines : [...ring.lines.slice(ring.next), ...ring.lines.slice(0, ring.next)];
    return ordered.filter((l) => l.at >= since).map((l) => l.line);
  }

  subscribe(fn: LogListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** A host the relay has forgotten. */
  forget(host: string): void {
    this.rings.delete(host);
  }
}
