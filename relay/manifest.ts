// The application manifest (imach.yaml): network, relay listen address and hosts.

import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { LineCounter, isMap, isScalar, parseDocument, type Document, type YAMLError } from 'yaml';
import { formatAddress, isHostAddress, parseAddress, parseNetwork } from './address.js';
import { DEFAULT_NETWORK, type ProgramSpec } from './protocol.js';

export type ProviderName = 'local' | 'lambda';

export interface HostSpec {
  name: string;
  /** absolute path of the app module; '' for a `command:` host */
  run: string;
  /** a `command:` host's program (absent for a `run:` module) */
  program?: ProgramSpec;
  address: string;
  provider: ProviderName;
  /** null: never released (pinned) */
  idleMs: number | null;
  env: Record<string, string>;
  startTimeoutMs: number;
  /** a `provider: lambda` host's function (the `lambda:` defaults merged with its own `lambda:`) */
  lambda?: LambdaSpec;
  /** `perf: true`: the host's runtime answers iperf3 on port 5201 */
  perf?: boolean;
}

export type LambdaArchitecture = 'x86_64' | 'arm64';

/** Where and how a `provider: lambda` host runs. */
export interface LambdaSpec {
  /** function name (default `imach-<host>`) */
  function: string;
  region: string;
  /** Lambda API endpoint URL (default: AWS's own for the region); e.g. `imach lambda-local` */
  endpoint?: string;
  /** MB, 128..10240 */
  memory: number;
  /** seconds, 1..900: the longest one instance of the host lives */
  timeout: number;
  /** execution role ARN (needed by `imach deploy` to create the function) */
  role?: string;
  architecture: LambdaArchitecture;
}

export const LAMBDA_DEFAULTS = { region: 'us-east-1', memory: 512, timeout: 900, architecture: 'x86_64' as LambdaArchitecture };
const LAMBDA_KEYS = ['function', 'region', 'endpoint', 'memory', 'timeout', 'role', 'architecture'] as const;

export interface Manifest {
  /** the manifest file ('' when parsed from text without a path) */
  path: string;
  baseDir: string;
  network: string;
  prefixLength: number;
  gateway: string;
  relay: {
    listen: { host: string; port: number };
    /** per-host ingress limit (`relay.rate`, `relay.burst`); absent: the relay's defaults */
    limits?: { rateBytesPerSec?: number; rateBurstBytes?: number };
    /** `relay.tls`: PEM files (absolute paths) of the certificate and key; the relay serves wss:// */
    tls?: { cert: string; key: string };
    /** `relay.public`: the ws:// or wss:// URL (no path) Lambda hosts dial, when not relay.listen */
    public?: string;
  };
  hosts: HostSpec[];
}

export interface ManifestError {
  readonly manifestError: true;
  /** dotted path of the offending field, e.g. 'hosts.web.idle' */
  field: string;
  value: unknown;
  message: string;
}

export function isManifestError(v: unknown): v is ManifestError {
  return typeof v === 'object' && v !== null && (v as { manifestError?: unknown }).manifestError === true;
}

export const MANIFEST_DEFAULTS = {
  listen: { host: '127.0.0.1', port: 7000 },
  idleMs: 30_000,
  startTimeoutMs: 15_000,
  provider: 'local' as ProviderName,
};

const MAX_HOSTS = 4096;
const PROVIDERS: readonly ProviderName[] = ['local', 'lambda'];
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function isDnsLabel(name: string): boolean {
  return DNS_LABEL.test(name);
}

class Fail {
  constructor(readonly error: ManifestError) {}
}

function fail(field: string, value: unknown, message: string): never {
  throw new Fail({ manifestError: true, field, value, message: `${field}: ${message} (got ${show(value)})` });
}

/** A YAML syntax error at a line and column (1-based): nothing was read, so no value is shown. */
function failYaml(field: string, line: number, col: number, message: string): never {
  throw new Fail({ manifestError: true, field, value: { line, column: col }, message: `${field}: line ${line}, column ${col}: ${message}` });
}

/** The first YAML error, with its line and column; a duplicate key under `hosts` names the host. */
function yamlFailure(doc: Document, e: YAMLError, lines: LineCounter): never {
  const { line, col } = lines.linePos(e.pos[0]);
  if (e.code === 'DUPLICATE_KEY') {
    const hosts = doc.get('hosts', true);
    const dup = isMap(hosts) ? hosts.items.find((item) => isScalar(item.key) && item.key.range?.[0] === e.pos[0]) : undefined;
    if (dup !== undefined && isScalar(dup.key)) failYaml(`hosts.${String(dup.key.value)}`, line, col, 'duplicate host name');
    failYaml('yaml', line, col, 'duplicate key (map keys must be unique)');
  }
  failYaml('yaml', line, col, `not valid YAML: ${e.message.split('\n')[0]}`);
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? s.slice(0, 77) + '...' : s;
  } catch {
    return String(value);
  }
}

type Obj = Record<string, unknown>;
function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Obj, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail(field ? `${field}.${k}` : k, o[k], `unknown field (expected one of ${allowed.join(', ')})`);
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** '500ms', '30s', '5m', '1h' -> ms; 'never' -> null when allowNever. Returns a message on error. */
export function parseDuration(v: unknown, allowNever: boolean): number | null | string {
  if (allowNever && v === 'never') return null;
  if (typeof v !== 'string') return `expected a duration like '30s', '5m', '500ms'${allowNever ? " or 'never'" : ''}`;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(v.trim());
  if (m === null) return `expected a duration like '30s', '5m', '500ms'${allowNever ? " or 'never'" : ''}`;
  const ms = Math.round(Number(m[1]) * UNITS[m[2]]);
  if (ms <= 0) return 'a duration must be positive';
  if (ms > 7 * 24 * 3_600_000) return 'a duration must be at most 7 days';
  return ms;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3,
};

/** A size like '64MiB', '100MB', '1GB' or a plain byte count; with `perSecond`, '512MiB/s'. */
export function parseSize(v: unknown, perSecond: boolean): number | string {
  const want = perSecond ? "a rate like '100MB/s', '512MiB/s' or bytes per second" : "a size like '64MiB', '100MB' or bytes";
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : `${want}, positive`;
  if (typeof v !== 'string') return `expected ${want}`;
  const m = (perSecond ? /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\/s$/ : /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/).exec(v.trim());
  if (m === null) return `expected ${want}`;
  const n = Math.round(Number(m[1]) * SIZE_UNITS[m[2] ?? '']);
  return n > 0 && Number.isSafeInteger(n) ? n : `expected ${want}, positive`;
}

function size(v: unknown, field: string, perSecond: boolean): number {
  const r = parseSize(v, perSecond);
  if (typeof r === 'string') fail(field, v, r);
  return r;
}

function duration(v: unknown, field: string, allowNever: boolean): number | null {
  const r = parseDuration(v, allowNever);
  if (typeof r === 'string') fail(field, v, r);
  return r;
}

function parseListen(v: unknown, field: string): { host: string; port: number } {
  let host: unknown;
  let port: unknown;
  if (typeof v === 'string') {
    const i = v.lastIndexOf(':');
    if (i <= 0) fail(field, v, "expected 'host:port'");
    host = v.slice(0, i);
    port = /^\d+$/.test(v.slice(i + 1)) ? Number(v.slice(i + 1)) : v.slice(i + 1);
  } else if (typeof v === 'number') {
    host = MANIFEST_DEFAULTS.listen.host;
    port = v;
  } else if (isObj(v)) {
    checkKeys(v, field, ['host', 'port']);
    host = v.host ?? MANIFEST_DEFAULTS.listen.host;
    port = v.port ?? MANIFEST_DEFAULTS.listen.port;
  } else {
    fail(field, v, "expected 'host:port' or {host, port}");
  }
  if (typeof host !== 'string' || host.length === 0) fail(`${field}.host`, host, 'expected a host name or address');
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) fail(`${field}.port`, port, 'expected a port 0..65535');
  return { host, port };
}

interface RawHost {
  name: string;
  field: string;
  body: Obj;
}

function collectHosts(v: unknown): RawHost[] {
  if (v === undefined || v === null) return [];
  const out: RawHost[] = [];
  if (Array.isArray(v)) {
    v.forEach((item, i) => {
      if (!isObj(item)) fail(`hosts.${i}`, item, 'expected a host object');
      if (typeof item.name !== 'string') fail(`hosts.${i}.name`, item.name, 'expected a host name');
      const { name, ...body } = item;
      out.push({ name, field: `hosts.${name}`, body });
    });
  } else if (isObj(v)) {
    for (const [name, body] of Object.entries(v)) {
      if (typeof body === 'string') out.push({ name, field: `hosts.${name}`, body: { run: body } });
      else if (isObj(body)) out.push({ name, field: `hosts.${name}`, body });
      else fail(`hosts.${name}`, body, 'expected a host object (or the path of its app)');
    }
  } else {
    fail('hosts', v, 'expected a map of host name to host');
  }
  if (out.length > MAX_HOSTS) fail('hosts', out.length, `at most ${MAX_HOSTS} hosts`);
  return out;
}

// ---- `command:` hosts: an ordinary program as the host ----

const PROGRAM_KEYS = ['command', 'cwd', 'egress'] as const;

function parseRun(b: Obj, field: string, baseDir: string): string {
  for (const k of ['cwd', 'egress']) if (b[k] !== undefined) fail(`${field}.${k}`, b[k], 'only for a host with a command');
  if (typeof b.run !== 'string' || b.run.length === 0) fail(`${field}.run`, b.run, 'expected the path of the app module (or a command)');
  return isAbsolute(b.run) ? b.run : resolve(baseDir, b.run);
}

/** Split a command line into words: whitespace separates, '...' and "..." group. */
export function splitCommand(line: string): string[] | string {
  const words: string[] = [];
  const re = /\s*(?:'([^']*)'|"([^"]*)"|([^\s'"]+))/gy;
  let word: string | null = null;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(line)) !== null) {
    const glued = m[0].length > 0 && !/^\s/.test(m[0]) && word !== null;
    const piece = m[1] ?? m[2] ?? m[3] ?? '';
    if (glued) word += piece;
    else {
      if (word !== null) words.push(word);
      word = piece;
    }
    last = re.lastIndex;
    if (m[0].length === 0) break;
  }
  if (line.slice(last).trim() !== '') return 'unbalanced quotes';
  if (word !== null) words.push(word);
  return words;
}

function parseProgram(b: Obj, field: string, baseDir: string): ProgramSpec {
  if (b.run !== undefined) fail(`${field}.run`, b.run, 'a host has either run or command, not both');
  let argv: string[];
  if (typeof b.command === 'string') {
    const words = splitCommand(b.command);
    if (typeof words === 'string') fail(`${field}.command`, b.command, words);
    argv = words;
  } else if (Array.isArray(b.command) && b.command.every((w) => typeof w === 'string')) {
    argv = b.command as string[];
  } else {
    fail(`${field}.command`, b.command, "expected a command line like 'node server.js' or a list of words");
  }
  if (argv.length === 0 || argv.length > 256) fail(`${field}.command`, b.command, 'expected 1 to 256 words');
  if (b.cwd !== undefined && (typeof b.cwd !== 'string' || b.cwd === '')) fail(`${field}.cwd`, b.cwd, 'expected a folder');
  const cwd = typeof b.cwd === 'string' ? resolve(baseDir, b.cwd) : baseDir;
  const egress = b.egress ?? 'host';
  if (egress !== 'host' && egress !== 'none') fail(`${field}.egress`, egress, "expected 'host' (the machine's network) or 'none'");
  return { argv, cwd, egress };
}

/** `relay.public`: a ws:// or wss:// URL with a host and no path, query or credentials. */
function parsePublicUrl(v: unknown, field: string): string {
  if (typeof v !== 'string') fail(field, v, 'expected a URL like wss://relay.example.com');
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    fail(field, v, 'expected a URL like wss://relay.example.com');
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') fail(field, v, 'expected a ws:// or wss:// URL');
  if (u.hostname === '' || u.username !== '' || u.password !== '' || (u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    fail(field, v, 'expected scheme://host[:port] only (hosts append the join path)');
  }
  return `${u.protocol}//${u.host}`;
}

/** One level of `lambda:` settings (the network's defaults or a host's overrides). */
function parseLambdaFields(v: unknown, field: string): Partial<LambdaSpec> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) fail(field, v, `expected a map with ${LAMBDA_KEYS.join(', ')}`);
  checkKeys(v, field, LAMBDA_KEYS);
  const out: Partial<LambdaSpec> = {};
  if (v.function !== undefined) {
    // Lambda's FunctionName pattern (name form): letters, digits, - and _, at most 64.
    if (typeof v.function !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(v.function)) fail(`${field}.function`, v.function, 'expected a function name (letters, digits, - and _, at most 64)');
    out.function = v.function;
  }
  if (v.region !== undefined) {
    if (typeof v.region !== 'string' || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(v.region)) fail(`${field}.region`, v.region, 'expected a region like us-east-1');
    out.region = v.region;
  }
  if (v.endpoint !== undefined) {
    let ok = false;
    if (typeof v.endpoint === 'string') {
      try {
        const u = new URL(v.endpoint);
        ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
      } catch {
        ok = false;
      }
    }
    if (!ok) fail(`${field}.endpoint`, v.endpoint, 'expected an http:// or https:// URL');
    out.endpoint = v.endpoint as string;
  }
  if (v.memory !== undefined) {
    if (typeof v.memory !== 'number' || !Number.isInteger(v.memory) || v.memory < 128 || v.memory > 10240) fail(`${field}.memory`, v.memory, 'expected MB from 128 to 10240');
    out.memory = v.memory;
  }
  if (v.timeout !== undefined) {
    const ms = duration(v.timeout, `${field}.timeout`, false)!;
    if (ms < 1000 || ms > 900_000 || ms % 1000 !== 0) fail(`${field}.timeout`, v.timeout, 'expected whole seconds from 1s to 15m');
    out.timeout = ms / 1000;
  }
  if (v.role !== undefined) {
    if (typeof v.role !== 'string' || !/^arn:aws[a-zA-Z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/.test(v.role)) fail(`${field}.role`, v.role, 'expected an IAM role ARN');
    out.role = v.role;
  }
  if (v.architecture !== undefined) {
    if (v.architecture !== 'x86_64' && v.architecture !== 'arm64') fail(`${field}.architecture`, v.architecture, "expected 'x86_64' or 'arm64'");
    out.architecture = v.architecture;
  }
  return out;
}

function parseOrThrow(text: string, baseDir: string, path: string): Manifest {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  if (doc.errors.length > 0) yamlFailure(doc, doc.errors[0], lines);
  const root: unknown = doc.toJS({ maxAliasCount: 100 });
  if (!isObj(root)) fail('', root, 'the manifest must be a YAML map');
  checkKeys(root, '', ['network', 'relay', 'hosts', 'name', 'version', 'lambda']);
  const lambdaDefaults = parseLambdaFields(root.lambda, 'lambda');

  const networkText = root.network ?? DEFAULT_NETWORK;
  if (typeof networkText !== 'string') fail('network', networkText, 'expected a CIDR like 10.77.0.0/16');
  const net = parseNetwork(networkText);
  if (typeof net === 'string') fail('network', networkText, net);

  let listen = { ...MANIFEST_DEFAULTS.listen };
  const limits: NonNullable<Manifest['relay']['limits']> = {};
  let tls: Manifest['relay']['tls'];
  let publicUrl: string | undefined;
  if (root.relay !== undefined && root.relay !== null) {
    if (!isObj(root.relay)) fail('relay', root.relay, 'expected a map with listen, public, rate, burst, tls');
    checkKeys(root.relay, 'relay', ['listen', 'public', 'rate', 'burst', 'tls']);
    if (root.relay.public !== undefined) publicUrl = parsePublicUrl(root.relay.public, 'relay.public');
    if (root.relay.tls !== undefined) {
      const t = root.relay.tls;
      if (!isObj(t)) fail('relay.tls', t, 'expected a map with cert and key (PEM file paths)');
      checkKeys(t, 'relay.tls', ['cert', 'key']);
      for (const k of ['cert', 'key'] as const) {
        if (typeof t[k] !== 'string' || t[k] === '') fail(`relay.tls.${k}`, t[k], 'expected the path of a PEM file');
      }
      const path = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
      tls = { cert: path(t.cert as string), key: path(t.key as string) };
    }
    if (root.relay.listen !== undefined) listen = parseListen(root.relay.listen, 'relay.listen');
    if (root.relay.rate !== undefined) limits.rateBytesPerSec = size(root.relay.rate, 'relay.rate', true);
    if (root.relay.burst !== undefined) limits.rateBurstBytes = size(root.relay.burst, 'relay.burst', false);
  }

  const raws = collectHosts(root.hosts);
  const seen = new Set<string>();
  const taken = new Map<number, string>();
  for (const raw of raws) {
    if (!isDnsLabel(raw.name)) fail(raw.field, raw.name, 'host names must be DNS labels (a-z, 0-9, -; at most 63)');
    if (seen.has(raw.name)) fail(raw.field, raw.name, 'duplicate host name');
    seen.add(raw.name);
    checkKeys(raw.body, raw.field, ['run', 'address', 'provider', 'idle', 'env', 'startTimeout', 'lambda', 'perf', ...PROGRAM_KEYS]);
    if (raw.body.perf !== undefined && typeof raw.body.perf !== 'boolean') fail(`${raw.field}.perf`, raw.body.perf, 'expected true or false');
    if (raw.body.address !== undefined) {
      const a = raw.body.address;
      const n = typeof a === 'string' ? parseAddress(a) : null;
      if (n === null) fail(`${raw.field}.address`, a, 'expected an IPv4 address');
      if (!isHostAddress(net, n)) {
        fail(`${raw.field}.address`, a, `must be inside ${net.cidr} and not its network, gateway (${formatAddress(net.gateway)}) or broadcast address`);
      }
      const other = taken.get(n);
      if (other !== undefined) fail(`${raw.field}.address`, a, `already the address of ${other}`);
      taken.set(n, raw.name);
    }
  }

  let next = net.gateway + 1;
  const hosts: HostSpec[] = raws.map((raw) => {
    const b = raw.body;
    const program = b.command !== undefined ? parseProgram(b, raw.field, baseDir) : undefined;
    const run = program !== undefined ? '' : parseRun(b, raw.field, baseDir);
    let address: number;
    if (typeof b.address === 'string') address = parseAddress(b.address)!;
    else {
      while (taken.has(next)) next++;
      if (next >= net.broadcast) fail(`${raw.field}.address`, undefined, `no free address left in ${net.cidr}`);
      address = next++;
      taken.set(address, raw.name);
    }
    const provider = b.provider ?? MANIFEST_DEFAULTS.provider;
    if (typeof provider !== 'string' || !(PROVIDERS as readonly string[]).includes(provider)) {
      fail(`${raw.field}.provider`, provider, `expected one of ${PROVIDERS.join(', ')}`);
    }
    const idleMs = b.idle === undefined ? MANIFEST_DEFAULTS.idleMs : duration(b.idle, `${raw.field}.idle`, true);
    const startTimeoutMs = b.startTimeout === undefined ? MANIFEST_DEFAULTS.startTimeoutMs : duration(b.startTimeout, `${raw.field}.startTimeout`, false)!;
    const env: Record<string, string> = {};
    if (b.env !== undefined && b.env !== null) {
      if (!isObj(b.env)) fail(`${raw.field}.env`, b.env, 'expected a map of names to strings');
      for (const [k, val] of Object.entries(b.env)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) fail(`${raw.field}.env.${k}`, k, 'expected an environment variable name');
        if (typeof val === 'string') env[k] = val;
        else if (typeof val === 'number' || typeof val === 'boolean') env[k] = String(val);
        else fail(`${raw.field}.env.${k}`, val, 'expected a string');
      }
    }
    const spec: HostSpec = { name: raw.name, run, address: formatAddress(address), provider: provider as ProviderName, idleMs, env, startTimeoutMs };
    if (program !== undefined) spec.program = program;
    if (b.lambda !== undefined && provider !== 'lambda') fail(`${raw.field}.lambda`, b.lambda, 'only for a host with provider: lambda');
    if (provider === 'lambda') {
      const own = parseLambdaFields(b.lambda, `${raw.field}.lambda`);
      spec.lambda = { function: `imach-${raw.name}`, ...LAMBDA_DEFAULTS, ...lambdaDefaults, ...own };
    }
    if (b.perf === true) spec.perf = true;
    return spec;
  });

  return {
    path,
    baseDir,
    network: net.cidr,
    prefixLength: net.prefixLength,
    gateway: formatAddress(net.gateway),
    relay: { listen, limits, ...(tls !== undefined ? { tls } : {}), ...(publicUrl !== undefined ? { public: publicUrl } : {}) },
    hosts,
  };
}

/** Parse and validate a manifest. Never throws: a ManifestError names the field and value. */
export function parseManifest(text: string, baseDir: string, path = ''): Manifest | ManifestError {
  try {
    return parseOrThrow(text, resolve(baseDir), path);
  } catch (e) {
    if (e instanceof Fail) return e.error;
    return { manifestError: true, field: 'yaml', value: undefined, message: `cannot read the manifest: ${(e as Error).message}` };
  }
}

/**
 * Every local host's `run` module is a file that exists (checked before anything boots;
 * parsing alone does not touch the file system; a Lambda host's module lives in its
 * function's bundle). The path is shown relative to the manifest when it lies beside it.
 */
export function checkRunFiles(manifest: Manifest): ManifestError | null {
  for (const h of manifest.hosts) {
    if (h.provider !== 'local') continue;
    if (h.program !== undefined) {
      // a command: its working folder must exist (the program itself is found at start)
      const cwd = h.program.cwd;
      let ok = false;
      try {
        ok = statSync(cwd).isDirectory();
      } catch {
        ok = false;
      }
      if (!ok) return { manifestError: true, field: `hosts.${h.name}.cwd`, value: cwd, message: `hosts.${h.name}.cwd: ${cwd}: no such folder` };
      continue;
    }
    let problem: string | null = null;
    try {
      if (!statSync(h.run).isFile()) problem = 'not a file';
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      problem = code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : `cannot read it (${code ?? (e as Error).message})`;
    }
    if (problem !== null) {
      const rel = relative(manifest.baseDir, h.run);
      const shown = rel === '' || rel.startsWith('..') || isAbsolute(rel) ? h.run : `.${sep}${rel}`;
      return { manifestError: true, field: `hosts.${h.name}.run`, value: shown, message: `hosts.${h.name}.run: ${shown}: ${problem}` };
    }
  }
  return null;
}

export async function loadManifest(path: string): Promise<Manifest | ManifestError> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    return { manifestError: true, field: 'path', value: path, message: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  return parseManifest(text, dirname(abs), abs);
}
