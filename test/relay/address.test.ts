import assert from 'node:assert/strict';
import { formatAddress, inNetwork, isHostAddress, parseAddress, parseNetwork, type Network } from '../../relay/address.js';
import { isIPv4, isIPv4Cidr } from '../../join/iproute.js';

describe('relay/address (text parsed by ip-address) and join/iproute address checks', () => {
  it('parses dotted quads to uint32 and back', () => {
    assert.equal(parseAddress('10.77.0.1'), 0x0a4d0001);
    assert.equal(parseAddress('255.255.255.255'), 0xffffffff);
    assert.equal(parseAddress('0.0.0.0'), 0);
    assert.equal(formatAddress(parseAddress('192.168.1.200')!), '192.168.1.200');
  });

  const badAddresses = ['', '10.77.0', '10.77.0.1.2', '256.0.0.1', '10.77.0.01', ' 10.77.0.1', '10.77.0.1 ', '10.77.0.1/32', '0x0a.0.0.1', '-1.0.0.0', '10.77.0.1\n', '::1', 'a.b.c.d'];
  for (const bad of badAddresses) {
    it(`refuses address ${JSON.stringify(bad)}`, () => {
      assert.equal(parseAddress(bad), null);
      assert.equal(isIPv4(bad), false);
    });
  }

  it('parses a network: base, size, broadcast and the gateway as its first address', () => {
    const n = parseNetwork('10.77.0.0/16') as Network;
    assert.equal(typeof n, 'object');
    assert.deepEqual(
      { cidr: n.cidr, base: formatAddress(n.base), size: n.size, broadcast: formatAddress(n.broadcast), gateway: formatAddress(n.gateway) },
      { cidr: '10.77.0.0/16', base: '10.77.0.0', size: 65536, broadcast: '10.77.255.255', gateway: '10.77.0.1' },
    );
    assert.equal(inNetwork(n, parseAddress('10.77.255.255')!), true);
    assert.equal(inNetwork(n, parseAddress('10.78.0.0')!), false);
    assert.equal(isHostAddress(n, parseAddress('10.77.0.1')!), false, 'the gateway');
    assert.equal(isHostAddress(n, parseAddress('10.77.0.2')!), true);
    assert.equal(isHostAddress(n, parseAddress('10.77.255.255')!), false, 'broadcast');
    assert.equal((parseNetwork('192.168.4.0/30') as Network).size, 4);
  });

  const badNetworks: [string, RegExp][] = [
    ['10.77.0.0', /expected a\.b\.c\.d\/len/],
    ['10.77.0.0/', /expected a\.b\.c\.d\/len/],
    ['10.77.0.0/16/1', /expected a\.b\.c\.d\/len/],
    ['10.77.0.0/123', /expected a\.b\.c\.d\/len/],
    ['10.77.0/16', /10\.77\.0 is not an IPv4 address/],
    ['10.77.0.300/24', /is not an IPv4 address/],
    ['10.77.0.0/7', /prefix length must be between 8 and 30/],
    ['10.77.0.0/31', /prefix length must be between 8 and 30/],
    ['10.77.0.5/16', /host bits of 10\.77\.0\.5 are not zero for \/16/],
  ];
  for (const [bad, message] of badNetworks) {
    it(`refuses network ${JSON.stringify(bad)} with a message`, () => {
      const r = parseNetwork(bad);
      assert.equal(typeof r, 'string');
      assert.match(r as string, message);
    });
  }

  it('join: a route CIDR is an address and a length 1..32', () => {
    assert.equal(isIPv4Cidr('10.77.0.0/16'), true);
    assert.equal(isIPv4Cidr('10.77.0.200/32'), true);
    for (const bad of ['10.77.0.0', '10.77.0.0/0', '10.77.0.0/33', '10.77.0/16', '10.77.0.0/16/1', '10.77.0.0/x', '10.077.0.0/16']) {
      assert.equal(isIPv4Cidr(bad), false, bad);
    }
  });
});
