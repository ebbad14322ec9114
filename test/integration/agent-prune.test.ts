// Releases that leave Git: removed from releases.yaml, or switched off with `enabled: false`.
// Without --prune they are only reported (state orphaned, an Orphaned Event); with --prune
// they are uninstalled (a Pruned Event). A Helm release mooring did not install is never
// touched, even in a namespace mooring manages.
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  appChart,
  configData,
  eventReasons,
  eventsIn,
  HELM,
  helmRevisions,
  readRelease,
  runOnce,
  startRig,
  uniqueName,
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

describe('pruning', () => {
  const cluster = uniqueName('prune');
  const agentNs = `${cluster}-agent`;
  const statuses = async (release: string, namespace = `${cluster}-${release}`) =>
    (await helmRevisions(rig.clients, namespace, release)).map((r) => r.status);
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {}, extra: {}, legacy: {} }));
    const setup = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(setup.code, setup.log()).toBe(0);

    // Someone installs a release by hand next to web; mooring has no record of it.
    const chartDir = await mkdtemp(join(rig.dir, 'hand-chart-'));
    for (const [path, content] of Object.entries(appChart('app', 'app'))) {
      await mkdir(dirname(join(chartDir, path)), { recursive: true });
      await writeFile(join(chartDir, path), content);
    }
    await execa(HELM, [
      'install',
      'hand',
      join(chartDir, 'app'),
      '--namespace',
      `${cluster}-web`,
      '--kubeconfig',
      rig.kubeconfig,
      '--set',
      'config.owner=someone',
    ]);
  });

  it('without --prune, reports releases that left Git as orphaned and leaves them installed', async () => {
    await repo.commit({
      'environments/test/releases.yaml': rig.releasesYaml(cluster, { web: {}, legacy: { enabled: false } }),
    });
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(run.helm).toEqual([]);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.action, r.state])).toEqual([
      ['extra', 'orphan', 'orphaned'],
      ['legacy', 'orphan', 'orphaned'],
      ['web', 'none', 'ready'],
    ]);
    for (const release of ['extra', 'legacy']) {
      const status = await readRelease(rig.clients, agentNs, release);
      expect(status).toMatchObject({ state: 'orphaned' });
      expect(status!.lastError).toContain('--prune');
      expect(await statuses(release)).toEqual(['deployed']);
      expect(await eventReasons(rig.clients, agentNs, release)).toEqual([
        'Normal/Converged',
        'Warning/Orphaned',
      ]);
    }

    // Reported once, not at every pass.
    const again = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(again.code).toBe(0);
    expect(await eventReasons(rig.clients, agentNs, 'extra')).toEqual([
      'Normal/Converged',
      'Warning/Orphaned',
    ]);
  });

  it('with --prune, uninstalls them; the hand-installed release is never touched', async () => {
    const run = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(run.helm.map((c) => `${c.command} ${c.release}`).sort()).toEqual([
      'uninstall extra',
      'uninstall legacy',
    ]);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.action, r.state])).toEqual([
      ['extra', 'uninstall', 'pruned'],
      ['legacy', 'uninstall', 'pruned'],
      ['web', 'none', 'ready'],
    ]);
    for (const release of ['extra', 'legacy']) {
      expect(await statuses(release)).toEqual([]);
      expect(await configData(rig.clients, `${cluster}-${release}`, `${release}-config`)).toBeUndefined();
      expect(await readRelease(rig.clients, agentNs, release)).toBeUndefined();
      expect(await eventReasons(rig.clients, agentNs, release)).toEqual([
        'Normal/Converged',
        'Warning/Orphaned',
        'Normal/Pruned',
      ]);
    }
    expect(await statuses('web')).toEqual(['deployed']);
    expect(await statuses('hand', `${cluster}-web`)).toEqual(['deployed']);
    expect(await configData(rig.clients, `${cluster}-web`, 'hand-config')).toEqual({ owner: 'someone' });

    // Nothing left to prune: the next pass runs no helm.
    const after = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);
    expect(after.code).toBe(0);
    expect(after.helm).toEqual([]);
    expect(after.passes[0]!.converge!.releases.map((r) => r.name)).toEqual(['web']);
  });
});

// SPEC §8: --prune never uninstalls every release of a cluster in one pass. A commit that
// would (releases.yaml deleted, every release disabled) is refused as an invalid revision.
describe('the prune guard', () => {
  const cluster = uniqueName('guard');
  const agentNs = `${cluster}-agent`;
  const lease = `mooring-${cluster}`;
  const statuses = async (release: string) =>
    (await helmRevisions(rig.clients, `${cluster}-${release}`, release)).map((r) => r.status);
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo({
      ...rig.clusterRepo(cluster, { web: {}, extra: {} }),
      // Keeps environments/test/ in Git when releases.yaml goes.
      'environments/test/values.yaml': 'logLevel: info\n',
    });
    const setup = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);
    expect(setup.code, setup.log()).toBe(0);
  });

  it('refuses a commit that deletes releases.yaml: exit 1, an Event, nothing uninstalled', async () => {
    const revision = await repo.commit({ 'environments/test/releases.yaml': null }, 'delete releases.yaml');
    const run = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);

    expect(run.code, run.log()).toBe(1);
    expect(run.helm).toEqual([]);
    expect(run.passes[0]).toMatchObject({ outcome: 'invalid', revision });
    expect(run.passes[0]!.error).toMatch(/would uninstall every release of the cluster \(extra, web\)/);
    expect(run.passes[0]!.error).toContain('--prune-allow-empty');
    for (const release of ['web', 'extra']) {
      expect(await statuses(release)).toEqual(['deployed']);
      expect(await readRelease(rig.clients, agentNs, release)).toMatchObject({ state: 'ready' });
    }
    const events = await eventsIn(rig.clients, agentNs, lease);
    expect(events.map((e) => `${e.type}/${e.reason}`)).toEqual(['Warning/InvalidRevision']);
    expect(events[0]!.message).toContain(revision.slice(0, 7));
    expect(events[0]!.message).toContain('--prune-allow-empty');
  });

  it('refuses disabling every release; a commit that keeps one release goes through', async () => {
    await repo.commit({
      'environments/test/releases.yaml': rig.releasesYaml(cluster, {
        web: { enabled: false },
        extra: { enabled: false },
      }),
    });
    const refused = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);
    expect(refused.code, refused.log()).toBe(1);
    expect(refused.helm).toEqual([]);
    expect(await statuses('web')).toEqual(['deployed']);

    await repo.commit({ 'environments/test/releases.yaml': rig.releasesYaml(cluster, { web: {} }) });
    const kept = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);
    expect(kept.code, kept.log()).toBe(0);
    expect(kept.helm.map((c) => `${c.command} ${c.release}`)).toEqual(['uninstall extra']);
    expect(await statuses('extra')).toEqual([]);
    expect(await statuses('web')).toEqual(['deployed']);
  });

  it('with --prune-allow-empty, a commit that empties the cluster uninstalls everything', async () => {
    await repo.commit({ 'environments/test/releases.yaml': null });
    const refused = await runOnce(rig.agentFor(cluster, repo, { prune: true }), rig.env);
    expect(refused.code).toBe(1);
    expect(await statuses('web')).toEqual(['deployed']);

    const allowed = await runOnce(
      rig.agentFor(cluster, repo, { prune: true, pruneAllowEmpty: true }),
      rig.env,
    );
    expect(allowed.code, allowed.log()).toBe(0);
    expect(allowed.helm.map((c) => `${c.command} ${c.release}`)).toEqual(['uninstall web']);
    expect(await statuses('web')).toEqual([]);
  });
});
