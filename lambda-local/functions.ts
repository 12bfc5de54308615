// Function records and the checks of CreateFunction / UpdateFunction* requests, with the
// service's constraints and messages; the configuration as GetFunctionConfiguration shows it.

import { createHash, randomUUID } from 'node:crypto';
import { LambdaApiError, invalidParameter, validation } from './errors.js';

export const LATEST = '$LATEST';
/** Lambda's quota on a function's environment variables (keys and values). */
const MAX_ENV_BYTES = 4096;
/** Runtimes lambda-local can run: Node.js through the project's Runtime API client, or a `bootstrap`. */
export const NODE_RUNTIMES = ['nodejs18.x', 'nodejs20.x', 'nodejs22.x', 'nodejs24.x'];
export const CUSTOM_RUNTIMES = ['provided', 'provided.al2', 'provided.al2023'];
/** Keys Lambda sets itself; a function may not set them (Lambda's list of reserved keys). */
const RESERVED_ENV = [
  '_HANDLER', '_X_AMZN_TRACE_ID', 'AWS_DEFAULT_REGION', 'AWS_REGION', 'AWS_EXECUTION_ENV', 'AWS_LAMBDA_FUNCTION_NAME',
  'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'AWS_LAMBDA_FUNCTION_VERSION', 'AWS_LAMBDA_INITIALIZATION_TYPE',
  'AWS_LAMBDA_LOG_GROUP_NAME', 'AWS_LAMBDA_LOG_STREAM_NAME', 'AWS_ACCESS_KEY', 'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_LAMBDA_RUNTIME_API', 'LAMBDA_TASK_ROOT', 'LAMBDA_RUNTIME_DIR',
];
const NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
const ROLE_PATTERN = /^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role\/?[a-zA-Z_0-9+=,.@\-_/]+$/;
const ENV_KEY_PATTERN = /^[a-zA-Z]([a-zA-Z0-9_])+$/;

export type FunctionState = 'Pending' | 'Active' | 'Failed';
export type UpdateStatus = 'InProgress' | 'Successful' | 'Failed';

export interface FunctionCode {
  /** Folder the environments run in (LAMBDA_TASK_ROOT). */
  dir: string;
  /** True when lambda-local unpacked it and removes it once unused. */
  owned: boolean;
  size: number;
  sha256: string;
}

export interface EventInvokeConfig {
  maximumRetryAttempts: number;
  maximumEventAgeInSeconds: number;
  lastModified: number;
}

export interface FunctionRecord {
  name: string;
  arn: string;
  runtime: string;
  handler: string;
  role: string;
  description: string;
  timeout: number;
  memorySize: number;
  architectures: string[];
  environment: Record<string, string>;
  code: FunctionCode;
  revisionId: string;
  lastModified: string;
  state: FunctionState;
  stateReason?: string;
  stateReasonCode?: string;
  lastUpdateStatus?: UpdateStatus;
  lastUpdateStatusReason?: string;
  lastUpdateStatusReasonCode?: string;
  /** Bumped by every code or configuration change; environments of older generations are retired. */
  generation: number;
  reservedConcurrency: number | null;
  eventInvokeConfig: EventInvokeConfig | null;
}

/** The configuration members CreateFunction and UpdateFunctionConfiguration share. */
export interface ConfigurationInput {
  Runtime?: unknown;
  Handler?: unknown;
  Role?: unknown;
  Description?: unknown;
  Timeout?: unknown;
  MemorySize?: unknown;
  Environment?: unknown;
  Architectures?: unknown;
  PackageType?: unknown;
}

export type ConfigurationPatch = Partial<
  Pick<FunctionRecord, 'runtime' | 'handler' | 'role' | 'description' | 'timeout' | 'memorySize' | 'environment' | 'architectures'>
>;

/** Lambda's timestamp format: 2024-01-31T12:00:00.000+0000. */
export function lambdaTimestamp(ms = Date.now()): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

export function newRevisionId(): string {
  return randomUUID();
}

export function sha256Base64(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('base64');
}

export function checkFunctionName(name: unknown): string | LambdaApiError {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    return validation(name ?? 'null', 'functionName', 'Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+ and have length less than or equal to 64');
  }
  return name;
}

/** Check the members present in `input`; `creating` makes Role, Runtime and Handler required. */
export function checkConfiguration(input: ConfigurationInput, creating: boolean): ConfigurationPatch | LambdaApiError {
  const patch: ConfigurationPatch = {};
  if (input.PackageType !== undefined && input.PackageType !== 'Zip') {
    return invalidParameter(`lambda-local supports only PackageType Zip (got ${String(input.PackageType)})`);
  }
  if (input.Role !== undefined || creating) {
    if (typeof input.Role !== 'string' || !ROLE_PATTERN.test(input.Role)) {
      return validation(input.Role ?? 'null', 'role', 'Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+');
    }
    patch.role = input.Role;
  }
  if (input.Runtime !== undefined || creating) {
    const r = input.Runtime;
    if (typeof r !== 'string') return invalidParameter('Runtime is required for .zip deployment packages.');
    if (!NODE_RUNTIMES.includes(r) && !CUSTOM_RUNTIMES.includes(r)) {
      return invalidParameter(`The runtime parameter of ${r} is not supported by lambda-local (it runs ${[...NODE_RUNTIMES, ...CUSTOM_RUNTIMES].join(', ')}).`);
    }
    patch.runtime = r;
  }
  if (input.Handler !== undefined || creating) {
    const h = input.Handler;
    const custom = typeof patch.runtime === 'string' && CUSTOM_RUNTIMES.includes(patch.runtime);
    if (h === undefined && custom) patch.handler = '';
    else if (typeof h !== 'string' || h.length > 128 || !/^[^\s]+$/.test(h)) {
      return validation(h ?? 'null', 'handler', 'Member must satisfy regular expression pattern: [^\\s]+ and have length less than or equal to 128');
    } else patch.handler = h;
  }
  if (input.Description !== undefined) {
    if (typeof input.Description !== 'string' || input.Description.length > 256) {
      return validation(input.Description, 'description', 'Member must have length less than or equal to 256');
    }
    patch.description = input.Description;
  }
  if (input.Timeout !== undefined) {
    const t = input.Timeout;
    if (!Number.isInteger(t) || (t as number) < 1) return validation(t, 'timeout', 'Member must have value greater than or equal to 1');
    if ((t as number) > 900) return validation(t, 'timeout', 'Member must have value less than or equal to 900');
    patch.timeout = t as number;
  }
  if (input.MemorySize !== undefined) {
    const m = input.MemorySize;
    if (!Number.isInteger(m) || (m as number) < 128) return validation(m, 'memorySize', 'Member must have value greater than or equal to 128');
    if ((m as number) > 10240) return validation(m, 'memorySize', 'Member must have value less than or equal to 10240');
    patch.memorySize = m as number;
  }
  if (input.Architectures !== undefined) {
    const a = input.Architectures;
    if (!Array.isArray(a) || a.length !== 1) return validation(a, 'architectures', 'Member must have length less than or equal to 1 and greater than or equal to 1');
    if (a[0] !== 'x86_64' && a[0] !== 'arm64') {
      return validation(a, 'architectures', 'Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]');
    }
    patch.architectures = [a[0]];
  }
  if (input.Environment !== undefined) {
    const env = checkEnvironment(input.Environment);
    if (env instanceof LambdaApiError) return env;
    patch.environment = env;
  }
  return patch;
}

function checkEnvironment(input: unknown): Record<string, string> | LambdaApiError {
  const vars = typeof input === 'object' && input !== null ? (input as { Variables?: unknown }).Variables : undefined;
  if (vars === undefined || vars === null) return {};
  if (typeof vars !== 'object' || Array.isArray(vars)) return invalidParameter('Environment.Variables must be a map of strings');
  const out: Record<string, string> = {};
  const reserved: string[] = [];
  for (const [k, v] of Object.entries(vars as Record<string, unknown>)) {
    if (!ENV_KEY_PATTERN.test(k)) {
      return validation(k, 'environment.variables', 'Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+');
    }
    if (typeof v !== 'string') return invalidParameter(`Environment variable ${k} must be a string`);
    if (RESERVED_ENV.includes(k)) reserved.push(k);
    out[k] = v;
  }
  if (reserved.length > 0) {
    return invalidParameter(
      'Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: ' +
        reserved.join(', '),
    );
  }
  const measured = JSON.stringify(out);
  if (Buffer.byteLength(measured) > MAX_ENV_BYTES) {
    return invalidParameter(
      `Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: ${measured.slice(0, 200)}`,
    );
  }
  return out;
}

/** FunctionConfiguration as the API returns it. */
export function functionConfiguration(fn: FunctionRecord): Record<string, unknown> {
  const c: Record<string, unknown> = {
    FunctionName: fn.name,
    FunctionArn: fn.arn,
    Runtime: fn.runtime,
    Role: fn.role,
    Handler: fn.handler,
    CodeSize: fn.code.size,
    Description: fn.description,
    Timeout: fn.timeout,
    MemorySize: fn.memorySize,
    LastModified: fn.lastModified,
    CodeSha256: fn.code.sha256,
    Version: LATEST,
    Environment: { Variables: fn.environment },
    TracingConfig: { Mode: 'PassThrough' },
    RevisionId: fn.revisionId,
    State: fn.state,
    PackageType: 'Zip',
    Architectures: fn.architectures,
    EphemeralStorage: { Size: 512 },
    SnapStart: { ApplyOn: 'None', OptimizationStatus: 'Off' },
    LoggingConfig: { LogFormat: 'Text', LogGroup: `/aws/lambda/${fn.name}` },
  };
  if (fn.stateReason) c.StateReason = fn.stateReason;
  if (fn.stateReasonCode) c.StateReasonCode = fn.stateReasonCode;
  if (fn.lastUpdateStatus) c.LastUpdateStatus = fn.lastUpdateStatus;
  if (fn.lastUpdateStatusReason) c.LastUpdateStatusReason = fn.lastUpdateStatusReason;
  if (fn.lastUpdateStatusReasonCode) c.LastUpdateStatusReasonCode = fn.lastUpdateStatusReasonCode;
  return c;
}
