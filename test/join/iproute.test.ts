import assert from 'node:assert/strict';
import {
  configureInterface,
  configureSplitDns,
  isIPv4Cidr,
  resolvedAvailable,
  unconfigureInterface,
  validateInterfaceConfig,
  type CommandRunner,
} from '../../join/iproute.js';
import { checkTunPrerequisites, type PreflightProbes } from '../../join/preflight.js';
import { recordingRunner } from '../support/join-memory-tun.js';

const cfg = { dev: 'imach0', address: '10.77.0.200', network: '10.77.0.0/16', mtu: 65535 };

describe('join: interface configuration', function () {
  it('validates every argument that reaches ip', function () {
    assert.equal(validateInterfaceConfig(cfg), null);
    assert.match(validateInterfaceConfig({ ...cfg, dev: '-rf' + 'x'.repeat(14) }) ?? '', /interface name/);
    assert.match(validateInterfaceConfig({ ...cfg, address: '10.77.0.256' }) ?? '', /address/);
    assert.match(validateInterfaceConfig({ ...cfg, address: '10.77.0.1 ' }) ?? '', /address/);
    assert.match(validateInterfaceConfig({ ...cfg, network: '10.77.0.0/33' }) ?? '', /network/);
    assert.match(validateInterfaceConfig({ ...cfg, mtu: 100 }) ?? '', /MTU/);
    assert.match(validateInterfaceConfig({ ...cfg, txQueueLen: 0 }) ?? '', /txqueuelen/);
    assert.match(validateInterfaceConfig({ ...cfg, txQueueLen: 1.5 }) ?? '', /txqueuelen/);
    assert.match(validateInterfaceConfig({ ...cfg, txQueueLen: 100_001 }) ?? '', /txqueuelen/);
    assert.equal(validateInterfaceConfig({ ...cfg, txQueueLen: 10_000 }), null);
    assert.equal(isIPv4Cidr('10.0.0.0/8'), true);
    assert.equal(isIPv4Cidr('10.0.0.0'), false);
    assert.equal(isIPv4Cidr('10.0.0.0/8/1'), false);
  });

  it('configures address, link and route, and undoes what it did when a step fails', async function () {
    const r = recordingRunner(/link set dev imach0 up/);
    await assert.rejects(configureInterface(cfg, r.run), /File exists/);
    assert.deepEqual(r.calls, [
      'ip link set dev imach0 mtu 65535',
      'ip addr add 10.77.0.200/32 dev imach0',
      'ip link set dev imach0 up',
      'ip route del 10.77.0.0/16 dev imach0',
      'ip link set dev imach0 down',
    ]);
  });

  it('teardown never throws and reports what failed', async function () {
    const r = recordingRunner(/route del/);
    const failures = await unconfigureInterface(cfg, r.run);
    assert.equal(failures.length, 1);
    assert.match(failures[0]!, /route del/);
  });

  it('split DNS makes the domain routing-only on the device', async function () {
    const r = recordingRunner();
    await configureSplitDns({ dev: 'imach0', dns: '10.77.0.1', domain: 'imach' }, r.run);
    assert.deepEqual(r.calls, ['resolvectl dns imach0 10.77.0.1', 'resolvectl domain imach0 ~imach']);
    await assert.rejects(configureSplitDns({ dev: 'imach0', dns: '10.77.0.1', domain: 'a b' }, r.run), /invalid domain/);
  });

  it('tells a missing resolvectl from a stopped systemd-resolved', async function () {
    const missing: CommandRunner = async () => {
      throw Object.assign(new Error('spawn resolvectl ENOENT'), { code: 'ENOENT' });
    };
    assert.match(String(await resolvedAvailable(missing)), /not installed/);
    const stopped = recordingRunner(/resolvectl/);
    assert.match(String(await resolvedAvailable(stopped.run)), /not running/);
    assert.equal(await resolvedAvailable(recordingRunner().run), true);
  });
});

describe('join: TUN prerequisites', function () {
  function probes(over: Partial<PreflightProbes>): PreflightProbes {
    return {
      uid: () => 0,
      effectiveCaps: () => 0n,
      tunAccessible: () => true,
      addonAvailable: () => true,
      iproute: async () => true,
      ...over,
    };
  }

  it('nothing is missing for root with everything installed', async function () {
    assert.deepEqual(await checkTunPrerequisites(probes({})), []);
  });

  it('a non-root user with CAP_NET_ADMIN is enough', async function () {
    assert.deepEqual(await checkTunPrerequisites(probes({ uid: () => 1000, effectiveCaps: () => 1n << 12n })), []);
  });

  it('names each missing piece', async function () {
    const missing = await checkTunPrerequisites(
      probes({ uid: () => 1000, effectiveCaps: () => 0n, tunAccessible: () => 'missing', addonAvailable: () => false, iproute: async () => false }),
    );
    assert.equal(missing.length, 4);
    assert.match(missing[0]!, /root or CAP_NET_ADMIN/);
    assert.match(missing[1]!, /\/dev\/net\/tun/);
    assert.match(missing[2]!, /addon/);
    assert.match(missing[3]!, /iproute2/);
  });
});
