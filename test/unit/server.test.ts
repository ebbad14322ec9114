import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MAX_WEBHOOK_BYTES,
  startServer,
  type AgentServer,
  type ServerDeps,
} from '../../src/observe/server.js';

let server: AgentServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function deps(extra: Partial<ServerDeps> = {}): ServerDeps {
  return {
    health: () => undefined,
    readiness: () => undefined,
    metrics: async () => ({ contentType: 'text/plain', body: '' }),
    verifyWebhook: () => 'signature does not match',
    onWebhook: () => undefined,
    ...extra,
  };
}

/** Sends raw bytes and resolves with everything the server answered before closing. */
function raw(address: string, request: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.split(':').pop())];
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = connect(port, host, () => socket.write(request));
    socket.on('data', (d) => (answer += d.toString('utf8')));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('POST /hooks/git', () => {
  it('refuses an oversized body by its Content-Length, without waiting for the body, and closes the connection', async () => {
    const refusals: string[] = [];
    server = await startServer('127.0.0.1:0', deps({ onWebhookRefused: (r) => refusals.push(r) }));
    // Headers only: a server that read the body first would never answer.
    const answer = await raw(
      server.address,
      `POST /hooks/git HTTP/1.1\r\nhost: x\r\ncontent-length: ${300 * 1024 * 1024}\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('payload too large');
    expect(refusals).toEqual(['too-large']);
  });

  it('stops reading a chunked body once it passes the limit', async () => {
    server = await startServer('127.0.0.1:0', deps());
    const chunk = 'x'.repeat(1024 * 1024);
    const base = `http://${server.address}`;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        // Far more than the limit, if the server kept reading.
        if (sent > 50 * MAX_WEBHOOK_BYTES) return controller.close();
        sent += chunk.length;
        controller.enqueue(new TextEncoder().encode(chunk));
      },
    });
    const res = await fetch(`${base}/hooks/git`, {
      method: 'POST',
      body,
      duplex: 'half',
    } as RequestInit).catch((err: unknown) => err as Error);
    if (res instanceof Response) expect(res.status).toBe(413);
    expect(sent).toBeLessThan(50 * MAX_WEBHOOK_BYTES);
  });

  it('counts every refused delivery and logs at most one line a minute, saying how many it did not log', async () => {
    let now = 1_000_000;
    const refusals: string[] = [];
    const logged: Array<Record<string, unknown>> = [];
    server = await startServer(
      '127.0.0.1:0',
      deps({
        now: () => now,
        onWebhookRefused: (r) => refusals.push(r),
        log: { warn: (obj) => logged.push(obj as Record<string, unknown>) },
      }),
    );
    const post = () => fetch(`http://${server!.address}/hooks/git`, { method: 'POST', body: '{}' });
    for (let i = 0; i < 5; i++) expect((await post()).status).toBe(401);
    now += 61_000;
    expect((await post()).status).toBe(401);

    expect(refusals).toEqual(Array(6).fill('unverified'));
    expect(logged).toEqual([
      { reason: 'signature does not match' },
      { reason: 'signature does not match', refusedSinceLastLog: 4 },
    ]);
  });
});

describe('GET /readyz', () => {
  it('waits for an asynchronous readiness check (the API server probe)', async () => {
    server = await startServer(
      '127.0.0.1:0',
      deps({ readiness: async () => 'the Kubernetes API server did not answer within 3s' }),
    );
    const res = await fetch(`http://${server.address}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('not ready: the Kubernetes API server did not answer within 3s\n');
  });
});
