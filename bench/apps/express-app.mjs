// The express app of the HTTP bench: an ordinary program, run once as a host (register
// module) and once on kernel loopback. GET / answers a small JSON body, GET /1m 1 MiB.
import express from 'express';

const app = express();
app.get('/', (_req, res) => res.json({ hello: 'world' }));
const mebibyte = Buffer.alloc(1 << 20, 0x61);
app.get('/1m', (_req, res) => res.type('application/octet-stream').send(mebibyte));
const server = app.listen(Number(process.env.PORT ?? 3000), process.env.LISTEN_HOST ?? '0.0.0.0', () => console.log('ready'));
process.on('SIGTERM', () => server.close());
