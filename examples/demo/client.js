// client: GETs pages from web once a second with the global fetch, prints what it got,
// pauses (so the other hosts go idle and are released), does a few more, and exits.
// An ordinary Node program: `node client.js` works the same against a local web.

const base = process.env.WEB_URL ?? 'http://web';
const requests = Number(process.env.REQUESTS ?? 10);
const interval = Number(process.env.INTERVAL_MS ?? 1000);
const pauseAfter = Number(process.env.PAUSE_AFTER ?? 0);
const pauseMs = Number(process.env.PAUSE_MS ?? 0);
const paths = ['/', '/count', '/primes?n=200000', '/count'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (let i = 0; i < requests; i++) {
  if (pauseAfter > 0 && i === pauseAfter) {
    console.log(`pausing ${pauseMs / 1000}s: watch the other hosts get released`);
    await sleep(pauseMs);
  }
  const path = paths[i % paths.length];
  const t0 = Date.now();
  try {
    const res = await fetch(base + path);
    console.log(`GET ${path} -> ${res.status} ${(await res.text()).trim()} (${Date.now() - t0} ms)`);
  } catch (e) {
    console.log(`GET ${path} failed: ${e.cause?.code ?? e.message}`);
  }
  await sleep(interval);
}
console.log('client done');
