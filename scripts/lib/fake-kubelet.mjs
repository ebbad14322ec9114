// The local control plane runs no kubelet and no workload controllers, so no workload ever
// becomes ready by itself. The demo and the tests run this instead: it watches Deployments,
// StatefulSets, DaemonSets and Jobs and writes the status a healthy rollout would reach
// (every replica updated, ready and available; every Job complete), which is what helm's
// wait and kstatus read. A workload labelled `mooring.dev/never-ready: "true"` is left alone,
// so tests can make a rollout fail on purpose.
import * as k8s from '@kubernetes/client-node';

export const NEVER_READY_LABEL = 'mooring.dev/never-ready';

/** @typedef {{ metadata?: k8s.V1ObjectMeta, spec?: any, status?: any }} Workload */

/**
 * One workload kind: where to watch it, the status a healthy one reaches (undefined when it is
 * there already), and how to write it.
 * @typedef {{ path: string, list(): Promise<{ items: Workload[], metadata?: k8s.V1ListMeta }>,
 *   healthy(w: Workload, now: string): object | undefined,
 *   patch(name: string, namespace: string, body: object): Promise<unknown> }} Kind
 */

const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/** @param {string} now */
function rolloutConditions(now) {
  return [
    {
      type: 'Available',
      status: 'True',
      reason: 'MinimumReplicasAvailable',
      message: 'fake kubelet',
      lastUpdateTime: now,
      lastTransitionTime: now,
    },
    {
      type: 'Progressing',
      status: 'True',
      reason: 'NewReplicaSetAvailable',
      message: 'fake kubelet',
      lastUpdateTime: now,
      lastTransitionTime: now,
    },
  ];
}

/** @param {k8s.KubeConfig} kc @returns {Kind[]} */
function kinds(kc) {
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  return [
    {
      path: '/apis/apps/v1/deployments',
      list: () => apps.listDeploymentForAllNamespaces(),
      healthy(d, now) {
        const replicas = d.spec?.replicas ?? 1;
        const generation = d.metadata?.generation ?? 1;
        const s = d.status ?? {};
        if (
          s.observedGeneration === generation &&
          s.readyReplicas === replicas &&
          s.updatedReplicas === replicas
        )
          return undefined;
        return {
          observedGeneration: generation,
          replicas,
          updatedReplicas: replicas,
          readyReplicas: replicas,
          availableReplicas: replicas,
          conditions: rolloutConditions(now),
        };
      },
      patch: (name, namespace, body) =>
        apps.patchNamespacedDeploymentStatus({ name, namespace, body }, mergePatch),
    },
    {
      path: '/apis/apps/v1/statefulsets',
      list: () => apps.listStatefulSetForAllNamespaces(),
      healthy(s, _now) {
        const replicas = s.spec?.replicas ?? 1;
        const generation = s.metadata?.generation ?? 1;
        const st = s.status ?? {};
        const revision = `${s.metadata?.name}-g${generation}`;
        if (
          st.observedGeneration === generation &&
          st.readyReplicas === replicas &&
          st.updateRevision === revision
        )
          return undefined;
        return {
          observedGeneration: generation,
          replicas,
          readyReplicas: replicas,
          currentReplicas: replicas,
          updatedReplicas: replicas,
          availableReplicas: replicas,
          currentRevision: revision,
          updateRevision: revision,
        };
      },
      patch: (name, namespace, body) =>
        apps.patchNamespacedStatefulSetStatus({ name, namespace, body }, mergePatch),
    },
    {
      path: '/apis/apps/v1/daemonsets',
      list: () => apps.listDaemonSetForAllNamespaces(),
      healthy(d, _now) {
        // One node's worth: the control plane has no nodes, and zero desired pods is a
        // rollout nothing waits for.
        const generation = d.metadata?.generation ?? 1;
        const st = d.status ?? {};
        if (st.observedGeneration === generation && st.numberReady === 1 && st.updatedNumberScheduled === 1)
          return undefined;
        return {
          observedGeneration: generation,
          desiredNumberScheduled: 1,
          currentNumberScheduled: 1,
          updatedNumberScheduled: 1,
          numberReady: 1,
          numberAvailable: 1,
          numberMisscheduled: 0,
        };
      },
      patch: (name, namespace, body) =>
        apps.patchNamespacedDaemonSetStatus({ name, namespace, body }, mergePatch),
    },
    {
      path: '/apis/batch/v1/jobs',
      list: () => batch.listJobForAllNamespaces(),
      healthy(j, now) {
        const st = j.status ?? {};
        if (
          st.completionTime ||
          (st.conditions ?? []).some((c) => c.type === 'Failed' && c.status === 'True')
        )
          return undefined;
        const completions = j.spec?.completions ?? 1;
        const started = st.startTime ?? now;
        // The API server accepts Complete only after SuccessCriteriaMet, with a start and a
        // completion time and every pod counted as succeeded.
        return {
          startTime: started,
          completionTime: now,
          active: 0,
          ready: 0,
          terminating: 0,
          succeeded: completions,
          conditions: [
            {
              type: 'SuccessCriteriaMet',
              status: 'True',
              reason: 'CompletionsReached',
              message: 'fake kubelet',
              lastProbeTime: now,
              lastTransitionTime: now,
            },
            {
              type: 'Complete',
              status: 'True',
              reason: 'CompletionsReached',
              message: 'fake kubelet',
              lastProbeTime: now,
              lastTransitionTime: now,
            },
          ],
        };
      },
      patch: (name, namespace, body) => batch.patchNamespacedJobStatus({ name, namespace, body }, mergePatch),
    },
  ];
}

/**
 * `namespaces` limits it to the namespaces a test owns, so that tests sharing one control
 * plane do not mark each other's workloads ready.
 * @param {{ kubeconfig: string, namespaces?: (namespace: string) => boolean, onError?: (err: unknown) => void }} opts
 * @returns {Promise<{ stop(): void, marked: () => number }>}
 */
export async function startFakeKubelet(opts) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(opts.kubeconfig);
  let marked = 0;
  let stopped = false;
  /** @type {{ abort(): void }[]} */
  const requests = [];
  const watch = new k8s.Watch(kc);

  /** @param {Kind} kind @param {Workload} w */
  async function markReady(kind, w) {
    const meta = w.metadata ?? {};
    if (meta.labels?.[NEVER_READY_LABEL] === 'true' || meta.deletionTimestamp) return;
    if (opts.namespaces && !opts.namespaces(meta.namespace ?? '')) return;
    const status = kind.healthy(w, new Date().toISOString());
    if (!status) return;
    try {
      await kind.patch(meta.name ?? '', meta.namespace ?? '', { status });
      marked++;
    } catch (err) {
      // 404: deleted meanwhile; 409: changed meanwhile, the watch brings the new version.
      const code = /** @type {{ code?: number }} */ (err).code;
      if (code !== 404 && code !== 409) opts.onError?.(err);
    }
  }

  /** @param {Kind} kind */
  async function start(kind) {
    if (stopped) return;
    try {
      const list = await kind.list();
      for (const w of list.items) await markReady(kind, w);
      requests.push(
        await watch.watch(
          kind.path,
          { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
          (type, obj) => {
            if (type === 'ADDED' || type === 'MODIFIED') void markReady(kind, obj);
          },
          () => {
            if (!stopped) setTimeout(() => void start(kind), 500);
          },
        ),
      );
    } catch (err) {
      opts.onError?.(err);
      if (!stopped) setTimeout(() => void start(kind), 1000);
    }
  }
  await Promise.all(kinds(kc).map(start));
  return {
    stop() {
      stopped = true;
      for (const r of requests) r.abort();
    },
    marked: () => marked,
  };
}
