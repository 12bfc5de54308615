// A minimal SOCKS5 client (RFC 1928, CONNECT, no authentication) for the join tests.

import net from 'node:net';

export interface SocksConnectResult {
  reply: number;
  socket: net.Socket;
  /** bytes that came after the reply */
  rest: Buffer;
}

/** Read exactly n bytes (or reject when the socket ends first). */
function readBytes(s: net.Socket, n: number, state: { buf: Buffer }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (state.buf.length >= n) {
        s.pause();
        s.off('data', onData);
        s.off('close', onClose);
        const out = state.buf.subarray(0, n);
        state.buf = state.buf.subarray(n);
        resolve(out);
        return true;
      }
      return false;
    };
    const onData = (c: Buffer) => {
      state.buf = Buffer.concat([state.buf, c]);
      check();
    };
    const onClose = () => reject(new Error(`socket closed after ${state.buf.length} of ${n} bytes`));
    if (check()) return;
    s.on('data', onData);
    s.once('close', onClose);
    s.resume();
  });
}

export function encodeDomainRequest(host: string, port: number, command = 1): Buffer {
  const name = Buffer.from(host, 'latin1');
  return Buffer.concat([Buffer.from([5, command, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 0xff])]);
}

/** Greet with no-auth, CONNECT to host:port by name; resolves with the reply code. */
export async function socksConnect(proxy: { host: string; port: number }, host: string, port: number, request?: Buffer): Promise<SocksConnectResult> {
  const socket = net.connect(proxy.port, proxy.host);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const state = { buf: Buffer.alloc(0) };
  socket.write(Buffer.from([5, 1, 0]));
  const method = await readBytes(socket, 2, state);
  if (method[0] !== 5 || method[1] !== 0) throw new Error(`proxy refused no-auth: ${method.toString('hex')}`);
  socket.write(request ?? encodeDomainRequest(host, port));
  const reply = await readBytes(socket, 10, state);
  return { reply: reply[1]!, socket, rest: state.buf };
}

/** Write text and collect what comes back until the peer ends. */
export function exchange(socket: net.Socket, text: string, first: Buffer = Buffer.alloc(0)): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [first];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.once('error', reject);
    socket.resume();
    socket.end(text);
  });
}
