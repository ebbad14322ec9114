// Approvals on charts nobody here wrote, as published (test/rig/real-charts.ts): bitnami
// redis with bitnami common (a password kept with `lookup`, checksum annotations over its
// Secret and ConfigMaps, StatefulSets) and podinfo. In a manual cluster they are installed
// with an approval;
// converged, nothing plans as a change (the agent's gate and `mooring plan --context`, which
// both render against the cluster); a values change plans exactly that change, is approved
// with `mooring approve`, and helm records the approved manifest.
import { readdir, readFile, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildAgent } from '../../src/cli/run.js';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { createApprovalStore } from '../../src/gate/approvals.js';
import { createPlanStore, planName } from '../../src/gate/plans.js';
import {
  captureLogs,
  helmRevisions,
  kubectl,
  startRig,
  uniqueName,
  type AgentRig,
  type TestRepo,
} from '../rig/agent.js';
import { realChartDir, type RealChart } from '../rig/real-charts.js';

let rig: AgentRig;
let context: string;
beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
  context = rig.clients.kubeConfig.getCurrentContext();
});
afterAll(async () => {
  await rig?.stop();
});

/** A real chart's files, to commit under `charts/<name>/` of a test repository. */
async function chartFiles(name: RealChart): Promise<Record<string, string>> {
  const root = realChartDir(name);
  const out: Record<string, string> = {};
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[`charts/${name}/${relative(root, path)}`] = await readFile(path, 'utf8');
  }
  return out;
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  const code = await main(args, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('bitnami redis and podinfo in a manual cluster', () => {
  const cluster = uniqueName('aredis');
  const agentNs = `${cluster}-agent`;
  const releaseNs = `${cluster}-redis`;
  const upgrades: string[][] = [];
  let repo: TestRepo;
  let built: Awaited<ReturnType<typeof buildAgent>>;
  const pass = async () => {
    const result = await built.agent.pass();
    await built.events.flush();
    return result;
  };
  const plans = () => createPlanStore({ client: rig.clients.rest, namespace: agentNs });
  const approvals = () => createApprovalStore({ client: rig.clients.rest, namespace: agentNs });
  const approve = (...extra: string[]) =>
    cli(['approve', '--context', context, '--kubeconfig', rig.kubeconfig, '-n', agentNs, '--yes', ...extra]);
  const password = async () =>
    (await rig.clients.core.readNamespacedSecret({ name: 'redis', namespace: releaseNs })).data![
      'redis-password'
    ];
  let kept: string | undefined;

  beforeAll(async () => {
    repo = await rig.createRepo({
      ...rig.clusterRepo(cluster, {
        redis: { chart: './charts/redis', timeout: '90s' },
        podinfo: { chart: './charts/podinfo', timeout: '90s' },
      }),
      ...(await chartFiles('redis')),
      ...(await chartFiles('podinfo')),
    });
    built = await buildAgent(
      rig.agentFor(cluster, repo, { approval: 'manual' }),
      rig.env,
      captureLogs().logger,
      undefined,
      (args) => {
        if (args[0] === 'upgrade' && !args.includes('--dry-run=server')) upgrades.push([...args]);
      },
    );
  });

  afterAll(() => built?.charts.close());

  it('installs with an approval, and helm records the approved manifest', async () => {
    const first = await pass();
    expect(first.outcome, JSON.stringify(first)).toBe('pending-approval');
    const install = (await plans().get(planName(cluster, first.revision!)))!.status.releases;
    expect(install.map((r) => [r.name, r.action, r.dryRunError])).toEqual([
      ['podinfo', 'install', undefined],
      ['redis', 'install', undefined],
    ]);
    expect((await approve()).code).toBe(0);
    const installed = await pass();
    expect(installed.outcome, JSON.stringify(installed)).toBe('converged');
    expect((await approvals().list(cluster))[0]!.status).toMatchObject({
      result: 'applied',
      manifestCheck: 'as-approved',
    });
    kept = await password();
  });

  it('plans no change once converged: no plan for a commit that changes no release, nothing in mooring plan --context', async () => {
    // A commit that changes no release: no plan waits, nothing is upgraded.
    const unrelated = await repo.commit({ 'README.md': 'notes\n' });
    const quiet = await pass();
    expect(quiet).toMatchObject({ outcome: 'converged', revision: unrelated });
    expect(upgrades).toHaveLength(2);
    expect((await plans().list(cluster)).filter((p) => p.status.phase === 'pending')).toEqual([]);

    // `mooring plan --context`, rendered against the cluster as the upgrade would: nothing.
    const checkout = await rig.tempDir('checkout');
    await execa('git', ['clone', '--quiet', repo.gitdir, checkout]);
    const planned = await cli([
      'plan',
      '--repo',
      checkout,
      '--cluster',
      cluster,
      '--context',
      context,
      '--kubeconfig',
      rig.kubeconfig,
      '-n',
      agentNs,
      '-o',
      'json',
    ]);
    expect(planned.code, planned.err).toBe(0);
    const live = (
      JSON.parse(planned.out) as {
        live: { releases: { name: string; action: string; manifestDiff: string; valuesDiff: string }[] };
      }
    ).live.releases;
    expect(live.map((r) => [r.name, r.action, r.valuesDiff, r.manifestDiff])).toEqual([
      ['podinfo', 'none', '', ''],
      ['redis', 'none', '', ''],
    ]);
    await rm(checkout, { recursive: true, force: true });
  });

  it('plans a values change as exactly that change, approved with mooring approve and applied as approved', async () => {
    // Two replicas instead of three: the plan shows that, and nothing else.
    const scaled = await repo.commit({
      'environments/test/values/redis.yaml': 'replica:\n  replicaCount: 2\n',
    });
    expect(await pass()).toMatchObject({ outcome: 'pending-approval', revision: scaled });
    const releases = (await plans().get(planName(cluster, scaled)))!.status.releases;
    expect(releases.map((r) => [r.name, r.action])).toEqual([
      ['podinfo', 'none'],
      ['redis', 'upgrade'],
    ]);
    const upgrade = releases[1]!;
    expect(upgrade.dryRunError).toBeUndefined();
    expect(upgrade.valuesDiff).toContain('+replica:\n+  replicaCount: 2');
    const changedObjects = [...upgrade.manifestDiff!.matchAll(/^\+\+\+ (\S+)$/gm)].map((m) => m[1]);
    expect(changedObjects).toEqual([`desired/StatefulSet/${releaseNs}/redis-replicas`]);
    expect(upgrade.manifestDiff).toContain('-  replicas: 3\n+  replicas: 2');
    expect(upgrade.manifestDiff!.split('\n').filter((l) => /^[-+] /.test(l))).toEqual([
      '-  replicas: 3',
      '+  replicas: 2',
    ]);

    const approved = await approve('--release', 'redis');
    expect(approved.code, approved.err).toBe(0);
    expect(approved.out).toMatch(/redis\s+upgrade\s+\S+\s+\+0 ~1 -0\s+ok/);
    const applied = await pass();
    expect(applied).toMatchObject({ outcome: 'converged', revision: scaled });
    expect(upgrades.map((a) => a[1]).sort()).toEqual(['podinfo', 'redis', 'redis']);
    expect((await approvals().list(cluster))[0]!.status).toMatchObject({
      result: 'applied',
      manifestCheck: 'as-approved',
    });
    expect(
      await kubectl(
        rig.kubeconfig,
        'get',
        'statefulset',
        'redis-replicas',
        '-n',
        releaseNs,
        '-o',
        'jsonpath={.spec.replicas}',
      ),
    ).toBe('2');
    expect(await password()).toBe(kept);
    expect((await helmRevisions(rig.clients, releaseNs, 'redis')).length).toBe(2);
  });
});
