// What a pass costs the API server, counted by a proxy in front of the real control plane
// (scripts/lib/api-proxy.mjs) that sees every request of the agent and of its helm
// processes: a commit costs requests for what it changes, not for every release. Counts,
// not timings: they do not depend on the machine.
import { createHmac } from 'node:crypto';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  readRelease,
  startLoop,
  startRig,
  uniqueName,
  type AgentRig,
  type RunningAgent,
} from '../rig/agent.js';

interface ProxiedRequest {
  method: string;
  path: string;
  userAgent: string;
  status?: number;
}
const { startApiProxy } = (await import(
  new URL('../../scripts/lib/api-proxy.mjs', import.meta.url).href
)) as {
  startApiProxy(options: { kubeconfig: string; dir: string }): Promise<{
    kubeconfig: string;
    requests: ProxiedRequest[];
    stop(): Promise<void>;
  }>;
};

let rig: AgentRig;
let proxy: Awaited<ReturnType<typeof startApiProxy>>;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
  proxy = await startApiProxy({ kubeconfig: rig.kubeconfig, dir: rig.dir });
});

afterAll(async () => {
  await proxy?.stop();
  await rig?.stop();
});

const RELEASES = ['a', 'b', 'c', 'd', 'e', 'f'];
const SECRET = 'requests-webhook-secret';

/** helm identifies itself; everything else through the proxy is the agent. */
const isHelm = (r: ProxiedRequest) => /^helm\//i.test(r.userAgent);
/** Lease renewals go on whatever a pass does. */
const isLease = (r: ProxiedRequest) => r.path.includes('/leases');
/**
 * The agent's own MooringAgent object: its status is patched when a pass finds something
 * new (a revision, an outcome), a fixed cost per change, not per release, left out here.
 */
const isAgentObject = (r: ProxiedRequest) => r.path.includes('/mooringagents/');
const brief = (r: ProxiedRequest) => `${r.method} ${decodeURIComponent(r.path.split('?')[0]!)}`;

describe('API requests of one pass', () => {
  const cluster = uniqueName('reqs');
  const agentNs = `${cluster}-agent`;
  let agent: RunningAgent;
  let trigger: () => Promise<void>;
  let repo: Awaited<ReturnType<AgentRig['createRepo']>>;

  /** The agent's own requests (not helm's, not the lease's) made while `work` ran a pass. */
  async function passRequests(
    work: () => Promise<unknown>,
  ): Promise<{ agent: string[]; helm: string[]; agentObject: string[] }> {
    await settled();
    const from = proxy.requests.length;
    const passes = agent.passes.length;
    await work();
    await trigger();
    const pass = await agent.waitForPass(() => true, { from: passes });
    expect(pass.outcome, JSON.stringify(pass)).toBe('converged');
    const seen = proxy.requests.slice(from);
    return {
      agent: seen.filter((r) => !isHelm(r) && !isLease(r) && !isAgentObject(r)).map(brief),
      helm: seen.filter(isHelm).map(brief),
      agentObject: seen.filter(isAgentObject).map(brief),
    };
  }

  /** Waits until the agent's background work (Events of the last pass) is over: 1s without a request. */
  async function settled(): Promise<void> {
    let count = -1;
    while (count !== proxy.requests.filter((r) => !isLease(r)).length) {
      count = proxy.requests.filter((r) => !isLease(r)).length;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  beforeAll(async () => {
    repo = await rig.createRepo(
      rig.clusterRepo(
        cluster,
        Object.fromEntries(RELEASES.map((r) => [r, {}])),
        Object.fromEntries(RELEASES.map((r) => [r, `config: {v: "1"}\n`])),
      ),
    );
    const webhookSecretFile = await rig.writeFile(`${cluster}/webhook-secret`, SECRET);
    agent = startLoop(
      rig.agentFor(cluster, repo, {
        interval: '1h',
        drift: 'off',
        listen: '127.0.0.1:0',
        webhookSecretFile,
      }),
      // A home where ~/.kube is a file: client-go cannot cache there (as in a container
      // whose home is not writable), so only the cache in the agent's work dir can spare
      // helm its downloads.
      {
        ...rig.env,
        KUBECONFIG: proxy.kubeconfig,
        HOME: dirname(await rig.writeFile(`${cluster}-home/.kube`, '')),
      },
    );
    const base = `http://${await agent.address}`;
    trigger = async () => {
      const body = JSON.stringify({ ref: 'refs/heads/main' });
      const signature = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
      const res = await fetch(`${base}/hooks/git`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
        body,
      });
      expect(res.status).toBe(202);
    };
    await agent.waitForPass((p) => p.outcome === 'converged');
    // The records the cold converge created are new operator controls to the agent (their
    // suspensions), so the next pass converges once more; let it happen before counting.
    const passes = agent.passes.length;
    await trigger();
    await agent.waitForPass(() => true, { from: passes });
  });

  afterAll(async () => {
    await agent?.stop();
  });

  it('a cold converge writes each record without reading it first: create, progressing, ready', () => {
    const writes = proxy.requests.filter((r) => !isHelm(r) && r.path.includes('/mooringreleases')).map(brief);
    for (const release of RELEASES) {
      const path = `/apis/mooring.io/v1alpha1/namespaces/${agentNs}/mooringreleases`;
      expect(writes.filter((w) => w.endsWith(`/${release}`) || w.endsWith(`/${release}/status`))).toEqual([
        `PATCH ${path}/${release}/status`,
        `PATCH ${path}/${release}/status`,
      ]);
    }
    expect(writes.filter((w) => w.startsWith('POST'))).toHaveLength(RELEASES.length);
    const perObject = writes.filter((w) => /mooringreleases\/[^/]+/.test(w));
    expect(perObject.filter((w) => w.startsWith('PUT') || w.startsWith('GET'))).toEqual([]);
  });

  const agentStatus = `PATCH /apis/mooring.io/v1alpha1/namespaces/${agentNs}/mooringagents/${cluster}/status`;

  it('the same head again: no request beyond the lease (controls and records come from watches)', async () => {
    const seen = await passRequests(async () => undefined);
    expect(seen).toEqual({ agent: [], helm: [], agentObject: [] });
  });

  it('a commit that changes no release: one LIST of helm storage, the new revision in the MooringAgent, no record written', async () => {
    const seen = await passRequests(() => repo.commit({ 'README.md': 'docs only\n' }, 'docs'));
    expect(seen).toEqual({ agent: ['GET /api/v1/secrets'], helm: [], agentObject: [agentStatus] });
  });

  it('a commit that changes one release: that release is written twice, the others not at all', async () => {
    const before = proxy.requests.length;
    const seen = await passRequests(() =>
      repo.commit({ 'environments/test/values/c.yaml': 'config: {v: "2"}\n' }),
    );
    // The Converged Event is sent after the pass, in the background, without looking anything up.
    await expect
      .poll(() =>
        proxy.requests
          .slice(before)
          .filter((r) => !isHelm(r) && r.path.includes('/events'))
          .map(brief),
      )
      .toEqual([`POST /api/v1/namespaces/${agentNs}/events`]);

    expect(seen.helm.length).toBeGreaterThan(0);
    // helm found the OpenAPI documents the cold converge's helm processes cached in the
    // agent's work dir: it only revalidates the index, never downloads a group's schema.
    expect(seen.helm.filter((r) => r.startsWith('GET /openapi/v3/'))).toEqual([]);
    expect(seen.helm).toContain('GET /openapi/v3');
    const mrel = `/apis/mooring.io/v1alpha1/namespaces/${agentNs}/mooringreleases`;
    expect(seen.agent.filter((r) => !r.includes('/events'))).toEqual([
      'GET /api/v1/secrets',
      `PATCH ${mrel}/c/status`,
      `PATCH ${mrel}/c/status`,
    ]);
    expect(seen.agentObject).toEqual([agentStatus]);
    expect(await readRelease(rig.clients, agentNs, 'c')).toMatchObject({ state: 'ready', helmRevision: 2 });
  });
});
