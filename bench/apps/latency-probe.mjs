// One keep-alive connection, sequential GETs: latency percentiles in microseconds (finer
// than autocannon's whole milliseconds). argv: url, requests. Prints one JSON line.
import http from 'node:http';

const [url, n = '2000'] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = () =>
  new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
      .on('error', reject);
  });
for (let i = 0; i < 200; i++) await get();
const us = [];
const t0 = performance.now();
for (let i = 0; i < Number(n); i++) {
  const t = performance.now();
  await get();
  us.push((performance.now() - t) * 1000);
}
const secs = (performance.now() - t0) / 1000;
us.sort((a, b) => a - b);
const at = (q) => us[Math.min(us.length - 1, Math.floor(q * us.length))];
console.log(JSON.stringify({ rps: us.length / secs, p50: at(0.5), p90: at(0.9), p99: at(0.99) }));
agent.destroy();
