// What the agent reports per release, kept in the status of one MooringRelease object per
// release (in the agent's namespace), so that `kubectl get mrel` answers "what runs where".
// The status type holds only names, digests, revisions, times and redacted error messages:
// there is no field a values object could be put into.
import { MooringError } from '../errors.js';
import { apiErrorMessage, isConflict, isNotFound } from '../kube/errors.js';
import { PATCH, type RestClient } from '../kube/rest.js';
import { mergePatchFor, type Json } from '../kube/merge-patch.js';
import { isNewer, type WatchedCollection } from '../kube/watch.js';
import { MOORING_API_VERSION, MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from './crds.js';

export type ReleaseState =
  | 'ready'
  | 'progressing'
  | 'failed'
  | 'pending-approval'
  | 'drifted'
  | 'waiting'
  | 'orphaned'
  | 'pruned'
  | 'suspended';

/**
 * Set by `mooring reconcile` on a MooringRelease (and the MooringAgent): a pass now, without
 * retry backoff. The agent records the value it handled in `status.lastHandledReconcileAt`.
 */
export const RECONCILE_ANNOTATION = 'mooring.io/reconcile-requested-at';

export interface DriftSummary {
  /** Drifted fields plus deleted objects. */
  count: number;
  /** `<kind>/<namespace>/<name>:<field path>`; at most 50 are kept. */
  fields: string[];
  /**
   * The field managers (from managedFields, helm's own left out) that changed each of
   * `fields`, for the fields where one is known; at most 50 are kept.
   */
  fieldManagers?: { field: string; managers: string[] }[];
  /** `<kind>/<namespace>/<name>`; at most 50 are kept. */
  deletedObjects: string[];
  /** The drift was restored (drift mode `correct`). */
  corrected: boolean;
  /** The mode the check ran in: `warn` reports only (also for a suspended release). */
  mode?: 'correct' | 'warn';
  /** Objects the check could not check (a refused dry run, a kind no longer served). */
  failed?: number;
  /** Why, per object (`<kind>/<namespace>/<name>: <reason>`); at most 50 are kept. */
  failures?: string[];
  /** RFC 3339. */
  checkedAt: string;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** The status fields a caller may set. Times are RFC 3339 strings. */
export interface ReleaseStatus {
  /** Namespace the release is installed in. */
  namespace?: string;
  chart?: string;
  /** The exact chart version (resolved from a range for remote charts). */
  version?: string;
  /** `sha256:...` of the chart content the desired digest covers. */
  chartDigest?: string;
  desiredRevision?: string;
  desiredDigest?: string;
  deployedRevision?: string;
  deployedDigest?: string;
  helmRevision?: number;
  helmStatus?: string;
  state?: ReleaseState;
  /**
   * Why the release is in its state, when the state alone does not say (`DriftCheckFailed`
   * for a release that is `failed` because its drift could not be checked). Cleared by any
   * patch that sets `state` without it.
   */
  reason?: string;
  /** The RECONCILE_ANNOTATION value the agent last handled. */
  lastHandledReconcileAt?: string;
  /** Already redacted by whoever produced it; shortened to 4096 characters here. */
  lastError?: string;
  failures?: number;
  failedDigest?: string;
  /** Milliseconds since the epoch. */
  retryAt?: number;
  managed?: boolean;
  lastAttemptAt?: string;
  lastSuccessAt?: string;
  drift?: DriftSummary;
}

/** A release's record as read back. */
export interface ReleaseStatusRecord extends ReleaseStatus {
  /** The release name (also the MooringRelease name). */
  name: string;
  cluster?: string;
  managed: boolean;
  conditions: Condition[];
  /** spec.suspend: an operator suspended the release (`mooring suspend --release`). */
  suspend?: boolean;
  /** The RECONCILE_ANNOTATION, when someone asked for a reconcile. */
  reconcileRequestedAt?: string;
  /** metadata.generation: bumped by every change of spec.suspend. */
  generation?: number;
}

/** Fields to change: a value sets it, `null` removes it, an absent key leaves it alone. */
export type ReleaseStatusPatch = { [K in keyof ReleaseStatus]?: ReleaseStatus[K] | null };

export interface StatusStore {
  list(): Promise<ReleaseStatusRecord[]>;
  get(name: string): Promise<ReleaseStatusRecord | undefined>;
  /** Merges `patch` into the release's status, creating its MooringRelease if needed. */
  update(name: string, patch: ReleaseStatusPatch): Promise<void>;
  /** Deletes the release's MooringRelease (after it was pruned). */
  remove(name: string): Promise<void>;
  /** The uid of the release's MooringRelease, when this store has seen it (Events name it). */
  uid(name: string): string | undefined;
}

export interface StatusStoreOptions {
  client: Pick<RestClient, 'request'>;
  /** The agent's namespace, where the MooringRelease objects live. */
  namespace: string;
  /** This agent's cluster name, recorded in every status and used as a label. */
  cluster: string;
  /**
   * A watch-fed copy of this cluster's MooringReleases (the agent's loop keeps one): while
   * it is current, reading the records costs no request.
   */
  watched?: WatchedCollection<MooringReleaseObject>;
  now?: () => number;
}

const LAST_ERROR_LIMIT = 4096;
const DRIFT_LIST_LIMIT = 50;
const CLUSTER_LABEL = 'mooring.io/cluster';
type JsonObject = { [key: string]: Json };
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export interface MooringReleaseObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: { suspend?: boolean };
  status?: Record<string, unknown>;
}

/** How this cluster's MooringReleases are selected: by their cluster label, where it can hold the name. */
export function releaseSelector(cluster: string): { labelSelector?: string } {
  return LABEL_VALUE.test(cluster) ? { labelSelector: `${CLUSTER_LABEL}=${cluster}` } : {};
}

export function createStatusStore(options: StatusStoreOptions): StatusStore {
  const { client, namespace, cluster } = options;
  const now = options.now ?? Date.now;
  const collection = `/apis/${MOORING_GROUP}/${MOORING_VERSION}/namespaces/${encodeURIComponent(namespace)}/${MOORING_KINDS.MooringRelease.plural}`;
  const pathOf = (name: string) => `${collection}/${encodeURIComponent(name)}`;
  const labels: Record<string, string> = {
    'app.kubernetes.io/managed-by': 'mooring',
    ...(LABEL_VALUE.test(cluster) ? { [CLUSTER_LABEL]: cluster } : {}),
  };
  // The last version of each object this store read or wrote. Only the lease holder writes
  // records, so a write needs no read first: it is one merge patch of the fields that
  // changed, made conditional on the resourceVersion seen (someone else's write in between
  // makes it fail with a conflict, and the object is read again). A write that changes
  // nothing is not sent.
  const known = new Map<string, MooringReleaseObject>();
  // Set by list(): a release missing from it has no object yet, so a first write creates
  // one without reading first.
  let listed = false;
  // Writes to one record, in order: each starts from the object the previous one left.
  const queues = new Map<string, Promise<unknown>>();

  const remember = (obj: MooringReleaseObject): MooringReleaseObject => {
    known.set(obj.metadata.name, obj);
    return obj;
  };
  const { watched } = options;
  // The later of what we wrote and what the watch saw last.
  const latest = (name: string): MooringReleaseObject | undefined => {
    const mine = known.get(name);
    const seen = watched?.get(name) ?? undefined;
    return seen !== undefined && isNewer(seen, mine) ? seen : mine;
  };

  async function read(name: string): Promise<MooringReleaseObject | undefined> {
    try {
      return remember(await client.request<MooringReleaseObject>('GET', pathOf(name)));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw storeError(`cannot read MooringRelease ${namespace}/${name}`, name, err);
    }
  }

  async function create(name: string): Promise<MooringReleaseObject | undefined> {
    try {
      return remember(
        await client.request<MooringReleaseObject>('POST', collection, {
          body: {
            apiVersion: MOORING_API_VERSION,
            kind: MOORING_KINDS.MooringRelease.kind,
            metadata: { name, namespace, labels },
            spec: {},
          },
        }),
      );
    } catch (err) {
      // Created by someone else in between: read it on the next round.
      if (isConflict(err)) return undefined;
      throw storeError(`cannot create MooringRelease ${namespace}/${name}`, name, err);
    }
  }

  async function write(name: string, patch: ReleaseStatusPatch): Promise<void> {
    let current = latest(name);
    for (let attempt = 0; attempt < 5; attempt++) {
      // A current watch (or a list) that has no such object: it does not exist yet.
      const absent = listed || watched?.get(name) === null;
      current ??= (absent ? undefined : await read(name)) ?? (await create(name)) ?? (await read(name));
      if (current === undefined) continue;
      const before = (current.status ?? {}) as JsonObject;
      const status = mergeStatus(
        before,
        patch,
        name,
        cluster,
        now(),
        current.metadata.generation,
      ) as JsonObject;
      const changes = mergePatchFor(before, status);
      if (changes === undefined) return;
      try {
        const written = await client.request<MooringReleaseObject>('PATCH', `${pathOf(name)}/status`, {
          contentType: PATCH.merge,
          body: { metadata: { resourceVersion: current.metadata.resourceVersion }, status: changes },
        });
        remember(written);
        return;
      } catch (err) {
        if (isConflict(err)) {
          current = await read(name);
          continue;
        }
        if (isNotFound(err)) {
          // Deleted behind our back: create it again.
          known.delete(name);
          current = await create(name);
          continue;
        }
        throw storeError(`cannot update the status of MooringRelease ${namespace}/${name}`, name, err);
      }
    }
    throw new MooringError(`MooringRelease ${namespace}/${name} kept changing while its status was written`, {
      release: name,
    });
  }

  return {
    async list() {
      const items = watched?.items();
      if (items !== undefined) {
        const names = new Set([...items.map((o) => o.metadata.name)]);
        return [...names].map((name) => toRecord(latest(name)!)).sort((a, b) => a.name.localeCompare(b.name));
      }
      try {
        const list = await client.request<{ items?: MooringReleaseObject[] }>('GET', collection, {
          query: releaseSelector(cluster),
        });
        const items = list.items ?? [];
        // Without the cluster label the list may miss objects of ours: keep reading first then.
        if (labels[CLUSTER_LABEL] !== undefined) {
          known.clear();
          listed = true;
        }
        return items.map((obj) => toRecord(remember(obj))).sort((a, b) => a.name.localeCompare(b.name));
      } catch (err) {
        throw storeError(`cannot list MooringReleases in namespace ${namespace}`, undefined, err);
      }
    },

    async get(name) {
      const seen = watched?.get(name);
      if (seen === null) return undefined;
      const obj = seen === undefined ? await read(name) : latest(name);
      return obj === undefined ? undefined : toRecord(obj);
    },

    update(name, patch) {
      const previous = queues.get(name) ?? Promise.resolve();
      const next = previous.catch(() => undefined).then(() => write(name, patch));
      queues.set(name, next);
      void next
        .catch(() => undefined)
        .finally(() => {
          if (queues.get(name) === next) queues.delete(name);
        });
      return next;
    },

    uid(name) {
      return latest(name)?.metadata.uid;
    },

    async remove(name) {
      try {
        await client.request('DELETE', pathOf(name));
      } catch (err) {
        if (!isNotFound(err))
          throw storeError(`cannot delete MooringRelease ${namespace}/${name}`, name, err);
      }
      known.delete(name);
    },
  };
}

/**
 * Every MooringRelease the caller may read, in one namespace or all of them: what
 * `mooring status` shows for a cluster, whichever namespace its agent runs in.
 */
export async function readReleaseStatuses(
  client: Pick<RestClient, 'request'>,
  namespace?: string,
  signal?: AbortSignal,
): Promise<(ReleaseStatusRecord & { objectNamespace: string })[]> {
  const scope = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  const path = `/apis/${MOORING_GROUP}/${MOORING_VERSION}${scope}/${MOORING_KINDS.MooringRelease.plural}`;
  try {
    const list = await client.request<{ items?: MooringReleaseObject[] }>(
      'GET',
      path,
      signal ? { signal } : {},
    );
    return (list.items ?? [])
      .map((obj) => ({ ...toRecord(obj), objectNamespace: obj.metadata.namespace ?? '' }))
      .sort((a, b) => a.objectNamespace.localeCompare(b.objectNamespace) || a.name.localeCompare(b.name));
  } catch (err) {
    throw storeError(
      `cannot list MooringReleases${namespace === undefined ? '' : ` in namespace ${namespace}`}`,
      undefined,
      err,
    );
  }
}

function mergeStatus(
  previous: Record<string, unknown>,
  patch: ReleaseStatusPatch,
  name: string,
  cluster: string,
  nowMs: number,
  generation?: number,
): Record<string, unknown> {
  const status: Record<string, unknown> = { ...previous };
  for (const [key, value] of Object.entries(patch)) {
    if (key === 'name') continue;
    if (value === null || value === undefined) delete status[key];
    else status[key] = value;
  }
  if ('state' in patch && !('reason' in patch)) delete status.reason;
  // The agent read the object (and its spec.suspend) before writing this status.
  if (generation !== undefined) status.observedGeneration = generation;
  status.release = name;
  status.cluster = cluster;
  if (typeof status.lastError === 'string') status.lastError = truncate(status.lastError, LAST_ERROR_LIMIT);
  const drift = status.drift as DriftSummary | undefined;
  if (drift !== undefined) {
    status.drift = {
      ...drift,
      fields: (drift.fields ?? []).slice(0, DRIFT_LIST_LIMIT),
      ...(drift.fieldManagers === undefined
        ? {}
        : { fieldManagers: drift.fieldManagers.slice(0, DRIFT_LIST_LIMIT) }),
      deletedObjects: (drift.deletedObjects ?? []).slice(0, DRIFT_LIST_LIMIT),
      ...(drift.failures === undefined ? {} : { failures: drift.failures.slice(0, DRIFT_LIST_LIMIT) }),
    };
  }
  setShort(status, 'desiredRevision', 'shortDesiredRevision');
  setShort(status, 'deployedRevision', 'shortDeployedRevision');
  status.conditions = withTransitions(
    releaseConditions(status),
    (previous.conditions as Condition[] | undefined) ?? [],
    nowMs,
    generation,
  );
  return status;
}

function setShort(status: Record<string, unknown>, from: string, to: string): void {
  const value = status[from];
  if (typeof value === 'string') status[to] = value.slice(0, 7);
  else delete status[to];
}

const STATE_REASONS: Record<ReleaseState, string> = {
  ready: 'Converged',
  progressing: 'Progressing',
  failed: 'ConvergeFailed',
  'pending-approval': 'PendingApproval',
  drifted: 'DriftDetected',
  waiting: 'WaitingForDependencies',
  orphaned: 'Orphaned',
  pruned: 'Pruned',
  suspended: 'Suspended',
};

export type ConditionWithoutTime = Omit<Condition, 'lastTransitionTime'>;

/**
 * The conditions of a release, in the convention kstatus (sigs.k8s.io/cli-utils) and
 * `kubectl wait` read: `Ready` says whether the release runs what Git asks; `Reconciling`
 * (True) says the agent is still getting there (kstatus: InProgress); `Stalled` (True) says
 * it will not get there without someone acting (kstatus: Failed). `Drifted` reports drift.
 *
 * Drift reported in mode `warn` leaves Ready True, as Flux's helm-controller does: the
 * release runs what Git asks and the agent was told not to touch the hand edit, so a wait
 * must not hang on it forever. Drift that mode `correct` could not restore is Stalled.
 */
export function releaseConditions(status: Record<string, unknown>): ConditionWithoutTime[] {
  const state = status.state as ReleaseState | undefined;
  const error = truncate(typeof status.lastError === 'string' ? status.lastError : '', 1024);
  const drift = status.drift as DriftSummary | undefined;
  const reason =
    typeof status.reason === 'string'
      ? status.reason
      : state === undefined
        ? 'NotObserved'
        : STATE_REASONS[state];
  const cond = (
    type: string,
    value: Condition['status'],
    why: string,
    message = '',
  ): ConditionWithoutTime => ({
    type,
    status: value,
    reason: why,
    message,
  });
  const out: ConditionWithoutTime[] = [];
  const driftMessage = drift && drift.count > 0 ? `${drift.count} drifted field(s) or deleted object(s)` : '';
  switch (state) {
    case undefined:
    case 'progressing':
    case 'waiting':
    case 'pending-approval':
      out.push(
        cond('Ready', state === undefined ? 'Unknown' : 'False', reason, error),
        cond('Reconciling', 'True', reason, error),
        cond('Stalled', 'False', reason),
      );
      break;
    case 'failed':
    case 'suspended':
      out.push(
        cond('Ready', 'False', reason, error || (state === 'suspended' ? SUSPENDED_MESSAGE : '')),
        cond('Reconciling', 'False', reason),
        cond('Stalled', 'True', reason, error || (state === 'suspended' ? SUSPENDED_MESSAGE : '')),
      );
      break;
    case 'drifted': {
      const warned = drift?.mode !== 'correct';
      const why = warned ? 'DriftDetected' : 'DriftCorrectionFailed';
      const message = warned
        ? `${driftMessage}; drift mode warn: reported, not corrected`
        : error || driftMessage;
      out.push(
        cond('Ready', warned ? 'True' : 'False', why, message),
        cond('Reconciling', 'False', why),
        cond('Stalled', warned ? 'False' : 'True', why, warned ? '' : message),
      );
      break;
    }
    case 'ready':
    case 'orphaned':
    case 'pruned':
      out.push(
        cond('Ready', 'True', reason, error),
        cond('Reconciling', 'False', reason),
        cond('Stalled', 'False', reason),
      );
      break;
  }
  if (drift !== undefined) {
    if ((drift.failed ?? 0) > 0) {
      out.push(
        cond('Drifted', 'Unknown', 'DriftCheckFailed', `${drift.failed} object(s) could not be checked`),
      );
    } else {
      out.push(
        cond(
          'Drifted',
          drift.count > 0 && !drift.corrected ? 'True' : 'False',
          drift.count === 0 ? 'NoDrift' : drift.corrected ? 'DriftCorrected' : 'DriftDetected',
          driftMessage,
        ),
      );
    }
  }
  return out;
}

const SUSPENDED_MESSAGE = 'suspended: not upgraded, pruned or drift-corrected until `mooring resume`';

/** Keeps a condition's lastTransitionTime while its status does not change. */
export function withTransitions(
  wanted: ConditionWithoutTime[],
  previous: Condition[],
  nowMs: number,
  generation?: number,
): Condition[] {
  const at = new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return wanted.map((c) => {
    const before = previous.find((p) => p.type === c.type);
    return {
      ...c,
      lastTransitionTime: before?.status === c.status ? before.lastTransitionTime : at,
      ...(generation === undefined ? {} : { observedGeneration: generation }),
    };
  });
}

function toRecord(obj: MooringReleaseObject): ReleaseStatusRecord {
  const s = (obj.status ?? {}) as Record<string, unknown>;
  const str = (k: string): string | undefined => (typeof s[k] === 'string' ? s[k] : undefined);
  const num = (k: string): number | undefined => (typeof s[k] === 'number' ? s[k] : undefined);
  const record: ReleaseStatusRecord = {
    name: obj.metadata.name,
    managed: s.managed === true,
    conditions: Array.isArray(s.conditions) ? (s.conditions as Condition[]) : [],
  };
  if (obj.spec?.suspend === true) record.suspend = true;
  const requested = obj.metadata.annotations?.[RECONCILE_ANNOTATION];
  if (requested !== undefined && requested !== '') record.reconcileRequestedAt = requested;
  if (obj.metadata.generation !== undefined) record.generation = obj.metadata.generation;
  const strings = [
    'cluster',
    'namespace',
    'chart',
    'version',
    'chartDigest',
    'desiredRevision',
    'desiredDigest',
    'deployedRevision',
    'deployedDigest',
    'helmStatus',
    'lastError',
    'failedDigest',
    'lastAttemptAt',
    'lastSuccessAt',
    'reason',
    'lastHandledReconcileAt',
  ] as const;
  for (const k of strings) {
    const v = str(k);
    if (v !== undefined) record[k] = v;
  }
  for (const k of ['helmRevision', 'failures', 'retryAt'] as const) {
    const v = num(k);
    if (v !== undefined) record[k] = v;
  }
  const state = str('state');
  if (state !== undefined) record.state = state as ReleaseState;
  if (typeof s.drift === 'object' && s.drift !== null) record.drift = s.drift as DriftSummary;
  return record;
}

/** Shortens `text` to at most `maxBytes` UTF-8 bytes (the API server's measure), marking the cut. */
export function truncate(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const suffix = ' ... (truncated)';
  let cut = text.slice(0, maxBytes - suffix.length);
  while (Buffer.byteLength(cut, 'utf8') > maxBytes - suffix.length) cut = cut.slice(0, -1);
  return `${cut}${suffix}`;
}

function storeError(message: string, release: string | undefined, err: unknown): MooringError {
  return new MooringError(`${message}: ${apiErrorMessage(err)}`, release === undefined ? {} : { release }, {
    cause: err,
  });
}
