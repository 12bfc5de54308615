// kv: a small Redis-protocol server on port 6379 (PING, GET, SET, INCR, DEL), reached
// with ioredis. State lives in memory, so it is gone when the host is released.

import net from 'node:net';

const MAX_KEYS = 10_000;
const MAX_PENDING = 1 << 20;
const data = new Map();
const bulk = (v) => (v === undefined ? '$-1\r\n' : `$${Buffer.byteLength(v)}\r\n${v}\r\n`);

function answer([cmd = '', key, value]) {
  switch (cmd.toUpperCase()) {
    case 'PING':
      return '+PONG\r\n';
    case 'GET':
      return bulk(data.get(key));
    case 'SET':
      if (!data.has(key) && data.size >= MAX_KEYS) return '-ERR full\r\n';
      data.set(key, value);
      return '+OK\r\n';
    case 'INCR': {
      const n = Number(data.get(key) ?? 0) + 1;
      data.set(key, String(n));
      return `:${n}\r\n`;
    }
    case 'DEL':
      return `:${data.delete(key) ? 1 : 0}\r\n`;
    case 'INFO':
      return bulk('# Server\r\nloading:0\r\n');
    default:
      return '+OK\r\n';
  }
}

/** Commands (RESP arrays of bulk strings) at the front of `buf`, and the unparsed rest. */
function parse(buf) {
  const cmds = [];
  let off = 0;
  for (;;) {
    const start = off;
    const line = () => {
      const end = buf.indexOf('\r\n', off);
      if (end < 0) return null;
      const text = buf.toString('latin1', off, end);
      off = end + 2;
      return text;
    };
    const head = line();
    if (head === null || head[0] !== '*') return [cmds, buf.subarray(start)];
    const args = [];
    for (let i = Number(head.slice(1)); i > 0; i--) {
      const len = line();
      const size = len === null ? NaN : Number(len.slice(1));
      if (!(buf.length >= off + size + 2)) return [cmds, buf.subarray(start)];
      args.push(buf.toString('utf8', off, off + size));
      off += size + 2;
    }
    cmds.push(args);
  }
}

const server = net.createServer((socket) => {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    const [cmds, rest] = parse(Buffer.concat([pending, chunk]));
    pending = rest;
    if (pending.length > MAX_PENDING) return socket.destroy();
    if (cmds.length > 0) socket.write(cmds.map(answer).join(''));
  });
  socket.on('error', () => {});
});
server.listen(6379, () => console.log('kv listening on 6379'));
process.on('SIGTERM', () => {
  console.log(`kv draining (${data.size} keys)`);
  server.close();
});
