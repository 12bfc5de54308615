// lambda-local for tests: the emulator on a free port, the real SDK client pointed at it
// (fake static credentials, no retries), and functions built from source text.

import {
  CreateFunctionCommand,
  GetFunctionConfigurationCommand,
  LambdaClient,
  type CreateFunctionCommandInput,
} from '@aws-sdk/client-lambda';
import { startLambdaLocal, writeZip, type LambdaLocal, type LambdaLocalOptions } from '../../lambda-local/index.js';

export const TEST_ROLE = 'arn:aws:iam::123456789012:role/lambda-test';

export interface LambdaFixture {
  local: LambdaLocal;
  client: LambdaClient;
  /** Function output lines, `name: line`. */
  output: string[];
  close(): Promise<void>;
}

export async function startLambdaFixture(options: LambdaLocalOptions = {}): Promise<LambdaFixture> {
  const output: string[] = [];
  const local = await startLambdaLocal({
    port: 0,
    stateTransitionMs: 100,
    output: (fn, line) => {
      if (output.length < 5000) output.push(`${fn}: ${line}`);
      if (process.env.IMACH_E2E_VERBOSE === '1') process.stderr.write(`[${fn}] ${line}\n`);
    },
    ...options,
  });
  const client = new LambdaClient({
    endpoint: local.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' },
    maxAttempts: 1,
  });
  return {
    local,
    client,
    output,
    async close() {
      client.destroy();
      await local.close();
    },
  };
}

/** A zip of `files` (name -> source); names listed in `executable` get mode 0755. */
export function zipOf(files: Record<string, string>, executable: string[] = []): Uint8Array {
  return new Uint8Array(
    writeZip(Object.entries(files).map(([name, src]) => ({ name, data: Buffer.from(src), mode: executable.includes(name) ? 0o755 : 0o644 }))),
  );
}

/** CreateFunction with a Node.js handler `index.handler` from `source`, then wait until Active. */
export async function createNodeFunction(
  f: LambdaFixture,
  name: string,
  source: string,
  extra: Partial<CreateFunctionCommandInput> = {},
): Promise<void> {
  await f.client.send(
    new CreateFunctionCommand({
      FunctionName: name,
      Runtime: 'nodejs20.x',
      Role: TEST_ROLE,
      Handler: 'index.handler',
      Code: { ZipFile: zipOf({ 'index.mjs': source }) },
      ...extra,
    }),
  );
  await waitActive(f, name);
}

/** Poll GetFunctionConfiguration every 50 ms until State is Active and no update is in progress. */
export async function waitActive(f: LambdaFixture, name: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const c = await f.client.send(new GetFunctionConfigurationCommand({ FunctionName: name }));
    if (c.State === 'Active' && c.LastUpdateStatus === 'Successful') return;
    if (Date.now() > end) throw new Error(`function ${name} not active: ${c.State}/${c.LastUpdateStatus}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function payloadText(p: Uint8Array | undefined): string {
  return p ? Buffer.from(p).toString('utf8') : '';
}

export function payloadJson(p: Uint8Array | undefined): unknown {
  return JSON.parse(payloadText(p));
}

/** True if `pid` is gone (or a zombie no longer running). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}
