// What the agent reports per release, kept in the status of one MooringRelease object per
// release (in the agent's namespace), so that `kubectl get mrel` answers "what runs where".
// The status type holds only names, digests, revisions, times and redacted error messages:
// there is no field a values object could be put into.
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { MooringError } from '../errors.js';
import { apiErrorMessage, isConflict, isNotFound } from '../kube/client.js';
import { MOORING_API_VERSION, MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from './crds.js';

export type ReleaseState =
  'ready' | 'progressing' | 'failed' | 'pending-approval' | 'drifted' | 'waiting' | 'orphaned' | 'pruned';

export interface DriftSummary {
  /** Drifted fields plus deleted objects. */
  count: number;
  /** `<kind>/<namespace>/<name>:<field path>`; at most 50 are kept. */
  fields: string[];
  /** `<kind>/<namespace>/<name>`; at most 50 are kept. */
  deletedObjects: string[];
  /** The drift was restored (drift mode `correct`). */
  corrected: boolean;
  /** RFC 3339. */
  checkedAt: string;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
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
}

export interface StatusStoreOptions {
  customObjects: CustomObjectsApi;
  /** The agent's namespace, where the MooringRelease objects live. */
  namespace: string;
  /** This agent's cluster name, recorded in every status and used as a label. */
  cluster: string;
  now?: () => number;
}

const LAST_ERROR_LIMIT = 4096;
const DRIFT_LIST_LIMIT = 50;
const CLUSTER_LABEL = 'mooring.io/cluster';
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

interface MooringReleaseObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: Record<string, never>;
  status?: Record<string, unknown>;
}

export function createStatusStore(options: StatusStoreOptions): StatusStore {
  const { customObjects, namespace, cluster } = options;
  const now = options.now ?? Date.now;
  const ref = {
    group: MOORING_GROUP,
    version: MOORING_VERSION,
    plural: MOORING_KINDS.MooringRelease.plural,
    namespace,
  };
  const labels: Record<string, string> = {
    'app.kubernetes.io/managed-by': 'mooring',
    ...(LABEL_VALUE.test(cluster) ? { [CLUSTER_LABEL]: cluster } : {}),
  };

  async function read(name: string): Promise<MooringReleaseObject | undefined> {
    try {
      return (await customObjects.getNamespacedCustomObject({ ...ref, name })) as MooringReleaseObject;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw storeError(`cannot read MooringRelease ${namespace}/${name}`, name, err);
    }
  }

  async function create(name: string): Promise<MooringReleaseObject | undefined> {
    try {
      return (await customObjects.createNamespacedCustomObject({
        ...ref,
        body: {
          apiVersion: MOORING_API_VERSION,
          kind: MOORING_KINDS.MooringRelease.kind,
          metadata: { name, namespace, labels },
          spec: {},
        },
      })) as MooringReleaseObject;
    } catch (err) {
      // Created by someone else in between: read it on the next round.
      if (isConflict(err)) return undefined;
      throw storeError(`cannot create MooringRelease ${namespace}/${name}`, name, err);
    }
  }

  return {
    async list() {
      try {
        const list = (await customObjects.listNamespacedCustomObject({
          ...ref,
          ...(labels[CLUSTER_LABEL] === undefined ? {} : { labelSelector: `${CLUSTER_LABEL}=${cluster}` }),
        })) as { items?: MooringReleaseObject[] };
        return (list.items ?? []).map(toRecord).sort((a, b) => a.name.localeCompare(b.name));
      } catch (err) {
        throw storeError(`cannot list MooringReleases in namespace ${namespace}`, undefined, err);
      }
    },

    async get(name) {
      const obj = await read(name);
      return obj === undefined ? undefined : toRecord(obj);
    },

    async update(name, patch) {
      // Read, merge, write with the resourceVersion: conditions need the previous status to
      // keep their transition times, and a concurrent writer makes us merge again.
      for (let attempt = 0; attempt < 5; attempt++) {
        const current = (await read(name)) ?? (await create(name));
        if (current === undefined) continue;
        const status = mergeStatus(current.status ?? {}, patch, name, cluster, now());
        try {
          await customObjects.replaceNamespacedCustomObjectStatus({
            ...ref,
            name,
            body: { ...current, status },
          });
          return;
        } catch (err) {
          if (isConflict(err) || isNotFound(err)) continue;
          throw storeError(`cannot update the status of MooringRelease ${namespace}/${name}`, name, err);
        }
      }
      throw new MooringError(
        `MooringRelease ${namespace}/${name} kept changing while its status was written`,
        {
          release: name,
        },
      );
    },

    async remove(name) {
      try {
        await customObjects.deleteNamespacedCustomObject({ ...ref, name });
      } catch (err) {
        if (!isNotFound(err))
          throw storeError(`cannot delete MooringRelease ${namespace}/${name}`, name, err);
      }
    },
  };
}

/**
 * Every MooringRelease the caller may read, in one namespace or all of them: what
 * `mooring status` shows for a cluster, whichever namespace its agent runs in.
 */
export async function readReleaseStatuses(
  customObjects: CustomObjectsApi,
  namespace?: string,
): Promise<(ReleaseStatusRecord & { objectNamespace: string })[]> {
  const common = {
    group: MOORING_GROUP,
    version: MOORING_VERSION,
    plural: MOORING_KINDS.MooringRelease.plural,
  };
  try {
    const list = (
      namespace === undefined
        ? await customObjects.listClusterCustomObject(common)
        : await customObjects.listNamespacedCustomObject({ ...common, namespace })
    ) as { items?: MooringReleaseObject[] };
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
): Record<string, unknown> {
  const status: Record<string, unknown> = { ...previous };
  for (const [key, value] of Object.entries(patch)) {
    if (key === 'name') continue;
    if (value === null || value === undefined) delete status[key];
    else status[key] = value;
  }
  status.release = name;
  status.cluster = cluster;
  if (typeof status.lastError === 'string') status.lastError = truncate(status.lastError, LAST_ERROR_LIMIT);
  const drift = status.drift as DriftSummary | undefined;
  if (drift !== undefined) {
    status.drift = {
      ...drift,
      fields: (drift.fields ?? []).slice(0, DRIFT_LIST_LIMIT),
      deletedObjects: (drift.deletedObjects ?? []).slice(0, DRIFT_LIST_LIMIT),
    };
  }
  setShort(status, 'desiredRevision', 'shortDesiredRevision');
  setShort(status, 'deployedRevision', 'shortDeployedRevision');
  status.conditions = conditionsFor(status, (previous.conditions as Condition[] | undefined) ?? [], nowMs);
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
  drifted: 'Drifted',
  waiting: 'WaitingForDependencies',
  orphaned: 'Orphaned',
  pruned: 'Pruned',
};

/** `Ready` (for `kubectl wait --for=condition=Ready mrel/<release>`) and `Drifted`. */
function conditionsFor(status: Record<string, unknown>, previous: Condition[], nowMs: number): Condition[] {
  const state = status.state as ReleaseState | undefined;
  const error = typeof status.lastError === 'string' ? status.lastError : '';
  const wanted: Omit<Condition, 'lastTransitionTime'>[] = [
    state === undefined
      ? { type: 'Ready', status: 'Unknown', reason: 'NotObserved', message: '' }
      : {
          type: 'Ready',
          status: state === 'ready' ? 'True' : 'False',
          reason: STATE_REASONS[state],
          message: truncate(error, 1024),
        },
  ];
  const drift = status.drift as DriftSummary | undefined;
  if (drift !== undefined) {
    wanted.push({
      type: 'Drifted',
      status: drift.count > 0 && !drift.corrected ? 'True' : 'False',
      reason: drift.count === 0 ? 'NoDrift' : drift.corrected ? 'DriftCorrected' : 'DriftDetected',
      message: drift.count === 0 ? '' : `${drift.count} drifted field(s) or deleted object(s)`,
    });
  }
  const at = new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return wanted.map((c) => {
    const before = previous.find((p) => p.type === c.type);
    return { ...c, lastTransitionTime: before?.status === c.status ? before.lastTransitionTime : at };
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
