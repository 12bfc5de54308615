import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTokenError, loadOrCreateSecret, mintToken, verifyToken } from '../../relay/auth.js';
import { peekTokenHost } from '../../relay/protocol.js';

describe('relay tokens', () => {
  const secret = 'test-secret-0123456789';

  it('verifies a valid token and returns its claims', () => {
    const now = Date.now();
    const t = mintToken(secret, 'web', 60, now);
    assert.match(t, /^imach1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const c = verifyToken(secret, t, now);
    assert.ok(!isTokenError(c));
    assert.equal(c.h, 'web');
    assert.equal(c.exp - c.iat, 60);
    assert.equal(peekTokenHost(t), 'web');
  });

  it('refuses a token signed with another secret as forged', () => {
    const t = mintToken('other-secret', 'web', 60);
    const r = verifyToken(secret, t);
    assert.ok(isTokenError(r));
    assert.equal(r.code, 'forged');
  });

  it('refuses a token whose claims were changed to another host as forged', () => {
    const t = mintToken(secret, 'web', 60);
    const [p, , mac] = t.split('.');
    const claims = JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()) as Record<string, unknown>;
    claims.h = 'db';
    const swapped = `${p}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${mac}`;
    const r = verifyToken(secret, swapped);
    assert.ok(isTokenError(r));
    assert.equal(r.code, 'forged');
  });

  it('refuses an expired token', () => {
    const issued = Date.now() - 120_000;
    const t = mintToken(secret, 'web', 60, issued);
    const r = verifyToken(secret, t);
    assert.ok(isTokenError(r));
    assert.equal(r.code, 'expired');
    assert.ok(!isTokenError(verifyToken(secret, t, issued + 59_000)));
  });

  it('refuses missing and malformed tokens without throwing', () => {
    for (const t of [undefined, null, '']) {
      const r = verifyToken(secret, t);
      assert.ok(isTokenError(r) && r.code === 'missing');
    }
    for (const t of ['x', 'imach1.a', 'imach2.a.b', 'imach1.a.b.c', 'imach1.!!.b', 'a'.repeat(5000)]) {
      const r = verifyToken(secret, t);
      assert.ok(isTokenError(r) && r.code === 'malformed', `${t.slice(0, 20)} -> ${JSON.stringify(r)}`);
    }
  });

  it('creates the secret once with mode 0600 and keeps it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imach-secret-'));
    const saved = process.env.IMACH_SECRET;
    delete process.env.IMACH_SECRET;
    try {
      const state = join(dir, '.imach');
      const a = await loadOrCreateSecret(state);
      const b = await loadOrCreateSecret(state);
      assert.equal(a, b);
      assert.ok(a.length >= 32);
      assert.equal((await stat(join(state, 'secret'))).mode & 0o777, 0o600);
      assert.equal((await readFile(join(state, 'secret'), 'utf8')).trim(), a);
      process.env.IMACH_SECRET = 'from-env';
      assert.equal(await loadOrCreateSecret(state), 'from-env');
    } finally {
      if (saved === undefined) delete process.env.IMACH_SECRET;
      else process.env.IMACH_SECRET = saved;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
