// worker: counts primes for web over UDP on port 9000. A request is JSON {id, n}; the
// reply is {id, n, primes} with the number of primes below n (capped).

import dgram from 'node:dgram';

const MAX_N = 2_000_000;

function countPrimes(n) {
  const sieve = new Uint8Array(n);
  let count = 0;
  for (let i = 2; i < n; i++) {
    if (sieve[i]) continue;
    count++;
    for (let j = i * i; j < n; j += i) sieve[j] = 1;
  }
  return count;
}

const sock = dgram.createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  let req;
  try {
    req = JSON.parse(msg.toString());
  } catch {
    return;
  }
  const n = Math.min(MAX_N, Math.max(0, Number(req.n) | 0));
  sock.send(JSON.stringify({ id: req.id, n, primes: countPrimes(n) }), rinfo.port, rinfo.address);
});
sock.bind(9000, () => console.log('worker listening on 9000'));
process.on('SIGTERM', () => sock.close());
