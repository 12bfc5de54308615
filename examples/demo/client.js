// client: makes requests to web in a loop for a while, printing what it got, then exits
// (and its host is released). Started at boot by `imach up --start client`.

function get(net, path) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: 'web', port: 80 });
    let res = '';
    s.setEncoding('latin1');
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n`));
    s.on('data', (d) => (res += d));
    s.on('end', () => {
      const body = res.slice(res.indexOf('\r\n\r\n') + 4);
      resolve({ status: Number(res.split(' ')[1]), body: body.trim() });
    });
    s.on('error', reject);
  });
}

export default async function client({ net, env, log, signal }) {
  const requests = Number(env.REQUESTS ?? 10);
  const interval = Number(env.INTERVAL_MS ?? 1000);
  const pauseAfter = Number(env.PAUSE_AFTER ?? 0);
  const pauseMs = Number(env.PAUSE_MS ?? 0);
  const paths = ['/', '/count', '/primes?n=200000', '/count'];
  for (let i = 0; i < requests && !signal.aborted; i++) {
    if (pauseAfter > 0 && i === pauseAfter) {
      log.info(`pausing ${pauseMs / 1000}s: watch the other hosts get released`);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
    const path = paths[i % paths.length];
    const t0 = Date.now();
    try {
      const r = await get(net, path);
      log.info(`GET ${path} -> ${r.status} ${r.body}`, { ms: Date.now() - t0 });
    } catch (e) {
      log.warn(`GET ${path} failed`, { code: e.code ?? e.message });
    }
    await new Promise((r) => setTimeout(r, interval));
  }
  log.info('client done');
}
