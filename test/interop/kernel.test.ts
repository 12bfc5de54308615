// Interop with the Linux kernel's TCP/IP: the kernel joins the imaginary network through a
// TUN device (`imach join`) in a network namespace made for the test, and talks to a host
// running the TypeScript stack behind the real relay. The kernel is the reference.

import assert from 'node:assert/strict';
import { expectedSha256 } from '../support/interop-data.js';
import { skipOrFail } from '../support/require-all.js';
import { SynCapture, interopBlocker, parseSyns, startJoin, type LineProcess, type SynRecord, World } from '../support/interop-netns.js';

const MiB = 1 << 20;
const BIG = 64 * MiB;
/** Under 2 % loss, reordering, duplication and 20 ms delay: the same size (lower it if it gets slow). */
const IMPAIRED = 64 * MiB;

const SEED_DOWN = 11;
const SEED_UP = 12;

async function skipUnless(ctx: Mocha.Context, tools: string[]): Promise<void> {
  const blocker = await interopBlocker(tools);
  if (blocker) skipOrFail(ctx, blocker);
}

/** curl in the namespace; the SHA-256 of the body. */
async function curlSha(w: World, args: string): Promise<string> {
  const r = await w.sh(`curl -sS --fail --max-time 110 ${args} | sha256sum`, 120_000);
  assert.equal(r.code, 0, `curl ${args} failed: ${r.stderr}`);
  return r.stdout.split(' ')[0]!;
}

/** The host uploads to a kernel sink; returns what both ends saw. */
async function hostUpload(w: World, port: number, bytes: number, seed: number): Promise<{ sent: Record<string, unknown>; sunk: Record<string, unknown> }> {
  const l = await w.kernel.cmd({ cmd: 'sink', port });
  assert.equal(l.listening, port, JSON.stringify(l));
  const sent = await w.host.cmd({ cmd: 'upload', host: w.kernelAddress, port, bytes, seed });
  const sunk = await w.kernel.waitFor((o) => o.event === 'sunk' && o.port === port, 'the sink report', 30_000);
  return { sent, sunk };
}

/** The kernel uploads to a host sink (data kernel -> host, the host stack's receive path). */
async function kernelUpload(w: World, port: number, bytes: number, seed: number): Promise<{ sent: Record<string, unknown>; sunk: Record<string, unknown> }> {
  const l = await w.host.cmd({ cmd: 'sink', port });
  assert.equal(l.listening, port, JSON.stringify(l));
  const sent = await w.kernel.cmd({ cmd: 'upload', host: w.hostAddress, port, bytes, seed });
  const sunk = await w.host.waitFor((o) => o.event === 'sunk' && o.port === port, 'the sink report', 30_000);
  return { sent, sunk };
}

describe('interop: Linux kernel <-> TypeScript stack through TUN and the relay', function () {
  this.timeout(150_000);
  let w: World | null = null;
  let capture: SynCapture | null = null;

  before(async function () {
    await skipUnless(this, ['ping', 'curl', 'tcpdump']);
    w = await World.start({ mtu: 65535, dev: 'imi0' });
    capture = await SynCapture.start(w.ns, 'imi0');
    const served = await w.host.cmd({ cmd: 'serve', port: 80, bytes: BIG, seed: SEED_DOWN });
    assert.equal(served.listening, 80, JSON.stringify(served));
  });

  after(async function () {
    if (capture) await capture.stop();
    if (w) await w.close();
  });

  it('ping both ways', async function () {
    const k = await w!.sh(`ping -c 3 -i 0.2 -W 5 ${w!.hostAddress}`, 30_000);
    assert.equal(k.code, 0, `kernel -> host ping: ${k.stdout}${k.stderr}`);
    assert.match(k.stdout, /3 packets transmitted, 3 received/);
    const h = await w!.host.cmd({ cmd: 'ping', host: w!.kernelAddress });
    assert.ok(typeof h.rtt === 'number' && h.rtt > 0 && h.rtt < 5000, `host -> kernel ping: ${JSON.stringify(h)}`);
  });

  it('UDP both ways', async function () {
    assert.equal((await w!.kernel.cmd({ cmd: 'udpEcho', port: 7000 })).listening, 7000);
    assert.equal((await w!.host.cmd({ cmd: 'udpEcho', port: 7001 })).listening, 7001);
    const fromHost = await w!.host.cmd({ cmd: 'udpSend', host: w!.kernelAddress, port: 7000, text: 'from the host' });
    assert.equal(fromHost.reply, 'from the host', JSON.stringify(fromHost));
    assert.equal(fromHost.from, `${w!.kernelAddress}:7000`);
    const fromKernel = await w!.kernel.cmd({ cmd: 'udpSend', host: w!.hostAddress, port: 7001, text: 'from the kernel' });
    assert.equal(fromKernel.reply, 'from the kernel', JSON.stringify(fromKernel));
    assert.equal(fromKernel.from, `${w!.hostAddress}:7001`);
  });

  it('a closed port is refused at once, both ways', async function () {
    // an RST from the host's stack: ECONNREFUSED (an ICMP error would be EHOSTUNREACH, none a timeout)
    const k = await w!.kernel.cmd({ cmd: 'connect', host: w!.hostAddress, port: 81 });
    assert.equal(k.code, 'ECONNREFUSED', JSON.stringify(k));
    const h = await w!.host.cmd({ cmd: 'connect', host: w!.kernelAddress, port: 82 });
    assert.equal(h.code, 'ECONNREFUSED', JSON.stringify(h));
  });

  it('curl on the kernel side downloads 64 MiB from a host (SHA-256 equal)', async function () {
    const sha = await curlSha(w!, `http://${w!.hostAddress}/`);
    assert.equal(sha, expectedSha256(BIG, SEED_DOWN));
    const served = await w!.host.waitFor((o) => o.event === 'served', 'the served report', 10_000);
    assert.equal(served.error, undefined, String(served.error));
  });

  it('a host uploads 64 MiB to a kernel server (SHA-256 equal)', async function () {
    const { sent, sunk } = await hostUpload(w!, 9000, BIG, SEED_UP);
    assert.equal(sent.error, undefined, JSON.stringify(sent));
    assert.equal(sunk.bytes, BIG);
    assert.equal(sunk.sha256, expectedSha256(BIG, SEED_UP));
    assert.equal(sent.sha256, sunk.sha256);
  });

  it('the kernel uploads 64 MiB to a server on a host (SHA-256 equal)', async function () {
    const { sent, sunk } = await kernelUpload(w!, 9200, BIG, SEED_UP);
    assert.equal(sent.error, undefined, JSON.stringify(sent));
    assert.equal(sunk.bytes, BIG);
    assert.equal(sunk.sha256, expectedSha256(BIG, SEED_UP));
  });

  it('a receiver that stops reading for 2 s (zero window) still gets all 64 MiB, both ways', async function () {
    assert.equal((await w!.host.cmd({ cmd: 'sink', port: 9300, pauseMs: 2000 })).listening, 9300);
    const k = await w!.kernel.cmd({ cmd: 'upload', host: w!.hostAddress, port: 9300, bytes: BIG, seed: SEED_UP });
    assert.equal(k.error, undefined, JSON.stringify(k));
    const atHost = await w!.host.waitFor((o) => o.event === 'sunk' && o.port === 9300, 'the sink report', 30_000);
    assert.equal(atHost.sha256, expectedSha256(BIG, SEED_UP));
    assert.equal((await w!.kernel.cmd({ cmd: 'sink', port: 9301, pauseMs: 2000 })).listening, 9301);
    const h = await w!.host.cmd({ cmd: 'upload', host: w!.kernelAddress, port: 9301, bytes: BIG, seed: SEED_UP });
    assert.equal(h.error, undefined, JSON.stringify(h));
    const atKernel = await w!.kernel.waitFor((o) => o.event === 'sunk' && o.port === 9301, 'the sink report', 30_000);
    assert.equal(atKernel.sha256, expectedSha256(BIG, SEED_UP));
  });

  it('a RST from the receiver ends the sender with ECONNRESET, both ways', async function () {
    assert.equal((await w!.host.cmd({ cmd: 'resetter', port: 9400 })).listening, 9400);
    const k = await w!.kernel.cmd({ cmd: 'upload', host: w!.hostAddress, port: 9400, bytes: 16 * MiB, seed: 1 });
    // Linux reports the RST on the next write or read: ECONNRESET, or EPIPE if a write came after
    assert.match(String(k.code), /^(ECONNRESET|EPIPE)$/, JSON.stringify(k));
    assert.equal((await w!.kernel.cmd({ cmd: 'resetter', port: 9401 })).listening, 9401);
    const h = await w!.host.cmd({ cmd: 'upload', host: w!.kernelAddress, port: 9401, bytes: 16 * MiB, seed: 1 });
    assert.equal(h.code, 'ECONNRESET', JSON.stringify(h));
  });

  it('eight parallel curl downloads are all intact', async function () {
    const n = 8 * MiB;
    assert.equal((await w!.host.cmd({ cmd: 'serve', port: 8080, bytes: n, seed: 5 })).listening, 8080);
    const r = await w!.sh(`for i in 1 2 3 4 5 6 7 8; do (curl -sS --fail --max-time 100 http://${w!.hostAddress}:8080/ | sha256sum) & done; wait`);
    const shas = r.stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    assert.deepEqual(shas, new Array(8).fill(expectedSha256(n, 5)), r.stderr);
  });

  it('the capture shows MSS, window scale, SACK permitted and timestamps in both sides\' SYNs', async function () {
    const captured = await capture!.stop();
    capture = null;
    const syns = parseSyns(captured);
    if (process.env.IMACH_INTEROP_DEBUG) process.stderr.write(syns.map((x) => x.raw).join('\n') + '\n');
    const k = w!.kernelAddress;
    const h = w!.hostAddress;
    const pick = (src: string, dst: string, ack: boolean, port: number) =>
      syns.find((s) => s.src === src && s.dst === dst && s.ack === ack && (ack ? s.srcPort : s.dstPort) === port);
    const cases = [
      ['kernel SYN to the host', pick(k, h, false, 80)],
      ['host SYN-ACK to the kernel', pick(h, k, true, 80)],
      ['host SYN to the kernel', pick(h, k, false, 9000)],
      ['kernel SYN-ACK to the host', pick(k, h, true, 9000)],
    ] as const;
    for (const [what, s] of cases) {
      assert.ok(s, `no ${what} in the capture:\n${captured.slice(0, 4000)}`);
      assert.ok(s.mss !== undefined && s.mss >= 536 && s.mss <= 65535 - 40, `${what}: mss ${String(s.mss)} (${s.raw})`);
      assert.ok(s.wscale !== undefined && s.wscale >= 0 && s.wscale <= 14, `${what}: wscale (${s.raw})`);
      assert.ok(s.sackOK, `${what}: sackOK (${s.raw})`);
      assert.ok(s.timestamps, `${what}: timestamps (${s.raw})`);
    }
    // RFC 6691: MSS is the MTU less the fixed IPv4 and TCP headers (65535 - 40)
    assert.equal(cases[1][1]!.mss, 65495, cases[1][1]!.raw);
    assert.equal(cases[2][1]!.mss, 65495, cases[2][1]!.raw);
  });

  it('the kernel asking for ECN (tcp_ecn=1) gets a valid answer and an intact download', async function () {
    const sysctl = await w!.sh('sysctl -w net.ipv4.tcp_ecn=1', 10_000);
    assert.equal(sysctl.code, 0, sysctl.stderr);
    const cap = await SynCapture.start(w!.ns, 'imi0');
    let text = '';
    try {
      assert.equal((await w!.host.cmd({ cmd: 'serve', port: 8081, bytes: 8 * MiB, seed: 6 })).listening, 8081);
      assert.equal(await curlSha(w!, `http://${w!.hostAddress}:8081/`), expectedSha256(8 * MiB, 6));
    } finally {
      text = await cap.stop();
      await w!.sh('sysctl -w net.ipv4.tcp_ecn=2', 10_000);
    }
    const syns = parseSyns(text).filter((x) => (x.ack ? x.srcPort : x.dstPort) === 8081);
    const syn = syns.find((x) => !x.ack);
    const synAck = syns.find((x) => x.ack);
    assert.ok(syn && syn.ece && syn.cwr, `the kernel sent no ECN-setup SYN:\n${text}`);
    // RFC 3168 section 6.1.1: a SYN-ACK never sets CWR; ECE alone accepts ECN, neither declines
    assert.ok(synAck && !synAck.cwr, `SYN-ACK: ${synAck?.raw}`);
  });

  for (const [sysctl, option] of [
    ['net.ipv4.tcp_timestamps', 'timestamps'],
    ['net.ipv4.tcp_sack', 'sackOK'],
    ['net.ipv4.tcp_window_scaling', 'wscale'],
  ] as const) {
    it(`with ${sysctl}=0 the host answers without ${option} and both directions stay intact`, async function () {
      const n = 2 * MiB;
      const p = 9500 + ['timestamps', 'sackOK', 'wscale'].indexOf(option) * 2;
      const set = await w!.sh(`sysctl -w ${sysctl}=0`, 10_000);
      assert.equal(set.code, 0, set.stderr);
      const cap = await SynCapture.start(w!.ns, 'imi0');
      let text = '';
      try {
        const k = await kernelUpload(w!, p, n, 21);
        assert.equal(k.sunk.sha256, expectedSha256(n, 21), JSON.stringify(k));
        const h = await hostUpload(w!, p + 1, n, 22);
        assert.equal(h.sunk.sha256, expectedSha256(n, 22), JSON.stringify(h));
      } finally {
        text = await cap.stop();
        await w!.sh(`sysctl -w ${sysctl}=1`, 10_000);
      }
      const has = (x: SynRecord) => (option === 'timestamps' ? x.timestamps : option === 'sackOK' ? x.sackOK : x.wscale !== undefined);
      const syns = parseSyns(text);
      const kernelSyn = syns.find((x) => !x.ack && x.dstPort === p);
      const hostSynAck = syns.find((x) => x.ack && x.srcPort === p);
      const hostSyn = syns.find((x) => !x.ack && x.dstPort === p + 1);
      const kernelSynAck = syns.find((x) => x.ack && x.srcPort === p + 1);
      assert.ok(kernelSyn && hostSynAck && hostSyn && kernelSynAck, text);
      assert.equal(has(kernelSyn), false, kernelSyn.raw);
      // RFC 7323 sections 2.2 and 3.2, RFC 2018 section 2: an option is only answered if offered
      assert.equal(has(hostSynAck), false, hostSynAck.raw);
      assert.equal(has(hostSyn), true, hostSyn.raw);
      assert.equal(has(kernelSynAck), false, kernelSynAck.raw);
    });
  }

  describe('through `imach join --userspace` (SOCKS5 and --forward)', function () {
    let us: LineProcess | null = null;

    before(async function () {
      assert.equal((await w!.host.cmd({ cmd: 'sink', port: 9100 })).listening, 9100);
      const j = await startJoin(
        w!.ns,
        ['--userspace', '--relay', w!.relayUrl, '--token', w!.tokens.phone!, '--socks', '127.0.0.1:1080', '--forward', '127.0.0.1:8080:web:80', '--forward', '127.0.0.1:8090:web:9100'],
        'imach join --userspace',
      );
      us = j.proc;
    });

    after(async function () {
      if (us) {
        us.child.kill('SIGTERM');
        await us.stop('SIGKILL', 3000);
      }
    });

    it('curl --socks5-hostname downloads 64 MiB from web.imach (SHA-256 equal)', async function () {
      const sha = await curlSha(w!, `--socks5-hostname 127.0.0.1:1080 http://web.imach/`);
      assert.equal(sha, expectedSha256(BIG, SEED_DOWN));
    });

    it('curl downloads 64 MiB through a --forward (SHA-256 equal)', async function () {
      const sha = await curlSha(w!, `http://127.0.0.1:8080/`);
      assert.equal(sha, expectedSha256(BIG, SEED_DOWN));
    });

    it('64 MiB uploaded through a --forward reach the host intact', async function () {
      const sent = await w!.kernel.cmd({ cmd: 'upload', host: '127.0.0.1', port: 8090, bytes: BIG, seed: SEED_UP });
      assert.equal(sent.error, undefined, JSON.stringify(sent));
      const sunk = await w!.host.waitFor((o) => o.event === 'sunk' && o.port === 9100, 'the sink report', 30_000);
      assert.equal(sunk.bytes, BIG);
      assert.equal(sunk.sha256, expectedSha256(BIG, SEED_UP));
    });
  });

  describe('through `imach join --userspace --expose` (a host reaches a kernel server on 127.0.0.1)', function () {
    let us: LineProcess | null = null;

    after(async function () {
      if (us) {
        us.child.kill('SIGTERM');
        await us.stop('SIGKILL', 3000);
      }
    });

    it('a host uploads 64 MiB to the joined machine\'s overlay address and a kernel server on 127.0.0.1 gets them intact', async function () {
      assert.equal((await w!.kernel.cmd({ cmd: 'sink', port: 9650 })).listening, 9650);
      const j = await startJoin(
        w!.ns,
        ['--userspace', '--relay', w!.relayUrl, '--token', w!.tokens.phone!, '--expose', '5432=127.0.0.1:9650'],
        'imach join --userspace --expose',
      );
      us = j.proc;
      assert.ok(j.lines.includes(`expose ${j.address}:5432 -> 127.0.0.1:9650`), j.lines.join('\n'));
      const sent = await w!.host.cmd({ cmd: 'upload', host: j.address, port: 5432, bytes: BIG, seed: SEED_UP });
      assert.equal(sent.error, undefined, JSON.stringify(sent));
      const sunk = await w!.kernel.waitFor((o) => o.event === 'sunk' && o.port === 9650, 'the sink report', 30_000);
      assert.equal(sunk.bytes, BIG);
      assert.equal(sunk.sha256, expectedSha256(BIG, SEED_UP));
    });
  });
});

describe('interop: the same at overlay MTU 1500 (MSS 1460, many more segments)', function () {
  this.timeout(150_000);
  let w: World | null = null;
  let capture: SynCapture | null = null;
  const N = 64 * MiB;

  before(async function () {
    await skipUnless(this, ['curl', 'tcpdump']);
    w = await World.start({ mtu: 1500, dev: 'imi2' });
    capture = await SynCapture.start(w.ns, 'imi2');
    assert.equal((await w.host.cmd({ cmd: 'serve', port: 80, bytes: N, seed: SEED_DOWN })).listening, 80);
  });

  after(async function () {
    if (capture) await capture.stop();
    if (w) await w.close();
  });

  it(`curl downloads ${N / MiB} MiB, a host uploads and the kernel uploads ${N / MiB} MiB, all intact`, async function () {
    assert.equal(await curlSha(w!, `http://${w!.hostAddress}/`), expectedSha256(N, SEED_DOWN));
    const up = await hostUpload(w!, 9000, N, SEED_UP);
    assert.equal(up.sunk.sha256, expectedSha256(N, SEED_UP), JSON.stringify(up));
    const kup = await kernelUpload(w!, 9200, N, SEED_UP);
    assert.equal(kup.sunk.sha256, expectedSha256(N, SEED_UP), JSON.stringify(kup));
  });

  it('a UDP datagram larger than the MTU from the kernel arrives in fragments and is reassembled', async function () {
    assert.equal((await w!.host.cmd({ cmd: 'udpEcho', port: 7001 })).listening, 7001);
    const text = 'x'.repeat(4000);
    void w!.kernel.cmd({ cmd: 'udpSend', host: w!.hostAddress, port: 7001, text });
    const got = await w!.host.waitFor((o) => o.event === 'udp' && o.port === 7001, 'the datagram at the host', 10_000);
    assert.equal(got.bytes, 4000);
  });

  it('a UDP datagram larger than the MTU from a host reaches the kernel (Linux fragments it)', async function () {
    assert.equal((await w!.kernel.cmd({ cmd: 'udpEcho', port: 7000 })).listening, 7000);
    const text = 'y'.repeat(4000);
    const r = await w!.host.cmd({ cmd: 'udpSend', host: w!.kernelAddress, port: 7000, text });
    assert.ok(r.reply === text, `host -> kernel: ${JSON.stringify(r).slice(0, 200)}`);
  });

  it('a 4000-byte ping is answered (fragments both ways)', async function () {
    const r = await w!.sh(`ping -c 2 -i 0.3 -W 3 -s 4000 ${w!.hostAddress}`, 20_000);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /2 packets transmitted, 2 received/);
  });

  it('every SYN and SYN-ACK announces MSS 1460 with window scale, SACK permitted and timestamps', async function () {
    const text = await capture!.stop();
    capture = null;
    const syns = parseSyns(text).filter((x) => [80, 9000, 9200].includes(x.ack ? x.srcPort : x.dstPort));
    assert.equal(syns.length, 6, text);
    for (const x of syns) {
      assert.equal(x.mss, 1460, x.raw);
      assert.ok(x.wscale !== undefined && x.sackOK && x.timestamps, x.raw);
    }
  });
});

describe('interop: the same transfers under loss, reordering, duplication and delay', function () {
  this.timeout(150_000);
  let w: World | null = null;
  const IMPAIR = 'reorder=0.02,duplicate=0.01,delay=20,seed=7';

  before(async function () {
    await skipUnless(this, ['curl', 'nft']);
    w = await World.start({ mtu: 65535, dev: 'imi1', impair: IMPAIR });
    // 2 % random loss each way on the TUN device (this kernel has no netem)
    const nft = await w.sh(
      `nft -f - <<'EOF'
table inet imach_loss {
  chain in { type filter hook input priority 0; policy accept; iifname "imi1" numgen random mod 100 < 2 counter drop; }
  chain out { type filter hook output priority 0; policy accept; oifname "imi1" numgen random mod 100 < 2 counter drop; }
}
EOF`,
      10_000,
    );
    assert.equal(nft.code, 0, `nft: ${nft.stderr}`);
    assert.equal((await w.host.cmd({ cmd: 'serve', port: 80, bytes: IMPAIRED, seed: SEED_DOWN })).listening, 80);
  });

  after(async function () {
    if (w) await w.close();
  });

  it(`curl downloads ${IMPAIRED / MiB} MiB intact`, async function () {
    const sha = await curlSha(w!, `http://${w!.hostAddress}/`);
    assert.equal(sha, expectedSha256(IMPAIRED, SEED_DOWN));
  });

  it(`a host uploads ${IMPAIRED / MiB} MiB intact`, async function () {
    const { sent, sunk } = await hostUpload(w!, 9000, IMPAIRED, SEED_UP);
    assert.equal(sent.error, undefined, JSON.stringify(sent));
    assert.equal(sunk.bytes, IMPAIRED);
    assert.equal(sunk.sha256, expectedSha256(IMPAIRED, SEED_UP));
  });

  it(`the kernel uploads ${IMPAIRED / MiB} MiB to a host intact`, async function () {
    const { sent, sunk } = await kernelUpload(w!, 9200, IMPAIRED, SEED_UP);
    assert.equal(sent.error, undefined, JSON.stringify(sent));
    assert.equal(sunk.bytes, IMPAIRED);
    assert.equal(sunk.sha256, expectedSha256(IMPAIRED, SEED_UP));
  });

  it('the fault-injecting link reordered and duplicated packets', async function () {
    const j = w!.join;
    j.child.kill('SIGTERM');
    await j.exited;
    if (process.env.IMACH_INTEROP_DEBUG) process.stderr.write(j.stderr);
    assert.match(j.stderr, /impairing the relay path/);
    for (const dir of ['toRelay', 'fromRelay']) {
      const m = new RegExp(`${dir}=(\\{[^}]*\\})`).exec(j.stderr);
      assert.ok(m, `no ${dir} counters in: ${j.stderr}`);
      const c = JSON.parse(m[1]!) as { reordered: number; duplicated: number; delivered: number };
      assert.ok(c.reordered > 0 && c.duplicated > 0 && c.delivered > 1000, `${dir}: ${m[1]}`);
    }
  });

  it(`through --userspace with --impair (2 % loss there too): ${IMPAIRED / MiB} MiB each way intact`, async function () {
    assert.equal((await w!.host.cmd({ cmd: 'sink', port: 9100 })).listening, 9100);
    const { proc } = await startJoin(
      w!.ns,
      ['--userspace', '--relay', w!.relayUrl, '--token', w!.tokens.phone!, '--socks', '127.0.0.1:1081', '--forward', '127.0.0.1:8091:web:9100', '--impair', `loss=0.02,${IMPAIR}`],
      'imach join --userspace --impair',
    );
    try {
      const sha = await curlSha(w!, `--socks5-hostname 127.0.0.1:1081 http://web.imach/`);
      assert.equal(sha, expectedSha256(IMPAIRED, SEED_DOWN));
      const sent = await w!.kernel.cmd({ cmd: 'upload', host: '127.0.0.1', port: 8091, bytes: IMPAIRED, seed: SEED_UP });
      assert.equal(sent.error, undefined, JSON.stringify(sent));
      const sunk = await w!.host.waitFor((o) => o.event === 'sunk' && o.port === 9100, 'the sink report', 30_000);
      assert.equal(sunk.bytes, IMPAIRED);
      assert.equal(sunk.sha256, expectedSha256(IMPAIRED, SEED_UP));
    } finally {
      proc.child.kill('SIGTERM');
      await proc.stop('SIGKILL', 3000);
    }
    assert.match(proc.stderr, /impairment counters/);
    const lost = /toRelay=\{[^}]*"dropLoss":(\d+)/.exec(proc.stderr);
    assert.ok(lost && Number(lost[1]) > 0, proc.stderr);
  });

  it('packets were in fact dropped by nftables', async function () {
    const r = await w!.sh('nft list table inet imach_loss', 10_000);
    const dropped = [...r.stdout.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    assert.equal(dropped.length, 2, r.stdout);
    assert.ok(dropped[0]! > 0 && dropped[1]! > 0, `drops in/out: ${dropped.join('/')}`);
  });
});
