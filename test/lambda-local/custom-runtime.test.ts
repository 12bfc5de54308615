// A custom runtime (provided.al2023) in lambda-local: a `bootstrap` shell script that
// speaks the Runtime API with curl, as AWS's custom runtime tutorial builds one.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { CreateFunctionCommand, InvokeCommand } from '@aws-sdk/client-lambda';
import { TEST_ROLE, payloadJson, payloadText, startLambdaFixture, waitActive, zipOf, type LambdaFixture } from '../support/lambda-local-fixture.js';
import { skipOrFail } from '../support/require-all.js';

// Written for this test: loop on `next`, call the handler function named by _HANDLER from
// the script _HANDLER names, post its output to `response`, or its stderr to `error`.
const BOOTSTRAP = `#!/bin/bash
set -eu
. "$LAMBDA_TASK_ROOT/$(echo "$_HANDLER" | cut -d. -f1).sh"
fn="$(echo "$_HANDLER" | cut -d. -f2)"
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
errfile="$LAMBDA_TASK_ROOT/.stderr"
while true; do
  headers="$(mktemp)"
  event="$(curl -sS -D "$headers" "$api/invocation/next")"
  id="$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d: -f2 | tr -d '[:space:]')"
  export DEADLINE_MS="$(grep -i '^lambda-runtime-deadline-ms:' "$headers" | cut -d: -f2 | tr -d '[:space:]')"
  rm -f "$headers"
  if out="$("$fn" "$event" 2>"$errfile")"; then
    curl -sS -o /dev/null -X POST "$api/invocation/$id/response" -d "$out"
  else
    msg="$(tr -d '"\\\\\\n' < "$errfile" | head -c 200)"
    curl -sS -o /dev/null -X POST "$api/invocation/$id/error" -H 'Lambda-Runtime-Function-Error-Type: Shell.Error' \\
      -d "{\\"errorType\\":\\"Shell.Error\\",\\"errorMessage\\":\\"$msg\\"}"
  fi
done
`;

const FUNCTION_SH = `handler() {
  case "$1" in
    *fail*) echo "asked to fail" >&2; return 1 ;;
  esac
  echo "{\\"got\\":$1,\\"deadline\\":$DEADLINE_MS,\\"pid\\":$$,\\"fn\\":\\"$AWS_LAMBDA_FUNCTION_NAME\\"}"
}
`;

function hasCurl(): boolean {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pids whose process group is `pgid` (the environment's runtime and its children), with their states. */
function groupMembers(pgid: number): number[] {
  return groupStates(pgid).map(([pid]) => pid);
}

function groupStates(pgid: number): [number, string][] {
  const out: [number, string][] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') out.push([Number(d), fields[0]]);
    } catch {
      // exited while listing
    }
  }
  return out;
}

describe('lambda-local: a custom runtime (bootstrap with curl)', function () {
  this.timeout(30_000);
  let f: LambdaFixture;

  before(async function () {
    if (!hasCurl()) {
      skipOrFail(this, "curl is missing (Debian package curl): the custom runtime's bootstrap uses it");
    }
    f = await startLambdaFixture();
    await f.client.send(
      new CreateFunctionCommand({
        FunctionName: 'shell',
        Runtime: 'provided.al2023',
        Role: TEST_ROLE,
        Handler: 'function.handler',
        Code: { ZipFile: zipOf({ bootstrap: BOOTSTRAP, 'function.sh': FUNCTION_SH }, ['bootstrap']) },
        Timeout: 5,
      }),
    );
    await waitActive(f, 'shell');
  });
  after(async () => {
    await f?.close();
  });

  it('runs the bootstrap, hands it the event and deadline, and returns its response; warm and frozen between calls', async () => {
    const t0 = Date.now();
    const r = await f.client.send(new InvokeCommand({ FunctionName: 'shell', Payload: Buffer.from('{"n":7}') }));
    assert.equal(r.StatusCode, 200);
    assert.equal(r.FunctionError, undefined, payloadText(r.Payload));
    const p = payloadJson(r.Payload) as { got: unknown; deadline: number; pid: number; fn: string };
    assert.deepEqual(p.got, { n: 7 });
    assert.equal(p.fn, 'shell');
    assert.ok(p.deadline >= t0 + 4000 && p.deadline <= Date.now() + 5000, `deadline ${p.deadline}`);
    const [pid] = f.local.environmentPids();
    // frozen: the shell and the curl it waits on in `next` are all stopped
    const end = Date.now() + 5000;
    let states = groupStates(pid);
    while ((states.length < 2 || states.some(([, st]) => st !== 'T')) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
      states = groupStates(pid);
    }
    assert.ok(states.length >= 2 && states.every(([, st]) => st === 'T'), JSON.stringify(states));
    const r2 = await f.client.send(new InvokeCommand({ FunctionName: 'shell', Payload: Buffer.from('[1,2]') }));
    assert.deepEqual((payloadJson(r2.Payload) as { got: unknown }).got, [1, 2]);
    assert.deepEqual(f.local.environmentPids(), [pid]);
    assert.equal(f.local.stats().coldStarts, 1);
  });

  it('a failing handler is posted to the error endpoint and answered Unhandled', async () => {
    const r = await f.client.send(new InvokeCommand({ FunctionName: 'shell', Payload: Buffer.from('"fail"') }));
    assert.equal(r.FunctionError, 'Unhandled');
    assert.deepEqual(payloadJson(r.Payload), { errorType: 'Shell.Error', errorMessage: 'asked to fail' });
  });

  it('a missing bootstrap is Runtime.InvalidEntrypoint', async () => {
    await f.client.send(
      new CreateFunctionCommand({
        FunctionName: 'nobootstrap',
        Runtime: 'provided.al2023',
        Role: TEST_ROLE,
        Handler: 'function.handler',
        Code: { ZipFile: zipOf({ 'function.sh': FUNCTION_SH }) },
      }),
    );
    await waitActive(f, 'nobootstrap');
    const r = await f.client.send(new InvokeCommand({ FunctionName: 'nobootstrap' }));
    assert.equal(r.FunctionError, 'Unhandled');
    const p = payloadJson(r.Payload) as { errorType: string; errorMessage: string };
    assert.equal(p.errorType, 'Runtime.InvalidEntrypoint');
    assert.match(p.errorMessage, /^RequestId: [0-9a-f-]{36} Error: Couldn't find valid bootstrap\(s\): \[\/.*\/bootstrap\]$/);
  });

  it('a bootstrap without the executable bit is Runtime.InvalidEntrypoint, permission denied', async () => {
    await f.client.send(
      new CreateFunctionCommand({
        FunctionName: 'notexec',
        Runtime: 'provided.al2023',
        Role: TEST_ROLE,
        Handler: 'function.handler',
        Code: { ZipFile: zipOf({ bootstrap: BOOTSTRAP, 'function.sh': FUNCTION_SH }) },
      }),
    );
    await waitActive(f, 'notexec');
    const r = await f.client.send(new InvokeCommand({ FunctionName: 'notexec' }));
    assert.equal(r.FunctionError, 'Unhandled');
    const p = payloadJson(r.Payload) as { errorType: string; errorMessage: string };
    assert.equal(p.errorType, 'Runtime.InvalidEntrypoint');
    assert.match(p.errorMessage, /permission denied$/);
  });

  it('close() kills the whole process group: the shell and the curl waiting in next', async () => {
    const [pid] = f.local.environmentPids();
    assert.ok(groupMembers(pid).length >= 2, 'bootstrap and its curl');
    await f.close();
    assert.deepEqual(groupMembers(pid), []);
  });
});
