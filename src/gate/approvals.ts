// Approval objects (approvals.mooring.io): permission to apply one exact plan (revision +
// plan digest) to one cluster. `mooring approve` creates them; RBAC on the resource decides
// who may, and the ValidatingAdmissionPolicy (policy.ts) makes sure the recorded approver is
// the user who made the request. The agent reads them and records their use in the status
// subresource, so that an approval is used at most once.
import { customResources } from '../kube/custom.js';
import type { RestClient } from '../kube/rest.js';
import { MooringError } from '../errors.js';
import { apiErrorMessage, isConflict, isNotFound } from '../kube/errors.js';
import { MOORING_API_VERSION, MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from '../observe/crds.js';

export interface Approver {
  username: string;
  uid?: string;
  groups?: string[];
}

export interface ApprovalSpec {
  cluster: string;
  /** Full Git commit sha the plan was made from. */
  revision: string;
  /** The MooringPlan's `.status.digest` the approver saw. */
  planDigest: string;
  /** The API server's answer to "who am I" (SelfSubjectReview) when the approval was made. */
  approvedBy: Approver;
  /**
   * Never set by a client: when an approval was made is the API server's time, the object's
   * `metadata.creationTimestamp` (Approval.approvedAt). The admission policy refuses a value
   * here, and the agent rejects an approval that carries one.
   */
  approvedAt?: string;
  comment?: string;
}

/** `superseded`: a newer approval was applied first; `rejected`: it no longer matched the plan. */
export type ApprovalResult = 'applied' | 'failed' | 'superseded' | 'rejected';

export interface ApprovalStatus {
  result?: ApprovalResult;
  /** When the agent took the approval (set before applying, so it is never used twice). */
  usedAt?: string;
  usedForRevision?: string;
  message?: string;
  /**
   * After the apply: `as-approved` when the manifest helm recorded for every release is the
   * one the approval bound, `differs` otherwise (the message names the releases).
   */
  manifestCheck?: 'as-approved' | 'differs';
}

export interface Approval {
  name: string;
  namespace: string;
  uid?: string;
  resourceVersion?: string;
  /** When the API server created it (metadata.creationTimestamp): when it was approved. */
  approvedAt: string;
  spec: ApprovalSpec;
  status: ApprovalStatus;
}

/** An approval the agent has not acted on yet. */
export function isUnused(a: Approval): boolean {
  return a.status.usedAt === undefined && a.status.result === undefined;
}

export interface ApprovalStore {
  /** Approvals for `cluster`, newest first. */
  list(cluster: string): Promise<Approval[]>;
  /**
   * Marks an approval used (status.usedAt) with optimistic concurrency: returns undefined
   * when it changed since it was read, so two writers can never both take it.
   */
  claim(approval: Approval, at: string): Promise<Approval | undefined>;
  /** Records the outcome in the status (merged with what is there). */
  finish(name: string, status: ApprovalStatus): Promise<void>;
  create(spec: ApprovalSpec, options?: { labels?: Record<string, string> }): Promise<Approval>;
}

const MESSAGE_LIMIT = 1024;

export function createApprovalStore(options: {
  client: Pick<RestClient, 'request'>;
  namespace: string;
}): ApprovalStore {
  const { namespace } = options;
  const approvals = customResources(options.client, {
    group: MOORING_GROUP,
    version: MOORING_VERSION,
    plural: MOORING_KINDS.Approval.plural,
    namespace,
  });

  async function read(name: string): Promise<RawApproval | undefined> {
    try {
      return await approvals.get<RawApproval>(name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw apiError(`cannot read Approval ${namespace}/${name}`, err);
    }
  }

  async function writeStatus(raw: RawApproval, status: ApprovalStatus): Promise<RawApproval> {
    return approvals.replaceStatus<RawApproval>(raw.metadata.name, {
      ...raw,
      status: { ...(raw.status ?? {}), ...limitMessage(status) },
    });
  }

  return {
    async list(cluster) {
      let list: { items?: RawApproval[] };
      try {
        list = await approvals.list<RawApproval>();
      } catch (err) {
        throw apiError(`cannot list Approvals in namespace ${namespace}`, err);
      }
      return (list.items ?? [])
        .map(toApproval)
        .filter((a) => a.spec.cluster === cluster)
        .sort(newestFirst);
    },

    async claim(approval, at) {
      const raw = await read(approval.name);
      if (raw === undefined || raw.metadata.resourceVersion !== approval.resourceVersion) return undefined;
      try {
        const written = await writeStatus(raw, { usedAt: at, usedForRevision: approval.spec.revision });
        return toApproval(written);
      } catch (err) {
        if (isConflict(err) || isNotFound(err)) return undefined;
        throw apiError(`cannot mark Approval ${namespace}/${approval.name} used`, err);
      }
    },

    async finish(name, status) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const raw = await read(name);
        if (raw === undefined) return;
        try {
          await writeStatus(raw, status);
          return;
        } catch (err) {
          if (isConflict(err)) continue;
          if (isNotFound(err)) return;
          throw apiError(`cannot record the result of Approval ${namespace}/${name}`, err);
        }
      }
      throw new MooringError(`Approval ${namespace}/${name} kept changing while its result was written`);
    },

    async create(spec, createOptions = {}) {
      const body = {
        apiVersion: MOORING_API_VERSION,
        kind: MOORING_KINDS.Approval.kind,
        metadata: {
          // The API server appends a random suffix: approving the same plan twice is harmless.
          generateName: `${spec.cluster}-${spec.revision.slice(0, 7)}-`,
          namespace,
          labels: {
            'app.kubernetes.io/managed-by': 'mooring',
            'mooring.io/cluster': spec.cluster,
            'mooring.io/revision': spec.revision,
            ...createOptions.labels,
          },
        },
        spec,
      };
      return toApproval(await approvals.create<RawApproval>(body));
    },
  };
}

interface RawApproval {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string | Date;
  };
  spec?: Partial<ApprovalSpec>;
  status?: ApprovalStatus;
}

function toApproval(raw: RawApproval): Approval {
  const spec = raw.spec ?? {};
  const created = raw.metadata.creationTimestamp;
  return {
    name: raw.metadata.name,
    namespace: raw.metadata.namespace ?? '',
    ...(raw.metadata.uid ? { uid: raw.metadata.uid } : {}),
    ...(raw.metadata.resourceVersion ? { resourceVersion: raw.metadata.resourceVersion } : {}),
    approvedAt: created instanceof Date ? created.toISOString() : (created ?? ''),
    spec: {
      cluster: spec.cluster ?? '',
      revision: spec.revision ?? '',
      planDigest: spec.planDigest ?? '',
      approvedBy: { username: '', ...spec.approvedBy },
      ...(spec.approvedAt !== undefined ? { approvedAt: String(spec.approvedAt) } : {}),
      ...(spec.comment ? { comment: spec.comment } : {}),
    },
    status: raw.status ?? {},
  };
}

/** Newest first: by the API server's creation time, then name (stable). */
function newestFirst(a: Approval, b: Approval): number {
  return b.approvedAt.localeCompare(a.approvedAt) || b.name.localeCompare(a.name);
}

function limitMessage(status: ApprovalStatus): ApprovalStatus {
  if (status.message === undefined || status.message.length <= MESSAGE_LIMIT) return status;
  return { ...status, message: `${status.message.slice(0, MESSAGE_LIMIT - 15)} ... (truncated)` };
}

function apiError(message: string, err: unknown): MooringError {
  return new MooringError(`${message}: ${apiErrorMessage(err)}`, {}, { cause: err });
}
