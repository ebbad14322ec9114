// The MooringAgent object (mooringagents.mooring.io): one per agent, named after its cluster,
// in the agent's namespace. It is the operator's handle on the agent, kept in the cluster
// where RBAC decides who may use it, never in Git: `spec.suspend` (mooring suspend/resume)
// and the reconcile annotation (mooring reconcile). Its status is what the agent says about
// itself: suspended or not, the last pass, the effective approval mode, its version.
// Per-release controls live on each MooringRelease the same way (see status.ts).
import type { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import type { ApprovalMode } from '../agent/config.js';
import type { ControlState, Controls, PassResult } from '../agent/agent.js';
import { MooringError } from '../errors.js';
import { apiErrorMessage, isConflict, isNotFound } from '../kube/client.js';
import { watchChanges } from '../kube/watch.js';
import { MOORING_API_VERSION, MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from './crds.js';
import {
  RECONCILE_ANNOTATION,
  withTransitions,
  type Condition,
  type ConditionWithoutTime,
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
  customObjects: CustomObjectsApi;
  /** For the watch that wakes the agent when an operator acts. */
  kubeConfig?: KubeConfig;
  namespace: string;
  cluster: string;
  identity: string;
  version: string;
  /** The releases' records, for their suspensions and reconcile requests. */
  releases: { list(): Promise<ReleaseStatusRecord[]> };
  /** Events about the MooringAgent object. */
  events?: { emit(type: 'Normal' | 'Warning', reason: string, message: string): void };
  now?: () => number;
  log?: { warn(obj: object, msg: string): void };
}

export const AGENT_LABELS = { 'app.kubernetes.io/managed-by': 'mooring' } as const;

export function agentObjectRef(namespace: string, cluster: string) {
  return { apiVersion: MOORING_API_VERSION, kind: MOORING_KINDS.MooringAgent.kind, name: cluster, namespace };
}

export function createAgentControl(options: AgentControlOptions): Controls {
  const { customObjects, namespace, cluster } = options;
  const now = options.now ?? Date.now;
  const ref = {
    group: MOORING_GROUP,
    version: MOORING_VERSION,
    plural: MOORING_KINDS.MooringAgent.plural,
    namespace,
  };

  async function readOrCreate(): Promise<AgentObject> {
    try {
      return (await customObjects.getNamespacedCustomObject({ ...ref, name: cluster })) as AgentObject;
    } catch (err) {
      if (!isNotFound(err)) throw controlError(`cannot read MooringAgent ${namespace}/${cluster}`, err);
    }
    try {
      return (await customObjects.createNamespacedCustomObject({
        ...ref,
        body: {
          apiVersion: MOORING_API_VERSION,
          kind: MOORING_KINDS.MooringAgent.kind,
          metadata: { name: cluster, namespace, labels: { ...AGENT_LABELS, 'mooring.io/cluster': cluster } },
          spec: {},
        },
      })) as AgentObject;
    } catch (err) {
      if (isConflict(err)) return readOrCreate();
      throw controlError(`cannot create MooringAgent ${namespace}/${cluster}`, err);
    }
  }

  return {
    async read(): Promise<ControlState> {
      const [agent, releases] = await Promise.all([readOrCreate(), options.releases.list()]);
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

    async passed(state, result, approvalMode) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const current = await readOrCreate();
        const before = current.status ?? {};
        const status: AgentStatus = {
          ...before,
          cluster,
          observedGeneration: state.generation,
          suspended: state.suspended,
          ...(state.reconcile ? { lastHandledReconcileAt: state.reconcile } : {}),
          ...(result.revision
            ? { revision: result.revision, shortRevision: result.revision.slice(0, 7) }
            : {}),
          lastPassAt: new Date(now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
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
        try {
          await customObjects.replaceNamespacedCustomObjectStatus({
            ...ref,
            name: cluster,
            body: { ...current, status },
          });
        } catch (err) {
          if (isConflict(err) || isNotFound(err)) continue;
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
      if (!options.kubeConfig) return () => undefined;
      const base = `/apis/${MOORING_GROUP}/${MOORING_VERSION}/namespaces/${namespace}`;
      const onError = (err: unknown) =>
        options.log?.warn({ err: apiErrorMessage(err) }, 'watch of operator requests failed; retrying');
      const stops = [
        watchChanges({
          kubeConfig: options.kubeConfig,
          path: `${base}/${MOORING_KINDS.MooringAgent.plural}`,
          labelSelector: `mooring.io/cluster=${cluster}`,
          annotations: [RECONCILE_ANNOTATION],
          onChange: wake,
          onError,
        }),
        watchChanges({
          kubeConfig: options.kubeConfig,
          path: `${base}/${MOORING_KINDS.MooringRelease.plural}`,
          labelSelector: `mooring.io/cluster=${cluster}`,
          annotations: [RECONCILE_ANNOTATION],
          onChange: wake,
          onError,
        }),
      ];
      return () => stops.forEach((stop) => stop());
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
