// The express app of the HTTP bench: an ordinary program, run once as a host (register
// module) and once on kernel loopback. GET / answers a small JSON body.
import express from 'express';

const app = express();
app.get('/', (_req, res) => res.json({ hello: 'world' }));
const server = app.listen(Number(process.env.PORT ?? 3000), process.env.LISTEN_HOST ?? '0.0.0.0', () => console.log('ready'));
process.on('SIGTERM', () => server.close());
