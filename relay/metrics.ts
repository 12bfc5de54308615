// GET /metrics: the relay's counters in the Prometheus text exposition format (version
// 0.0.4), names `imach_...`. Built on request from the host table; the only state kept
// here is the start latency histogram (observed on each `joined` after a start).

import type { HostState } from './events.js';
import type { HostEntry } from './host.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const STATES: readonly HostState[] = ['cold', 'starting', 'running', 'draining', 'failed'];

/** upper bounds (seconds) of the start latency buckets */
export const START_LATENCY_BUCKETS: readonly number[] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A cumulative histogram with fixed buckets (seconds). */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (seconds <= this.bounds[i]!) this.counts[i]!++;
  }
}

/** What the relay as a whole reports (besides its hosts). */
export interface RelayTotals {
  sessions: number;
  framesIn: number;
  framesOut: number;
  /** drops by reason, all hosts and none */
  drops: Iterable<[string, number]>;
  /** packets a running capture could not keep (a slow reader) */
  captureDropped: number;
  captures: number;
  /** flows in the flow table, and packets of flows it had no room for */
  flows: number;
  flowsUntracked: number;
}

/** Prometheus label values: backslash, double quote and newline escaped. */
function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const parts = Object.entries(labels).map(([k, v]) => `${k}="${label(v)}"`);
    this.lines.push(`${name}${parts.length > 0 ? `{${parts.join(',')}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

/** The metrics text for `hosts` and the relay's totals at `now` (ms). */
export function renderMetrics(hosts: readonly HostEntry[], latency: ReadonlyMap<string, Histogram>, totals: RelayTotals, now: number): string {
  const x = new Exposition();
  const perHost = (name: string, type: 'counter' | 'gauge', help: string, value: (e: HostEntry) => number): void => {
    x.family(name, type, help);
    for (const e of hosts) x.sample(name, { host: e.name }, value(e));
  };

  x.family('imach_host_state', 'gauge', 'Whether the host is in this lifecycle state (1) or not (0).');
  for (const e of hosts) for (const s of STATES) x.sample('imach_host_state', { host: e.name, state: s }, e.state === s ? 1 : 0);
  perHost('imach_host_starts_total', 'counter', 'Instances of the host the relay started.', (e) => e.starts);
  perHost('imach_host_start_failures', 'gauge', 'Failed starts in a row (the backoff doubles with each).', (e) => e.failures);
  x.family('imach_host_start_latency_seconds', 'histogram', 'Time from a start to the instance joining.');
  for (const e of hosts) {
    const h = latency.get(e.name);
    const bounds = h?.bounds ?? START_LATENCY_BUCKETS;
    bounds.forEach((b, i) => x.sample('imach_host_start_latency_seconds_bucket', { host: e.name, le: String(b) }, h?.counts[i] ?? 0));
    x.sample('imach_host_start_latency_seconds_bucket', { host: e.name, le: '+Inf' }, h?.count ?? 0);
    x.sample('imach_host_start_latency_seconds_sum', { host: e.name }, h?.sum ?? 0);
    x.sample('imach_host_start_latency_seconds_count', { host: e.name }, h?.count ?? 0);
  }
  perHost('imach_host_uptime_seconds', 'gauge', 'Time since the host\'s current session joined (0 without one).', (e) => (e.session !== null ? (now - e.joinedAt) / 1000 : 0));
  perHost('imach_host_bytes_in_total', 'counter', 'Bytes of IP packets the relay delivered to the host.', (e) => e.bytesIn);
  perHost('imach_host_bytes_out_total', 'counter', 'Bytes of IP packets the relay received from the host.', (e) => e.bytesOut);
  perHost('imach_host_packets_in_total', 'counter', 'IP packets the relay delivered to the host.', (e) => e.packetsIn);
  perHost('imach_host_packets_out_total', 'counter', 'IP packets the relay received from the host.', (e) => e.packetsOut);
  x.family('imach_host_drops_total', 'counter', 'Packets and events dropped or refused for the host, by reason.');
  for (const e of hosts) for (const [reason, n] of e.drops) x.sample('imach_host_drops_total', { host: e.name, reason }, n);
  perHost('imach_host_established_connections', 'gauge', 'Established TCP connections the host\'s stack last reported.', (e) => e.established);
  perHost('imach_host_held_packets', 'gauge', 'Packets held for the host while it starts or reconnects.', (e) => e.held.length);
  perHost('imach_host_send_queue_bytes', 'gauge', 'Bytes buffered in the host\'s WebSocket, not yet taken by it.', (e) => e.session?.connection.bufferedAmount ?? 0);

  let packets = 0;
  let bytes = 0;
  let received = 0;
  let receivedBytes = 0;
  let held = 0;
  let queued = 0;
  for (const e of hosts) {
    packets += e.packetsIn;
    bytes += e.bytesIn;
    received += e.packetsOut;
    receivedBytes += e.bytesOut;
    held += e.held.length;
    queued += e.session?.connection.bufferedAmount ?? 0;
  }
  const relay = (name: string, type: 'counter' | 'gauge', help: string, value: number): void => {
    x.family(name, type, help);
    x.sample(name, {}, value);
  };
  relay('imach_relay_hosts', 'gauge', 'Hosts the relay knows (declared and joined by hand).', hosts.length);
  relay('imach_relay_sessions', 'gauge', 'Connected host sessions.', totals.sessions);
  relay('imach_relay_forwarded_packets_total', 'counter', 'IP packets the relay delivered to hosts.', packets);
  relay('imach_relay_forwarded_bytes_total', 'counter', 'Bytes of IP packets the relay delivered to hosts.', bytes);
  relay('imach_relay_received_packets_total', 'counter', 'IP packets the relay received from hosts.', received);
  relay('imach_relay_received_bytes_total', 'counter', 'Bytes of IP packets the relay received from hosts.', receivedBytes);
  relay('imach_relay_frames_in_total', 'counter', 'Binary WebSocket messages received from hosts.', totals.framesIn);
  relay('imach_relay_frames_out_total', 'counter', 'Binary WebSocket messages sent to hosts.', totals.framesOut);
  relay('imach_relay_held_packets', 'gauge', 'Packets held for all hosts.', held);
  relay('imach_relay_send_queue_bytes', 'gauge', 'Bytes buffered in all sessions\' WebSockets.', queued);
  x.family('imach_relay_drops_total', 'counter', 'Packets and events dropped or refused, by reason (all hosts and the relay\'s own).');
  for (const [reason, n] of totals.drops) x.sample('imach_relay_drops_total', { reason }, n);
  relay('imach_relay_captures', 'gauge', 'Packet captures running.', totals.captures);
  relay('imach_relay_capture_dropped_packets_total', 'counter', 'Packets captures could not keep because their reader was slow.', totals.captureDropped);
  relay('imach_relay_flows', 'gauge', 'TCP and UDP flows in the relay\'s flow table.', totals.flows);
  relay('imach_relay_flows_untracked_packets_total', 'counter', 'Packets of new flows not tracked because the flow table was full.', totals.flowsUntracked);
  return x.text();
}
