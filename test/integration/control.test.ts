// `mooring suspend`, `resume` and `reconcile` against the real rig: the controls live on the
// MooringAgent and MooringRelease objects in the cluster, the agent honours them in converge,
// prune and drift correction, says so in status and Events, and a running agent wakes at
// once for a reconcile (its interval here is an hour) and forgets retry backoff.
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { loadKubeConfig } from '../../src/kube/client.js';
import { MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from '../../src/observe/crds.js';
import {
  configData,
  eventReasons,
  helmRevisions,
  kubectl,
  readRelease,
  runOnce,
  startLoop,
  startRig,
  uniqueName,
  type AgentRig,
  type TestRepo,
} from '../rig/agent.js';
import { mintUser } from '../rig/kube.js';

let rig: AgentRig;
let context: string;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
  context = loadKubeConfig({ kubeconfig: rig.kubeconfig }).getCurrentContext();
});

afterAll(async () => {
  await rig?.stop();
});

function capture(): Io & { text(): string; errors(): string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    colour: false,
    text: () => out.join('\n'),
    errors: () => err.join('\n'),
  };
}

/** `mooring ARGS --context C --kubeconfig K -n NS`, in this process. */
async function mooring(namespace: string, ...args: string[]) {
  const io = capture();
  const code = await main(
    [...args, '--context', context, '--kubeconfig', rig.kubeconfig, '-n', namespace],
    io,
  );
  return { code, out: io.text(), err: io.errors() };
}

async function readObject(kind: 'MooringAgent' | 'MooringRelease', namespace: string, name: string) {
  return (await rig.clients.customObjects.getNamespacedCustomObject({
    group: MOORING_GROUP,
    version: MOORING_VERSION,
    plural: MOORING_KINDS[kind].plural,
    namespace,
    name,
  })) as {
    metadata: { annotations?: Record<string, string>; generation?: number };
    spec?: { suspend?: boolean };
    status?: Record<string, unknown> & { conditions?: { type: string; status: string; reason: string }[] };
  };
}

const condition = (status: Record<string, unknown> | undefined, type: string) =>
  (status?.conditions as { type: string; status: string; reason: string }[] | undefined)?.find(
    (c) => c.type === type,
  );

const calls = (run: { helm: Array<{ command: string; release: string | undefined }> }) =>
  run.helm.map((c) => `${c.command} ${c.release}`);

describe('suspend and resume one release', () => {
  const cluster = uniqueName('susp');
  const agentNs = `${cluster}-agent`;
  let repo: TestRepo;
  let first: string;

  beforeAll(async () => {
    repo = await rig.createRepo(
      rig.clusterRepo(cluster, { web: {}, api: {} }, { web: 'config: {greeting: hello}\n' }),
    );
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(run.code, run.log()).toBe(0);
    first = run.passes[0]!.revision!;
  });

  it('is neither upgraded, pruned nor drift-corrected, and says so in status, conditions and Events', async () => {
    const suspend = await mooring(agentNs, 'suspend', '--release', 'web');
    expect(suspend.code, suspend.err).toBe(0);
    expect(suspend.out).toContain(`suspended release web of cluster ${cluster}`);
    const object = await readObject('MooringRelease', agentNs, 'web');
    expect(object.spec?.suspend).toBe(true);
    expect(object.metadata.annotations?.['mooring.io/suspended-by']).toBeTruthy();

    // Git changes both releases, and someone edits web's ConfigMap by hand.
    const second = await repo.commit({
      'environments/test/values/web.yaml': 'config: {greeting: changed}\n',
      'environments/test/values/api.yaml': 'config: {greeting: changed}\n',
    });
    await kubectl(
      rig.kubeconfig,
      '-n',
      `${cluster}-web`,
      'patch',
      'configmap',
      'web-config',
      '--type=merge',
      '-p',
      '{"data":{"greeting":"by hand"}}',
    );
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(calls(run)).toEqual(['upgrade api']);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.action, r.state])).toEqual([
      ['api', 'upgrade', 'ready'],
      ['web', 'suspended', 'suspended'],
    ]);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({ greeting: 'by hand' });
    const status = await readRelease(rig.clients, agentNs, 'web');
    expect(status).toMatchObject({
      state: 'suspended',
      desiredRevision: second,
      deployedRevision: first,
      drift: { mode: 'warn', corrected: false },
    });
    expect(status!.drift!.count).toBeGreaterThan(0);
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'Suspended' });
    expect(condition(status, 'Stalled')).toMatchObject({ status: 'True', reason: 'Suspended' });
    expect(status!.observedGeneration).toBe(object.metadata.generation);
    expect(await eventReasons(rig.clients, agentNs, 'web')).toContain('Normal/Suspended');
    const table = await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mrel', 'web');
    expect(table).toMatch(/web\s+suspended/);

    // Removed from Git with pruning on: still not uninstalled.
    await repo.commit({ 'environments/test/releases.yaml': rig.releasesYaml(cluster, { api: {} }) });
    const pruning = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);
    expect(pruning.code, pruning.log()).toBe(0);
    expect(calls(pruning)).toEqual([]);
    expect(await helmRevisions(rig.clients, `${cluster}-web`, 'web')).toHaveLength(1);
    expect(await readRelease(rig.clients, agentNs, 'web')).toMatchObject({ state: 'suspended' });
  });

  it('resumes: converges to what Git says now, with a Resumed event', async () => {
    await repo.commit({
      'environments/test/releases.yaml': rig.releasesYaml(cluster, { web: {}, api: {} }),
    });
    const resume = await mooring(agentNs, 'resume', '--release', 'web');
    expect(resume.code, resume.err).toBe(0);
    expect((await readObject('MooringRelease', agentNs, 'web')).spec?.suspend).toBeUndefined();

    const run = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);
    expect(run.code, run.log()).toBe(0);
    expect(calls(run)).toEqual(['upgrade web']);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({ greeting: 'changed' });
    const status = await readRelease(rig.clients, agentNs, 'web');
    expect(status).toMatchObject({ state: 'ready' });
    expect(condition(status, 'Ready')).toMatchObject({ status: 'True' });
    expect(await eventReasons(rig.clients, agentNs, 'web')).toContain('Normal/Resumed');
  });
});

describe('suspend and resume the whole agent', () => {
  const cluster = uniqueName('sagt');
  const agentNs = `${cluster}-agent`;
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {}, api: {} }));
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(run.code, run.log()).toBe(0);
  });

  it('changes nothing while suspended, says so everywhere, and converges once resumed', async () => {
    const suspend = await mooring(agentNs, 'suspend', '-o', 'json');
    expect(suspend.code, suspend.err).toBe(0);
    expect(JSON.parse(suspend.out)).toMatchObject({ ok: true, action: 'suspend', cluster, suspended: true });

    await repo.commit({ 'environments/test/values/web.yaml': 'config: {greeting: while-suspended}\n' });
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(run.code, run.log()).toBe(0);
    expect(run.passes.map((p) => p.outcome)).toEqual(['suspended']);
    expect(run.helm).toEqual([]);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({});
    for (const release of ['web', 'api']) {
      expect(await readRelease(rig.clients, agentNs, release)).toMatchObject({ state: 'suspended' });
    }
    const agent = await readObject('MooringAgent', agentNs, cluster);
    expect(agent.status).toMatchObject({ suspended: true, lastPassOutcome: 'suspended' });
    expect(condition(agent.status, 'Stalled')).toMatchObject({ status: 'True', reason: 'Suspended' });
    expect(await eventReasons(rig.clients, agentNs, cluster)).toContain('Normal/Suspended');
    expect(await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mooringagents')).toMatch(
      new RegExp(`${cluster}\\s+true`),
    );

    const refused = await mooring(agentNs, 'reconcile');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('is suspended');

    const resume = await mooring(agentNs, 'resume');
    expect(resume.code, resume.err).toBe(0);
    const resumed = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(resumed.code, resumed.log()).toBe(0);
    expect(calls(resumed)).toEqual(['upgrade web']);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({
      greeting: 'while-suspended',
    });
    expect(await readRelease(rig.clients, agentNs, 'api')).toMatchObject({ state: 'ready' });
    expect((await readObject('MooringAgent', agentNs, cluster)).status).toMatchObject({
      suspended: false,
      lastPassOutcome: 'converged',
    });
    expect(await eventReasons(rig.clients, agentNs, cluster)).toContain('Normal/Resumed');
  });
});

describe('mooring reconcile', () => {
  const cluster = uniqueName('recn');
  const agentNs = `${cluster}-agent`;

  it('wakes a running agent at once and retries a failed release without waiting for its backoff', async () => {
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {}, api: {} }));
    // A ConfigMap helm did not make stands in the way of api's install: it fails, for
    // reasons outside Git, so the same desired state is retried only after its backoff.
    await rig.clients.core.createNamespace({ body: { metadata: { name: `${cluster}-api` } } });
    await rig.clients.core.createNamespacedConfigMap({
      namespace: `${cluster}-api`,
      body: { metadata: { name: 'api-config' }, data: { owner: 'someone else' } },
    });
    const agent = startLoop(rig.agentFor(cluster, repo, { interval: '1h', driftInterval: '1h' }), rig.env);
    try {
      const firstPass = await agent.waitForPass(() => true);
      expect(firstPass.outcome).toBe('failed');
      const failed = await readRelease(rig.clients, agentNs, 'api');
      expect(failed).toMatchObject({ state: 'failed', failures: 1 });
      expect(failed!.retryAt).toBeGreaterThan(Date.now() + 5000);

      await rig.clients.core.deleteNamespacedConfigMap({ namespace: `${cluster}-api`, name: 'api-config' });
      const reconcile = await mooring(agentNs, 'reconcile', '--release', 'api');
      expect(reconcile.code, `${reconcile.err}\n${agent.logs.lines.join('')}`).toBe(0);
      expect(reconcile.out).toContain(
        `reconciled release api of cluster ${cluster} (context ${context}): ready`,
      );
      // The release's request is handled when its outcome is recorded; the pass then goes on.
      await agent.waitForPass(() => true, { from: 1 });
      expect(agent.passes.length).toBe(2);
      expect(agent.helm.filter((c) => c.command === 'upgrade' && c.release === 'api')).toHaveLength(2);
      const ready = await readRelease(rig.clients, agentNs, 'api');
      expect(ready).toMatchObject({ state: 'ready', lastHandledReconcileAt: expect.any(String) });

      const whole = await mooring(agentNs, 'reconcile', '-o', 'yaml');
      expect(whole.code, whole.err).toBe(0);
      expect(whole.out).toContain('handled: true');
      expect(whole.out).toContain('result: converged');
      expect(agent.passes.length).toBe(3);
    } finally {
      expect(await agent.stop()).toBe(0);
    }
  });
});

describe('who may suspend', () => {
  it('is for RBAC to say: a user who may only read is refused and nothing changes; the documented operator role may', async () => {
    const cluster = uniqueName('rbac');
    const agentNs = `${cluster}-agent`;
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(run.code, run.log()).toBe(0);

    // A reader (get, list) and an operator (get, list, patch: the role docs/operations.md shows).
    const rbac = rig.clients.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    const reader = `reader-${cluster}`;
    const operator = `oncall-${cluster}`;
    for (const [role, verbs, user] of [
      ['mooring-reader', ['get', 'list'], reader],
      ['mooring-operator', ['get', 'list', 'patch'], operator],
    ] as const) {
      await rbac.createNamespacedRole({
        namespace: agentNs,
        body: {
          metadata: { name: role },
          rules: [
            { apiGroups: ['mooring.io'], resources: ['mooringagents', 'mooringreleases'], verbs: [...verbs] },
          ],
        },
      });
      await rbac.createNamespacedRoleBinding({
        namespace: agentNs,
        body: {
          metadata: { name: role },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role },
          subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
        },
      });
    }
    const as = async (user: string, ...args: string[]) => {
      const kubeconfig = await mintUser(user);
      const io = capture();
      const ctx = loadKubeConfig({ kubeconfig }).getCurrentContext();
      const code = await main([...args, '--context', ctx, '--kubeconfig', kubeconfig, '-n', agentNs], io);
      return { code, out: io.text(), err: io.errors() };
    };

    const refused = await as(reader, 'suspend', '--release', 'web');
    expect(refused.code, refused.out).toBe(5);
    expect(refused.err).toMatch(/cannot suspend release web .*forbidden/i);
    expect(refused.err).toContain(reader);
    const untouched = await readObject('MooringRelease', agentNs, 'web');
    expect(untouched.spec?.suspend).not.toBe(true);
    expect(untouched.metadata.annotations?.['mooring.io/suspended-by']).toBeUndefined();
    const wholeAgent = await as(reader, 'suspend');
    expect(wholeAgent.code).toBe(5);
    expect((await readObject('MooringAgent', agentNs, cluster)).spec?.suspend).not.toBe(true);

    const allowed = await as(operator, 'suspend', '--release', 'web');
    expect(allowed.code, allowed.err).toBe(0);
    const suspended = await readObject('MooringRelease', agentNs, 'web');
    expect(suspended.spec?.suspend).toBe(true);
    expect(suspended.metadata.annotations?.['mooring.io/suspended-by']).toBe(operator);
  });
});
