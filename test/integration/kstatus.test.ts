// What kstatus (sigs.k8s.io/cli-utils, the library behind kpt, Flux health checks and Config
// Sync) reads from mooring's objects, with the real library (test/tools/kstatus): a ready
// release is Current, a failed one Failed, one that helm is still rolling out InProgress, a
// plan waiting for approval InProgress; drift reported in mode warn leaves the release
// Current (and `kubectl wait --for=condition=Ready` answers) instead of holding it forever.
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  kubectl,
  readRelease,
  runOnce,
  startLoop,
  startRig,
  TOOLS_BIN,
  uniqueName,
  waitFor,
  type AgentRig,
} from '../rig/agent.js';

const KSTATUS = join(TOOLS_BIN, 'mooring-kstatus');

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

/** kstatus's reading of one object, as `kubectl get -o json` returns it. */
async function kstatus(namespace: string, resource: string): Promise<{ status: string; message: string }> {
  const json = await kubectl(rig.kubeconfig, '-n', namespace, 'get', resource, '-o', 'json');
  const { stdout } = await execa(KSTATUS, { input: json });
  return JSON.parse(stdout) as { status: string; message: string };
}

describe('kstatus reads MooringRelease and MooringPlan conditions', () => {
  const cluster = uniqueName('kst');
  const agentNs = `${cluster}-agent`;

  it('reads a release helm is rolling out as InProgress, then ready as Current and failed as Failed', async () => {
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { good: {}, slow: { timeout: '15s' } }, { slow: 'neverReady: true\n' }),
    );
    const agent = startLoop(rig.agentFor(cluster, repo, { interval: '1h' }), rig.env);
    try {
      await waitFor(
        'slow to be progressing',
        async () => (await readRelease(rig.clients, agentNs, 'slow'))?.state === 'progressing',
      );
      expect((await kstatus(agentNs, 'mrel/slow')).status).toBe('InProgress');

      const pass = await agent.waitForPass(() => true, { timeoutMs: 90_000 });
      expect(pass.outcome).toBe('failed');
    } finally {
      await agent.stop();
    }
    expect(await readRelease(rig.clients, agentNs, 'good')).toMatchObject({ state: 'ready' });
    expect(await kstatus(agentNs, 'mrel/good')).toEqual({ status: 'Current', message: 'Resource is Ready' });
    expect(await readRelease(rig.clients, agentNs, 'slow')).toMatchObject({ state: 'failed' });
    expect((await kstatus(agentNs, 'mrel/slow')).status).toBe('Failed');
  });

  it('keeps a release Current when drift mode warn reports a hand edit', async () => {
    await kubectl(
      rig.kubeconfig,
      '-n',
      `${cluster}-good`,
      'patch',
      'configmap',
      'good-config',
      '--type=merge',
      '-p',
      '{"data":{"edited":"by hand"}}',
    );
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { good: {}, slow: { timeout: '15s' } }, { slow: 'neverReady: true\n' }),
    );
    const run = await runOnce(rig.agentFor(cluster, repo, { drift: 'warn' }), rig.env);
    expect(run.passes[0]!.drift, run.log()).toMatchObject({ drifted: 1 });
    const status = await readRelease(rig.clients, agentNs, 'good');
    expect(status).toMatchObject({ state: 'drifted', drift: { mode: 'warn', corrected: false } });
    expect((await kstatus(agentNs, 'mrel/good')).status).toBe('Current');
    const conditions = status!.conditions as { type: string; status: string }[];
    expect(conditions.find((c) => c.type === 'Drifted')?.status).toBe('True');
    await kubectl(
      rig.kubeconfig,
      '-n',
      agentNs,
      'wait',
      '--for=condition=Ready',
      'mrel/good',
      '--timeout=5s',
    );
  });

  it('reads a plan waiting for approval as InProgress', async () => {
    const manual = uniqueName('kstm');
    const repo = await rig.createRepo(rig.clusterRepo(manual, { web: {} }));
    const run = await runOnce(rig.agentFor(manual, repo, { approval: 'manual' }), rig.env);
    expect(run.code, run.log()).toBe(3);
    const plans = JSON.parse(
      await kubectl(rig.kubeconfig, '-n', `${manual}-agent`, 'get', 'mplan', '-o', 'json'),
    ) as {
      items: { metadata: { name: string }; status: { phase: string } }[];
    };
    expect(plans.items.map((p) => p.status.phase)).toEqual(['pending']);
    expect((await kstatus(`${manual}-agent`, `mplan/${plans.items[0]!.metadata.name}`)).status).toBe(
      'InProgress',
    );
  });
});
