import assert from 'node:assert/strict';
import { decodeControl, encodeControl, isProtocolError, maxFrameBytes, parseLaunch, type ControlMessage } from '../../relay/protocol.js';

describe('relay protocol codec', () => {
  it('round-trips every control message type', () => {
    const msgs: ControlMessage[] = [
      { type: 'activity', established: 2, listening: 1, bytesIn: 10, bytesOut: 20, idleMs: 5 },
      { type: 'released', reason: 'app exited with code 0' },
      { type: 'released', reason: 'app threw: boom', startFailed: true },
      { type: 'drain', reason: 'idle 30s', graceMs: 5000 },
      { type: 'error', code: 'E', message: 'm' },
      {
        type: 'welcome', version: 1, host: 'web', address: '10.77.0.11', network: '10.77.0.0/16', prefixLength: 16,
        mtu: 65535, gateway: '10.77.0.1', dns: '10.77.0.1', domain: 'imach', idleMs: null, session: 's1',
      },
    ];
    for (const m of msgs) assert.deepEqual(decodeControl(encodeControl(m)), m);
  });

  it('passes unknown types through as unknown and drops extra fields', () => {
    assert.deepEqual(decodeControl('{"type":"hello","x":1}'), { type: 'unknown', original: 'hello' });
    assert.deepEqual(decodeControl('{"type":"released","reason":"r","extra":true}'), { type: 'released', reason: 'r' });
    // startFailed false is the same as absent
    assert.deepEqual(decodeControl('{"type":"released","reason":"r","startFailed":false}'), { type: 'released', reason: 'r' });
  });

  it('returns errors naming the field for malformed messages', () => {
    const cases: [string, string][] = [
      ['nope', 'frame'],
      ['[1]', 'frame'],
      ['{"x":1}', 'type'],
      ['{"type":"activity","established":-1,"listening":0,"bytesIn":0,"bytesOut":0,"idleMs":0}', 'established'],
      ['{"type":"activity","established":1,"listening":"2","bytesIn":0,"bytesOut":0,"idleMs":0}', 'listening'],
      ['{"type":"drain","reason":"x"}', 'graceMs'],
      ['{"type":"released"}', 'reason'],
      ['{"type":"released","reason":"r","startFailed":"yes"}', 'startFailed'],
    ];
    for (const [text, field] of cases) {
      const r = decodeControl(text);
      assert.ok(isProtocolError(r), text);
      assert.equal(r.field, field, text);
    }
    assert.ok(isProtocolError(decodeControl(' '.repeat(70_000))));
  });

  it('validates a launch from text or an object', () => {
    const launch = { host: 'web', relay: 'ws://127.0.0.1:7000', token: 't', run: '/a/web.js', env: { A: 'b' }, idleMs: 30000, mtu: 65535 };
    assert.deepEqual(parseLaunch(JSON.stringify(launch)), launch);
    assert.deepEqual(parseLaunch({ ...launch, idleMs: null }), { ...launch, idleMs: null });
    for (const [bad, field] of [
      [{ ...launch, relay: 'http://x' }, 'relay'],
      [{ ...launch, env: { A: 1 } }, 'env.A'],
      [{ ...launch, idleMs: 'soon' }, 'idleMs'],
      [{ ...launch, host: undefined }, 'host'],
      ['{', 'launch'],
    ] as [unknown, string][]) {
      const r = parseLaunch(bad);
      assert.ok(isProtocolError(r));
      assert.equal(r.field, field);
    }
  });

  it('sizes frames to a batch of MTU-sized packets', () => {
    assert.equal(maxFrameBytes(65535), 65535 * 16);
    assert.equal(maxFrameBytes(1500), 1500 * 16);
  });
});
