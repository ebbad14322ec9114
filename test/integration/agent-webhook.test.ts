// The Git webhook of a running agent under oversized and unsigned deliveries, over real
// sockets: a body announced larger than the limit is refused by its Content-Length before a
// byte of it is sent, a chunked one is cut off at the limit, every refusal is counted in
// mooring_webhook_refused_total and the log gets one line for a burst, and a signed push
// still triggers a pass afterwards.
import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import { startLoop, startRig, uniqueName, waitFor, type AgentRig } from '../rig/agent.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

const LIMIT = 5 * 1024 * 1024;

/** An HTTP/1.1 request head for POST /hooks/git. */
function head(host: string, headers: Record<string, string>): string {
  const lines = Object.entries({ host, 'content-type': 'application/json', ...headers }).map(
    ([k, v]) => `${k}: ${v}`,
  );
  return `POST /hooks/git HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

interface Exchange {
  /** What the server answered, as received. */
  answer: string;
  /** Body bytes the client had handed to the socket when the server closed the connection. */
  sent: number;
}

/**
 * Sends `requestHead`, then body chunks of `chunk` bytes (wrapped for chunked encoding when
 * `chunked`) until `total` bytes or until the server closes the connection.
 */
function deliver(address: string, requestHead: string, total: number, chunked: boolean): Promise<Exchange> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.split(':').pop())];
  return new Promise((resolve) => {
    const socket: Socket = connect(port, host);
    let answer = '';
    let sent = 0;
    let closed = false;
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      resolve({ answer, sent });
    });
    const piece = Buffer.alloc(256 * 1024, 0x61);
    const pump = () => {
      while (!closed && sent < total) {
        const data = chunked
          ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')])
          : piece;
        sent += piece.length;
        if (!socket.write(data)) return void socket.once('drain', pump);
      }
      if (!closed && chunked) socket.write('0\r\n\r\n');
    };
    socket.on('connect', () => {
      socket.write(requestHead);
      if (total > 0) pump();
    });
  });
}

function metric(text: string, series: string): number {
  // The agent's `cluster` label follows the series' own labels.
  const escaped = series.replace(/[{}"]/g, (c) => `\\${c}`).replace(/\\}$/, '(?:,[^}]*)?\\}');
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('POST /hooks/git of a running agent', () => {
  it('refuses oversized bodies without reading them, counts refusals, logs one line for a burst, and still takes a signed push', async () => {
    const cluster = uniqueName('webhook');
    const secret = 'hook-secret-5b1e';
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    const webhookSecretFile = await rig.writeFile(`${cluster}/webhook-secret`, `${secret}\n`);
    const agent = startLoop(
      rig.agentFor(cluster, repo, { interval: '1h', listen: '127.0.0.1:0', webhookSecretFile }),
      rig.env,
    );
    onTestFinished(async () => {
      await agent.stop();
    });
    const address = await agent.address;
    await agent.waitForPass((p) => p.outcome === 'converged');

    // 300 MB announced, not a byte of body sent: the answer comes anyway, and the connection closes.
    const announced = await deliver(
      address,
      head(address, { 'content-length': String(300 * 1024 * 1024) }),
      0,
      false,
    );
    expect(announced.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(announced.answer.toLowerCase()).toContain('connection: close');

    // 300 MB announced and offered: the server closes long before it is all sent.
    const offered = await deliver(
      address,
      head(address, { 'content-length': String(300 * 1024 * 1024) }),
      300 * 1024 * 1024,
      false,
    );
    expect(offered.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(offered.sent).toBeLessThan(64 * 1024 * 1024);

    // Chunked (no Content-Length): read up to the limit, then refused and cut off.
    const chunked = await deliver(
      address,
      head(address, { 'transfer-encoding': 'chunked' }),
      300 * 1024 * 1024,
      true,
    );
    expect(chunked.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(chunked.sent).toBeGreaterThan(LIMIT);
    expect(chunked.sent).toBeLessThan(64 * 1024 * 1024);

    // A burst of unsigned deliveries: each one refused (401), none triggers a pass.
    const passes = agent.passes.length;
    const push = JSON.stringify({ ref: 'refs/heads/main' });
    const base = `http://${address}`;
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${base}/hooks/git`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` },
        body: push,
      });
      expect(res.status).toBe(401);
    }
    expect(agent.passes.length).toBe(passes);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metric(metrics, 'mooring_webhook_refused_total{reason="too-large"}')).toBe(3);
    expect(metric(metrics, 'mooring_webhook_refused_total{reason="unverified"}')).toBe(30);
    // 33 refusals within a minute: one log line.
    const refusalLines = agent.logs.entries().filter((e) => String(e.msg).startsWith('webhook refused'));
    expect(refusalLines).toHaveLength(1);

    // The agent is unharmed: a signed push of a new commit converges it at once.
    const change = await repo.commit({ 'environments/test/values/web.yaml': 'config: {v: "2"}\n' });
    const signature = `sha256=${createHmac('sha256', secret).update(push).digest('hex')}`;
    const accepted = await fetch(`${base}/hooks/git`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
      body: push,
    });
    expect(accepted.status).toBe(202);
    await waitFor('the pushed commit to converge', async () =>
      agent.passes.slice(passes).some((p) => p.revision === change && p.outcome === 'converged'),
    );
  }, 120_000);
});
