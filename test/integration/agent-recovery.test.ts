// `mooring run` surviving what happens to real agents: a second replica that must not
// converge while the first one leads, a pass longer than the lease, and SIGTERM during an
// upgrade (a real `node bin/mooring.js run` process: run the build first). Crashes (kill -9)
// are in agent-crash.test.ts.
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import {
  configData,
  kubectl,
  helmRevisions,
  readRelease,
  runOnce,
  spawnAgent,
  startLoop,
  startRig,
  uniqueName,
  waitFor,
  type AgentRig,
  type TestRepo,
} from '../rig/agent.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

describe('two replicas of one agent', () => {
  const cluster = uniqueName('ha');
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(
      rig.clusterRepo(cluster, { web: {}, api: {} }, { web: 'config: {v: "1"}\n' }),
    );
  });

  it('only the leader converges; once it stops, the other takes over', async () => {
    const replicas = ['east', 'west'].map((identity) =>
      startLoop(rig.agentFor(cluster, repo, { identity, interval: '1h' }), rig.env),
    );
    onTestFinished(async () => {
      await Promise.all(replicas.map((r) => r.stop()));
    });
    const leaderIndex = await waitFor('a replica to converge', async () => {
      const i = replicas.findIndex((r) => r.passes.some((p) => p.outcome === 'converged'));
      return i >= 0 ? i : undefined;
    });
    const leader = replicas[leaderIndex]!;
    const follower = replicas[1 - leaderIndex]!;

    expect(leader.helm.map((c) => `${c.command} ${c.release}`).sort()).toEqual([
      'upgrade api',
      'upgrade web',
    ]);
    // Give the follower several lease attempts: it must stay idle.
    await new Promise((r) => setTimeout(r, 4000));
    expect(follower.passes).toEqual([]);
    expect(follower.helm).toEqual([]);
    expect(follower.logs.entries().some((e) => e.msg === 'became leader')).toBe(false);
    expect(leader.logs.entries().some((e) => e.msg === 'became leader')).toBe(true);

    const change = await repo.commit({ 'environments/test/values/web.yaml': 'config: {v: "2"}\n' });
    const leaderHelm = leader.helm.length;
    expect(await leader.stop()).toBe(0);

    const taken = await follower.waitForPass((p) => p.revision === change);
    expect(taken.outcome).toBe('converged');
    expect(follower.helm.map((c) => `${c.command} ${c.release}`)).toEqual(['upgrade web']);
    expect(leader.helm.length).toBe(leaderHelm);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({ v: '2' });
    expect(await follower.stop()).toBe(0);
  });
});

describe('a --once pass that outlasts the lease', () => {
  const cluster = uniqueName('long');
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(rig.clusterRepo(cluster, { slow: {} }));
    const setup = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(setup.code, setup.log()).toBe(0);
  });

  it('keeps the lease renewed, so a waiting replica takes over only after it', async () => {
    // A rollout that times out after 25s, longer than the 15s lease.
    await repo.commit({
      'environments/test/releases.yaml': rig.releasesYaml(cluster, { slow: { timeout: '25s' } }),
      'environments/test/values/slow.yaml': 'neverReady: true\n',
    });
    const once = runOnce(rig.agentFor(cluster, repo, { identity: 'once' }), rig.env);
    await waitFor('helm to be upgrading slow', async () => {
      const revisions = await helmRevisions(rig.clients, `${cluster}-slow`, 'slow');
      return revisions.at(-1)?.status === 'pending-upgrade';
    });
    const replica = startLoop(rig.agentFor(cluster, repo, { identity: 'replica', interval: '1h' }), rig.env);
    try {
      const run = await once;
      expect(run.code, run.log()).toBe(1);
      const released = run.logs.entries().find((e) => e.msg === 'released the lease');
      expect(released).toBeDefined();
      expect(run.logs.entries().some((e) => e.msg === 'lost leadership')).toBe(false);

      await replica.waitForPass(() => true);
      const leading = replica.logs.entries().find((e) => e.msg === 'became leader');
      expect(leading!.time as number).toBeGreaterThanOrEqual(released!.time as number);
    } finally {
      await replica.stop();
    }
  });
});

describe('SIGTERM during an upgrade', () => {
  const cluster = uniqueName('term');
  const agentNs = `${cluster}-agent`;
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(rig.clusterRepo(cluster, { app: {} }, { app: 'config: {v: "1"}\n' }));
    const setup = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(setup.code, setup.log()).toBe(0);
  });

  it('lets the helm process in flight finish, records the result, then exits 0', async () => {
    const change = await repo.commit({
      'environments/test/releases.yaml': rig.releasesYaml(cluster, { app: { timeout: '60s' } }),
      'environments/test/values/app.yaml': 'config: {v: "2"}\nneverReady: true\n',
    });
    const agent = spawnAgent(
      [
        '--repo',
        repo.url,
        '--cluster',
        cluster,
        '--namespace',
        agentNs,
        '--identity',
        'draining',
        '--work-dir',
        `${rig.dir}/draining-work`,
        '--interval',
        '1h',
        '--listen',
        '127.0.0.1:0',
      ],
      rig.env,
    );
    onTestFinished(() => agent.killGroup('SIGKILL'));
    await waitFor('helm to be upgrading app', async () => {
      const revisions = await helmRevisions(rig.clients, `${cluster}-app`, 'app');
      return revisions.at(-1)?.status === 'pending-upgrade';
    });
    process.kill(agent.pid, 'SIGTERM');
    await waitFor('the agent to say it is stopping', async () =>
      agent.output().includes('finishing work in flight'),
    );
    // While it drains it keeps the lease: no other replica may start helm meanwhile.
    await new Promise((r) => setTimeout(r, 2500));
    const lease = await rig.clients.coordination.readNamespacedLease({
      name: `mooring-${cluster}`,
      namespace: agentNs,
    });
    expect(lease.spec?.holderIdentity).toBe('draining');
    // The rollout gets ready while the agent drains: the upgrade succeeds.
    await kubectl(
      rig.kubeconfig,
      '-n',
      `${cluster}-app`,
      'label',
      'deployment',
      'app',
      'mooring.dev/never-ready-',
    );

    expect(await agent.waitForExit(), agent.output()).toMatchObject({ exitCode: 0 });
    expect((await helmRevisions(rig.clients, `${cluster}-app`, 'app')).map((r) => r.status)).toEqual([
      'superseded',
      'deployed',
    ]);
    expect(await readRelease(rig.clients, agentNs, 'app')).toMatchObject({
      state: 'ready',
      deployedRevision: change,
      helmRevision: 2,
    });
  });
});
