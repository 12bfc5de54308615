import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startRelay, type HostDetails, type Relay } from '../../relay/index.js';
import { silentLogger } from '../../relay/log.js';
import { isManifestError, parseManifest } from '../../relay/manifest.js';
import type { Launch } from '../../relay/protocol.js';
import type { HostInstance, Provider } from '../../relay/provider.js';
import { SYN } from '../../netstack/wire/tcp.js';
import { joinRelay, waitFor, type TestHost } from '../support/relay-client.js';
import { tcpPacket } from '../support/relay-packets.js';
import { skipOrFail } from '../support/require-all.js';

const SECRET = 'observe-metrics-secret';
const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

/** `web` joins as a raw ws host; `broken` fails to start. */
class JoiningProvider implements Provider {
  readonly name = 'local';
  readonly hosts: TestHost[] = [];

  async start(launch: Launch): Promise<HostInstance> {
    if (launch.host === 'broken') throw new Error('no capacity for broken');
    const h = await joinRelay(launch.relay, launch.token);
    this.hosts.push(h);
    let finish!: (r: { code: number | null; reason: string }) => void;
    const exited = new Promise<{ code: number | null; reason: string }>((r) => (finish = r));
    h.ws.on('close', () => finish({ code: 0, reason: 'exit' }));
    return { exited, stop: async () => h.ws.terminate() };
  }
}

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The value of one sample line `name{labels} value` in an exposition. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe('relay observability: ps reason, describe, /metrics', function () {
  this.timeout(30_000);
  let relay: Relay;
  let provider: JoiningProvider;
  let client: TestHost;
  let metrics: string;

  before(async () => {
    const manifest = parseManifest('hosts:\n  web:\n    run: ./web.js\n    address: 10.77.0.10\n    env: { TOKEN: "hunter2" }\n  broken:\n    run: ./broken.js\n    address: 10.77.0.11\n', '/tmp');
    if (isManifestError(manifest)) throw new Error(manifest.message);
    provider = new JoiningProvider();
    relay = await startRelay({ manifest, listen: { host: '127.0.0.1', port: 0 }, secret: SECRET, logger: silentLogger, providers: { local: provider }, limits: { tickMs: 20, startRetryBaseMs: 60_000 } });
    client = await joinRelay(relay.url, relay.mintToken('client', 60));
    // a SYN starts web (held, delivered when it joins); a SYN to broken fails its start
    client.send(tcpPacket(client.address, '10.77.0.10', 40000, 80, SYN, new Uint8Array([1, 2, 3])));
    client.send(tcpPacket(client.address, '10.77.0.11', 40001, 80, SYN));
    await waitFor(() => relay.hosts().find((h) => h.name === 'web')?.state === 'running' && relay.hosts().find((h) => h.name === 'broken')?.state === 'failed', 'web running, broken failed');
    await waitFor(() => provider.hosts.length > 0, 'web to join');
    await provider.hosts[0]!.until(() => provider.hosts[0]!.packets.length > 0, 'the held SYN');
    const res = await fetch(`${relay.httpUrl}/metrics`, { headers: { authorization: `Bearer ${relay.mintToken('@admin', 60)}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    metrics = await res.text();
  });

  after(async () => {
    await client?.close();
    await relay?.close();
  });

  it('/metrics reports per-host state, starts, start latency, traffic and drops, and relay totals', () => {
    assert.equal(sample(metrics, 'imach_host_state{host="web",state="running"}'), 1);
    assert.equal(sample(metrics, 'imach_host_state{host="web",state="cold"}'), 0);
    assert.equal(sample(metrics, 'imach_host_state{host="broken",state="failed"}'), 1);
    assert.equal(sample(metrics, 'imach_host_starts_total{host="web"}'), 1);
    assert.equal(sample(metrics, 'imach_host_start_latency_seconds_count{host="web"}'), 1);
    assert.equal(sample(metrics, 'imach_host_start_latency_seconds_bucket{host="web",le="+Inf"}'), 1);
    assert.equal(sample(metrics, 'imach_host_start_latency_seconds_count{host="broken"}'), 0, 'a failed start is not a latency');
    assert.equal(sample(metrics, 'imach_host_packets_in_total{host="web"}'), 1);
    assert.equal(sample(metrics, 'imach_host_bytes_in_total{host="web"}'), 43);
    assert.equal(sample(metrics, 'imach_host_packets_out_total{host="client"}'), 2);
    assert.equal(sample(metrics, 'imach_host_drops_total{host="broken",reason="start-failed"}'), 1);
    assert.equal(sample(metrics, 'imach_relay_drops_total{reason="start-failed"}'), 1);
    assert.equal(sample(metrics, 'imach_relay_sessions'), 2);
    // the held SYN to web, and ICMP host unreachable to the client for broken's SYN
    assert.equal(sample(metrics, 'imach_host_packets_in_total{host="client"}'), 1);
    assert.equal(sample(metrics, 'imach_relay_forwarded_packets_total'), 2);
    assert.equal(sample(metrics, 'imach_relay_frames_in_total'), 2);
    assert.ok((sample(metrics, 'imach_host_uptime_seconds{host="web"}') ?? -1) >= 0);
  });

  it('/metrics passes promtool check metrics', function () {
    const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined) skipOrFail(this, 'promtool is not installed (Debian package prometheus)');
    const r = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
    assert.equal((r.stdout + r.stderr).trim(), '', 'no lint warnings');
  });

  it('/metrics and /api/hosts/<name> need an @admin token', async () => {
    for (const path of ['/metrics', '/api/hosts/web']) {
      assert.equal((await fetch(`${relay.httpUrl}${path}`)).status, 401, path);
      assert.equal((await fetch(`${relay.httpUrl}${path}`, { headers: { authorization: `Bearer ${relay.mintToken('web', 60)}` } })).status, 403, path);
    }
    const res = await fetch(`${relay.httpUrl}/api/hosts/nosuch`, { headers: { authorization: `Bearer ${relay.mintToken('@admin', 60)}` } });
    assert.equal(res.status, 404);
    assert.match(res.headers.get('x-imach-error') ?? '', /unknown host nosuch/);
  });

  it('every metric the relay exports is listed in relay/README.md', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(fileURLToPath(new URL('../../../relay/README.md', import.meta.url)), 'utf8');
    const names = [...metrics.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    assert.ok(names.length > 20);
    for (const n of names) assert.ok(readme.includes('`' + n + '`'), `${n} is not in relay/README.md`);
  });

  it('imach ps shows the reason; imach describe shows spec, reason, last error, backoff and history', async () => {
    const env = { IMACH_SECRET: SECRET, IMACH_RELAY: relay.url };
    const ps = await cli(['ps'], env);
    assert.equal(ps.code, 0, ps.stderr);
    const rows = ps.stdout.trim().split('\n');
    assert.match(rows[0]!, /\sSTARTS\s+REASON$/);
    assert.match(rows.find((r) => r.startsWith('broken'))!, /\sfailed\s.*failed: provider local: no capacity for broken$/);
    assert.match(rows.find((r) => r.startsWith('web'))!, /\srunning\s.*joined: joined in \d+ms$/);

    const j = await cli(['describe', 'broken', '--json'], env);
    assert.equal(j.code, 0, j.stderr);
    const d = JSON.parse(j.stdout) as HostDetails;
    assert.equal(d.state, 'failed');
    assert.equal(d.lastError?.message, 'provider local: no capacity for broken');
    assert.equal(d.backoff.failures, 1);
    assert.ok(d.backoff.retryAt !== null && d.backoff.retryInMs > 0 && d.backoff.retryInMs <= 60_000);
    assert.deepEqual(d.history.map((e) => e.type), ['started', 'failed']);
    assert.equal(d.counters.drops['start-failed'], 1);

    const web = await cli(['describe', 'web'], env);
    assert.equal(web.code, 0, web.stderr);
    assert.match(web.stdout, /^State:\s+running since /m);
    assert.match(web.stdout, /^Env:\s+TOKEN$/m);
    assert.doesNotMatch(web.stdout, /hunter2/, 'env values are not shown');
    assert.match(web.stdout, /^\s+\S+\s+web\s+joined\s+running\s+joined in \d+ms$/m);
    assert.match(web.stdout, /in 43B \(1 packets\)/);

    const missing = await cli(['describe', 'nosuch'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /404.*unknown host nosuch/);
    const usage = await cli(['describe'], env);
    assert.equal(usage.code, 2);
  });
});
