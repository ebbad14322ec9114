// A small client for the Kubernetes REST API: JSON requests and watches over node:https,
// with keep-alive connections. It knows paths, not kinds: callers say which URL, verb and
// content type, and get the server's JSON back unchanged (no model classes, no Dates).
// Where the server and credentials come from is the Endpoint's business (kubeconfig.ts).
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { createInterface } from 'node:readline';

/** The API server and how to talk to it. */
export interface Endpoint {
  /** Base URL, e.g. `https://10.96.0.1:443`; a path prefix is kept. */
  server: string;
  /** TLS material and headers (Authorization) for the next request: tokens may rotate. */
  requestOptions(): Promise<TlsAndHeaders>;
}

export interface TlsAndHeaders {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
  headers?: Record<string, string>;
  /** A proxy agent to use instead of our own (kubeconfig proxy-url). */
  agent?: RequestOptions['agent'];
}

/** An answer of the API server outside 2xx; `body` is its Status object when it sent one. */
export class KubeApiError extends Error {
  readonly code: number;
  readonly body: unknown;
  constructor(code: number, body: unknown, method: string, path: string) {
    const message =
      typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string'
        ? body.message
        : `HTTP ${code}`;
    super(`${method} ${path.split('?')[0]}: ${message}`);
    this.name = 'KubeApiError';
    this.code = code;
    this.body = body;
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestInit {
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  /** Defaults to application/json; patches name their strategy. */
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchHandlers {
  /** The stream is open: the server accepted the watch. */
  onOpen?(): void;
  onEvent(type: WatchEventType, object: Record<string, unknown>): void;
}

export const PATCH = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

export class RestClient {
  private readonly endpoint: Endpoint;
  private pooled?: { key: TlsAndHeaders; agent: HttpsAgent | HttpAgent };
  private readonly userAgent: string;

  constructor(endpoint: Endpoint, userAgent = 'mooring') {
    this.endpoint = endpoint;
    this.userAgent = userAgent;
  }

  get server(): string {
    return this.endpoint.server;
  }

  async request<T = Record<string, unknown>>(
    method: string,
    path: string,
    init: RequestInit = {},
  ): Promise<T> {
    const res = await this.send(method, path, init);
    const text = await readAll(res.stream);
    if (res.status < 200 || res.status > 299) throw new KubeApiError(res.status, parseOr(text), method, path);
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  /** GET of one object; undefined when it does not exist. */
  async getOptional<T = Record<string, unknown>>(
    path: string,
    init: RequestInit = {},
  ): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path, init);
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404) return undefined;
      throw err;
    }
  }

  /**
   * Watches a collection until the server ends the stream (resolves) or the connection
   * fails, the server refuses, or `signal` aborts (rejects). Events are handed over in order.
   */
  async watch(path: string, query: Query, handlers: WatchHandlers, signal?: AbortSignal): Promise<void> {
    const res = await this.send('GET', path, {
      query: { ...query, watch: true },
      ...(signal ? { signal } : {}),
    });
    if (res.status !== 200) {
      throw new KubeApiError(res.status, parseOr(await readAll(res.stream)), 'WATCH', path);
    }
    handlers.onOpen?.();
    const lines = createInterface({ input: res.stream, crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (line.trim() === '') continue;
        const event = JSON.parse(line) as { type: WatchEventType; object: Record<string, unknown> };
        handlers.onEvent(event.type, event.object);
      }
    } finally {
      lines.close();
      res.stream.destroy();
    }
    if (signal?.aborted) throw signal.reason;
  }

  private async send(
    method: string,
    path: string,
    init: RequestInit,
  ): Promise<{ status: number; stream: NodeJS.ReadableStream & { destroy(): void } }> {
    const url = new URL(this.endpoint.server.replace(/\/$/, '') + path);
    for (const [key, value] of Object.entries(init.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const tls = await this.endpoint.requestOptions();
    const body = init.body === undefined ? undefined : JSON.stringify(init.body);
    const headers: Record<string, string> = {
      ...tls.headers,
      accept: init.accept ?? 'application/json',
      'user-agent': this.userAgent,
      ...(body === undefined
        ? {}
        : {
            'content-type': init.contentType ?? 'application/json',
            'content-length': String(Buffer.byteLength(body)),
          }),
    };
    const https = url.protocol === 'https:';
    const options: RequestOptions = {
      method,
      headers,
      agent: tls.agent ?? this.agentFor(tls, https),
      ...(init.signal ? { signal: init.signal } : {}),
    };
    return new Promise((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, options, (res) =>
        resolve({ status: res.statusCode ?? 0, stream: res }),
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * One keep-alive agent per set of TLS options (a rotated client certificate gets a new
   * one): a drift check makes a request per object, and a new TLS handshake each would
   * double its time. Idle sockets do not keep the process alive.
   */
  private agentFor(tls: TlsAndHeaders, https: boolean): HttpsAgent | HttpAgent {
    if (this.pooled !== undefined && sameTls(this.pooled.key, tls)) return this.pooled.agent;
    this.pooled?.agent.destroy();
    const agent = https
      ? new HttpsAgent({
          keepAlive: true,
          maxSockets: 32,
          ...(tls.ca === undefined ? {} : { ca: tls.ca }),
          ...(tls.cert === undefined ? {} : { cert: tls.cert }),
          ...(tls.key === undefined ? {} : { key: tls.key }),
          ...(tls.servername === undefined ? {} : { servername: tls.servername }),
          rejectUnauthorized: tls.rejectUnauthorized ?? true,
        })
      : new HttpAgent({ keepAlive: true, maxSockets: 32 });
    this.pooled = { key: tls, agent };
    return agent;
  }
}

function sameTls(a: TlsAndHeaders, b: TlsAndHeaders): boolean {
  const same = (x: unknown, y: unknown): boolean =>
    x === y || (Buffer.isBuffer(x) && Buffer.isBuffer(y) && x.equals(y));
  return (
    same(a.ca, b.ca) &&
    same(a.cert, b.cert) &&
    same(a.key, b.key) &&
    a.rejectUnauthorized === b.rejectUnauthorized &&
    a.servername === b.servername
  );
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
