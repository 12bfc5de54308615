// kv: a tiny key-value server over TCP on port 7001, one command per line:
//   SET key value | GET key | INCR key | DEL key  ->  one reply line.
// State lives in memory, so it is gone when the host is released (hosts are cattle).

const MAX_LINE = 4096;
const MAX_KEYS = 10_000;

export default async function kv({ net, log, signal, host }) {
  const data = new Map();
  const server = net.createServer((socket) => {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      buf += chunk;
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        socket.end('ERR line too long\n');
        return;
      }
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        socket.write(handle(line) + '\n');
      }
    });
    socket.on('error', () => {});
  });

  function handle(line) {
    const [cmd, key, ...rest] = line.split(' ');
    switch ((cmd ?? '').toUpperCase()) {
      case 'GET':
        return data.has(key) ? `OK ${data.get(key)}` : 'NIL';
      case 'SET':
        if (!data.has(key) && data.size >= MAX_KEYS) return 'ERR full';
        data.set(key, rest.join(' '));
        return 'OK';
      case 'INCR': {
        const n = Number(data.get(key) ?? 0) + 1;
        data.set(key, String(n));
        return `OK ${n}`;
      }
      case 'DEL':
        return data.delete(key) ? 'OK 1' : 'OK 0';
      default:
        return 'ERR unknown command';
    }
  }

  server.listen(7001, () => log.info('kv listening', { address: host.address, port: 7001 }));
  signal.addEventListener('abort', () => log.info('kv draining', { keys: data.size }));
}
