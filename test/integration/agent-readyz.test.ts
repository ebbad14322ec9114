// /readyz follows the API server: the agent reaches the real control plane through a TCP
// proxy that the test can freeze (connections accepted, no byte forwarded: what a hung API
// server or a black-holed network looks like), and /readyz must say "not ready" within its
// probe's limit, then "ok" again once the API server answers.
import { readFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import { startLoop, startRig, uniqueName, waitFor, type AgentRig } from '../rig/agent.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

/** A TCP proxy to `host:port` whose traffic can be frozen and thawed. */
async function freezableProxy(host: string, port: number) {
  let frozen = false;
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
    const upstream = connect(port, host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    if (frozen) for (const s of pair) s.pause();
    const done = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const set = (value: boolean) => {
    frozen = value;
    for (const pair of pairs)
      for (const s of pair)
        if (value) s.pause();
        else s.resume();
  };
  return {
    port: (server.address() as AddressInfo).port,
    freeze: () => set(true),
    thaw: () => set(false),
    close: () => {
      for (const pair of pairs) for (const s of pair) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('/readyz', () => {
  it('says not ready while the API server does not answer, and ready again once it does', async () => {
    const cluster = uniqueName('readyz');
    const original = await readFile(rig.kubeconfig, 'utf8');
    const api = /server: https:\/\/([\d.]+):(\d+)/.exec(original)!;
    const proxy = await freezableProxy(api[1]!, Number(api[2]));
    onTestFinished(() => proxy.close());
    const kubeconfig = await rig.writeFile(
      `${cluster}/kubeconfig`,
      original.replace(api[0], `server: https://127.0.0.1:${proxy.port}`),
    );
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    const agent = startLoop(rig.agentFor(cluster, repo, { interval: '1h', listen: '127.0.0.1:0' }), {
      ...rig.env,
      KUBECONFIG: kubeconfig,
    });
    onTestFinished(async () => {
      proxy.thaw();
      await agent.stop();
    });
    const readyz = async () => {
      const res = await fetch(`http://${await agent.address}/readyz`);
      return { status: res.status, body: await res.text() };
    };
    await agent.waitForPass((p) => p.outcome === 'converged');
    expect(await readyz()).toEqual({ status: 200, body: 'ok\n' });

    proxy.freeze();
    const frozen = await waitFor('/readyz to fail', async () => {
      const r = await readyz();
      return r.status === 503 && r;
    });
    expect(frozen.body).toBe('not ready: the Kubernetes API server did not answer within 3s\n');
    // Still alive: liveness does not follow the API server.
    expect((await fetch(`http://${await agent.address}/healthz`)).status).toBe(200);

    proxy.thaw();
    await waitFor('/readyz to recover', async () => (await readyz()).status === 200);
  }, 120_000);
});
