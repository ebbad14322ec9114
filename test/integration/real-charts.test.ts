// The promises that matter most, held on charts nobody here wrote: bitnami redis (with
// bitnami common, `lookup`-kept passwords, StatefulSets), podinfo and ingress-nginx (hook
// Jobs, an admission webhook), as their authors publish them (test/rig/real-charts.ts).
// An agent converges them from Git; the next pass upgrades nothing and finds no drift (zero
// false positives); a hand edit is then found and put back.
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  helmRevisions,
  kubectl,
  readRelease,
  runOnce,
  startRig,
  uniqueName,
  type AgentRig,
} from '../rig/agent.js';
import { realChartDir, type RealChart } from '../rig/real-charts.js';

let rig: AgentRig;
beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});
afterAll(async () => {
  await rig?.stop();
});

/** A real chart's files, to commit under `charts/<name>/` of a test repository. */
async function chartFiles(name: RealChart): Promise<Record<string, string>> {
  const root = realChartDir(name);
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out[`charts/${name}/${relative(root, path)}`] = await readFile(path, 'utf8');
    }
  };
  await walk(root);
  return out;
}

const CHARTS: RealChart[] = ['redis', 'podinfo', 'ingress-nginx'];

describe('real public charts', () => {
  it('converge, then pass with no upgrade and no drift, and a hand edit is found and put back', async () => {
    const cluster = uniqueName('real');
    const releases = Object.fromEntries(
      CHARTS.map((chart) => [chart, { chart: `./charts/${chart}`, timeout: '90s' }]),
    );
    const files: Record<string, string> = rig.clusterRepo(cluster, releases, {
      // Each ingress-nginx install owns a cluster-wide IngressClass and webhook: a name of its own.
      'ingress-nginx': `controller:\n  ingressClassResource:\n    name: ${cluster}\n    controllerValue: k8s.io/${cluster}\n`,
    });
    for (const chart of CHARTS) Object.assign(files, await chartFiles(chart));
    const repo = await rig.createRepo(files);
    const config = rig.agentFor(cluster, repo, { drift: 'correct' });

    const first = await runOnce(config, rig.env);
    expect(first.code, first.log()).toBe(0);
    for (const chart of CHARTS) {
      const record = await readRelease(rig.clients, config.namespace, chart);
      expect(record, chart).toMatchObject({ state: 'ready' });
    }
    const revisions = await Promise.all(
      CHARTS.map(async (chart) => (await helmRevisions(rig.clients, `${cluster}-${chart}`, chart)).length),
    );
    expect(revisions).toEqual([1, 1, 1]);

    // Nothing changed in Git or in the cluster: no helm process, no drift. Server defaults,
    // `lookup`-kept passwords and hook Jobs are not differences.
    const second = await runOnce(config, rig.env);
    expect(second.code, second.log()).toBe(0);
    expect(second.helm).toEqual([]);
    expect(second.passes[0]!.drift, second.log()).toEqual({ drifted: 0, corrected: 0, failed: 0 });
    for (const chart of CHARTS) {
      const record = await readRelease(rig.clients, config.namespace, chart);
      expect(record?.state, chart).toBe('ready');
      expect(record?.drift?.fields ?? [], chart).toEqual([]);
    }

    // A hand edit of a chart-owned field is real drift, and is put back without a new revision.
    const ns = `${cluster}-podinfo`;
    await kubectl(rig.kubeconfig, 'scale', 'deployment', 'podinfo', '-n', ns, '--replicas=3');
    const third = await runOnce(config, rig.env);
    expect(third.passes[0]!.drift, third.log()).toEqual({ drifted: 1, corrected: 1, failed: 0 });
    expect(
      await kubectl(
        rig.kubeconfig,
        'get',
        'deployment',
        'podinfo',
        '-n',
        ns,
        '-o',
        'jsonpath={.spec.replicas}',
      ),
    ).toBe('1');
    expect((await helmRevisions(rig.clients, ns, 'podinfo')).length).toBe(1);
  });
});
