// The HTTP client isomorphic-git talks through: redirects that keep credentials on their
// origin, timeouts that end stalls, and counters of what went over the wire.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createHttpClient, HttpRedirectError, HttpTimeoutError } from '../../src/source/http-client.js';

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

async function server(handler: (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void) {
  const seen: Seen[] = [];
  const srv = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const s = {
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization,
      body: Buffer.concat(chunks).toString(),
    };
    seen.push(s);
    handler(req, res, s);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, seen };
}

async function text(body: AsyncIterable<Uint8Array> | undefined): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body ?? []) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString();
}

async function* chunks(...parts: string[]): AsyncIterableIterator<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}

describe('createHttpClient', () => {
  test('sends a streamed body with a content length and counts requests and bytes', async () => {
    const srv = await server((req, res) => res.end('0008NAK\n'));
    const client = createHttpClient();
    onTestFinished(() => client.close());

    const res = await client.request({
      url: `${srv.url}/repo.git/git-upload-pack`,
      method: 'POST',
      headers: { 'content-type': 'application/x-git-upload-pack-request' },
      body: chunks('0009done\n', '0000'),
    });

    expect(res.statusCode).toBe(200);
    expect(await text(res.body)).toBe('0008NAK\n');
    expect(srv.seen).toEqual([expect.objectContaining({ method: 'POST', body: '0009done\n0000' })]);
    expect(client.stats).toEqual({ requests: 1, bytesIn: 8, bytesOut: 13 });
  });

  test('follows a redirect on the same origin with the credentials', async () => {
    const srv = await server((req, res) => {
      if (req.url === '/old.git/info/refs') res.writeHead(301, { location: '/new.git/info/refs' }).end();
      else res.end('ok');
    });
    const client = createHttpClient();
    onTestFinished(() => client.close());

    const res = await client.request({
      url: `${srv.url}/old.git/info/refs`,
      headers: { Authorization: 'Basic abc' },
    });

    expect(res.url).toBe(`${srv.url}/new.git/info/refs`);
    expect(srv.seen.map((s) => s.authorization)).toEqual(['Basic abc', 'Basic abc']);
  });

  test('never carries credentials to another origin', async () => {
    const other = await server((_req, res) => res.end('elsewhere'));
    const srv = await server((_req, res) => res.writeHead(302, { location: `${other.url}/repo.git` }).end());
    const client = createHttpClient();
    onTestFinished(() => client.close());

    const res = await client.request({ url: `${srv.url}/repo.git`, headers: { Authorization: 'Basic abc' } });

    expect(await text(res.body)).toBe('elsewhere');
    expect(srv.seen[0]?.authorization).toBe('Basic abc');
    expect(other.seen[0]?.authorization).toBeUndefined();
  });

  test('gives up after too many redirects', async () => {
    const srv = await server((req, res) => res.writeHead(307, { location: `${req.url}x` }).end());
    const client = createHttpClient({ maxRedirects: 3 });
    onTestFinished(() => client.close());

    await expect(client.request({ url: `${srv.url}/loop` })).rejects.toThrow(
      new HttpRedirectError('more than 3 redirects'),
    );
    expect(srv.seen).toHaveLength(4);
  });

  test('a server that never answers times out instead of hanging the agent', async () => {
    const srv = await server(() => {});
    const client = createHttpClient({ timeoutMs: 200 });
    onTestFinished(() => client.close());

    const err = await client.request({ url: `${srv.url}/repo.git/info/refs` }).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(HttpTimeoutError);
    expect(err).toMatchObject({ code: 'ETIMEDOUT', message: 'no answer within 200ms' });
  });

  test('a server that stalls half-way through an answer times out too', async () => {
    const srv = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-result' });
      res.write('PACK partial');
    });
    const client = createHttpClient({ timeoutMs: 200 });
    onTestFinished(() => client.close());

    const res = await client.request({ url: `${srv.url}/repo.git/git-upload-pack` });

    await expect(text(res.body)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });
});
