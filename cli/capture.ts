// `imach capture [host ...] -w file.pcap|-`: the packets the relay routes, as pcap, to a
// file or to stdout (`| tcpdump -r -`), until --count, --duration or Ctrl-C.

import { createWriteStream, type WriteStream } from 'node:fs';
import { CliError, EXIT, UsageError, flag, parseCommand, parseDuration, parsePositiveInt, str } from './args.js';
import { adminTarget } from './config.js';
import { USAGE } from './usage.js';

const PCAP_HEADER_BYTES = 24;
const PCAP_RECORD_HEADER_BYTES = 16;

/** Counts the records of a pcap stream as it passes (the CLI's summary). */
export class PcapRecordCounter {
  records = 0;
  private offset = 0;
  /** where the next record header starts, in stream bytes */
  private nextRecord = PCAP_HEADER_BYTES;
  private readonly header = Buffer.alloc(PCAP_RECORD_HEADER_BYTES);
  private headerFill = 0;

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      const at = this.offset + i;
      if (at < this.nextRecord) {
        i += Math.min(chunk.length - i, this.nextRecord - at);
        continue;
      }
      const n = Math.min(chunk.length - i, PCAP_RECORD_HEADER_BYTES - this.headerFill);
      this.header.set(chunk.subarray(i, i + n), this.headerFill);
      this.headerFill += n;
      i += n;
      if (this.headerFill === PCAP_RECORD_HEADER_BYTES) {
        this.records++;
        this.headerFill = 0;
        this.nextRecord = this.offset + i + this.header.readUInt32LE(8);
      }
    }
    this.offset += chunk.length;
  }
}

export async function capture(argv: string[]): Promise<number> {
  const p = parseCommand(
    'capture',
    argv,
    {
      relay: { type: 'string' },
      manifest: { type: 'string' },
      'state-dir': { type: 'string' },
      write: { type: 'string', short: 'w' },
      count: { type: 'string', short: 'c' },
      duration: { type: 'string' },
      json: { type: 'boolean' },
    },
    64,
  );
  if (p.help) {
    process.stdout.write(USAGE.capture!);
    return EXIT.ok;
  }
  const out = str(p, 'write') ?? (process.stdout.isTTY ? undefined : '-');
  if (out === undefined) throw new UsageError('give -w file.pcap, or -w - to write pcap to a pipe', 'capture');
  const count = str(p, 'count') !== undefined ? parsePositiveInt(str(p, 'count')!, '--count', 'capture') : 0;
  const durationMs = str(p, 'duration') !== undefined ? parseDuration(str(p, 'duration')!, '--duration', 'capture') * 1000 : 0;
  const t = await adminTarget({ relay: str(p, 'relay'), manifest: str(p, 'manifest'), stateDir: str(p, 'state-dir') });
  const q = new URLSearchParams();
  for (const h of p.positionals) q.append('host', h);
  if (count > 0) q.set('count', String(count));
  if (durationMs > 0) q.set('duration', String(durationMs));

  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let res: Response;
  try {
    res = await fetch(`${t.http}/api/capture?${q.toString()}`, { headers: { authorization: `Bearer ${t.token}` }, signal: ac.signal });
  } catch (e) {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (ac.signal.aborted) return EXIT.ok;
    const cause = (e as { cause?: { code?: string } }).cause;
    throw new CliError(`cannot reach the relay at ${t.http}: ${cause?.code ?? (e as Error).message}`);
  }
  if (!res.ok || res.body === null) {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    throw new CliError(`relay answered ${res.status} for /api/capture: ${res.headers.get('x-imach-error') ?? ''}`);
  }
  const what = p.positionals.length > 0 ? p.positionals.join(', ') : 'all hosts';
  const file: WriteStream | null = out === '-' ? null : createWriteStream(out);
  const sink = file ?? process.stdout;
  process.stderr.write(`capturing ${what} to ${out === '-' ? 'stdout' : out}\n`);
  const counter = new PcapRecordCounter();
  let broken = false;
  sink.on('error', () => {
    broken = true;
    ac.abort();
  });
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      counter.push(chunk);
      if (!sink.write(chunk)) await new Promise<void>((r) => sink.once('drain', r));
    }
  } catch (e) {
    if (!ac.signal.aborted) throw new CliError(`capture stream ended: ${(e as Error).message}`);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  // the pcap header is in the file even if no packet came
  if (file !== null) await new Promise<void>((r) => file.end(r));
  const packets = Math.max(0, counter.records);
  const summary = flag(p, 'json') ? JSON.stringify({ packets, hosts: p.positionals, file: out }) : `${packets} packets captured`;
  process.stderr.write(summary + '\n');
  return broken ? EXIT.error : EXIT.ok;
}
