// Drift through `mooring run --once`, as operators meet it: a hand-made change is put back in
// drift mode correct (no new helm revision), and only reported in warn mode.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  eventReasons,
  helmRevisions,
  kubectl,
  readRelease,
  runOnce,
  startRig,
  uniqueName,
  type AgentRig,
} from '../rig/agent.js';

let rig: AgentRig;
beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});
afterAll(async () => {
  await rig?.stop();
});

const replicasOf = (ns: string) =>
  kubectl(rig.kubeconfig, 'get', 'deployment', 'web', '-n', ns, '-o', 'jsonpath={.spec.replicas}');

describe('mooring run --once checks drift in every pass', () => {
  it('puts a scaled Deployment back in drift mode correct, without a new helm revision', async () => {
    const cluster = uniqueName('drift');
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    const config = rig.agentFor(cluster, repo);
    const ns = `${cluster}-web`;

    const first = await runOnce(config, rig.env);
    expect(first.code, first.log()).toBe(0);
    const revisions = (await helmRevisions(rig.clients, ns, 'web')).length;

    await kubectl(rig.kubeconfig, 'scale', 'deployment', 'web', '-n', ns, '--replicas=5');
    const second = await runOnce(config, rig.env);
    expect(second.code, second.log()).toBe(0);
    expect(second.passes[0]!.drift).toMatchObject({ drifted: 1, corrected: 1 });
    expect(second.helm).toEqual([]);
    // The test chart asks for one replica.
    expect(await replicasOf(ns)).toBe('1');
    expect((await helmRevisions(rig.clients, ns, 'web')).length).toBe(revisions);
    expect(await eventReasons(rig.clients, config.namespace, 'web')).toEqual(
      expect.arrayContaining(['Normal/DriftCorrected']),
    );
  });

  it('only reports in drift mode warn, and marks the release drifted', async () => {
    const cluster = uniqueName('driftw');
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    const config = rig.agentFor(cluster, repo, { drift: 'warn' });
    const ns = `${cluster}-web`;
    expect((await runOnce(config, rig.env)).code).toBe(0);

    await kubectl(rig.kubeconfig, 'scale', 'deployment', 'web', '-n', ns, '--replicas=4');
    const second = await runOnce(config, rig.env);
    expect(second.passes[0]!.drift, second.log()).toMatchObject({ drifted: 1, corrected: 0 });
    expect(await replicasOf(ns)).toBe('4');
    const record = await readRelease(rig.clients, config.namespace, 'web');
    expect(record).toMatchObject({ state: 'drifted' });
    expect(record?.drift?.fields).toEqual([`Deployment/${ns}/web:/spec/replicas`]);
  });
});
