// MooringPlan objects (mooringplans.mooring.io): the plan a manual cluster waits to have
// approved, readable with `kubectl get mplan` and shown by `mooring approve`. One object per
// (cluster, revision) in the agent's namespace. Only the agent writes them; the status holds
// actions, digests and diffs whose secret values are masked, and the PATHS of secret values
// (never the values) so that later diffs keep masking a value that moved out of a SOPS file.
import { customResources } from '../kube/custom.js';
import type { RestClient } from '../kube/rest.js';
import { MooringError } from '../errors.js';
import { apiErrorMessage, isAlreadyExists, isConflict, isNotFound } from '../kube/errors.js';
import { MOORING_API_VERSION, MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from '../observe/crds.js';
import { canonicalJson, sha256 } from '../plan/digest.js';
import { withTransitions, type Condition, type ConditionWithoutTime } from '../observe/status.js';
import type { LivePlan, ReleaseAction, ReleaseDiff } from '../plan/live-diff.js';

export type PlanPhase = 'pending' | 'approved' | 'applied' | 'failed' | 'superseded';

export interface PlanRelease {
  name: string;
  namespace: string;
  action: ReleaseAction;
  reason?: string;
  desiredDigest?: string;
  deployedDigest?: string;
  helmRevision?: number;
  helmStatus?: string;
  /** The chart version and content digest the server-side render resolved. */
  chartVersion?: string;
  chartDigest?: string;
  /** Keyed hash of the manifest helm would apply (live-diff.ts, manifestDigest). */
  manifestDigest?: string;
  /** Manifest lines that differ on every render (random values), left out of the binding. */
  varyingLines?: number[];
  /** Why the release could not be rendered or dry-run against the cluster: applying would fail. */
  dryRunError?: string;
  /** The chart version of the release as helm last deployed it. */
  deployedChartVersion?: string;
  valuesDiff?: string;
  manifestDiff?: string;
  truncated?: boolean;
  notes?: string[];
  secretPaths?: string[][];
}

export interface PlanStatus {
  cluster: string;
  revision: string;
  shortRevision: string;
  /** What an Approval names: planDigest() of this status, so it covers everything shown. */
  digest: string;
  /** What applying would do (LivePlan.binding); the agent recomputes it before applying. */
  binding: string;
  /** The agent's HMAC over everything but the phase fields (seal.ts); absent on old plans. */
  seal?: string;
  phase: PlanPhase;
  reason?: string;
  changes: number;
  createdAt: string;
  approval?: string;
  approvedBy?: string;
  appliedAt?: string;
  releases: PlanRelease[];
}

export interface StoredPlan {
  name: string;
  namespace: string;
  uid?: string;
  status: PlanStatus;
}

export interface PlanStore {
  get(name: string): Promise<StoredPlan | undefined>;
  /** Plans of `cluster` (all clusters when omitted), newest first. */
  list(cluster?: string): Promise<StoredPlan[]>;
  /** Creates the plan object if needed and replaces its whole status. */
  publish(name: string, status: PlanStatus): Promise<StoredPlan>;
  /** Merges `patch` into the status (a `null` removes a field); no-op when the plan is gone. */
  update(name: string, patch: { [K in keyof PlanStatus]?: PlanStatus[K] | null }): Promise<void>;
  remove(name: string): Promise<void>;
}

/** `<cluster>-<first 12 hex of the revision>`: one plan per cluster and revision. */
export function planName(cluster: string, revision: string): string {
  return `${cluster}-${revision.slice(0, 12)}`;
}

const CLUSTER_LABEL = 'mooring.io/cluster';
/** Diffs beyond these sizes are cut, so that a plan stays far below etcd's object limit. */
const DIFF_LIMIT = 64 * 1024;
const TOTAL_DIFF_BUDGET = 512 * 1024;

/** The status of a freshly computed plan, diffs shortened to fit one Kubernetes object. */
export function planStatus(input: {
  plan: LivePlan;
  diffs: ReleaseDiff[];
  phase: PlanPhase;
  reason: string;
  createdAt: string;
  /** The chart version helm last deployed, per release (for the summary). */
  deployedCharts?: Map<string, string>;
}): PlanStatus {
  const withDiffs = input.diffs.filter((d) => d.valuesDiff || d.manifestDiff).length;
  const limit = Math.min(DIFF_LIMIT, Math.floor(TOTAL_DIFF_BUDGET / Math.max(1, 2 * withDiffs)));
  const diffs = new Map(input.diffs.map((d) => [d.name, d]));
  const status: PlanStatus = {
    cluster: input.plan.cluster,
    revision: input.plan.revision,
    shortRevision: input.plan.revision.slice(0, 7),
    digest: '',
    binding: input.plan.binding,
    phase: input.phase,
    reason: input.reason,
    changes: input.plan.changes,
    createdAt: input.createdAt,
    releases: input.plan.releases.map((r): PlanRelease => {
      const d = diffs.get(r.name);
      const values = cut(d?.valuesDiff ?? '', limit);
      const manifest = cut(d?.manifestDiff ?? '', limit);
      return {
        name: r.name,
        namespace: r.namespace,
        action: r.action,
        reason: r.reason,
        ...(r.desiredDigest ? { desiredDigest: r.desiredDigest } : {}),
        ...(r.deployedDigest ? { deployedDigest: r.deployedDigest } : {}),
        ...(r.helmRevision !== undefined ? { helmRevision: r.helmRevision } : {}),
        ...(r.helmStatus ? { helmStatus: r.helmStatus } : {}),
        ...(r.chartVersion ? { chartVersion: r.chartVersion } : {}),
        ...(input.deployedCharts?.get(r.name)
          ? { deployedChartVersion: input.deployedCharts.get(r.name)! }
          : {}),
        ...(r.chartDigest ? { chartDigest: r.chartDigest } : {}),
        ...(r.manifestDigest ? { manifestDigest: r.manifestDigest } : {}),
        ...(r.varyingLines?.length ? { varyingLines: r.varyingLines } : {}),
        ...((d?.dryRunError ?? r.dryRunError) ? { dryRunError: d?.dryRunError ?? r.dryRunError } : {}),
        ...(values.text ? { valuesDiff: values.text } : {}),
        ...(manifest.text ? { manifestDiff: manifest.text } : {}),
        ...(values.cut || manifest.cut ? { truncated: true } : {}),
        ...(d?.notes.length ? { notes: d.notes } : {}),
        ...(d?.secretPaths.length ? { secretPaths: d.secretPaths } : {}),
      };
    }),
  };
  return { ...status, digest: planDigest(status) };
}

/**
 * The digest an Approval names: sha256 over everything a plan shows about what it would do
 * (cluster, revision, the binding digest, and per release every field, diffs included), so
 * that `mooring approve` can check that the plan it shows is the plan it approves. The
 * phase fields (phase, reason, who approved, when applied) are left out: they change as
 * the plan is used.
 */
export function planDigest(status: PlanStatus): string {
  return `sha256:${sha256(
    canonicalJson({
      cluster: status.cluster,
      revision: status.revision,
      binding: status.binding,
      changes: status.changes,
      releases: status.releases,
    }),
  )}`;
}

function cut(text: string, limit: number): { text: string; cut: boolean } {
  if (text.length <= limit) return { text, cut: false };
  const end = text.lastIndexOf('\n', limit);
  return { text: `${text.slice(0, end > 0 ? end : limit)}\n... (diff truncated)\n`, cut: true };
}

export function createPlanStore(options: {
  client: Pick<RestClient, 'request'>;
  namespace: string;
  now?: () => number;
}): PlanStore {
  const { namespace } = options;
  const now = options.now ?? Date.now;
  const plans = customResources(options.client, {
    group: MOORING_GROUP,
    version: MOORING_VERSION,
    plural: MOORING_KINDS.MooringPlan.plural,
    namespace,
  });

  async function read(name: string): Promise<RawPlan | undefined> {
    try {
      return await plans.get<RawPlan>(name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw apiError(`cannot read MooringPlan ${namespace}/${name}`, err);
    }
  }

  async function readOrCreate(name: string, cluster: string): Promise<RawPlan> {
    const existing = await read(name);
    if (existing) return existing;
    try {
      return await plans.create<RawPlan>({
        apiVersion: MOORING_API_VERSION,
        kind: MOORING_KINDS.MooringPlan.kind,
        metadata: {
          name,
          namespace,
          labels: { 'app.kubernetes.io/managed-by': 'mooring', [CLUSTER_LABEL]: cluster },
        },
        spec: {},
      });
    } catch (err) {
      if (isAlreadyExists(err)) {
        const raced = await read(name);
        if (raced) return raced;
      }
      throw apiError(`cannot create MooringPlan ${namespace}/${name}`, err);
    }
  }

  /** Read, change, write with the resourceVersion; a concurrent writer makes us start over. */
  async function rewrite(
    name: string,
    change: (raw: RawPlan) => Record<string, unknown> | undefined,
    cluster?: string,
  ): Promise<RawPlan | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const raw = cluster === undefined ? await read(name) : await readOrCreate(name, cluster);
      if (raw === undefined) return undefined;
      const status = change(raw);
      if (status === undefined) return raw;
      status.conditions = withTransitions(
        planConditions(status.phase as PlanPhase | undefined, status.reason as string | undefined),
        (raw.status?.conditions as Condition[] | undefined) ?? [],
        now(),
      );
      try {
        return await plans.replaceStatus<RawPlan>(name, { ...raw, status });
      } catch (err) {
        if (isConflict(err)) continue;
        if (isNotFound(err) && cluster === undefined) return undefined;
        if (isNotFound(err)) continue;
        throw apiError(`cannot write the status of MooringPlan ${namespace}/${name}`, err);
      }
    }
    throw new MooringError(`MooringPlan ${namespace}/${name} kept changing while its status was written`);
  }

  return {
    async get(name) {
      const raw = await read(name);
      return raw && toStored(raw);
    },

    async list(cluster) {
      let list: { items?: RawPlan[] };
      try {
        list = await plans.list<RawPlan>(
          cluster === undefined ? {} : { labelSelector: `${CLUSTER_LABEL}=${cluster}` },
        );
      } catch (err) {
        throw apiError(`cannot list MooringPlans in namespace ${namespace}`, err);
      }
      return (list.items ?? [])
        .map(toStored)
        .filter((p) => cluster === undefined || p.status.cluster === cluster)
        .sort((a, b) => (b.status.createdAt ?? '').localeCompare(a.status.createdAt ?? ''));
    },

    async publish(name, status) {
      const written = await rewrite(name, () => ({ ...status }), status.cluster);
      return toStored(written!);
    },

    async update(name, patch) {
      await rewrite(name, (raw) => {
        if (!raw.status) return undefined;
        const status: Record<string, unknown> = { ...raw.status };
        for (const [k, v] of Object.entries(patch)) {
          if (v === null || v === undefined) delete status[k];
          else status[k] = v;
        }
        return status;
      });
    },

    async remove(name) {
      try {
        await plans.delete(name);
      } catch (err) {
        if (!isNotFound(err)) throw apiError(`cannot delete MooringPlan ${namespace}/${name}`, err);
      }
    },
  };
}

interface RawPlan {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
  spec?: Record<string, never>;
  status?: Partial<PlanStatus> & { conditions?: Condition[] };
}

/**
 * Conditions as kstatus reads them: a plan waiting for approval, or approved and being
 * applied, is InProgress (Reconciling); an applied plan is Current (Ready); a plan that
 * failed, or that a newer one superseded, will not be applied: Stalled (Failed).
 */
export function planConditions(phase: PlanPhase | undefined, reason = ''): ConditionWithoutTime[] {
  const why = {
    pending: 'PendingApproval',
    approved: 'Approved',
    applied: 'Applied',
    failed: 'ApplyFailed',
    superseded: 'Superseded',
  }[phase ?? 'pending'];
  const ready = phase === 'applied';
  const stalled = phase === 'failed' || phase === 'superseded';
  const reconciling = !ready && !stalled;
  return [
    { type: 'Ready', status: ready ? 'True' : 'False', reason: why, message: reason },
    {
      type: 'Reconciling',
      status: reconciling ? 'True' : 'False',
      reason: why,
      message: reconciling ? reason : '',
    },
    { type: 'Stalled', status: stalled ? 'True' : 'False', reason: why, message: stalled ? reason : '' },
  ];
}

function toStored(raw: RawPlan): StoredPlan {
  const s = raw.status ?? {};
  return {
    name: raw.metadata.name,
    namespace: raw.metadata.namespace ?? '',
    ...(raw.metadata.uid ? { uid: raw.metadata.uid } : {}),
    status: {
      cluster: s.cluster ?? '',
      revision: s.revision ?? '',
      shortRevision: s.shortRevision ?? (s.revision ?? '').slice(0, 7),
      digest: s.digest ?? '',
      binding: s.binding ?? '',
      ...(s.seal ? { seal: s.seal } : {}),
      phase: s.phase ?? 'pending',
      changes: s.changes ?? 0,
      createdAt: s.createdAt ?? '',
      releases: s.releases ?? [],
      ...(s.reason ? { reason: s.reason } : {}),
      ...(s.approval ? { approval: s.approval } : {}),
      ...(s.approvedBy ? { approvedBy: s.approvedBy } : {}),
      ...(s.appliedAt ? { appliedAt: s.appliedAt } : {}),
    },
  };
}

function apiError(message: string, err: unknown): MooringError {
  return new MooringError(`${message}: ${apiErrorMessage(err)}`, {}, { cause: err });
}
