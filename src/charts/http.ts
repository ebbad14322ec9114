// HTTP for chart sources: one GET, whole body in memory (bounded), with the credentials and
// CA of the matching `--chart-auth-file` entry. Redirects are followed a few times and never
// carry credentials to another origin (chart archives often live on a CDN). Every request is
// counted, so tests and benchmarks can see what a pass cost.
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { ChartCredentials } from './auth.js';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The URL that answered, after redirects. */
  url: string;
}

export interface GetOptions {
  headers?: Record<string, string>;
  credentials?: ChartCredentials;
  /** Largest body accepted (default 64 MiB: big repository indexes are ~10 MiB). */
  maxBytes?: number;
  timeoutMs?: number;
  /** Send the credentials' Authorization header (registries first answer 401 to learn the scheme). */
  withAuth?: boolean;
}

export interface ChartHttp {
  get(url: string, options?: GetOptions): Promise<HttpAnswer>;
  /** Requests sent so far (redirect hops included). */
  readonly requests: number;
  close(): void;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function createChartHttp(): ChartHttp {
  let requests = 0;
  const agents = new Map<string, https.Agent>();
  const plain = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const httpsAgent = (ca: string | undefined): https.Agent => {
    const key = ca ?? '';
    let agent = agents.get(key);
    if (!agent) {
      // Keep the public roots: a private CA must not break a CDN with a public certificate.
      agent = new https.Agent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca: [...rootCertificates, ca] } : {}) });
      agents.set(key, agent);
    }
    return agent;
  };

  function once(url: URL, headers: Record<string, string>, options: GetOptions): Promise<HttpAnswer> {
    const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    const timeoutMs = options.timeoutMs ?? 60_000;
    const isHttps = url.protocol === 'https:';
    const transport = isHttps ? https : http;
    return new Promise((resolve, reject) => {
      requests++;
      const req = transport.request(url, {
        method: 'GET',
        headers,
        agent: isHttps ? httpsAgent(options.credentials?.ca) : plain,
        timeout: timeoutMs,
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            req.destroy(new Error(`answer larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          if (!res.complete) return reject(new Error('connection closed before the answer was complete'));
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
          }
          resolve({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks), url: url.toString() });
        });
      });
      req.end();
    });
  }

  return {
    get requests() {
      return requests;
    },
    async get(target, options = {}) {
      let url = new URL(target);
      const origin = url.origin;
      for (let hop = 0; ; hop++) {
        const headers: Record<string, string> = { 'user-agent': 'mooring', ...options.headers };
        const auth = options.credentials?.authorization;
        if (auth && options.withAuth !== false && url.origin === origin) headers.authorization = auth;
        const answer = await once(url, headers, options);
        const location = answer.headers.location;
        if (!REDIRECTS.has(answer.status) || location === undefined) return answer;
        if (hop >= 5) throw new Error('more than 5 redirects');
        const next = new URL(location, url);
        if (url.protocol === 'https:' && next.protocol !== 'https:')
          throw new Error(`refusing a redirect from https to ${next.protocol}`);
        url = next;
      }
    },
    close() {
      plain.destroy();
      for (const a of agents.values()) a.destroy();
    },
  };
}

/** The short reason of a network error, without anything a URL's query could hold. */
export function networkReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}${e.message && !e.message.includes(e.code) ? ` (${e.message})` : ''}` : e.message;
}
