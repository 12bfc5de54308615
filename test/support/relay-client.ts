// A raw `ws` host for relay tests: joins with a token, collects packets and control
// messages, and waits for them.

import WebSocket from 'ws';
import type { WelcomeMessage } from '../../relay/protocol.js';
import { JOIN_PATH, SUBPROTOCOL } from '../../relay/protocol.js';
import { splitFrame } from './relay-packets.js';

export interface JoinRefusal {
  status: number;
  error: string;
}

export class TestHost {
  readonly packets: Uint8Array[] = [];
  readonly frames: Uint8Array[] = [];
  readonly controls: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  closed = false;

  constructor(
    readonly ws: WebSocket,
    readonly welcome: WelcomeMessage,
  ) {
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const buf = data as Buffer;
      if (isBinary) {
        const frame = new Uint8Array(buf);
        this.frames.push(frame);
        this.packets.push(...splitFrame(frame));
      } else {
        this.controls.push(JSON.parse(buf.toString()) as Record<string, unknown>);
      }
      this.wake();
    });
    ws.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  get address(): string {
    return this.welcome.address;
  }

  send(frame: Uint8Array): void {
    this.ws.send(frame, { binary: true });
  }

  sendControl(msg: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(msg));
  }

  /** Wait until pred() holds, re-checked on every message; rejects after timeoutMs. */
  async until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    if (pred()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const check = (): void => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  async nextPacket(match: (p: Uint8Array) => boolean = () => true, timeoutMs = 5000): Promise<Uint8Array> {
    let found: Uint8Array | undefined;
    await this.until(() => (found = this.packets.find(match)) !== undefined, 'a packet', timeoutMs);
    this.packets.splice(this.packets.indexOf(found!), 1);
    return found!;
  }

  async nextControl(type: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await this.until(() => (found = this.controls.find((c) => c.type === type)) !== undefined, `a ${type} message`, timeoutMs);
    return found!;
  }

  async close(): Promise<void> {
    if (this.closed || this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
      setTimeout(() => this.ws.terminate(), 1000).unref();
    });
  }
}

/** Join the relay at `url` (ws://host:port) with a token; resolves after the welcome. */
export function joinRelay(url: string, token: string | null, opts: { query?: boolean; autoPong?: boolean } = {}): Promise<TestHost> {
  return new Promise((resolve, reject) => {
    const target = opts.query && token !== null ? `${url}${JOIN_PATH}?token=${encodeURIComponent(token)}` : `${url}${JOIN_PATH}`;
    const headers: Record<string, string> = {};
    if (token !== null && !opts.query) headers.authorization = `Bearer ${token}`;
    const ws = new WebSocket(target, SUBPROTOCOL, { headers, perMessageDeflate: false, autoPong: opts.autoPong ?? true });
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, error: String(res.headers['x-imach-error'] ?? '') }));
      res.resume();
      ws.terminate();
    });
    ws.once('error', reject);
    ws.once('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (isBinary) return reject(new Error('first frame was binary'));
      const welcome = JSON.parse((data as Buffer).toString()) as WelcomeMessage;
      const host = new TestHost(ws, welcome);
      resolve(host);
    });
  });
}

/** Join expecting a refusal; resolves with its status and X-Imach-Error. */
export async function joinRefused(url: string, token: string | null, opts: { query?: boolean } = {}): Promise<JoinRefusal> {
  try {
    const h = await joinRelay(url, token, opts);
    await h.close();
  } catch (e) {
    const err = e as { status?: number; error?: string };
    if (err.status !== undefined) return { status: err.status, error: err.error ?? '' };
    throw e;
  }
  throw new Error('join was accepted');
}

/** Poll pred every 20 ms until it holds; rejects after timeoutMs. */
export async function waitFor(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
