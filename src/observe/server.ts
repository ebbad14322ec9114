// The agent's HTTP endpoints: /healthz (the process is alive and its loop is not stuck),
// /readyz (it has a usable snapshot and can reach the API server), /metrics (Prometheus)
// and POST /hooks/git (a signed push notification that triggers a poll at once). The
// webhook is open to anyone who can reach the port, so a refused delivery costs little: an
// oversized body is refused by its Content-Length before a byte of it is read, and refusals
// are counted (metric) but logged at most once a minute.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServerDeps {
  /** Liveness: undefined when healthy, else the reason. */
  health(): string | undefined;
  /** Readiness: undefined when ready, else the reason. */
  readiness(): string | undefined | Promise<string | undefined>;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Verifies a webhook delivery; returns a reason when it must be refused. */
  verifyWebhook?(headers: IncomingMessage['headers'], body: Buffer): string | undefined;
  /** Called for each accepted webhook delivery. */
  onWebhook?(): void;
  /** Called for each refused webhook delivery (`too-large` or `unverified`), e.g. to count it. */
  onWebhookRefused?(reason: WebhookRefusal): void;
  /** Milliseconds since the epoch; defaults to Date.now. */
  now?: () => number;
  log?: { warn(obj: object, msg: string): void };
}

export type WebhookRefusal = 'too-large' | 'unverified';

export const MAX_WEBHOOK_BYTES = 5 * 1024 * 1024;
/** Refused webhook deliveries are logged at most this often (the metric counts each one). */
const REFUSAL_LOG_INTERVAL_MS = 60_000;

export interface AgentServer {
  server: Server;
  /** `host:port` the server listens on. */
  address: string;
  close(): Promise<void>;
}

/** `:8080`, `0.0.0.0:8080` or `127.0.0.1:0` into host and port. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = i > 0 ? listen.slice(0, i).replace(/^\[|\]$/g, '') : '0.0.0.0';
  const port = Number(listen.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--listen: invalid port in ${JSON.stringify(listen)}`);
  return { host, port };
}

export async function startServer(listen: string, deps: ServerDeps): Promise<AgentServer> {
  const refusals = refusalReporter(deps);
  const server = createServer((req, res) => {
    handle(req, res, deps, refusals).catch((err: unknown) => {
      deps.log?.warn({ err: (err as Error).message, path: req.url }, 'http handler failed');
      if (!res.headersSent) send(res, 500, 'internal error\n');
    });
  });
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    server,
    address: `${addr.address}:${addr.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/** Counts every refused delivery; logs the first, then at most one line a minute with how many more there were. */
function refusalReporter(deps: ServerDeps): (reason: WebhookRefusal, detail: string) => void {
  const now = deps.now ?? Date.now;
  let lastLogAt = -Infinity;
  let unlogged = 0;
  return (reason, detail) => {
    deps.onWebhookRefused?.(reason);
    const t = now();
    if (t - lastLogAt < REFUSAL_LOG_INTERVAL_MS) {
      unlogged++;
      return;
    }
    deps.log?.warn(
      { reason: detail, ...(unlogged > 0 ? { refusedSinceLastLog: unlogged } : {}) },
      'webhook refused (further refusals within a minute are only counted: mooring_webhook_refused_total)',
    );
    lastLogAt = t;
    unlogged = 0;
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  deps: ServerDeps,
  refused: (reason: WebhookRefusal, detail: string) => void,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/healthz') {
    const problem = deps.health();
    return send(res, problem ? 503 : 200, problem ? `unhealthy: ${problem}\n` : 'ok\n');
  }
  if (req.method === 'GET' && path === '/readyz') {
    const problem = await deps.readiness();
    return send(res, problem ? 503 : 200, problem ? `not ready: ${problem}\n` : 'ok\n');
  }
  if (req.method === 'GET' && path === '/metrics') {
    const m = await deps.metrics();
    return send(res, 200, m.body, m.contentType);
  }
  if (path === '/hooks/git') {
    if (req.method !== 'POST') return send(res, 405, 'use POST\n');
    if (!deps.verifyWebhook || !deps.onWebhook)
      return send(res, 404, 'webhook not configured (--webhook-secret-file)\n');
    // Refused on its Content-Length alone: nothing of an oversized body is read.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_WEBHOOK_BYTES) return tooLarge(req, res, refused);
    const body = await readBody(req, MAX_WEBHOOK_BYTES);
    // Chunked (no Content-Length): read up to the limit, then stop.
    if (body === undefined) return tooLarge(req, res, refused);
    const reason = deps.verifyWebhook(req.headers, body);
    if (reason) {
      refused('unverified', reason);
      return send(res, 401, `refused: ${reason}\n`);
    }
    deps.onWebhook();
    return send(res, 202, 'poll scheduled\n');
  }
  send(res, 404, 'not found\n');
}

/** 413, and the connection closed once the answer is out: the rest of the body is never read. */
function tooLarge(
  req: IncomingMessage,
  res: ServerResponse,
  refused: (reason: WebhookRefusal, detail: string) => void,
): void {
  refused('too-large', `body larger than ${MAX_WEBHOOK_BYTES} bytes`);
  res.writeHead(413, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
  res.end('payload too large\n', () => req.socket.destroy());
}

/** The body, or undefined as soon as it exceeds `limit` bytes (reading stops there). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= limit) return void chunks.push(c);
      req.off('data', onData);
      req.pause();
      resolve(undefined);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
