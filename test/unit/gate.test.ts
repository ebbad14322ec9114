// The approval gate's decisions, with in-memory approvals, plans, records and helm state:
// what waits, what applies, which approval is used, and why one is refused.
import { describe, expect, it } from 'vitest';
import type { Snapshot, Source } from '../../src/agent/agent.js';
import type { HelmObservation } from '../../src/converge/decide.js';
import type { ConvergeResult, ReleaseRecord } from '../../src/converge/converger.js';
import type { Approval, ApprovalSpec, ApprovalStatus, ApprovalStore } from '../../src/gate/approvals.js';
import { createGate, PLAN_HISTORY } from '../../src/gate/gate.js';
import {
  planDigest,
  planName,
  type PlanStatus,
  type PlanStore,
  type StoredPlan,
} from '../../src/gate/plans.js';
import { sealVerifies } from '../../src/gate/seal.js';
import type { ClusterPlan, PlannedRelease } from '../../src/plan/cluster-plan.js';
import { observeLive, planChanges, type LiveSource } from '../../src/plan/live-diff.js';
import type { ResolvedRelease } from '../../src/resolve/resolve.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const CLUSTER = 'prod-eu';
const PLAN_KEY = Buffer.from('the agent plan key');

function release(name: string, digest: string, secretPaths: string[][] = []): PlannedRelease {
  return {
    name,
    namespace: name,
    chart: `./charts/${name}`,
    dependsOn: [],
    digest,
    resolved: {
      merge: { userValues: { image: digest } },
      secretPaths,
      secretStrings: [],
      release: { chart: { kind: 'local', path: `charts/${name}` } },
    } as unknown as ResolvedRelease,
  };
}

function clusterPlan(...releases: PlannedRelease[]): ClusterPlan {
  return { cluster: { name: CLUSTER, environment: 'prod', labels: {} }, releases, disabled: [] };
}

/** The world the gate looks at, all in memory. */
function world() {
  const approvals: Approval[] = [];
  const plans = new Map<string, StoredPlan>();
  const records = new Map<string, ReleaseRecord>();
  const helm = new Map<string, HelmObservation>();
  /** The user values helm deployed, per release (they hold secrets). */
  const deployedValues = new Map<string, Record<string, unknown>>();
  const events: { kind: string; name: string; reason: string; message: string }[] = [];
  const checkouts: string[] = [];
  const pending: number[] = [];
  let clock = Date.parse('2025-06-01T12:00:00Z');

  const approvalStore: ApprovalStore = {
    list: async (cluster) =>
      approvals
        .filter((a) => a.spec.cluster === cluster)
        .sort((x, y) => y.approvedAt.localeCompare(x.approvedAt)),
    claim: async (approval, at) => {
      const current = approvals.find((a) => a.name === approval.name);
      if (!current || current.resourceVersion !== approval.resourceVersion) return undefined;
      current.status = { ...current.status, usedAt: at, usedForRevision: current.spec.revision };
      current.resourceVersion = String(Number(current.resourceVersion) + 1);
      return structuredClone(current);
    },
    finish: async (name, status) => {
      const current = approvals.find((a) => a.name === name);
      if (current) current.status = { ...current.status, ...status };
    },
    create: async () => {
      throw new Error('not used by the gate');
    },
  };
  const planStore: PlanStore = {
    get: async (name) => structuredClone(plans.get(name)),
    list: async (cluster) =>
      [...plans.values()]
        .filter((p) => !cluster || p.status.cluster === cluster)
        .map((p) => structuredClone(p)),
    publish: async (name, status) => {
      const stored = {
        name,
        namespace: 'mooring-system',
        uid: `uid-${name}`,
        status: structuredClone(status),
      };
      plans.set(name, stored);
      return stored;
    },
    update: async (name, patch) => {
      const p = plans.get(name);
      if (!p) return;
      const status = { ...p.status } as Record<string, unknown>;
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete status[k];
        else status[k] = v;
      }
      p.status = status as unknown as PlanStatus;
    },
    remove: async (name) => {
      plans.delete(name);
    },
  };
  const live: LiveSource = {
    helm: async (namespace, name) => {
      const observation = helm.get(`${namespace}/${name}`);
      const values = deployedValues.get(name);
      return {
        ...(observation ? { observation } : {}),
        deployed: async () => values && { revision: observation?.revision ?? 1, values, manifest: '' },
      };
    },
    namespaced: async () => true,
    get: async () => undefined,
    dryRunApply: async (o) => o,
  };
  const gate = createGate({
    cluster: CLUSTER,
    namespace: 'mooring-system',
    prune: false,
    approvals: approvalStore,
    plans: planStore,
    live,
    digestKey: Buffer.from('k'),
    planKey: PLAN_KEY,
    records: {
      list: async () => [...records.values()].map((r) => structuredClone(r)),
      update: async (name, patch) => {
        const current = records.get(name) ?? { name, managed: false };
        const next = { ...current } as Record<string, unknown>;
        for (const [k, v] of Object.entries(patch)) {
          if (v === null) delete next[k];
          else next[k] = v;
        }
        records.set(name, next as unknown as ReleaseRecord);
      },
    },
    events: {
      record: async (ref, _type, reason, message) => {
        events.push({ kind: ref.kind, name: ref.name, reason, message });
      },
    },
    metrics: { setPendingApprovals: (n) => pending.push(n) },
    now: () => clock,
  });

  const plansByRevision = new Map<string, ClusterPlan>();
  let gitDown = false;
  const snapshot = (revision: string): Snapshot => ({ revision, dir: `/snapshots/${revision}` });
  const source: Source = {
    sync: async () => {
      throw new Error('the gate does not sync');
    },
    checkoutRevision: async (revision) => {
      checkouts.push(revision);
      if (gitDown) throw Object.assign(new Error('connection refused'), { reason: 'connection' });
      if (!plansByRevision.has(revision)) {
        throw Object.assign(new Error(`no commit ${revision}`), { reason: 'revision-not-found' });
      }
      return snapshot(revision);
    },
  };

  return {
    approvals,
    plans,
    records,
    helm,
    deployedValues,
    plansByRevision,
    events,
    checkouts,
    pending,
    gate,
    tick: (ms: number) => (clock += ms),
    setGitDown: (down: boolean) => (gitDown = down),
    /** One gate check with `revision` at the head of the branch. */
    check: (revision: string, plan: ClusterPlan) => {
      plansByRevision.set(revision, plan);
      return gate.check({
        head: snapshot(revision),
        plan,
        mode: 'manual',
        source,
        planFor: async (s) => plansByRevision.get(s.revision)!,
      });
    },
    /** What the gate would bind for `revision`, computed the same way. */
    bindingOf: async (revision: string, plan: ClusterPlan) => {
      plansByRevision.set(revision, plan);
      const state = await observeLive(plan, [...records.values()], live);
      return planChanges(plan, state, { revision, prune: false }).binding;
    },
    approve: (
      spec: Partial<ApprovalSpec> & { revision: string; planDigest: string },
      status: ApprovalStatus = {},
    ) => {
      const name = `approval-${approvals.length + 1}`;
      approvals.push({
        name,
        namespace: 'mooring-system',
        uid: `uid-${name}`,
        resourceVersion: '1',
        approvedAt: new Date(clock).toISOString(),
        spec: {
          cluster: CLUSTER,
          approvedBy: { username: 'alice', groups: ['ops'] },
          ...spec,
        },
        status,
      });
      clock += 1000;
      return name;
    },
    /** Simulates the converge that follows an approval: helm and the records move on. */
    converged: (name: string, digest: string, helmRevision: number) => {
      helm.set(`${name}/${name}`, {
        revision: helmRevision,
        status: 'deployed',
        lastDeployedRevision: helmRevision,
      });
      records.set(name, {
        name,
        namespace: name,
        managed: true,
        deployedDigest: digest,
        helmRevision,
        state: 'ready',
      });
    },
  };
}

const convergeResult = (revision: string, converged = true): ConvergeResult => ({
  revision,
  converged,
  releases: [
    {
      name: 'web',
      action: 'upgrade',
      state: converged ? 'ready' : 'failed',
      ...(converged ? {} : { error: 'helm timed out' }),
    },
  ],
});

describe('the approval gate', () => {
  it('publishes a pending plan for a revision that changes something, and applies nothing', async () => {
    const w = world();
    w.converged('web', 'sha256:w1', 1);
    const decision = await w.check(A, clusterPlan(release('web', 'sha256:w2'), release('api', 'sha256:a1')));

    expect(decision).toEqual({ apply: false, reason: expect.stringContaining('waiting for approval') });
    const plan = w.plans.get(planName(CLUSTER, A))!;
    expect(plan.status).toMatchObject({
      cluster: CLUSTER,
      revision: A,
      phase: 'pending',
      changes: 2,
      binding: await w.bindingOf(A, clusterPlan(release('web', 'sha256:w2'), release('api', 'sha256:a1'))),
      seal: expect.stringMatching(/^hmac-sha256:[0-9a-f]{64}$/),
    });
    expect(plan.status.digest).toBe(planDigest(plan.status));
    expect(sealVerifies(PLAN_KEY, plan.status)).toBe(true);
    expect(plan.status.releases.map((r) => [r.name, r.action])).toEqual([
      ['api', 'install'],
      ['web', 'upgrade'],
    ]);
    expect(w.events).toEqual([
      expect.objectContaining({
        kind: 'MooringPlan',
        reason: 'PlanPending',
        message: expect.stringContaining('1 to install, 1 to upgrade'),
      }),
    ]);
    expect(w.pending).toEqual([1]);
    expect(w.records.get('api')).toMatchObject({ state: 'pending-approval', desiredRevision: A });
  });

  it('lets a revision that changes nothing through without an approval', async () => {
    const w = world();
    w.converged('web', 'sha256:w1', 1);
    const decision = await w.check(B, clusterPlan(release('web', 'sha256:w1')));
    expect(decision).toMatchObject({ apply: true, snapshot: { revision: B } });
    expect(decision).not.toHaveProperty('approval');
    expect(w.plans.size).toBe(0);
    expect(w.pending).toEqual([0]);
  });

  it('applies an approved plan, marks the approval used, and records the outcome', async () => {
    const w = world();
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const name = w.approve({ revision: A, planDigest: w.plans.get(planName(CLUSTER, A))!.status.digest });

    const decision = await w.check(A, plan);
    expect(decision).toMatchObject({ apply: true, snapshot: { revision: A }, approval: name });
    expect(w.approvals[0]!.status).toMatchObject({ usedAt: '2025-06-01T12:00:01.000Z', usedForRevision: A });
    expect(w.plans.get(planName(CLUSTER, A))!.status).toMatchObject({
      phase: 'approved',
      approval: name,
      approvedBy: 'alice',
    });
    expect(w.events.at(-1)).toMatchObject({
      kind: 'Approval',
      name,
      reason: 'Approved',
      message: expect.stringContaining('alice approved revision aaaaaaa'),
    });

    await w.gate.applied!(name, convergeResult(A));
    expect(w.approvals[0]!.status.result).toBe('applied');
    expect(w.plans.get(planName(CLUSTER, A))!.status).toMatchObject({
      phase: 'applied',
      appliedAt: expect.any(String),
    });
  });

  it('uses an approval once: after applying, the same revision waits again if it still changes something', async () => {
    const w = world();
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const name = w.approve({ revision: A, planDigest: w.plans.get(planName(CLUSTER, A))!.status.digest });
    expect(await w.check(A, plan)).toMatchObject({ apply: true, approval: name });
    await w.gate.applied!(name, convergeResult(A, false)); // helm failed: nothing changed in the cluster

    const again = await w.check(A, plan);
    expect(again.apply).toBe(false);
    expect(w.approvals[0]!.status).toMatchObject({
      result: 'failed',
      message: expect.stringContaining('web (helm timed out)'),
    });
  });

  it('leaves a release whose approved upgrade failed `failed`, not pending-approval, while its retry waits', async () => {
    const w = world();
    w.converged('web', 'sha256:w1', 1);
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const name = w.approve({ revision: A, planDigest: w.plans.get(planName(CLUSTER, A))!.status.digest });
    expect(await w.check(A, plan)).toMatchObject({ apply: true, approval: name });
    // The converger recorded the failure (helm rolled back to revision 3).
    w.helm.set('web/web', { revision: 3, status: 'deployed', lastDeployedRevision: 3 });
    w.records.set('web', {
      ...w.records.get('web')!,
      state: 'failed',
      failedDigest: 'sha256:w2',
      lastError: 'helm timed out',
    });
    await w.gate.applied!(name, convergeResult(A, false));

    expect((await w.check(A, plan)).apply).toBe(false);
    expect(w.records.get('web')).toMatchObject({ state: 'failed', lastError: 'helm timed out' });
    expect(w.plans.get(planName(CLUSTER, A))!.status.phase).toBe('pending');
  });

  it('refuses an approval whose plan changed since (same revision, different live state), and keeps waiting', async () => {
    const w = world();
    w.converged('web', 'sha256:w1', 1);
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const approved = w.plans.get(planName(CLUSTER, A))!.status.digest;
    const name = w.approve({ revision: A, planDigest: approved });
    // Someone ran `helm upgrade` by hand meanwhile: the plan is no longer the one approved.
    w.helm.set('web/web', { revision: 2, status: 'deployed', lastDeployedRevision: 2 });

    const decision = await w.check(A, plan);
    expect(decision).toEqual({ apply: false, reason: expect.stringContaining(`approval ${name}`) });
    expect(w.approvals[0]!.status).toMatchObject({
      result: 'rejected',
      message: expect.stringContaining('changed since it was published'),
    });
    const republished = w.plans.get(planName(CLUSTER, A))!.status;
    expect(republished.digest).not.toBe(approved);
    // The new digest is shown only as the new plan; no rejection names it.
    const rejection = w.events.find((e) => e.reason === 'ApprovalRejected')!;
    for (const text of [
      rejection.message,
      w.approvals[0]!.status.message!,
      (decision as { reason: string }).reason,
    ])
      expect(text).not.toContain(republished.digest);
    expect(republished.reason).toContain('cannot be applied');
    expect(w.events.map((e) => e.reason)).toEqual(['PlanPending', 'ApprovalRejected', 'PlanPending']);
  });

  it('applies exactly the approved revision when the branch has moved on, and supersedes older approvals', async () => {
    const w = world();
    const planA = clusterPlan(release('web', 'sha256:w2'));
    const planB = clusterPlan(release('web', 'sha256:w3'));
    await w.check(A, planA);
    const digestA = w.plans.get(planName(CLUSTER, A))!.status.digest;
    const older = w.approve({ revision: A, planDigest: digestA, approvedBy: { username: 'bob' } });
    const newer = w.approve({ revision: A, planDigest: digestA });

    const decision = await w.check(B, planB);
    expect(decision).toMatchObject({ apply: true, snapshot: { revision: A }, plan: planA, approval: newer });
    expect(w.checkouts).toEqual([A]);
    expect(w.approvals.find((a) => a.name === older)!.status).toMatchObject({ result: 'superseded' });
  });

  it('replaces the pending plan when the branch moves again, keeping the last applied one', async () => {
    const w = world();
    const planA = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, planA);
    const name = w.approve({ revision: A, planDigest: w.plans.get(planName(CLUSTER, A))!.status.digest });
    await w.check(A, planA);
    await w.gate.applied!(name, convergeResult(A));
    w.converged('web', 'sha256:w2', 1);

    await w.check(B, clusterPlan(release('web', 'sha256:w3')));
    const C = 'c'.repeat(40);
    await w.check(C, clusterPlan(release('web', 'sha256:w4')));
    expect([...w.plans.values()].map((p) => [p.status.revision, p.status.phase]).sort()).toEqual([
      [A, 'applied'],
      [B, 'superseded'],
      [C, 'pending'],
    ]);
  });

  it('keeps a bounded record of the heads it planned', async () => {
    const w = world();
    const heads = Array.from({ length: PLAN_HISTORY + 5 }, (_, i) =>
      i.toString(16).padStart(2, '0').padEnd(40, '0'),
    );
    for (const [i, head] of heads.entries()) {
      await w.check(head, clusterPlan(release('web', `sha256:w${i}`)));
      w.tick(1000);
    }
    const kept = [...w.plans.values()].map((p) => p.status.revision);
    expect(kept.length).toBe(PLAN_HISTORY);
    expect(kept).toContain(heads.at(-1));
    expect(kept).not.toContain(heads[0]);
  });

  it('rejects an approval of a revision it never planned, whatever its digest, without fetching it', async () => {
    const w = world();
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const digestA = w.plans.get(planName(CLUSTER, A))!.status.digest;
    // A commit on a feature branch: the repository has it, the agent never saw it at the head.
    const feature = 'e'.repeat(40);
    w.plansByRevision.set(feature, clusterPlan(release('web', 'sha256:evil')));
    const digestFeature = await w.bindingOf(feature, clusterPlan(release('web', 'sha256:evil')));
    const byDigest = w.approve({ revision: feature, planDigest: digestFeature });
    const byOtherDigest = w.approve({ revision: feature, planDigest: digestA });

    const decision = await w.check(A, plan);
    expect(decision.apply).toBe(false);
    expect(w.checkouts).toEqual([]);
    for (const name of [byDigest, byOtherDigest]) {
      const a = w.approvals.find((x) => x.name === name)!;
      expect(a.status).toMatchObject({
        result: 'rejected',
        message: expect.stringContaining('never planned'),
      });
      const event = w.events.find((e) => e.name === name)!;
      expect(event).toMatchObject({
        reason: 'ApprovalRejected',
        message: expect.stringContaining('never planned'),
      });
      // Neither the digest of the feature commit nor that of the real plan is disclosed.
      for (const text of [a.status.message!, event.message, (decision as { reason: string }).reason]) {
        if (name === byDigest) expect(text).not.toContain(digestA);
        if (name === byOtherDigest) expect(text).not.toContain(digestFeature);
      }
    }
  });

  it('refuses an approval of a plan whose status was changed outside the agent, and publishes it again', async () => {
    const w = world();
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const stored = w.plans.get(planName(CLUSTER, A))!;
    // Someone who may patch MooringPlan status hides the change from the diff, and fixes up
    // the digest so that it still hashes right.
    stored.status.releases[0]!.valuesDiff = '';
    stored.status.digest = planDigest(stored.status);
    const name = w.approve({ revision: A, planDigest: stored.status.digest });

    expect((await w.check(A, plan)).apply).toBe(false);
    const a = w.approvals.find((x) => x.name === name)!;
    expect(a.status).toMatchObject({
      result: 'rejected',
      message: expect.stringContaining('seal does not verify'),
    });
    expect(w.events.map((e) => e.reason)).toEqual([
      'PlanPending',
      'ApprovalRejected',
      'PlanTampered',
      'PlanPending',
    ]);
    const republished = w.plans.get(planName(CLUSTER, A))!.status;
    expect(sealVerifies(PLAN_KEY, republished)).toBe(true);
    expect(republished.releases[0]!.valuesDiff).toContain('+image: sha256:w2');
  });

  it('refuses a plan record invented for a commit the agent never saw', async () => {
    const w = world();
    await w.check(A, clusterPlan(release('web', 'sha256:w2')));
    const feature = 'e'.repeat(40);
    const forged: PlanStatus = {
      ...structuredClone(w.plans.get(planName(CLUSTER, A))!.status),
      revision: feature,
    };
    forged.digest = planDigest(forged);
    w.plans.set(planName(CLUSTER, feature), {
      name: planName(CLUSTER, feature),
      namespace: 'mooring-system',
      status: forged,
    });
    w.plansByRevision.set(feature, clusterPlan(release('web', 'sha256:w2')));
    const name = w.approve({ revision: feature, planDigest: forged.digest });

    expect((await w.check(A, clusterPlan(release('web', 'sha256:w2')))).apply).toBe(false);
    expect(w.checkouts).toEqual([]);
    expect(w.approvals.find((x) => x.name === name)!.status).toMatchObject({
      result: 'rejected',
      message: expect.stringContaining('seal does not verify'),
    });
  });

  it('refuses an approval whose client set approvedAt', async () => {
    const w = world();
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const digest = w.plans.get(planName(CLUSTER, A))!.status.digest;
    const name = w.approve({ revision: A, planDigest: digest, approvedAt: '2020-01-01T00:00:00Z' });
    expect((await w.check(A, plan)).apply).toBe(false);
    expect(w.approvals.find((x) => x.name === name)!.status).toMatchObject({
      result: 'rejected',
      message: expect.stringContaining("the API server's time"),
    });
    expect(w.events.find((e) => e.name === name)).toMatchObject({ reason: 'ApprovalRejected' });
  });

  it('rejects an approval naming a digest the agent did not publish for that revision', async () => {
    const w = world();
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const published = w.plans.get(planName(CLUSTER, A))!.status.digest;
    const guess = `sha256:${'0'.repeat(64)}`;
    const name = w.approve({ revision: A, planDigest: guess });
    expect((await w.check(A, plan)).apply).toBe(false);
    const a = w.approvals.find((x) => x.name === name)!;
    expect(a.status).toMatchObject({
      result: 'rejected',
      message: expect.stringContaining('not the plan this agent published'),
    });
    expect(a.status.message).not.toContain(published);
    expect(w.events.find((e) => e.name === name)!.message).not.toContain(published);
  });

  it('ignores approvals of other clusters and approvals already used', async () => {
    const w = world();
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    const digest = w.plans.get(planName(CLUSTER, A))!.status.digest;
    w.approve({ revision: A, planDigest: digest, cluster: 'prod-us' });
    w.approve({ revision: A, planDigest: digest }, { usedAt: '2025-06-01T11:00:00Z', result: 'applied' });
    expect((await w.check(A, plan)).apply).toBe(false);
  });

  it('waits, rather than fails or applies, when it cannot read its state', async () => {
    const w = world();
    const gate = createGate({
      cluster: CLUSTER,
      namespace: 'mooring-system',
      prune: false,
      digestKey: Buffer.from('k'),
      approvals: {
        list: async () => Promise.reject(new Error('connection refused')),
      } as unknown as ApprovalStore,
      plans: {} as PlanStore,
      live: {} as LiveSource,
      records: { list: async () => [], update: async () => undefined },
    });
    const decision = await gate.check({
      head: { revision: A, dir: '/x' },
      plan: clusterPlan(release('web', 'sha256:w2')),
      mode: 'manual',
      planFor: async () => clusterPlan(),
      source: {
        sync: async () => ({ revision: A, dir: '/x' }),
        checkoutRevision: async () => ({ revision: A, dir: '/x' }),
      },
    });
    expect(decision).toEqual({
      apply: false,
      reason: 'the approval gate could not decide: connection refused',
    });
    expect(w.events).toEqual([]);
  });

  it('lifts the retry delay of a failed release once its plan is approved', async () => {
    const w = world();
    w.converged('web', 'sha256:w1', 1);
    const record = w.records.get('web')!;
    w.records.set('web', {
      ...record,
      failedDigest: 'sha256:w2',
      retryAt: Date.parse('2025-06-01T13:00:00Z'),
    });
    const plan = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, plan);
    w.approve({ revision: A, planDigest: w.plans.get(planName(CLUSTER, A))!.status.digest });
    expect((await w.check(A, plan)).apply).toBe(true);
    expect(w.records.get('web')!.retryAt).toBeUndefined();
  });

  it('keeps masking a value that was secret in the deployed revision, when the new one drops it', async () => {
    const w = world();
    w.converged('web', 'sha256:w1', 1);
    w.records.set('web', { ...w.records.get('web')!, deployedRevision: A } as ReleaseRecord);
    w.deployedValues.set('web', { image: 'sha256:w1', token: 'deployed-token-value' });
    // Revision A had `token` from a SOPS file; revision B no longer sets it at all.
    w.plansByRevision.set(A, clusterPlan(release('web', 'sha256:w1', [['token']])));

    await w.check(B, clusterPlan(release('web', 'sha256:w2')));
    const web = w.plans.get(planName(CLUSTER, B))!.status.releases[0]!;
    expect(web.valuesDiff).toMatch(/-token: <secret:[0-9a-f]{16}>/);
    expect(JSON.stringify(w.plans.get(planName(CLUSTER, B)))).not.toContain('deployed-token-value');
    expect(w.checkouts).toEqual([A]);
  });

  it('keeps an approval whose planned revision cannot be fetched right now', async () => {
    const w = world();
    const planA = clusterPlan(release('web', 'sha256:w2'));
    await w.check(A, planA);
    const digestA = w.plans.get(planName(CLUSTER, A))!.status.digest;
    const C = 'c'.repeat(40);
    await w.check(C, clusterPlan(release('web', 'sha256:w3')));
    const name = w.approve({ revision: A, planDigest: digestA });

    w.setGitDown(true);
    const waiting = await w.check(C, clusterPlan(release('web', 'sha256:w3')));
    expect(waiting).toEqual({
      apply: false,
      reason: expect.stringContaining(`approval ${name} waits: cannot fetch`),
    });
    expect(w.approvals[0]!.status).toEqual({});

    w.setGitDown(false);
    expect(await w.check(C, clusterPlan(release('web', 'sha256:w3')))).toMatchObject({
      apply: true,
      snapshot: { revision: A },
      approval: name,
    });
  });
});
