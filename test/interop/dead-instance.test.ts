// An instance that ends is gone like a rebooted machine: the Linux kernel, joined through
// TUN, uploads with curl to a host whose app process dies mid-upload; the relay answers
// the kernel's next segments with RST (RFC 9293 section 3.10.7.1) and curl fails at once
// with "Connection reset by peer" instead of hanging until its timeout.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetNs } from '../support/join-netns.js';
import { Agent, interopBlocker, startJoin, type LineProcess } from '../support/interop-netns.js';
import { skipOrFail } from '../support/require-all.js';

// An HTTP upload sink whose process exits (as a crash would) after 256 KiB of the body.
const CRASHER = `export default ({ net }) => {
  net.createServer((s) => {
    let n = 0;
    s.on('error', () => {});
    s.on('data', (d) => {
      n += d.length;
      if (n >= 256 * 1024) process.exit(3);
    });
  }).listen(80);
};
`;

const MANIFEST = `network: 10.77.0.0/16
hosts:
  crasher:
    run: ./crasher.mjs
    address: 10.77.0.20
    idle: 60s
`;

describe('interop: the kernel gets a RST from a host whose app died', function () {
  this.timeout(90_000);
  let ns: NetNs | null = null;
  let relay: Agent | null = null;
  let joined: LineProcess | null = null;
  let dir: string | null = null;

  before(async function () {
    const blocker = await interopBlocker(['curl']);
    if (blocker) skipOrFail(this, blocker);
    dir = mkdtempSync(join(tmpdir(), 'imach-dead-'));
    writeFileSync(join(dir, 'crasher.mjs'), CRASHER);
    writeFileSync(join(dir, 'imach.yaml'), MANIFEST);
    const made = await NetNs.create();
    if (typeof made === 'string') throw new Error(made);
    ns = made;
    relay = Agent.spawn(ns, 'relay-app', [join(dir, 'imach.yaml')]);
    const r = await relay.ready();
    const tokens = r.tokens as Record<string, string>;
    joined = (await startJoin(ns, ['--relay', String(r.url), '--token', tokens.laptop!, '--dev', 'imdead0'])).proc;
  });

  after(async () => {
    if (joined) {
      joined.child.kill('SIGTERM');
      await joined.stop('SIGKILL', 3000);
    }
    if (relay) await relay.stop();
    if (ns) await ns.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('curl uploading to it fails within a second of the crash with a reset, not a timeout', async function () {
    const script =
      `head -c 200000000 /dev/zero | curl -sS --max-time 40 -T - http://10.77.0.20/upload -o /dev/null; ` +
      `echo "curl=$?"`;
    const t0 = Date.now();
    const r = await ns!.exec('bash', ['-c', script]);
    const ms = Date.now() - t0;
    const crashed = relay!.lines.find((o) => {
      const e = o.event as { host?: string; type?: string } | undefined;
      return e?.host === 'crasher' && e.type === 'released';
    });
    assert.ok(crashed, `the crasher was released: ${JSON.stringify(relay!.lines.slice(-5))}`);
    // 55: failed sending data, 56: failure receiving: both on ECONNRESET
    assert.match(r.stdout, /curl=5[56]/, `${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /reset by peer/i);
    // the start, 256 KiB, and the reset: seconds, where a hang would take the 40 s timeout
    assert.ok(ms < 10_000, `curl ended after ${ms} ms`);
  });
});
