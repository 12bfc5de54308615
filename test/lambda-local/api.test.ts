// The Lambda API of lambda-local through the real @aws-sdk/client-lambda: function
// lifecycle, states and waiters, and the service's error shapes.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  InvokeCommand,
  PutFunctionConcurrencyCommand,
  PutFunctionEventInvokeConfigCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
  type LambdaServiceException,
} from '@aws-sdk/client-lambda';
import { TEST_ROLE, createNodeFunction, payloadJson, startLambdaFixture, waitActive, zipOf, type LambdaFixture } from '../support/lambda-local-fixture.js';

const ECHO = `export const handler = async (event) => ({ echo: event, env: process.env.GREETING ?? null });\n`;

async function rejectsWith(p: Promise<unknown>, name: string, status: number): Promise<LambdaServiceException> {
  try {
    await p;
  } catch (err) {
    const e = err as LambdaServiceException;
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    assert.equal(e.$metadata.httpStatusCode, status);
    return e;
  }
  assert.fail(`expected ${name}`);
}

describe('lambda-local: the Lambda API through the SDK', function () {
  this.timeout(30_000);
  let f: LambdaFixture;

  before(async () => {
    f = await startLambdaFixture({ accountConcurrency: 20, minUnreservedConcurrency: 5 });
  });
  after(async () => {
    await f.close();
  });

  it('creates a function Pending, the ActiveV2 waiter sees it Active, and GetFunction shows its configuration', async () => {
    const created = await f.client.send(
      new CreateFunctionCommand({
        FunctionName: 'life',
        Runtime: 'nodejs22.x',
        Role: TEST_ROLE,
        Handler: 'index.handler',
        Code: { ZipFile: zipOf({ 'index.mjs': ECHO }) },
        Environment: { Variables: { GREETING: 'hello' } },
        MemorySize: 256,
        Timeout: 7,
        Architectures: ['arm64'],
      }),
    );
    assert.equal(created.$metadata.httpStatusCode, 201);
    assert.equal(created.State, 'Pending');
    assert.equal(created.StateReasonCode, 'Creating');
    assert.equal(created.FunctionArn, 'arn:aws:lambda:us-east-1:123456789012:function:life');
    const waited = await waitUntilFunctionActiveV2({ client: f.client, maxWaitTime: 10, minDelay: 1 }, { FunctionName: 'life' });
    assert.equal(waited.state, 'SUCCESS');
    const got = await f.client.send(new GetFunctionCommand({ FunctionName: 'life' }));
    assert.equal(got.Configuration?.State, 'Active');
    assert.equal(got.Configuration?.LastUpdateStatus, 'Successful');
    assert.equal(got.Configuration?.MemorySize, 256);
    assert.equal(got.Configuration?.Timeout, 7);
    assert.deepEqual(got.Configuration?.Architectures, ['arm64']);
    assert.deepEqual(got.Configuration?.Environment?.Variables, { GREETING: 'hello' });
    assert.equal(got.Configuration?.Runtime, 'nodejs22.x');
    assert.equal(got.Code?.RepositoryType, 'S3');
    assert.match(got.Configuration?.CodeSha256 ?? '', /^[A-Za-z0-9+/]{43}=$/);
    const r = await f.client.send(new InvokeCommand({ FunctionName: 'life', Payload: Buffer.from('{"a":1}') }));
    assert.equal(r.StatusCode, 200);
    assert.equal(r.ExecutedVersion, '$LATEST');
    assert.deepEqual(payloadJson(r.Payload), { echo: { a: 1 }, env: 'hello' });
  });

  it('an update is InProgress (a second update is a 409), the UpdatedV2 waiter sees Successful, and new code runs', async () => {
    const before = await f.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'life' }));
    const upd = await f.client.send(
      new UpdateFunctionCodeCommand({ FunctionName: 'life', ZipFile: zipOf({ 'index.mjs': `export const handler = async () => 'v2';\n` }) }),
    );
    assert.equal(upd.LastUpdateStatus, 'InProgress');
    assert.notEqual(upd.CodeSha256, before.CodeSha256);
    await rejectsWith(
      f.client.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'life', Timeout: 5 })),
      'ResourceConflictException',
      409,
    );
    const waited = await waitUntilFunctionUpdatedV2({ client: f.client, maxWaitTime: 10, minDelay: 1 }, { FunctionName: 'life' });
    assert.equal(waited.state, 'SUCCESS');
    const r = await f.client.send(new InvokeCommand({ FunctionName: 'life' }));
    assert.equal(payloadJson(r.Payload), 'v2');
    const cfg = await f.client.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'life', Environment: { Variables: { MODE: 'b' } }, Timeout: 9 }));
    assert.equal(cfg.LastUpdateStatus, 'InProgress');
    await waitActive(f, 'life');
    const now = await f.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:life' }));
    assert.equal(now.Timeout, 9);
    assert.deepEqual(now.Environment?.Variables, { MODE: 'b' });
  });

  it('a stale RevisionId is a 412 PreconditionFailedException', async () => {
    await rejectsWith(
      f.client.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'life', Timeout: 4, RevisionId: '00000000-0000-0000-0000-000000000000' })),
      'PreconditionFailedException',
      412,
    );
  });

  it('DryRun answers 204 for an existing function and 404 for a missing one', async () => {
    const r = await f.client.send(new InvokeCommand({ FunctionName: 'life', InvocationType: 'DryRun' }));
    assert.equal(r.StatusCode, 204);
    await rejectsWith(f.client.send(new InvokeCommand({ FunctionName: 'nope', InvocationType: 'DryRun' })), 'ResourceNotFoundException', 404);
  });

  it('a missing function is a 404 ResourceNotFoundException with its ARN, for every call', async () => {
    const e = await rejectsWith(f.client.send(new GetFunctionCommand({ FunctionName: 'nope' })), 'ResourceNotFoundException', 404);
    assert.equal(e.message, 'Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope');
    assert.equal((e as unknown as { Type: string }).Type, 'User');
    await rejectsWith(f.client.send(new InvokeCommand({ FunctionName: 'nope' })), 'ResourceNotFoundException', 404);
    await rejectsWith(f.client.send(new DeleteFunctionCommand({ FunctionName: 'nope' })), 'ResourceNotFoundException', 404);
    await rejectsWith(f.client.send(new PutFunctionConcurrencyCommand({ FunctionName: 'nope', ReservedConcurrentExecutions: 1 })), 'ResourceNotFoundException', 404);
    await rejectsWith(f.client.send(new InvokeCommand({ FunctionName: 'life', Qualifier: '7' })), 'ResourceNotFoundException', 404);
  });

  it('bad parameters are 400s: InvalidParameterValueException (bad zip, reserved env key, no code) and ValidationException (ranges, names)', async () => {
    const base = { FunctionName: 'bad', Runtime: 'nodejs20.x' as const, Role: TEST_ROLE, Handler: 'index.handler' };
    let e = await rejectsWith(
      f.client.send(new CreateFunctionCommand({ ...base, Code: { ZipFile: new Uint8Array([1, 2, 3, 4]) } })),
      'InvalidParameterValueException',
      400,
    );
    assert.match(e.message, /Could not unzip uploaded file/);
    e = await rejectsWith(
      f.client.send(new CreateFunctionCommand({ ...base, Code: { ZipFile: zipOf({ 'index.mjs': ECHO }) }, Environment: { Variables: { AWS_REGION: 'x' } } })),
      'InvalidParameterValueException',
      400,
    );
    assert.match(e.message, /reserved keys .* AWS_REGION/);
    await rejectsWith(f.client.send(new CreateFunctionCommand({ ...base, Code: {} })), 'InvalidParameterValueException', 400);
    e = await rejectsWith(
      f.client.send(new CreateFunctionCommand({ ...base, Code: { ZipFile: zipOf({ 'index.mjs': ECHO }) }, MemorySize: 64 })),
      'ValidationException',
      400,
    );
    assert.match(e.message, /memorySize.*greater than or equal to 128/);
    await rejectsWith(f.client.send(new CreateFunctionCommand({ ...base, Code: { ZipFile: zipOf({ 'index.mjs': ECHO }) }, Timeout: 901 })), 'ValidationException', 400);
    await rejectsWith(f.client.send(new CreateFunctionCommand({ ...base, FunctionName: 'bad name!', Code: { ZipFile: zipOf({}) } })), 'ValidationException', 400);
    await rejectsWith(f.client.send(new CreateFunctionCommand({ ...base, Role: 'not-a-role', Code: { ZipFile: zipOf({}) } })), 'ValidationException', 400);
    await rejectsWith(
      f.client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'life', MaximumRetryAttempts: 3 })),
      'ValidationException',
      400,
    );
    await rejectsWith(f.client.send(new PutFunctionConcurrencyCommand({ FunctionName: 'life', ReservedConcurrentExecutions: 16 })), 'InvalidParameterValueException', 400);
    const invalidJson = await rejectsWith(f.client.send(new InvokeCommand({ FunctionName: 'life', Payload: Buffer.from('{nope') })), 'InvalidRequestContentException', 400);
    assert.match(invalidJson.message, /Could not parse request body into json/);
    await assert.rejects(f.client.send(new GetFunctionCommand({ FunctionName: 'bad' })), { name: 'ResourceNotFoundException' });
  });

  it('creating an existing function is a 409 ResourceConflictException, and invoking a Pending one too', async () => {
    await rejectsWith(
      f.client.send(new CreateFunctionCommand({ FunctionName: 'life', Runtime: 'nodejs20.x', Role: TEST_ROLE, Handler: 'index.handler', Code: { ZipFile: zipOf({ 'index.mjs': ECHO }) } })),
      'ResourceConflictException',
      409,
    );
    await f.client.send(
      new CreateFunctionCommand({ FunctionName: 'pending', Runtime: 'nodejs20.x', Role: TEST_ROLE, Handler: 'index.handler', Code: { ZipFile: zipOf({ 'index.mjs': ECHO }) } }),
    );
    const e = await rejectsWith(f.client.send(new InvokeCommand({ FunctionName: 'pending' })), 'ResourceConflictException', 409);
    assert.match(e.message, /currently in the following state: Pending/);
    await waitActive(f, 'pending');
    await f.client.send(new DeleteFunctionCommand({ FunctionName: 'pending' }));
  });

  it('a payload over 6 MB (sync) or 256 KB (Event) is a 413 RequestEntityTooLargeException', async () => {
    const big = Buffer.from(JSON.stringify({ s: 'x'.repeat(6 * 1024 * 1024) }));
    let e = await rejectsWith(f.client.send(new InvokeCommand({ FunctionName: 'life', Payload: big })), 'RequestEntityTooLargeException', 413);
    assert.match(e.message, /6291456 bytes/);
    const mid = Buffer.from(JSON.stringify({ s: 'x'.repeat(300 * 1024) }));
    e = await rejectsWith(f.client.send(new InvokeCommand({ FunctionName: 'life', Payload: mid, InvocationType: 'Event' })), 'RequestEntityTooLargeException', 413);
    assert.match(e.message, /262144 bytes/);
    const ok = await f.client.send(new InvokeCommand({ FunctionName: 'life', Payload: mid }));
    assert.equal(ok.StatusCode, 200);
    assert.equal(ok.FunctionError, undefined);
  });

  it('PutFunctionConcurrency and PutFunctionEventInvokeConfig answer with what was set; GetFunction shows the reservation', async () => {
    const c = await f.client.send(new PutFunctionConcurrencyCommand({ FunctionName: 'life', ReservedConcurrentExecutions: 3 }));
    assert.equal(c.ReservedConcurrentExecutions, 3);
    const got = await f.client.send(new GetFunctionCommand({ FunctionName: 'life' }));
    assert.equal(got.Concurrency?.ReservedConcurrentExecutions, 3);
    const ev = await f.client.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'life', MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 }));
    assert.equal(ev.MaximumRetryAttempts, 0);
    assert.equal(ev.MaximumEventAgeInSeconds, 60);
    assert.match(ev.FunctionArn ?? '', /:function:life:\$LATEST$/);
  });

  it('a malformed request URL or an unknown path is answered, not a crash, and the API keeps serving', async () => {
    const { port } = new URL(f.local.url);
    for (const target of ['http://[', '/2015-03-31/nothing-here']) {
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect(Number(port), '127.0.0.1', () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString()));
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
      assert.match(answer, /^HTTP\/1\.1 (400|404) /, target);
    }
    const r = await f.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'life' }));
    assert.equal(r.FunctionName, 'life');
  });

  it('deletes a function (its warm environment ends) and it is gone afterwards', async () => {
    await createNodeFunction(f, 'doomed', ECHO);
    await f.client.send(new InvokeCommand({ FunctionName: 'doomed' }));
    const pidsBefore = f.local.environmentPids().length;
    const del = await f.client.send(new DeleteFunctionCommand({ FunctionName: 'doomed' }));
    assert.equal(del.$metadata.httpStatusCode, 204);
    assert.equal(f.local.environmentPids().length, pidsBefore - 1);
    await rejectsWith(f.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'doomed' })), 'ResourceNotFoundException', 404);
  });
});
