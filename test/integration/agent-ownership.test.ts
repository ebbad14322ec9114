// Two mooring agents in one cluster (different agent namespaces and cluster names), both
// declaring a helm release of the same name in the same namespace: the one that installed it
// owns it, and the other never upgrades, unlocks or takes it over; it reports the release as
// owned elsewhere (MooringRelease, Event, exit code) and leaves helm's history alone.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  eventReasons,
  helmRevisions,
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

describe('a helm release installed by another mooring agent', () => {
  it('is never taken over: reported as owned elsewhere, helm history untouched', async () => {
    const first = uniqueName('own-a');
    const second = uniqueName('own-b');
    const ns = `${first}-web`; // clusterRepo names it, so the rig's kubelet marks it ready
    const repoA = await rig.createRepo(
      rig.clusterRepo(first, { web: { namespace: ns } }, { web: `config:\n  owner: a\n` }),
    );
    const repoB = await rig.createRepo(
      rig.clusterRepo(second, { web: { namespace: ns } }, { web: `config:\n  owner: b\n` }),
    );
    const agentA = rig.agentFor(first, repoA);
    const agentB = rig.agentFor(second, repoB);

    const installed = await runOnce(agentA, rig.env);
    expect(installed.code, installed.log()).toBe(0);
    expect(await helmRevisions(rig.clients, ns, 'web')).toHaveLength(1);

    // The second agent wants other values for the same release: it must not run helm on it.
    const other = await runOnce(agentB, rig.env);
    expect(other.code, other.log()).toBe(1);
    expect(other.helm).toEqual([]);
    expect(await helmRevisions(rig.clients, ns, 'web')).toHaveLength(1);
    const record = await readRelease(rig.clients, agentB.namespace, 'web');
    expect(record).toMatchObject({ state: 'failed' });
    expect(record?.lastError).toContain(`owned by mooring agent ${agentA.namespace}/${first}`);
    expect(await eventReasons(rig.clients, agentB.namespace, 'web')).toContain('Warning/OwnedElsewhere');
    const cm = await rig.clients.core.readNamespacedConfigMap({ name: 'web-config', namespace: ns });
    expect(cm.data).toEqual({ owner: 'a' });

    // Its owner still converges it as before: nothing changed for it, so no helm either.
    const again = await runOnce(agentA, rig.env);
    expect(again.code, again.log()).toBe(0);
    expect(again.helm).toEqual([]);
    expect(await readRelease(rig.clients, agentA.namespace, 'web')).toMatchObject({ state: 'ready' });
  });
});
