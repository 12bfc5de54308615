import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startRelay, type Relay } from '../../relay/index.js';
import { silentLogger } from '../../relay/log.js';
import { isManifestError, parseManifest } from '../../relay/manifest.js';
import type { Launch } from '../../relay/protocol.js';
import type { HostInstance, Provider } from '../../relay/provider.js';
import { SYN } from '../../netstack/wire/tcp.js';
import { joinRelay, type TestHost } from '../support/relay-client.js';
import { tcpPacket } from '../support/relay-packets.js';
import { skipOrFail } from '../support/require-all.js';

const SECRET = 'dashboard-test-secret';
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

/** Hosts join as raw ws test hosts; `broken` fails to start. */
class JoiningProvider implements Provider {
  readonly name = 'local';
  readonly hosts: TestHost[] = [];
  async start(launch: Launch): Promise<HostInstance> {
    if (launch.host === 'broken') throw new Error('no capacity for broken');
    const h = await joinRelay(launch.relay, launch.token);
    this.hosts.push(h);
    let finish!: (r: { code: number | null; reason: string }) => void;
    const exited = new Promise<{ code: number | null; reason: string }>((r) => (finish = r));
    h.ws.on('close', () => finish({ code: 0, reason: 'exit' }));
    return { exited, stop: async () => h.ws.terminate() };
  }
}

describe('relay dashboard in headless Chromium', function () {
  this.timeout(60_000);
  let relay: Relay | undefined;
  let client: TestHost | undefined;
  let browser: import('puppeteer-core').Browser | undefined;

  before(async function () {
    if (CHROMIUM === undefined) skipOrFail(this, 'no Chromium (Debian package chromium)');
    const manifest = parseManifest('hosts:\n  web:\n    run: ./web.js\n    address: 10.77.0.10\n  broken:\n    run: ./broken.js\n    address: 10.77.0.11\n', '/tmp');
    if (isManifestError(manifest)) throw new Error(manifest.message);
    relay = await startRelay({ manifest, listen: { host: '127.0.0.1', port: 0 }, secret: SECRET, logger: silentLogger, providers: { local: new JoiningProvider() }, limits: { tickMs: 20 } });
    const puppeteer = (await import('puppeteer-core')).default;
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });

  after(async () => {
    await browser?.close();
    await client?.close();
    await relay?.close();
  });

  it('asks for a token, refuses a bad one, lists the hosts, and shows a start within a second', async () => {
    const page = await browser!.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(relay!.httpUrl + '/', { waitUntil: 'load' });
    await page.waitForSelector('#login:not([hidden])');

    await page.type('#token', relay!.mintToken('web', 60));
    await page.click('#login button');
    await page.waitForFunction(`(document.getElementById('loginError')?.textContent ?? '').includes('refused')`, { timeout: 5000 });

    await page.evaluate(`document.getElementById('token').value = ''`);
    await page.type('#token', relay!.mintToken('@admin', 60));
    await page.click('#login button');
    await page.waitForSelector('#hosts tbody tr[data-host="web"]', { timeout: 5000 });
    const listed = await page.$$eval('#hosts tbody tr', (rows) => rows.map((r) => r.getAttribute('data-host')));
    assert.deepEqual(listed, ['web', 'broken']);
    assert.equal(await page.$eval('#hosts tr[data-host="web"] .state', (e) => e.textContent), 'cold');

    client = await joinRelay(relay!.url, relay!.mintToken('client', 60));
    await page.waitForSelector('#hosts tbody tr[data-host="client"]', { timeout: 3000 });
    const t0 = Date.now();
    client.send(tcpPacket(client.address, '10.77.0.10', 40000, 80, SYN, new Uint8Array(100)));
    await page.waitForSelector('.ev[data-type="started"][data-host="web"]', { timeout: 1000 });
    const shownMs = Date.now() - t0;
    assert.ok(shownMs < 1000, `start shown after ${shownMs} ms`);
    await page.waitForFunction(`document.querySelector('#hosts tr[data-host="web"] .state')?.textContent === 'running'`, { timeout: 3000 });

    client.send(tcpPacket(client.address, '10.77.0.11', 40001, 80, SYN));
    await page.waitForSelector('.ev[data-type="failed"][data-host="broken"]', { timeout: 3000 });
    await page.waitForFunction(`[...document.querySelectorAll('#drops td')].some((td) => td.textContent === 'start-failed')`, { timeout: 3000 });
    await page.waitForFunction(`[...document.querySelectorAll('#flows td')].some((td) => td.textContent?.endsWith(':40000'))`, { timeout: 3000 });
    assert.match(await page.$eval('#hosts tr[data-host="broken"] td.reason', (e) => e.textContent ?? ''), /failed: provider local: no capacity for broken/);

    const shot = process.env.IMACH_DASHBOARD_SCREENSHOT;
    if (shot !== undefined) await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });
});
