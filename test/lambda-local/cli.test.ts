// `imach lambda-local` as a program: serves the SDK, prints function output, and ends
// its environments on SIGTERM.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateFunctionCommand, GetFunctionCommand, InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { TEST_ROLE, payloadJson, processGone, zipOf } from '../support/lambda-local-fixture.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

describe('lambda-local: imach lambda-local', function () {
  this.timeout(30_000);

  it('serves the Lambda API on --listen, prints [fn] output, and on SIGTERM exits 0 leaving no environment', async () => {
    const child = spawn(process.execPath, [CLI, 'lambda-local', '--listen', '127.0.0.1:0', '--idle', '10m'], {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    const kill = setTimeout(() => child.kill('SIGKILL'), 25_000);
    let client: LambdaClient | undefined;
    try {
      const end = Date.now() + 10_000;
      while (!/Lambda API on (http:\/\/\S+)/.test(out) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const url = /Lambda API on (http:\/\/\S+)/.exec(out)?.[1];
      assert.ok(url, out);
      client = new LambdaClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 });
      await client.send(
        new CreateFunctionCommand({
          FunctionName: 'cli',
          Runtime: 'nodejs22.x',
          Role: TEST_ROLE,
          Handler: 'index.handler',
          Code: { ZipFile: zipOf({ 'index.mjs': `export const handler = async () => { console.log('said by cli fn'); return process.pid; };\n` }) },
        }),
      );
      let pid = 0;
      for (let i = 0; i < 100 && !pid; i++) {
        try {
          pid = payloadJson((await client.send(new InvokeCommand({ FunctionName: 'cli' }))).Payload) as number;
        } catch (err) {
          if ((err as Error).name !== 'ResourceConflictException') throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      assert.ok(pid > 0);
      assert.match(out, /\[cli\] \S+\t[0-9a-f-]{36}\tINFO\tsaid by cli fn/);
      assert.match(out, /\[cli\] REPORT RequestId: /);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
      assert.ok(processGone(pid), 'the environment ended with the command');
    } finally {
      client?.destroy();
      // SIGTERM first, so a failed assertion does not leave the command's environments behind
      child.kill('SIGTERM');
      await exited;
      clearTimeout(kill);
    }
  });

  it('killed with SIGKILL, its watchdog still ends the frozen environments and removes the unpacked code', async () => {
    const child = spawn(process.execPath, [CLI, 'lambda-local', '--listen', '127.0.0.1:0', '--quiet'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    let client: LambdaClient | undefined;
    try {
      const end = Date.now() + 10_000;
      while (!/Lambda API on (http:\/\/\S+)/.test(out) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const url = /Lambda API on (http:\/\/\S+)/.exec(out)?.[1];
      assert.ok(url, out);
      client = new LambdaClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 });
      await client.send(
        new CreateFunctionCommand({
          FunctionName: 'k',
          Runtime: 'nodejs20.x',
          Role: TEST_ROLE,
          Handler: 'index.handler',
          Code: { ZipFile: zipOf({ 'index.mjs': `export const handler = async () => process.pid;\n` }) },
        }),
      );
      let pid = 0;
      for (let i = 0; i < 100 && !pid; i++) {
        try {
          pid = payloadJson((await client.send(new InvokeCommand({ FunctionName: 'k' }))).Payload) as number;
        } catch (err) {
          if ((err as Error).name !== 'ResourceConflictException') throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const codeDir = ((await client.send(new GetFunctionCommand({ FunctionName: 'k' }))).Code?.Location ?? '').slice('file://'.length);
      assert.ok(pid > 0 && existsSync(codeDir));
      child.kill('SIGKILL');
      await exited;
      const until = Date.now() + 5000;
      while ((!processGone(pid) || existsSync(dirname(codeDir))) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      assert.ok(processGone(pid), 'the frozen environment ended');
      assert.equal(existsSync(dirname(codeDir)), false, 'the unpacked code removed');
    } finally {
      client?.destroy();
      child.kill('SIGKILL');
      await exited;
    }
  });

  it('--help prints its usage and exits 0, and the command list names it', async () => {
    for (const [args, pattern] of [
      [['lambda-local', '--help'], /^usage: imach lambda-local\b/],
      [['--help'], /^  lambda-local\b/m],
    ] as const) {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      assert.equal(code, 0);
      assert.match(out, pattern);
    }
  });

  it('refuses a bad flag with exit code 2', async () => {
    const child = spawn(process.execPath, [CLI, 'lambda-local', '--account-concurrency', 'lots'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    assert.equal(code, 2);
    assert.match(err, /--account-concurrency must be a positive integer/);
  });
});
