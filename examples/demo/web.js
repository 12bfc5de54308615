// web: an express front end on port 80.
//   GET /        a greeting
//   GET /count   increments a counter in kv (Redis protocol, with ioredis)
//   GET /primes?n=N  asks worker (UDP) how many primes are below N

import dgram from 'node:dgram';
import express from 'express';
import Redis from 'ioredis';

const port = Number(process.env.PORT ?? 80);

// One connection per request: an open connection would keep web and kv from idling out.
async function incr(key) {
  const kv = new Redis({ host: process.env.KV_HOST ?? 'kv', port: 6379, lazyConnect: true, maxRetriesPerRequest: 1 });
  kv.on('error', () => {});
  try {
    await kv.connect();
    return await kv.incr(key);
  } finally {
    kv.disconnect();
  }
}

let nextId = 1;
function askWorker(n) {
  const sock = dgram.createSocket('udp4');
  const id = nextId++;
  return new Promise((resolve, reject) => {
    // The first datagram starts a cold worker; the relay holds it until the worker joined.
    const timer = setTimeout(() => reject(Object.assign(new Error('worker timeout'), { code: 'ETIMEDOUT' })), 15000);
    sock.on('message', (msg) => {
      const r = JSON.parse(msg.toString());
      if (r.id !== id) return;
      clearTimeout(timer);
      resolve(r);
    });
    sock.send(JSON.stringify({ id, n }), 9000, process.env.WORKER_HOST ?? 'worker', (err) => {
      if (err) {
        clearTimeout(timer);
        reject(err);
      }
    });
  }).finally(() => sock.close());
}

const app = express();
app.get('/', (req, res) => res.type('text').send(`hello from web (${req.socket.localAddress})\n`));
app.get('/count', async (_req, res, next) => {
  try {
    res.type('text').send(`count=${await incr('hits')}\n`);
  } catch (e) {
    next(e);
  }
});
app.get('/primes', async (req, res, next) => {
  try {
    const r = await askWorker(Number(req.query.n ?? 100000));
    res.type('text').send(`primes below ${r.n}: ${r.primes}\n`);
  } catch (e) {
    next(e);
  }
});

const server = app.listen(port, () => console.log(`web listening on ${port}`));
// A drain is a SIGTERM: finish what is in flight, then exit.
process.on('SIGTERM', () => server.close());
