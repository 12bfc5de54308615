import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { PcapRecordCounter } from '../../cli/capture.js';
import { ACK, PSH, SYN } from '../../netstack/wire/tcp.js';
import { CaptureHub, LINKTYPE_RAW, PCAP_MAGIC, pcapHeader, pcapRecord, type PacketTap } from '../../relay/capture.js';
import { startRelay, type Relay } from '../../relay/index.js';
import { silentLogger } from '../../relay/log.js';
import { joinRelay, type TestHost } from '../support/relay-client.js';
import { tcpSegment } from '../support/relay-packets.js';
import { skipOrFail } from '../support/require-all.js';

const SECRET = 'capture-test-secret';
const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

/** A response whose reader never reads: what is written stays buffered. */
function stalledResponse(): ServerResponse & { written: number; ended: boolean } {
  const r = {
    written: 0,
    ended: false,
    destroyed: false,
    get writableLength(): number {
      return r.written;
    },
    write(chunk: Buffer): boolean {
      r.written += chunk.length;
      return false;
    },
    end(): void {
      r.ended = true;
    },
    once(): void {},
  };
  return r as unknown as ServerResponse & { written: number; ended: boolean };
}

describe('relay capture', function () {
  this.timeout(30_000);

  it('pcap records: global header with LINKTYPE_RAW, record header with time and lengths; the counter finds records across chunks', () => {
    const h = pcapHeader();
    assert.equal(h.readUInt32LE(0), PCAP_MAGIC);
    assert.equal(h.readUInt32LE(20), LINKTYPE_RAW);
    const rec = pcapRecord(new Uint8Array([0x45, 1, 2]), 1_700_000_000_123_456);
    assert.equal(rec.readUInt32LE(0), 1_700_000_000);
    assert.equal(rec.readUInt32LE(4), 123_456);
    assert.equal(rec.readUInt32LE(8), 3);
    assert.equal(rec.readUInt32LE(12), 3);
    const stream = Buffer.concat([h, rec, pcapRecord(new Uint8Array(100), 0), rec]);
    const c = new PcapRecordCounter();
    for (let i = 0; i < stream.length; i += 7) c.push(stream.subarray(i, i + 7));
    assert.equal(c.records, 3);
  });

  it('a slow reader drops packets (counted) instead of buffering; the tap is set only while a capture runs', async () => {
    let tap: PacketTap | null = null;
    const hub = new CaptureHub({ maxCaptures: 2, maxBufferedBytes: 24 + 10 * (16 + 100) }, (t) => (tap = t));
    assert.equal(tap, null);
    const res = stalledResponse();
    hub.start(res, new Set(), 0, 0);
    assert.equal(tap, hub);
    const packet = new Uint8Array(100);
    packet[0] = 0x45;
    for (let i = 0; i < 50; i++) hub.offer(packet);
    await new Promise((r) => setImmediate(r));
    assert.equal(res.written, 24 + 10 * 116, 'ten records fit, the rest is dropped');
    assert.equal(hub.dropped, 40);
    hub.closeAll();
    assert.equal(tap, null);
    await new Promise((r) => setImmediate(r));
    assert.equal(res.ended, true);
  });

  describe('imach capture against a relay', () => {
    let relay: Relay;
    let a: TestHost;
    let b: TestHost;
    let c: TestHost;
    let dir: string;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'imach-capture-'));
      relay = await startRelay({ listen: { host: '127.0.0.1', port: 0 }, secret: SECRET, logger: silentLogger });
      a = await joinRelay(relay.url, relay.mintToken('a', 60));
      b = await joinRelay(relay.url, relay.mintToken('b', 60));
      c = await joinRelay(relay.url, relay.mintToken('c', 60));
    });
    after(async () => {
      await Promise.all([a?.close(), b?.close(), c?.close()]);
      await relay?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('writes a pcap of one host\'s connection that tcpdump reads: handshake, ports, payload', async function () {
      if (spawnSync('tcpdump', ['--version']).error !== undefined) skipOrFail(this, 'tcpdump is not installed');
      const file = join(dir, 'a.pcap');
      const child: ChildProcess = spawn(process.execPath, [CLI, 'capture', 'a', '-w', file, '--count', '3'], {
        env: { PATH: process.env.PATH ?? '', IMACH_SECRET: SECRET, IMACH_RELAY: relay.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      const exited = new Promise<number | null>((r) => child.on('close', r));
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
      try {
        await new Promise<void>((resolve, reject) => {
          child.stderr!.on('data', (d: Buffer) => {
            stderr += d.toString();
            if (stderr.includes('capturing a to')) resolve();
          });
          child.once('close', () => reject(new Error(`capture exited early: ${stderr}`)));
        });
        // c talks to b: not a's traffic, not captured
        c.send(tcpSegment(c.address, b.address, 5555, 8080, SYN, new Uint8Array(0), 7));
        a.send(tcpSegment(a.address, b.address, 40000, 8080, SYN, new Uint8Array(0), 1000));
        await b.until(() => b.packets.length >= 2, 'the SYNs');
        b.send(tcpSegment(b.address, a.address, 8080, 40000, SYN | ACK, new Uint8Array(0), 5000, 1001));
        await a.until(() => a.packets.length >= 1, 'the SYN-ACK');
        a.send(tcpSegment(a.address, b.address, 40000, 8080, PSH | ACK, new TextEncoder().encode('hello capture'), 1001, 5001));
        assert.equal(await exited, 0, stderr);
      } finally {
        clearTimeout(kill);
        child.kill();
      }
      assert.match(stderr, /3 packets captured/);
      const r = spawnSync('tcpdump', ['-nn', '-S', '-r', file, '-A'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.split('\n').filter((l) => / IP /.test(l));
      assert.equal(lines.length, 3, r.stdout);
      assert.match(lines[0]!, new RegExp(`IP ${a.address.replace(/\./g, '\\.')}\\.40000 > ${b.address.replace(/\./g, '\\.')}\\.8080: Flags \\[S\\], seq 1000,`));
      assert.match(lines[1]!, new RegExp(`IP ${b.address.replace(/\./g, '\\.')}\\.8080 > ${a.address.replace(/\./g, '\\.')}\\.40000: Flags \\[S\\.\\], seq 5000, ack 1001,`));
      assert.match(lines[2]!, /Flags \[P\.\], seq 1001:1014, ack 5001,.* length 13/);
      assert.match(r.stdout, /hello capture/);
      assert.doesNotMatch(r.stdout, /\.5555 /, 'c to b is not a\'s traffic');
      assert.equal(readFileSync(file).length, 24 + 3 * 16 + 40 + 40 + 53);

      // the same connection in the flow table, and in imach flows
      const flow = relay.flows('a')!.find((f) => f.src === `${a.address}:40000`);
      assert.deepEqual(
        { ...flow, ageMs: 0, idleMs: 0 },
        { protocol: 'tcp', src: `${a.address}:40000`, dst: `${b.address}:8080`, state: 'established', packetsOut: 2, bytesOut: 93, packetsIn: 1, bytesIn: 40, ageMs: 0, idleMs: 0 },
      );
      const listed = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const p = spawn(process.execPath, [CLI, 'flows', 'a'], { env: { PATH: process.env.PATH ?? '', IMACH_SECRET: SECRET, IMACH_RELAY: relay.url }, stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('close', (code) => resolve({ code, stdout: out }));
      });
      assert.equal(listed.code, 0);
      const rows = listed.stdout.trim().split('\n');
      assert.match(rows[0]!, /^PROTO\s+SRC\s+DST\s+STATE\s+OUT\(B\/PKTS\)\s+IN\(B\/PKTS\)\s+AGE\s+IDLE$/);
      assert.equal(rows.length, 2, 'c to b is not a\'s flow');
      assert.match(rows[1]!, new RegExp(`^tcp\\s+${a.address.replace(/\./g, '\\.')}:40000\\s+${b.address.replace(/\./g, '\\.')}:8080\\s+established\\s+93B/2\\s+40B/1\\s`));
    });

    it('streams to stdout for | tcpdump -r -, and an unknown host is refused', async function () {
      if (spawnSync('tcpdump', ['--version']).error !== undefined) skipOrFail(this, 'tcpdump is not installed');
      const env = { PATH: process.env.PATH ?? '', IMACH_SECRET: SECRET, IMACH_RELAY: relay.url };
      // spawned, not spawnSync: the relay answers from this process
      const refused = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [CLI, 'capture', 'nosuch', '-w', '-'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('close', (status) => resolve({ status, stderr: err }));
      });
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /404.*unknown host nosuch/);

      const child = spawn('sh', ['-c', `"${process.execPath}" "${CLI}" capture -w - --count 1 | tcpdump -nn -r -`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('close', r));
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await new Promise<void>((resolve) =>
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('capturing all hosts')) resolve();
        }),
      );
      c.send(tcpSegment(c.address, b.address, 6000, 9090, SYN, new Uint8Array(0), 42));
      assert.equal(await exited, 0, stderr);
      clearTimeout(kill);
      assert.match(stdout, new RegExp(`IP ${c.address.replace(/\./g, '\\.')}\\.6000 > ${b.address.replace(/\./g, '\\.')}\\.9090: Flags \\[S\\], seq 42,`));
    });
  });
});
