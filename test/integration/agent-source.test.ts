// `mooring run` and its Git server, against the real rig: an outage (the agent backs off and
// converges once Git is back), wrong credentials (a clear error, never the password), and the
// agent's HTTP endpoints (/healthz, /readyz, /metrics, a signed POST /hooks/git that triggers
// an immediate pass). The git server here requires basic auth, as real forges do.
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  eventsIn,
  runOnce,
  startLoop,
  startRig,
  uniqueName,
  type AgentRig,
  type TestRepo,
} from '../rig/agent.js';

const USERNAME = 'mooring-bot';
const PASSWORD = 'tok-7c1f0a9e5d2b4f66';
const WRONG_PASSWORD = 'wrong-3e8d1c0b7a6f';

let rig: AgentRig;
let credentials: { gitUsernameFile: string; gitPasswordFile: string };

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'), { auth: { username: USERNAME, password: PASSWORD } });
  credentials = {
    gitUsernameFile: await rig.writeFile('git/username', `${USERNAME}\n`),
    gitPasswordFile: await rig.writeFile('git/password', `${PASSWORD}\n`),
  };
});

afterAll(async () => {
  await rig?.stop();
});

describe('the Git server goes down, then comes back', () => {
  it('--once exits 4 (source error) and runs no helm while Git is down', async () => {
    const cluster = uniqueName('outage');
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    rig.git.setDown(true);
    try {
      const run = await runOnce(rig.agentFor(cluster, repo, credentials), rig.env);

      expect(run.code, run.log()).toBe(4);
      expect(run.passes.map((p) => p.outcome)).toEqual(['source-error']);
      expect(run.passes[0]!.error).toContain(repo.url);
      expect(run.helm).toEqual([]);
    } finally {
      rig.git.setDown(false);
    }
  });

  it('the loop backs off, reports the outage once, and converges when Git is back', async () => {
    const cluster = uniqueName('outage');
    const agentNs = `${cluster}-agent`;
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    rig.git.setDown(true);
    const agent = startLoop(rig.agentFor(cluster, repo, { ...credentials, interval: '1h' }), rig.env);
    try {
      await agent.waitForPass((p) => p.outcome === 'source-error');
      const requestsBefore = rig.git.requests.length;
      await agent.waitForPass((p) => p.outcome === 'source-error', { from: 1 });
      // The second failure came from the backoff timer (the interval is an hour), at one poll per pass.
      expect(rig.git.requests.length - requestsBefore).toBe(1);
      expect(agent.helm).toEqual([]);

      rig.git.setDown(false);
      const recovered = await agent.waitForPass((p) => p.outcome === 'converged');
      expect(recovered.converge!.releases.map((r) => [r.name, r.state])).toEqual([['web', 'ready']]);
      expect(agent.passes.filter((p) => p.outcome === 'source-error').length).toBeGreaterThanOrEqual(2);
      const sourceEvents = (await eventsIn(rig.clients, agentNs, `mooring-${cluster}`)).filter(
        (e) => e.reason === 'SourceFailed',
      );
      expect(sourceEvents).toHaveLength(1);
      expect(sourceEvents[0]!.type).toBe('Warning');
    } finally {
      rig.git.setDown(false);
      expect(await agent.stop()).toBe(0);
    }
  });
});

describe('wrong Git credentials', () => {
  const cluster = uniqueName('creds');
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
  });

  it('exit 4 with an error naming the URL and the credential flags, never the password', async () => {
    const wrong = await rig.writeFile(`${cluster}/password`, `${WRONG_PASSWORD}\n`);
    const run = await runOnce(
      rig.agentFor(cluster, repo, { ...credentials, gitPasswordFile: wrong }),
      rig.env,
    );

    expect(run.code, run.log()).toBe(4);
    const error = run.passes[0]!.error!;
    expect(error).toContain(`authentication failed for ${repo.url}`);
    expect(error).toContain('--git-username-file');
    expect(error).toContain('--git-password-file');
    expect(run.log()).toContain('authentication failed');
    for (const secret of [
      WRONG_PASSWORD,
      PASSWORD,
      Buffer.from(`${USERNAME}:${WRONG_PASSWORD}`).toString('base64'),
    ]) {
      expect(run.log()).not.toContain(secret);
      expect(error).not.toContain(secret);
    }
    // The server saw the user, so the agent did send the credentials it was given.
    expect(rig.git.requests.some((r) => r.user === USERNAME && r.status === 401)).toBe(true);
    expect(run.helm).toEqual([]);
  });
});

describe('HTTP endpoints', () => {
  const cluster = uniqueName('http');
  const secret = 'webhook-secret-0f4e';
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }, { web: 'config: {v: "1"}\n' }));
  });

  const sign = (body: string, key: string) =>
    `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;

  it('answer /healthz, /readyz and /metrics, and a signed POST /hooks/git triggers a pass at once', async () => {
    const webhookSecretFile = await rig.writeFile(`${cluster}/webhook-secret`, `${secret}\n`);
    rig.git.setDown(true);
    const agent = startLoop(
      rig.agentFor(cluster, repo, {
        ...credentials,
        interval: '1h',
        listen: '127.0.0.1:0',
        webhookSecretFile,
      }),
      rig.env,
    );
    try {
      const base = `http://${await agent.address}`;
      const get = async (path: string) => {
        const res = await fetch(`${base}${path}`);
        return { status: res.status, body: await res.text() };
      };
      const hook = async (body: string, signature: string) =>
        (
          await fetch(`${base}/hooks/git`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
            body,
          })
        ).status;

      // No snapshot yet: alive, not ready.
      await agent.waitForPass((p) => p.outcome === 'source-error');
      expect(await get('/healthz')).toEqual({ status: 200, body: 'ok\n' });
      expect(await get('/readyz')).toEqual({
        status: 503,
        body: 'not ready: no snapshot of the repository yet\n',
      });

      rig.git.setDown(false);
      const push = JSON.stringify({ ref: 'refs/heads/main' });
      expect(await hook(push, sign(push, secret))).toBe(202);
      await agent.waitForPass((p) => p.outcome === 'converged');
      expect(await get('/readyz')).toEqual({ status: 200, body: 'ok\n' });

      // A new commit: nothing happens until a correctly signed push notification arrives.
      const change = await repo.commit({ 'environments/test/values/web.yaml': 'config: {v: "2"}\n' });
      const passes = agent.passes.length;
      expect(await hook(push, sign(push, 'not-the-secret'))).toBe(401);
      expect(await hook(push, 'sha256=' + '0'.repeat(64))).toBe(401);
      expect(await get('/hooks/git')).toMatchObject({ status: 405 });
      expect(agent.passes.length).toBe(passes);
      expect(await hook(push, sign(push, secret))).toBe(202);
      const upgraded = await agent.waitForPass((p) => p.revision === change, { from: passes });
      expect(upgraded.outcome).toBe('converged');
      expect(upgraded.converge!.releases.map((r) => [r.name, r.action])).toEqual([['web', 'upgrade']]);

      // Once more with no new commit: the loop knows the revision is converged and runs no helm.
      const helmBefore = agent.helm.length;
      const passesBefore = agent.passes.length;
      expect(await hook(push, sign(push, secret))).toBe(202);
      const idle = await agent.waitForPass(() => true, { from: passesBefore });
      expect(idle).toMatchObject({ outcome: 'converged', revision: change });
      expect(agent.helm.length).toBe(helmBefore);

      const metrics = await fetch(`${base}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.headers.get('content-type')).toContain('text/plain');
      const text = await metrics.text();
      // Every series carries the agent's cluster (the fleet view across clusters).
      const c = `cluster="${cluster}"`;
      expect(text).toContain(`mooring_passes_total{outcome="converged",${c}} 3`);
      expect(text).toMatch(new RegExp(`mooring_passes_total\\{outcome="source-error",${c}\\} [1-9]`));
      expect(text).toContain(`mooring_helm_processes_total{command="upgrade",${c}} 2`);
      expect(text).toContain(`mooring_git_polls_total{changed="false",${c}} 1`);
      expect(text).toContain(`mooring_leader{${c}} 1`);
      expect(text).toContain(`mooring_releases{state="ready",${c}} 1`);
      expect(text).toContain(`mooring_converges_total{release="web",result="success",${c}} 2`);
      expect(text).toContain(`process_resident_memory_bytes{${c}}`);
    } finally {
      rig.git.setDown(false);
      expect(await agent.stop()).toBe(0);
    }
  });
});
