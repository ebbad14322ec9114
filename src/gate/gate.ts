// The approval gate of a manual cluster. Each pass it answers one question: may anything be
// applied now, and if so, exactly what?
//
//   1. Unused Approvals for this cluster, newest first. Only a revision this agent planned
//      (it saw it at the head of its branch and published a MooringPlan for it) can be
//      approved: anything else is rejected before Git is even asked for it. The plan of the
//      approved revision (checked out exactly, even when the branch has moved on) is
//      recomputed against the live releases. Same digest as approved: apply that revision;
//      the approval is marked used before anything runs, and older unused approvals are
//      superseded. Different digest: the approval is rejected, saying why, and a new one is
//      needed. A rejection never names a digest the approver was not shown.
//   2. Otherwise the head revision's plan: with nothing to change it passes (a manual
//      cluster still converges a revision that changes nothing); with changes it is
//      published as a pending MooringPlan (diffs, Event, metric) and nothing is applied.
//
// A plan's digest covers the revision and each release's action and digests (live-diff.ts),
// so "the same plan" means the same revision applied to the same live releases.
import { describeError } from '../errors.js';
import type { Gate, Snapshot } from '../agent/agent.js';
import type { ChartSource, ServerRender } from '../converge/helm.js';
import { redactSecrets } from '../secrets/redact.js';
import type { ConvergeResult, RecordPatch, ReleaseRecord } from '../converge/converger.js';
import type { Kube } from '../kube/connect.js';
import type { ObjectRef } from '../observe/events.js';
import { MOORING_API_VERSION, MOORING_KINDS } from '../observe/crds.js';
import { chartSource, type ClusterPlan } from '../plan/cluster-plan.js';
import {
  bindingDigest,
  bindRenders,
  CHANGING_ACTIONS,
  diffReleases,
  manifestDigest,
  oneLine,
  varyingLinesOf,
  type ReleaseRender,
  observeLive,
  planChanges,
  type LivePlan,
  releaseKey,
  type LiveSource,
  type LiveState,
} from '../plan/live-diff.js';
import type { ResolvedRelease } from '../resolve/resolve.js';
import { createApprovalStore, isUnused, type Approval, type ApprovalStore } from './approvals.js';
import { createLiveCluster } from './live-cluster.js';
import { loadPlanKey, sealOf, sealVerifies } from './seal.js';
import {
  createPlanStore,
  planName,
  planStatus,
  type PlanRelease,
  type PlanStatus,
  type PlanStore,
  type StoredPlan,
} from './plans.js';

/** How many plans per cluster the agent keeps: the bounded record of the heads it planned. */
export const PLAN_HISTORY = 10;

export interface GateDeps {
  /** This agent's cluster (approvals name it). */
  cluster: string;
  /** The agent's namespace: Approvals and MooringPlans live there. */
  namespace: string;
  /** The agent prunes releases that left Git (decides whether a plan uninstalls). */
  prune: boolean;
  /** The same records the converger keeps (MooringRelease status). */
  records: {
    list(): Promise<ReleaseRecord[]>;
    update(name: string, patch: RecordPatch): Promise<unknown>;
  };
  /** Keys the hashes that stand in for secret values in diffs (PlanDeps.digestKey). */
  digestKey: Buffer;
  /** Seals the MooringPlans the agent publishes (seal.ts); default: loaded from its Secret. */
  planKey?: Buffer;
  /** Kubernetes clients; the stores and live source below default to ones built from them. */
  clients?: Kube;
  approvals?: ApprovalStore;
  plans?: PlanStore;
  live?: LiveSource;
  /**
   * Renders a release the way the upgrade will (helm's server-side dry run: `lookup` and
   * `.Capabilities` against the cluster). Plans bind what it returns, and it is asked again
   * before an approved plan is applied. Without it (or `render`) plans carry no manifest diff.
   */
  renderServer?(release: ResolvedRelease, chart: ChartSource): Promise<ServerRender>;
  /** Renders a release offline (helm template): for manifest diffs only, when renderServer is absent. */
  render?(release: ResolvedRelease, chart: ChartSource): Promise<string>;
  events?: {
    record(regarding: ObjectRef, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  };
  metrics?: { setPendingApprovals(count: number): void };
  now?: () => number;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

type Decision = Awaited<ReturnType<Gate['check']>>;

export function createGate(deps: GateDeps): Gate {
  const { cluster, namespace } = deps;
  const needClients = () => {
    if (!deps.clients) throw new Error('createGate needs clients, or approvals, plans and live');
    return deps.clients;
  };
  const approvals = deps.approvals ?? createApprovalStore({ client: needClients().rest, namespace });
  const plans = deps.plans ?? createPlanStore({ client: needClients().rest, namespace });
  const now = deps.now ?? Date.now;
  const iso = () => new Date(now()).toISOString();
  // The approval being applied: its checkout is kept on disk until the outcome is recorded.
  let inFlight: { approval: Approval; snapshot: Snapshot; plan: PlanStatus } | undefined;

  const live = (): LiveSource => deps.live ?? createLiveCluster(needClients());
  let planKeyLoading: Promise<Buffer> | undefined;
  const planKey = (): Promise<Buffer> => {
    if (deps.planKey) return Promise.resolve(deps.planKey);
    planKeyLoading ??= loadPlanKey(needClients().rest, namespace).catch((err: unknown) => {
      planKeyLoading = undefined; // try again next pass
      throw err;
    });
    return planKeyLoading;
  };
  const planRef = (name: string, uid?: string): ObjectRef => ({
    apiVersion: MOORING_API_VERSION,
    kind: MOORING_KINDS.MooringPlan.kind,
    name,
    namespace,
    ...(uid ? { uid } : {}),
  });

  const event = (ref: ObjectRef, type: 'Normal' | 'Warning', reason: string, message: string) =>
    deps.events?.record(ref, type, reason, message).catch(() => undefined);
  const approvalRef = (a: Approval): ObjectRef => ({
    apiVersion: MOORING_API_VERSION,
    kind: MOORING_KINDS.Approval.kind,
    name: a.name,
    namespace,
    ...(a.uid ? { uid: a.uid } : {}),
  });

  function releaseHold(): void {
    const snapshot = inFlight?.snapshot as Partial<{ release(): void }> | undefined;
    snapshot?.release?.();
    inFlight = undefined;
  }

  async function plan(
    clusterPlan: ClusterPlan,
    revision: string,
    source: LiveSource,
    records: ReleaseRecord[],
  ): Promise<{ livePlan: LivePlan; state: LiveState }> {
    const state = await observeLive(clusterPlan, records, source);
    return { livePlan: planChanges(clusterPlan, state, { revision, prune: deps.prune }), state };
  }

  /**
   * Renders the releases a plan would install or upgrade against the cluster, as the upgrade
   * will. A new plan renders each twice: lines that differ (a random password on install)
   * are recorded and left out of the binding. A re-check renders once and masks the lines
   * the published plan recorded.
   */
  async function renderReleases(
    clusterPlan: ClusterPlan,
    livePlan: LivePlan,
    dir: string,
    varying?: Map<string, number[]>,
  ): Promise<Map<string, ReleaseRender>> {
    const out = new Map<string, ReleaseRender>();
    const renderServer = deps.renderServer;
    if (!renderServer) return out;
    const planned = new Map(clusterPlan.releases.map((r) => [r.name, r]));
    // One release after another: helm processes are heavy, and a plan is not urgent.
    for (const r of livePlan.releases) {
      if (r.action !== 'install' && r.action !== 'upgrade') continue;
      const resolved = planned.get(r.name)?.resolved;
      if (!resolved) continue;
      const chart = chartSource(dir, resolved.release.chart);
      try {
        const first = await renderServer(resolved, chart);
        const varyingLines =
          varying?.get(r.name) ??
          varyingLinesOf(first.manifest, (await renderServer(resolved, chart)).manifest);
        out.set(r.name, {
          manifest: first.manifest,
          chartVersion: first.chartVersion,
          chartDigest: first.chartDigest,
          ...(varyingLines.length ? { varyingLines } : {}),
        });
      } catch (err) {
        out.set(r.name, { error: redactSecrets(oneLine(describeError(err)), resolved.secretStrings) });
      }
    }
    return out;
  }

  /** Step 1: the newest unused approval that still matches its plan, if any. */
  async function approved(
    input: Parameters<Gate['check']>[0],
    source: LiveSource,
    records: ReleaseRecord[],
  ): Promise<{ decision?: Decision; rejections: string[] }> {
    const rejections: string[] = [];
    const candidates = (await approvals.list(cluster)).filter(isUnused);
    const stored = candidates.length ? await plans.list(cluster) : [];
    const key = candidates.length ? await planKey() : Buffer.alloc(0);
    for (const [i, approval] of candidates.entries()) {
      const { revision, planDigest } = approval.spec;
      const reject = async (why: string) => {
        const message = `approval ${approval.name} (revision ${revision.slice(0, 7)}) cannot be applied: ${why}`;
        rejections.push(message);
        await approvals.finish(approval.name, {
          result: 'rejected',
          usedForRevision: revision,
          message: why,
        });
        await event(approvalRef(approval), 'Warning', 'ApprovalRejected', message);
        deps.log?.warn({ approval: approval.name, revision }, message);
      };
      if (!/^[0-9a-f]{40}$/.test(revision)) {
        await reject('spec.revision is not a full commit sha');
        continue;
      }
      if (approval.spec.approvedAt !== undefined) {
        await reject(
          "spec.approvedAt is set by the client; when an approval was made is the API server's " +
            'time (metadata.creationTimestamp), so the field must be left out; nothing was applied',
        );
        continue;
      }
      // The record of what this agent planned: its own sealed MooringPlans. A commit it never
      // saw at the head of its branch (a feature branch, a pull request) is never checked out.
      const published = stored.find((p) => p.status.revision === revision);
      if (!published) {
        await reject(
          `revision ${revision.slice(0, 7)} was never planned by this agent: it plans only revisions ` +
            'it saw at the head of the branch it tracks; nothing was applied',
        );
        continue;
      }
      if (!sealVerifies(key, published.status)) {
        await reject(
          `MooringPlan ${published.name} was changed by someone other than the agent (its seal does ` +
            'not verify), so it cannot be trusted; nothing was applied. A new plan is published for review',
        );
        continue;
      }
      if (published.status.digest !== planDigest) {
        await reject(
          `it approves plan ${planDigest}, which is not the plan this agent published for revision ` +
            `${revision.slice(0, 7)}; nothing was applied. Review and approve the current plan`,
        );
        continue;
      }

      let snapshot: Snapshot = input.head;
      let clusterPlan = input.plan;
      if (revision !== input.head.revision) {
        try {
          snapshot = await input.source.checkoutRevision(revision);
        } catch (err) {
          // Git being unreachable says nothing about the approval: keep it for the next pass.
          if (!isRevisionNotFound(err)) {
            rejections.push(
              `approval ${approval.name} waits: cannot fetch revision ${revision.slice(0, 7)} (${describeError(err)}); retrying`,
            );
            continue;
          }
          await reject(`the repository has no commit ${revision}`);
          continue;
        }
        try {
          clusterPlan = await input.planFor(snapshot);
        } catch (err) {
          releaseSnapshot(snapshot, input.head);
          await reject(`that revision is invalid for this cluster: ${describeError(err)}`);
          continue;
        }
      }
      // Re-check, from the agent's own data: the live releases, the chart helm resolves now,
      // and the manifest it renders now against the cluster (a lookup result can move).
      const { livePlan: unbound } = await plan(clusterPlan, revision, source, records);
      const varying = new Map(published.status.releases.map((r) => [r.name, r.varyingLines ?? []]));
      const livePlan = deps.renderServer
        ? bindRenders(
            unbound,
            await renderReleases(clusterPlan, unbound, snapshot.dir, varying),
            deps.digestKey,
          )
        : unbound;
      if (livePlan.binding !== published.status.binding) {
        releaseSnapshot(snapshot, input.head);
        // The new digest is not named: nobody was shown it yet (a new plan is published).
        await reject(
          `it approves plan ${planDigest}, but what that plan would apply changed since it was ` +
            `published (${whatMoved(published.status.releases, livePlan.releases)}); nothing was applied. ` +
            'Review and approve the new plan',
        );
        await plans.update(published.name, { phase: 'superseded', reason: 'what it would apply changed' });
        continue;
      }
      const claimed = await approvals.claim(approval, iso());
      if (!claimed) {
        // Someone changed it since we listed it (another replica took it): look again next pass.
        releaseSnapshot(snapshot, input.head);
        continue;
      }

      for (const older of candidates.slice(i + 1)) {
        await approvals.finish(older.name, {
          result: 'superseded',
          message: `approval ${approval.name} (revision ${revision.slice(0, 7)}) was applied instead`,
        });
        await event(
          approvalRef(older),
          'Normal',
          'ApprovalSuperseded',
          `not applied: the newer approval ${approval.name} was applied instead`,
        );
      }
      await allowRetryNow(livePlan, records);
      const by = approval.spec.approvedBy.username;
      await plans.update(planName(cluster, revision), {
        phase: 'approved',
        approval: approval.name,
        approvedBy: by,
        reason: `approved by ${by}; applying`,
      });
      await event(
        approvalRef(approval),
        'Normal',
        'Approved',
        `${by} approved revision ${revision.slice(0, 7)} (plan ${planDigest}); applying ${livePlan.changes} change(s)`,
      );
      deps.log?.info({ approval: approval.name, revision, approvedBy: by }, 'applying an approved plan');
      inFlight = { approval: claimed, snapshot, plan: published.status };
      deps.metrics?.setPendingApprovals(0);
      return {
        decision: { apply: true, snapshot, plan: clusterPlan, approval: approval.name },
        rejections,
      };
    }
    return { rejections };
  }

  /** An explicit approval means "try now": lift the retry delay of a release that failed before. */
  async function allowRetryNow(livePlan: LivePlan, records: ReleaseRecord[]): Promise<void> {
    const byName = new Map(records.map((r) => [r.name, r]));
    for (const r of livePlan.releases) {
      const record = byName.get(r.name);
      if (record?.retryAt !== undefined && record.failedDigest === r.desiredDigest) {
        await deps.records.update(r.name, { retryAt: null });
      }
    }
  }

  /** Step 2: publish the head's plan as pending (once per digest) and retire older plans. */
  async function pending(
    input: Parameters<Gate['check']>[0],
    livePlan: LivePlan,
    state: LiveState,
    source: LiveSource,
    rejections: string[],
  ): Promise<string> {
    const { head, plan: clusterPlan } = input;
    const name = planName(cluster, head.revision);
    const waiting = `waiting for approval: mooring approve --context <context> --revision ${head.revision.slice(0, 12)}`;
    const reason = rejections.length ? `${rejections[rejections.length - 1]}; ${waiting}` : waiting;
    const stored = await plans.list(cluster);
    const current = stored.find((p) => p.name === name);
    const key = await planKey();
    const tampered = current !== undefined && !sealVerifies(key, current.status);
    if (tampered) {
      await event(
        planRef(name, current.uid),
        'Warning',
        'PlanTampered',
        `the status of MooringPlan ${name} was changed by someone other than the agent (its seal does not verify); it is published again`,
      );
      deps.log?.warn({ plan: name }, 'a MooringPlan was changed outside the agent; publishing it again');
    }

    // Same revision over the same live releases: the published plan stands. Its renders are
    // checked again when it is approved, not on every pass.
    const unchanged =
      !tampered &&
      current?.status.phase === 'pending' &&
      bindingDigest(current.status, { renders: false }) === bindingDigest(livePlan, { renders: false });
    if (unchanged) {
      if (current.status.reason !== reason) await plans.update(name, { reason });
    } else {
      const knownSecretPaths = await secretPathsDeployed(input, livePlan, state.records);
      for (const p of stored) {
        for (const r of p.status.releases) {
          if (r.secretPaths?.length)
            knownSecretPaths.set(r.name, [...(knownSecretPaths.get(r.name) ?? []), ...r.secretPaths]);
        }
      }
      const renders = await renderReleases(clusterPlan, livePlan, head.dir);
      const bound = deps.renderServer ? bindRenders(livePlan, renders, deps.digestKey) : livePlan;
      const render = deps.render;
      const diffs = await diffReleases(clusterPlan, bound, {
        live: source,
        state,
        key: deps.digestKey,
        knownSecretPaths,
        ...(deps.renderServer
          ? {
              render: async (r) => {
                const rendered = renders.get(r.name);
                if (rendered?.manifest === undefined) throw new Error(rendered?.error ?? 'not rendered');
                return rendered.manifest;
              },
            }
          : render
            ? { render: (r) => render(r.resolved!, chartSource(head.dir, r.resolved!.release.chart)) }
            : {}),
      });
      const status = planStatus({
        plan: bound,
        diffs,
        phase: 'pending',
        reason,
        createdAt: iso(),
        deployedCharts: await deployedChartVersions(bound, state),
      });
      const published = await plans.publish(name, { ...status, seal: sealOf(key, status) });
      await event(
        planRef(name, published.uid),
        'Normal',
        'PlanPending',
        `revision ${head.revision.slice(0, 7)} waits for approval: ${summarize(livePlan)} (plan ${status.digest})`,
      );
      const recorded = new Map((state.records as Partial<ReleaseRecord>[]).map((r) => [r.name, r]));
      for (const r of livePlan.releases.filter((x) => CHANGING_ACTIONS.includes(x.action))) {
        // A release whose approved upgrade failed stays `failed` (one truth for status,
        // `mooring status` and metrics); retrying that same desired state waits for approval.
        const record = recorded.get(r.name);
        const failedHere = record?.state === 'failed' && record.failedDigest === r.desiredDigest;
        await deps.records.update(r.name, {
          namespace: r.namespace,
          ...(failedHere ? {} : { state: 'pending-approval' }),
          desiredRevision: head.revision,
          ...(r.desiredDigest ? { desiredDigest: r.desiredDigest } : {}),
        });
      }
      deps.log?.info({ revision: head.revision, binding: livePlan.binding }, 'plan waits for approval');
    }
    await retire(stored, name);
    return reason;
  }

  /** The chart version helm last deployed, per release that would change (for the summary). */
  async function deployedChartVersions(livePlan: LivePlan, state: LiveState): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const r of livePlan.releases.filter((x) => CHANGING_ACTIONS.includes(x.action))) {
      try {
        const deployed = await state.helm.get(releaseKey(r.namespace, r.name))?.deployed();
        if (deployed?.chartVersion) out.set(r.name, deployed.chartVersion);
      } catch {
        // Only a summary: a record helm cannot decode leaves the version out.
      }
    }
    return out;
  }

  /**
   * After an approved plan was applied: the manifest helm recorded for each release it
   * installed or upgraded, against the manifest the approval bound. Names the releases that
   * differ; empty when everything is as approved.
   */
  async function recordedDiffers(plan: PlanStatus, result: ConvergeResult): Promise<string[]> {
    const differs: string[] = [];
    const ready = new Set(result.releases.filter((r) => r.state === 'ready').map((r) => r.name));
    for (const r of plan.releases) {
      if (!r.manifestDigest || !ready.has(r.name)) continue;
      try {
        const deployed = await (await live().helm(r.namespace, r.name)).deployed();
        const recorded = deployed && manifestDigest(deployed.manifest, r.varyingLines ?? [], deps.digestKey);
        if (recorded !== r.manifestDigest) differs.push(r.name);
      } catch (err) {
        differs.push(`${r.name} (cannot read what helm recorded: ${oneLine(describeError(err))})`);
      }
    }
    return differs;
  }

  /**
   * The secret paths of the revisions the changing releases were deployed from: the deployed
   * side of a values diff holds the values helm was given then, so a value that was secret
   * then stays masked even when the new revision drops it or moves it out of a SOPS file.
   * Best effort: a revision that cannot be planned any more leaves the paths earlier plans
   * recorded.
   */
  async function secretPathsDeployed(
    input: Parameters<Gate['check']>[0],
    livePlan: LivePlan,
    records: LiveState['records'],
  ): Promise<Map<string, string[][]>> {
    const out = new Map<string, string[][]>();
    const changing = new Set(
      livePlan.releases.filter((r) => CHANGING_ACTIONS.includes(r.action)).map((r) => r.name),
    );
    const revisions = new Set(
      (records as Partial<ReleaseRecord>[])
        .filter(
          (r) =>
            changing.has(r.name ?? '') && r.deployedRevision && r.deployedRevision !== input.head.revision,
        )
        .map((r) => r.deployedRevision!)
        .filter((r) => /^[0-9a-f]{40}$/.test(r)),
    );
    for (const revision of revisions) {
      let snapshot: Snapshot | undefined;
      try {
        snapshot = await input.source.checkoutRevision(revision);
        for (const r of (await input.planFor(snapshot)).releases) {
          if (r.resolved?.secretPaths.length)
            out.set(r.name, [...(out.get(r.name) ?? []), ...r.resolved.secretPaths]);
        }
      } catch (err) {
        deps.log?.warn(
          { revision, err: describeError(err) },
          'cannot plan the deployed revision for its secret paths',
        );
      } finally {
        if (snapshot) releaseSnapshot(snapshot, input.head);
      }
    }
    return out;
  }

  /**
   * Pending plans of other revisions are superseded by the current one, and kept: they are
   * the agent's record of the heads it planned (an approval can only name one of those).
   * The record is bounded: the newest PLAN_HISTORY plans stay, and the newest applied one
   * even when older (it shows what runs, and its secret paths keep masking).
   */
  async function retire(stored: StoredPlan[], keep?: string): Promise<void> {
    const done = stored.filter((p) => p.status.phase === 'applied' || p.status.phase === 'failed');
    const lastDone = [...done].sort((a, b) =>
      (b.status.appliedAt ?? '').localeCompare(a.status.appliedAt ?? ''),
    )[0];
    const newestFirst = [...stored].sort((a, b) => b.status.createdAt.localeCompare(a.status.createdAt));
    // The current plan may be newer than the list (just published).
    let kept = keep !== undefined && !stored.some((p) => p.name === keep) ? 1 : 0;
    for (const p of newestFirst) {
      const protectedPlan = p.name === keep || p.name === lastDone?.name;
      if (!protectedPlan && kept >= PLAN_HISTORY) {
        await plans.remove(p.name);
        continue;
      }
      kept++;
      if (p.name !== keep && p.status.phase === 'pending') {
        await plans.update(p.name, {
          phase: 'superseded',
          reason: 'a newer revision of the branch was planned',
        });
      }
    }
  }

  return {
    async check(input) {
      releaseHold();
      try {
        const source = live();
        const records = await deps.records.list();
        const { decision, rejections } = await approved(input, source, records);
        if (decision) return decision;

        const { livePlan, state } = await plan(input.plan, input.head.revision, source, records);
        if (livePlan.changes === 0) {
          deps.metrics?.setPendingApprovals(0);
          await retire(await plans.list(cluster));
          return { apply: true, snapshot: input.head, plan: input.plan };
        }
        const reason = await pending(input, livePlan, state, source, rejections);
        deps.metrics?.setPendingApprovals(1);
        return { apply: false, reason };
      } catch (err) {
        // Never apply on a doubt: the plan stays pending and the next pass tries again.
        const reason = `the approval gate could not decide: ${describeError(err)}`;
        deps.log?.warn({ err: describeError(err) }, reason);
        return { apply: false, reason };
      }
    },

    async applied(approvalName, result) {
      const revision = result.revision;
      const failed = result.releases.filter((r) => r.state === 'failed' || r.state === 'waiting');
      const ok = result.converged;
      let message = ok
        ? `applied revision ${revision.slice(0, 7)}`
        : `applied revision ${revision.slice(0, 7)}, but ${failed.map((r) => `${r.name} (${r.error ?? r.state})`).join(', ') || 'not every release'} did not converge`;
      try {
        const approved = inFlight?.approval.name === approvalName ? inFlight.plan : undefined;
        let manifestCheck: 'as-approved' | 'differs' | undefined;
        if (approved && approved.releases.some((r) => r.manifestDigest)) {
          const differs = await recordedDiffers(approved, result);
          manifestCheck = differs.length ? 'differs' : 'as-approved';
          if (differs.length) {
            const why = `helm recorded a manifest other than the approved one for ${differs.join(', ')}`;
            message = `${message}; ${why}`;
            const approval = inFlight!.approval;
            await event(approvalRef(approval), 'Warning', 'AppliedNotAsApproved', why);
            deps.log?.warn({ approval: approvalName, releases: differs }, why);
          } else {
            message = `${message}; the manifests helm recorded are the approved ones`;
          }
        }
        await approvals.finish(approvalName, {
          result: ok ? 'applied' : 'failed',
          message,
          ...(manifestCheck ? { manifestCheck } : {}),
        });
        await plans.update(planName(cluster, revision), {
          phase: ok ? 'applied' : 'failed',
          appliedAt: iso(),
          reason: message,
        });
      } catch (err) {
        deps.log?.warn(
          { approval: approvalName, err: describeError(err) },
          'cannot record the outcome of an approval',
        );
      } finally {
        releaseHold();
      }
    },
  };
}

function isRevisionNotFound(err: unknown): boolean {
  return (err as { reason?: unknown } | null)?.reason === 'revision-not-found';
}

/** Releases a checkout made for an approval that is not going to be applied. */
function releaseSnapshot(snapshot: Snapshot, head: Snapshot): void {
  if (snapshot === head) return;
  (snapshot as Partial<{ release(): void }>).release?.();
}

/** What moved between a published plan and the same plan now, in words (no digests). */
function whatMoved(before: readonly PlanRelease[], now: LivePlan['releases']): string {
  const was = new Map(before.map((r) => [r.name, r]));
  const moved: string[] = [];
  for (const r of now) {
    const b = was.get(r.name);
    if (!b) {
      moved.push(`${r.name} is new to the plan`);
      continue;
    }
    was.delete(r.name);
    if (b.chartVersion !== r.chartVersion)
      moved.push(`${r.name}: chart version ${b.chartVersion ?? '-'} is now ${r.chartVersion ?? '-'}`);
    else if (b.chartDigest !== r.chartDigest) moved.push(`${r.name}: the chart's content changed`);
    else if (b.manifestDigest !== r.manifestDigest)
      moved.push(`${r.name}: the manifest helm would apply changed (a lookup result or the cluster)`);
    else if (
      b.action !== r.action ||
      b.desiredDigest !== r.desiredDigest ||
      b.deployedDigest !== r.deployedDigest ||
      b.helmRevision !== r.helmRevision ||
      b.helmStatus !== r.helmStatus
    )
      moved.push(`${r.name}: the live release changed`);
    else if (b.dryRunError !== r.dryRunError) moved.push(`${r.name}: the dry run's outcome changed`);
  }
  for (const name of was.keys()) moved.push(`${name} left the plan`);
  return moved.join('; ') || 'the live releases or the revision changed';
}

function summarize(plan: LivePlan): string {
  const counts = new Map<string, number>();
  for (const r of plan.releases) {
    if (CHANGING_ACTIONS.includes(r.action)) counts.set(r.action, (counts.get(r.action) ?? 0) + 1);
  }
  return [...counts.entries()].map(([action, n]) => `${n} to ${action}`).join(', ');
}
