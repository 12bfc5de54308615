// web: a hand-rolled HTTP/1.1 front end on port 80 over the host's own TCP stack.
//   GET /        a greeting
//   GET /count   increments a counter in kv (TCP, by name: kv.imach)
//   GET /primes?n=N  asks worker (UDP, by name) how many primes are below N

const MAX_HEAD = 8192;

export default async function web({ net, dgram, dns, log, host }) {
  const server = net.createServer((socket) => {
    let head = '';
    socket.setEncoding('latin1');
    socket.on('data', async (chunk) => {
      head += chunk;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD) respond(socket, 431, 'request header too large\n');
        return;
      }
      socket.removeAllListeners('data');
      const [method, target] = head.slice(0, head.indexOf('\r\n')).split(' ');
      try {
        const { status, body } = await route(method, target ?? '/');
        respond(socket, status, body);
      } catch (e) {
        respond(socket, 502, `upstream failed: ${e.code ?? e.message}\n`);
      }
    });
    socket.on('error', () => {});
  });

  function respond(socket, status, body) {
    const text = { 200: 'OK', 404: 'Not Found', 405: 'Method Not Allowed', 431: 'Too Large', 502: 'Bad Gateway' }[status] ?? '';
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  async function route(method, target) {
    if (method !== 'GET') return { status: 405, body: 'GET only\n' };
    const url = new URL(target, 'http://web');
    if (url.pathname === '/') return { status: 200, body: `hello from ${host.name} (${host.address})\n` };
    if (url.pathname === '/count') return { status: 200, body: `count=${await kvIncr('hits')}\n` };
    if (url.pathname === '/primes') {
      const n = Number(url.searchParams.get('n') ?? 100000);
      const r = await askWorker(n);
      return { status: 200, body: `primes below ${r.n}: ${r.primes}\n` };
    }
    return { status: 404, body: 'not found\n' };
  }

  function kvIncr(key) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: 'kv', port: 7001 });
      let buf = '';
      s.setEncoding('utf8');
      s.setTimeout?.(10000, () => s.destroy(Object.assign(new Error('kv timeout'), { code: 'ETIMEDOUT' })));
      s.on('connect', () => s.write(`INCR ${key}\n`));
      s.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) {
          s.end();
          resolve(buf.trim().replace(/^OK /, ''));
        }
      });
      s.on('error', reject);
    });
  }

  let nextId = 1;
  async function askWorker(n) {
    const address = await dns.lookup('worker');
    const sock = dgram.createSocket('udp4');
    const id = nextId++;
    try {
      return await new Promise((resolve, reject) => {
        // The first datagram starts a cold worker; the relay holds it until the worker joined.
        const timer = setTimeout(() => reject(Object.assign(new Error('worker timeout'), { code: 'ETIMEDOUT' })), 15000);
        sock.on('message', (msg) => {
          const r = JSON.parse(msg.toString());
          if (r.id === id) {
            clearTimeout(timer);
            resolve(r);
          }
        });
        sock.send(Buffer.from(JSON.stringify({ id, n })), 9000, address, (err) => {
          if (err) {
            clearTimeout(timer);
            reject(err);
          }
        });
      });
    } finally {
      sock.close();
    }
  }

  server.listen(80, () => log.info('web listening', { address: host.address, port: 80 }));
}
