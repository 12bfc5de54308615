// Text output of the CLI: tables, durations, byte counts, events.

import type { HostDetails, RelayEvent } from '../relay/index.js';

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function duration(ms: number): string {
  if (!(ms > 0)) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

export function eventLine(e: RelayEvent): string {
  const t = new Date(e.time);
  const hhmmss = Number.isNaN(t.getTime()) ? e.time : t.toISOString().slice(11, 19);
  return `${hhmmss}  ${e.host.padEnd(10)} ${e.type.padEnd(12)} ${e.state.padEnd(9)} ${e.reason}`;
}

/** `imach describe`: one host, as kubectl describe prints a pod. */
export function describeText(d: HostDetails): string {
  const c = d.counters;
  const out: string[] = [
    `Name:         ${d.name}`,
    `Address:      ${d.address}`,
    `Provider:     ${d.spec?.provider ?? 'manual (joined by hand)'}`,
  ];
  if (d.spec !== null) {
    out.push(`Run:          ${d.spec.run}`);
    out.push(`Idle:         ${d.spec.idleMs === null ? 'never' : duration(d.spec.idleMs)}`);
    out.push(`Start timeout: ${duration(d.spec.startTimeoutMs)}`);
    if (d.spec.env.length > 0) out.push(`Env:          ${d.spec.env.join(', ')}`);
  }
  out.push(`State:        ${d.state} since ${d.since}`);
  out.push(`Reason:       ${d.reason.length > 0 ? d.reason : '-'}`);
  out.push(`Last error:   ${d.lastError === null ? '-' : `${d.lastError.time} ${d.lastError.message}`}`);
  out.push(
    `Backoff:      ${d.backoff.retryAt === null ? (d.backoff.failures > 0 ? `${d.backoff.failures} failed start(s) in a row, may retry now` : 'none') : `${d.backoff.failures} failed start(s) in a row, next attempt in ${duration(d.backoff.retryInMs)} (${d.backoff.retryAt})`}`,
  );
  out.push('Counters:');
  out.push(`  starts ${c.starts}, uptime ${duration(c.uptimeMs)}, connections ${c.connections}, listening ${c.listening}, held packets ${c.heldPackets}`);
  out.push(`  in ${bytes(c.bytesIn)} (${c.packetsIn} packets), out ${bytes(c.bytesOut)} (${c.packetsOut} packets)`);
  const drops = Object.entries(c.drops);
  out.push(`  drops: ${drops.length === 0 ? 'none' : drops.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  out.push('Events:');
  if (d.history.length === 0) out.push('  none');
  for (const e of d.history) out.push('  ' + eventLine(e));
  return out.join('\n') + '\n';
}
