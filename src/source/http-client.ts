// The HTTP client isomorphic-git talks through. Its bundled Node client cannot take a custom
// CA, has no timeouts and cannot count bytes, so the agent brings its own: node:http(s) with
// an optional extra CA, one timeout covering connect and every silence after it, a bounded
// number of redirects that never carry credentials to another origin, and transfer counters
// for status and benchmarks.
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';

/** Running totals of what went over the wire, updated in place. */
export interface TransferStats {
  requests: number;
  /** Response body bytes received. */
  bytesIn: number;
  /** Request body bytes sent. */
  bytesOut: number;
}

export interface NodeHttpClientOptions {
  /** PEM certificate(s) trusted in addition to the public roots (`--git-ca-file`). */
  ca?: string;
  /** Fails a request when connecting, or any wait for the next bytes, takes longer. */
  timeoutMs?: number;
  /** Redirects followed per request; git servers rarely need more than one. */
  maxRedirects?: number;
  stats?: TransferStats;
}

/** isomorphic-git's client interface, plus a way to drop idle keep-alive connections. */
export interface NodeHttpClient extends HttpClient {
  readonly stats: TransferStats;
  close(): void;
}

export function emptyStats(): TransferStats {
  return { requests: 0, bytesIn: 0, bytesOut: 0 };
}

/** A request that saw no bytes for too long; `code` matches Node's own network errors. */
export class HttpTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(
    readonly url: string,
    readonly timeoutMs: number,
  ) {
    super(`no answer within ${timeoutMs}ms`);
    this.name = 'HttpTimeoutError';
  }
}

/** A redirect the client refuses to follow (too many, or from https down to http). */
export class HttpRedirectError extends Error {
  readonly code = 'EREDIRECT';
  constructor(message: string) {
    super(message);
    this.name = 'HttpRedirectError';
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function createHttpClient(options: NodeHttpClientOptions = {}): NodeHttpClient {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxRedirects = options.maxRedirects ?? 5;
  const stats = options.stats ?? emptyStats();
  // Node replaces its root store when `ca` is given; keep the public roots so that a private CA
  // does not break a repository (or a redirect) served with a public certificate.
  const ca = options.ca === undefined ? undefined : [...rootCertificates, options.ca];
  // A fetch is two requests in a row (discovery, then the pack); keep-alive saves a handshake.
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: 4 }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: 4, ...(ca ? { ca } : {}) }),
  };

  async function request(req: GitHttpRequest): Promise<GitHttpResponse> {
    const body = req.body === undefined ? undefined : await collect(req.body);
    let url = req.url;
    let method = (req.method ?? 'GET').toUpperCase();
    let headers: Record<string, string> = { ...req.headers };
    for (let hop = 0; ; hop++) {
      const { res, timedOut } = await send({
        url,
        method,
        headers,
        body: method === 'GET' ? undefined : body,
        req,
      });
      const location = res.headers.location;
      if (!REDIRECTS.has(res.statusCode ?? 0) || location === undefined) {
        return respond(url, method, res, timedOut);
      }
      res.resume();
      if (hop >= maxRedirects) throw new HttpRedirectError(`more than ${maxRedirects} redirects`);
      const next = new URL(location, url);
      const from = new URL(url);
      if (from.protocol === 'https:' && next.protocol !== 'https:') {
        throw new HttpRedirectError(`refusing a redirect from https to ${next.protocol}`);
      }
      // 307/308 repeat the request as is; the others turn it into a GET (RFC 9110 15.4).
      const keepsMethod = res.statusCode === 307 || res.statusCode === 308;
      if (!keepsMethod && method !== 'GET') {
        if (method !== 'HEAD') method = 'GET';
      }
      if (next.origin !== from.origin) headers = withoutHeader(headers, 'authorization');
      url = next.toString();
    }
  }

  function send(args: {
    url: string;
    method: string;
    headers: Record<string, string>;
    body: Buffer | undefined;
    req: GitHttpRequest;
  }): Promise<{ res: http.IncomingMessage; timedOut: () => HttpTimeoutError | undefined }> {
    const target = new URL(args.url);
    const transport = target.protocol === 'https:' ? https : target.protocol === 'http:' ? http : undefined;
    if (!transport) return Promise.reject(new Error(`unsupported protocol ${target.protocol}`));
    const headers = { ...args.headers };
    if (args.body) headers['content-length'] = String(args.body.length);
    return new Promise((resolve, reject) => {
      stats.requests++;
      const outgoing = transport.request(target, {
        method: args.method,
        headers,
        agent: agents[target.protocol as 'http:' | 'https:'],
        timeout: timeoutMs,
        ...(args.req.signal ? { signal: args.req.signal } : {}),
      });
      let timedOut: HttpTimeoutError | undefined;
      outgoing.on('timeout', () => {
        timedOut = new HttpTimeoutError(args.url, timeoutMs);
        outgoing.destroy(timedOut);
      });
      outgoing.on('error', reject);
      outgoing.on('response', (res) => resolve({ res, timedOut: () => timedOut }));
      if (args.body) stats.bytesOut += args.body.length;
      outgoing.end(args.body);
    });
  }

  function respond(
    url: string,
    method: string,
    res: http.IncomingMessage,
    timedOut: () => HttpTimeoutError | undefined,
  ): GitHttpResponse {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(res.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    return {
      url,
      method,
      statusCode: res.statusCode ?? 0,
      statusMessage: res.statusMessage ?? '',
      headers,
      body: countBytes(res, stats, timedOut),
    };
  }

  return {
    request,
    stats,
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}

// The socket timeout set on the request keeps running while the body streams, so a server that
// stalls mid-pack ends the iteration with HttpTimeoutError instead of hanging the agent.
async function* countBytes(
  res: http.IncomingMessage,
  stats: TransferStats,
  timedOut: () => HttpTimeoutError | undefined,
): AsyncIterableIterator<Uint8Array> {
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      stats.bytesIn += chunk.length;
      yield chunk;
    }
  } catch (err) {
    // Destroying the request for the timeout surfaces here as a bare "aborted".
    throw timedOut() ?? err;
  }
  // A connection cut mid-body ends the stream without an error on some Node versions.
  if (!res.complete) {
    throw (
      timedOut() ??
      Object.assign(new Error('connection closed before the answer was complete'), { code: 'ECONNRESET' })
    );
  }
}

async function collect(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function withoutHeader(headers: Record<string, string>, name: string): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== name));
}
