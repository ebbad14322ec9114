// The MooringAgent object (mooringagents.mooring.io): one per agent, named after its cluster,
// in the agent's namespace. It is the operator's handle on the agent, kept in the cluster
// where RBAC decides who may use it, never in Git: `spec.suspend` (mooring suspend/resume)
// and the reconcile annotation (mooring reconcile). Its status is what the agent says about
// itself: suspended or not, the last pass, the effective approval mode, its version.
// Per-release controls live on each MooringRelease the same way (see status.ts).
import type { ApprovalMode } from '../agent/config.js';
import type { ControlState, Controls, PassResult } from '../agent/agent.js';
import { MooringError } from '../errors.js';
import { apiErrorMessage, isConflict, isNotFound } from '../kube/errors.js';
import { mergePatchFor, sameJson, type Json } from '../kube/merge-patch.js';
import { PATCH, type RestClient } from '../kube/rest.js';
import { isNewer, type WatchedCollection } from '../kube/watch.js';
import { MOORING_API_VERSION, MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from './crds.js';
import {
  RECONCILE_ANNOTATION,
  withTransitions,
  type Condition,
  type ConditionWithoutTime,
  type MooringReleaseObject,
  type ReleaseStatusRecord,
} from './status.js';

export interface AgentObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
  };
  spec?: { suspend?: boolean };
  status?: AgentStatus;
}

export interface AgentStatus {
  cluster?: string;
  observedGeneration?: number;
  suspended?: boolean;
  lastHandledReconcileAt?: string;
  revision?: string;
  shortRevision?: string;
  lastPassAt?: string;
  lastPassOutcome?: string;
  approvalMode?: ApprovalMode;
  version?: string;
  identity?: string;
  conditions?: Condition[];
}

export interface AgentControlOptions {
  client: Pick<RestClient, 'request'>;
  namespace: string;
  cluster: string;
  identity: string;
  version: string;
  /** The releases' records, for their suspensions and reconcile requests. */
  releases: { list(): Promise<ReleaseStatusRecord[]> };
  /**
   * Watch-fed copies of this agent's MooringAgent and of the cluster's MooringReleases: they
   * wake the agent when an operator acts, and while they are current a pass that changes
   * nothing costs no request. Without them (`--once`), the object is read before each pass.
   */
  watched?: {
    agent: WatchedCollection<AgentObject>;
    releases: WatchedCollection<MooringReleaseObject>;
  };
  /** Events about the MooringAgent object. */
  events?: { emit(type: 'Normal' | 'Warning', reason: string, message: string): void };
  now?: () => number;
}

export const AGENT_LABELS = { 'app.kubernetes.io/managed-by': 'mooring' } as const;

export function agentObjectRef(namespace: string, cluster: string) {
  return { apiVersion: MOORING_API_VERSION, kind: MOORING_KINDS.MooringAgent.kind, name: cluster, namespace };
}

/** The collection path of a namespace's MooringAgents or MooringReleases. */
export function mooringPath(namespace: string, kind: 'MooringAgent' | 'MooringRelease'): string {
  return `/apis/${MOORING_GROUP}/${MOORING_VERSION}/namespaces/${encodeURIComponent(namespace)}/${MOORING_KINDS[kind].plural}`;
}

/**
 * Whether an operator acted between two versions of a MooringAgent or MooringRelease: its
 * spec changed (metadata.generation: suspend, resume) or a reconcile was requested. The
 * agent's own status writes are no such change; nor is the first sight of an object.
 */
export function operatorActed(
  before: { metadata: { generation?: number; annotations?: Record<string, string> } } | undefined,
  after: { metadata: { generation?: number; annotations?: Record<string, string> } } | undefined,
): boolean {
  if (before === undefined || after === undefined) return false;
  return (
    before.metadata.generation !== after.metadata.generation ||
    before.metadata.annotations?.[RECONCILE_ANNOTATION] !== after.metadata.annotations?.[RECONCILE_ANNOTATION]
  );
}

export function createAgentControl(options: AgentControlOptions): Controls {
  const { client, namespace, cluster, watched } = options;
  const now = options.now ?? Date.now;
  const collection = mooringPath(namespace, 'MooringAgent');
  const objectPath = `${collection}/${encodeURIComponent(cluster)}`;
  // The last version of the object we read or wrote; the watch may know a later one.
  let mine: AgentObject | undefined;

  const remember = (obj: AgentObject): AgentObject => (mine = obj);

  async function create(): Promise<AgentObject | undefined> {
    try {
      return remember(
        await client.request<AgentObject>('POST', collection, {
          body: {
            apiVersion: MOORING_API_VERSION,
            kind: MOORING_KINDS.MooringAgent.kind,
            metadata: {
              name: cluster,
              namespace,
              labels: { ...AGENT_LABELS, 'mooring.io/cluster': cluster },
            },
            spec: {},
          },
        }),
      );
    } catch (err) {
      if (isConflict(err)) return undefined;
      throw controlError(`cannot create MooringAgent ${namespace}/${cluster}`, err);
    }
  }

  async function read(): Promise<AgentObject | undefined> {
    try {
      const obj = await client.request<AgentObject>('GET', objectPath);
      return remember(obj);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw controlError(`cannot read MooringAgent ${namespace}/${cluster}`, err);
    }
  }

  /** The object as the watch or our last write left it; read (or created) when neither can say. */
  async function current(): Promise<AgentObject> {
    const seen = watched?.agent.get(cluster);
    if (seen) return mine !== undefined && !isNewer(seen, mine) ? mine : seen;
    // Created by us a moment ago, and the watch has not shown it yet.
    if (seen === null && mine !== undefined) return mine;
    for (let attempt = 0; attempt < 5; attempt++) {
      const obj = (seen === null ? undefined : await read()) ?? (await create()) ?? (await read());
      if (obj) return obj;
    }
    throw new MooringError(`MooringAgent ${namespace}/${cluster} kept changing while it was read`);
  }

  return {
    async read(): Promise<ControlState> {
      const [agent, releases] = await Promise.all([current(), options.releases.list()]);
      const requested = agent.metadata.annotations?.[RECONCILE_ANNOTATION];
      // Only releases an operator acted on: a record the agent just created (not suspended,
      // nothing requested) must not look like a change of controls and cost a converge.
      const releaseKey = releases
        .flatMap((r) => {
          const pending =
            r.reconcileRequestedAt !== undefined && r.reconcileRequestedAt !== r.lastHandledReconcileAt;
          return r.suspend === true || pending
            ? [`${r.name}:${r.suspend === true}:${pending ? r.reconcileRequestedAt : ''}`]
            : [];
        })
        .join(',');
      return {
        suspended: agent.spec?.suspend === true,
        ...(requested && requested !== agent.status?.lastHandledReconcileAt ? { reconcile: requested } : {}),
        releaseRequests: releases.some(
          (r) => r.reconcileRequestedAt !== undefined && r.reconcileRequestedAt !== r.lastHandledReconcileAt,
        ),
        key: `${agent.spec?.suspend === true}|${releaseKey}`,
        generation: agent.metadata.generation ?? 0,
      };
    },

    // The status says what the last pass found; a pass that finds the same writes nothing
    // (lastPassAt moves only with the rest), so an idle agent costs the API server nothing.
    async passed(state, result, approvalMode) {
      let obj = await current();
      for (let attempt = 0; attempt < 5; attempt++) {
        const before = obj.status ?? {};
        const status: AgentStatus = {
          ...before,
          cluster,
          observedGeneration: state.generation,
          suspended: state.suspended,
          ...(state.reconcile ? { lastHandledReconcileAt: state.reconcile } : {}),
          ...(result.revision
            ? { revision: result.revision, shortRevision: result.revision.slice(0, 7) }
            : {}),
          lastPassOutcome: result.outcome,
          ...(approvalMode ? { approvalMode } : {}),
          version: options.version,
          identity: options.identity,
        };
        status.conditions = withTransitions(
          agentConditions(state.suspended, result),
          before.conditions ?? [],
          now(),
          state.generation,
        );
        if (sameJson({ ...before, lastPassAt: undefined }, { ...status, lastPassAt: undefined })) return;
        status.lastPassAt = new Date(now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
        const changes = mergePatchFor(before as { [key: string]: Json }, status as { [key: string]: Json });
        try {
          remember(
            await client.request<AgentObject>('PATCH', `${objectPath}/status`, {
              contentType: PATCH.merge,
              body: { metadata: { resourceVersion: obj.metadata.resourceVersion }, status: changes },
            }),
          );
        } catch (err) {
          if (isConflict(err) || isNotFound(err)) {
            obj = (await read()) ?? (await create()) ?? (await current());
            continue;
          }
          throw controlError(`cannot update the status of MooringAgent ${namespace}/${cluster}`, err);
        }
        if ((before.suspended === true) !== state.suspended) {
          options.events?.emit(
            'Normal',
            state.suspended ? 'Suspended' : 'Resumed',
            state.suspended
              ? 'suspended: no release is upgraded, pruned or drift-corrected until `mooring resume`'
              : 'resumed: releases converge again',
          );
        }
        return;
      }
    },

    watch(wake) {
      if (!watched) return () => undefined;
      const onChange = (before: AgentObject | MooringReleaseObject | undefined, after: typeof before) => {
        if (operatorActed(before, after)) wake();
      };
      const unsubscribe = [
        watched.agent.subscribe((before, after) => {
          // Deleted by someone: the next pass creates it again.
          if (after === undefined) mine = undefined;
          onChange(before, after);
        }),
        watched.releases.subscribe(onChange),
      ];
      watched.agent.start();
      watched.releases.start();
      return () => {
        unsubscribe.forEach((stop) => stop());
        watched.agent.stop();
        watched.releases.stop();
      };
    },
  };
}

/** Ready: the last pass converged. Stalled: suspended, or the revision cannot converge. */
function agentConditions(suspended: boolean, result: PassResult): ConditionWithoutTime[] {
  const reason = suspended ? 'Suspended' : outcomeReason(result.outcome);
  const message = suspended
    ? 'suspended: no release is upgraded, pruned or drift-corrected until `mooring resume`'
    : (result.error ?? result.pending ?? '').slice(0, 1024);
  const ready = !suspended && result.outcome === 'converged';
  const stalled = suspended || result.outcome === 'failed' || result.outcome === 'invalid';
  const reconciling = !suspended && result.outcome === 'pending-approval';
  return [
    { type: 'Ready', status: ready ? 'True' : 'False', reason, message },
    {
      type: 'Reconciling',
      status: reconciling ? 'True' : 'False',
      reason,
      message: reconciling ? message : '',
    },
    { type: 'Stalled', status: stalled ? 'True' : 'False', reason, message: stalled ? message : '' },
  ];
}

function outcomeReason(outcome: PassResult['outcome']): string {
  return outcome
    .split('-')
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('');
}

function controlError(message: string, err: unknown): MooringError {
  return new MooringError(`${message}: ${apiErrorMessage(err)}`, {}, { cause: err });
}
