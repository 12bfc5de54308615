// `imach join --userspace --expose`: flags, errors, exit codes and what is printed at start
// (the session runs on the fake relay with a stand-in stack; the data path is in
// expose.test.ts).

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { JOIN_EXIT, JOIN_USAGE, parseJoinArgs, runJoin, type JoinCliDeps } from '../../cli/join.js';
import { silentLogger } from '../../hostfn/log.js';
import { UserspaceSession, type UserspaceOptions, type UserspaceStackFactory } from '../../join/userspace.js';
import { FakeRelay } from '../support/join-fake-relay.js';
import { eventually, recordingRunner } from '../support/join-memory-tun.js';

const BASE = ['--relay', 'ws://r:1', '--token', 't'];

describe('join: --expose on the command line', function () {
  describe('parseJoinArgs', function () {
    it('--userspace --expose alone exposes without a SOCKS5 proxy', function () {
      const a = parseJoinArgs([...BASE, '--userspace', '--expose', '5432', '--expose', '8080=192.168.1.20:80'], {});
      assert.ok(typeof a !== 'string', String(a));
      assert.equal(a.socks, null);
      assert.deepEqual(a.forwards, []);
      assert.deepEqual(a.exposes, [
        { overlayPort: 5432, host: '127.0.0.1', port: 5432 },
        { overlayPort: 8080, host: '192.168.1.20', port: 80 },
      ]);
    });

    it('keeps the proxy when --socks or --forward is given too', function () {
      const withSocks = parseJoinArgs([...BASE, '--userspace', '--expose', '5432', '--socks', '1081'], {});
      assert.ok(typeof withSocks !== 'string', String(withSocks));
      assert.deepEqual(withSocks.socks, { host: '127.0.0.1', port: 1081 });
      const withForward = parseJoinArgs([...BASE, '--userspace', '--expose', '5432', '--forward', '8080:web:80'], {});
      assert.ok(typeof withForward !== 'string', String(withForward));
      assert.deepEqual(withForward.socks, { host: '127.0.0.1', port: 1080 });
      assert.equal(withForward.exposes.length, 1);
    });

    it('without --expose nothing is exposed', function () {
      const a = parseJoinArgs([...BASE, '--userspace'], {});
      assert.ok(typeof a !== 'string', String(a));
      assert.deepEqual(a.exposes, []);
      assert.deepEqual(a.socks, { host: '127.0.0.1', port: 1080 });
    });

    for (const [argv, pattern] of [
      [[...BASE, '--expose', '5432'], /--expose goes with --userspace/],
      [[...BASE, '--userspace', '--expose', '0'], /--expose.*1\.\.65535/],
      [[...BASE, '--userspace', '--expose', '5432=db:'], /--expose wants/],
      [[...BASE, '--userspace', '--expose', 'x:y:z'], /--expose wants/],
      [[...BASE, '--userspace', '--expose', '5432', '--expose', '5432=6543'], /5432 is already exposed \(to 127\.0\.0\.1:5432\)/],
      [[...BASE, '--userspace', '--expose'], /expose/],
    ] as [string[], RegExp][]) {
      it(`refuses ${argv.slice(4).join(' ')}`, function () {
        const a = parseJoinArgs(argv, {});
        assert.equal(typeof a, 'string');
        assert.match(a as string, pattern);
      });
    }
  });

  it('a bad --expose exits 2 and starts nothing', async function () {
    const err: string[] = [];
    let started = 0;
    const code = await runJoin([...BASE, '--userspace', '--expose', '99999'], {
      out: () => {},
      err: (l) => err.push(l),
      logger: silentLogger,
      startUserspace: async () => {
        started++;
        return { joinError: true, stage: 'relay', kind: 'network', message: 'unused' };
      },
    });
    assert.equal(code, JOIN_EXIT.usage);
    assert.match(err.join('\n'), /--expose 99999/);
    assert.equal(started, 0);
  });

  it('--help documents --expose', function () {
    assert.match(JOIN_USAGE, /--expose <spec>/);
    assert.match(JOIN_USAGE, /\[overlayPort=\]\[host:\]localPort/);
  });

  describe('a session', function () {
    let relay: FakeRelay;
    beforeEach(async function () {
      relay = await FakeRelay.start({ token: 'good' });
    });
    afterEach(async function () {
      await relay.close();
    });

    it('prints each expose with the overlay address, passes them on, and leaves on SIGINT', async function () {
      const listened: number[] = [];
      let listenersClosed = 0;
      const factory: UserspaceStackFactory = () => ({
        dial: async () => {
          throw new Error('no dialing here');
        },
        listen: async (port) => {
          listened.push(port);
          return { close: () => void listenersClosed++ };
        },
        close: () => {},
      });
      const seen: UserspaceOptions[] = [];
      const signals = new EventEmitter();
      const out: string[] = [];
      const deps: Partial<JoinCliDeps> = {
        out: (l) => out.push(l),
        err: (l) => out.push(`err: ${l}`),
        logger: silentLogger,
        preflight: async () => ['root or CAP_NET_ADMIN'],
        run: recordingRunner().run,
        env: {},
        signals: signals as unknown as JoinCliDeps['signals'],
        startUserspace: (o) => {
          seen.push(o);
          return UserspaceSession.start({ ...o, stackFactory: factory });
        },
      };
      const exit = runJoin(['--relay', relay.url, '--token', 'good', '--userspace', '--expose', '5432', '--expose', '15432=[::1]:6543'], deps);
      await eventually(() => out.some((l) => l.startsWith('Ctrl-C')), 'the joined message');
      assert.equal(seen[0]!.socks, null);
      assert.deepEqual(listened, [5432, 15432]);
      assert.ok(out.includes('expose 10.77.0.200:5432 -> 127.0.0.1:5432'), out.join('\n'));
      assert.ok(out.includes('expose 10.77.0.200:15432 -> [::1]:6543'), out.join('\n'));
      assert.ok(!out.some((l) => l.startsWith('SOCKS5')), out.join('\n'));
      signals.emit('SIGINT', 'SIGINT');
      assert.equal(await exit, JOIN_EXIT.ok);
      assert.equal(listenersClosed, 2);
    });

    it('an overlay port the stack cannot listen on exits 7 (listener) with the reason', async function () {
      const factory: UserspaceStackFactory = () => ({
        dial: async () => {
          throw new Error('no dialing here');
        },
        listen: async (port) => {
          throw Object.assign(new Error(`listen EADDRINUSE: address already in use 10.77.0.200:${port}`), { code: 'EADDRINUSE' });
        },
        close: () => {},
      });
      const err: string[] = [];
      const code = await runJoin(['--relay', relay.url, '--token', 'good', '--userspace', '--expose', '5432'], {
        out: () => {},
        err: (l) => err.push(l),
        logger: silentLogger,
        env: {},
        startUserspace: (o) => UserspaceSession.start({ ...o, stackFactory: factory }),
      });
      assert.equal(code, JOIN_EXIT.listen);
      assert.match(err.join('\n'), /cannot listen on 10\.77\.0\.200:5432 for --expose: .*EADDRINUSE/);
      await eventually(() => relay.sockets.size === 0, 'the relay session closed');
    });
  });
});
