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
