// Like Node's own sockets, facade sockets and listening servers keep the process running
// until they close, unless unref()'d; the stack's own timer never does.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const netstack = fileURLToPath(new URL('../../netstack/index.js', import.meta.url));

function script(unref: boolean): string {
  return `
import { Stack, createLinkPair } from ${JSON.stringify(netstack)};
const [a, b] = createLinkPair({ loss: 0.1, seed: 7 });
const server = new Stack({ address: '10.77.0.3' });
const client = new Stack({ address: '10.77.0.2' });
server.attach(b);
client.attach(a);
const srv = server.net.createServer((s) => s.pipe(s)).listen(7);
const sock = client.net.connect(7, '10.77.0.3');
${unref ? 'sock.unref(); srv.unref();' : ''}
let got = 0;
sock.on('data', (d) => { got += d.length; if (got === 100000) sock.end(); });
sock.on('close', () => { console.log('echoed ' + got); srv.close(); server.close(); client.close(); });
sock.write(Buffer.alloc(100000, 1));
`;
}

function run(src: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, out });
    });
  });
}

describe('netstack keeps the process alive like Node sockets', function () {
  this.timeout(40_000);

  it('a transfer that needs retransmission timers finishes before the process exits', async () => {
    const r = await run(script(false));
    assert.equal(r.code, 0);
    assert.match(r.out, /echoed 100000/);
  });

  it('unref()d sockets and servers let the process exit before they finish', async () => {
    const r = await run(script(true));
    assert.equal(r.code, 0);
    assert.doesNotMatch(r.out, /echoed/);
  });
});
