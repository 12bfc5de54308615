// Skipping a suite whose addon, privileges or tools are missing: with a reason on a
// developer machine, but a failure where IMACH_REQUIRE_ALL=1 (CI sets it in .ci/run), so a
// broken addon build or a missing package cannot turn the kernel interop suites green.

export const REQUIRE_ALL_ENV = 'IMACH_REQUIRE_ALL';

export function requireAll(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[REQUIRE_ALL_ENV] === '1';
}

/** Skip the test or hook of `ctx` saying why, or throw when every suite must run. */
export function skipOrFail(ctx: Mocha.Context, reason: string, env: NodeJS.ProcessEnv = process.env): never {
  if (requireAll(env)) throw new Error(`${REQUIRE_ALL_ENV}=1 and this suite cannot run: ${reason}`);
  process.stderr.write(`      skipped: ${reason}\n`);
  return ctx.skip();
}
