// A destroyed socket whose peer never finishes the close: like Linux's tcp_fin_timeout,
// the orphaned connection is reset after the stack's finWait2TimeoutMs, so it cannot stay
// in FIN-WAIT-2 for ever.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Stack, createLinkPair } from '../../netstack/index.js';
import type { NetSocket } from '../../netstack/api/net.js';

describe('net facade: orphaned connections', function () {
  this.timeout(10_000);

  it('a destroyed socket left in FIN-WAIT-2 resets the peer after finWait2TimeoutMs', async () => {
    const [a, b] = createLinkPair();
    const client = new Stack({ address: '10.77.0.2', tcp: { finWait2TimeoutMs: 300 } });
    const server = new Stack({ address: '10.77.0.3' });
    client.attach(a);
    server.attach(b);
    try {
      // The server keeps its half open and never ends: the client's FIN is acknowledged,
      // and nothing else comes.
      const srv = server.net.createServer({ allowHalfOpen: true });
      const accepted = once(srv, 'connection') as Promise<[NetSocket]>;
      srv.listen(80);
      await once(srv, 'listening');
      const sock = client.net.connect(80, '10.77.0.3');
      await once(sock, 'connect');
      const [peer] = await accepted;
      peer.on('data', () => {});
      const ended = once(peer, 'end');
      sock.destroy();
      await ended;
      const [err] = (await once(peer, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNRESET');
      srv.close();
    } finally {
      client.close();
      server.close();
    }
  });
});
