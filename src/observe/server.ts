// The agent's HTTP endpoints: /healthz (the process is alive and its loop is not stuck),
// /readyz (it has a usable snapshot and can reach the API server), /metrics (Prometheus)
// and POST /hooks/git (a signed push notification that triggers a poll at once).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServerDeps {
  /** Liveness: undefined when healthy, else the reason. */
  health(): string | undefined;
  /** Readiness: undefined when ready, else the reason. */
  readiness(): string | undefined;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Verifies a webhook delivery; returns a reason when it must be refused. */
  verifyWebhook?(headers: IncomingMessage['headers'], body: Buffer): string | undefined;
  /** Called for each accepted webhook delivery. */
  onWebhook?(): void;
  log?: { warn(obj: object, msg: string): void };
}

const MAX_WEBHOOK_BYTES = 5 * 1024 * 1024;

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
  const server = createServer((req, res) => {
    handle(req, res, deps).catch((err: unknown) => {
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

async function handle(req: IncomingMessage, res: ServerResponse, deps: ServerDeps): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/healthz') {
    const problem = deps.health();
    return send(res, problem ? 503 : 200, problem ? `unhealthy: ${problem}\n` : 'ok\n');
  }
  if (req.method === 'GET' && path === '/readyz') {
    const problem = deps.readiness();
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
    const body = await readBody(req, MAX_WEBHOOK_BYTES);
    if (body === undefined) return send(res, 413, 'payload too large\n');
    const refused = deps.verifyWebhook(req.headers, body);
    if (refused) {
      deps.log?.warn({ reason: refused }, 'webhook refused');
      return send(res, 401, `refused: ${refused}\n`);
    }
    deps.onWebhook();
    return send(res, 202, 'poll scheduled\n');
  }
  send(res, 404, 'not found\n');
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(tooLarge ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
