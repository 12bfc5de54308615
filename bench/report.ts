// Prints benchmark rows as a table and writes them as JSON under bench/results/.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

export interface BenchRow {
  group: string;
  name: string;
  metric: string;
  value: number;
  /** value divided by the same-run baseline, where there is one */
  ratio?: number;
  goal?: string;
  pass?: boolean;
}

function fmt(v: number): string {
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toPrecision(3);
}

export function printTable(rows: BenchRow[]): string {
  const header = ['group', 'case', 'metric', 'value', 'ratio', 'goal', 'met'];
  const body = rows.map((r) => [
    r.group,
    r.name,
    r.metric,
    fmt(r.value),
    r.ratio === undefined ? '' : r.ratio.toFixed(2),
    r.goal ?? '',
    r.pass === undefined ? '' : r.pass ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

export function writeResults(rows: BenchRow[]): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
  mkdirSync(root, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(root, `bench-${stamp}.json`);
  const meta = { node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, date: new Date().toISOString() };
  writeFileSync(file, JSON.stringify({ meta, rows }, null, 2) + '\n');
  return file;
}
