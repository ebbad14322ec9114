// The local control plane runs no kubelet and no workload controllers, so a Deployment
// never becomes ready by itself. The demo and the tests run this instead: it watches
// Deployments and writes the status a healthy rollout would reach (every replica updated,
// ready and available). A Deployment labelled `mooring.dev/never-ready: "true"` is left
// alone, so tests can make a rollout fail on purpose.
import * as k8s from '@kubernetes/client-node';

export const NEVER_READY_LABEL = 'mooring.dev/never-ready';

/**
 * `namespaces` limits it to the namespaces a test owns, so that tests sharing one control
 * plane do not mark each other's Deployments ready.
 * @param {{ kubeconfig: string, namespaces?: (namespace: string) => boolean, onError?: (err: unknown) => void }} opts
 * @returns {Promise<{ stop(): void, marked: () => number }>}
 */
export async function startFakeKubelet(opts) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(opts.kubeconfig);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  let marked = 0;
  let stopped = false;
  /** @type {{ abort(): void } | undefined} */
  let request;

  /** @param {k8s.V1Deployment} d */
  async function markReady(d) {
    const meta = d.metadata ?? {};
    if (meta.labels?.[NEVER_READY_LABEL] === 'true' || meta.deletionTimestamp) return;
    if (opts.namespaces && !opts.namespaces(meta.namespace ?? '')) return;
    const replicas = d.spec?.replicas ?? 1;
    const generation = meta.generation ?? 1;
    const s = d.status ?? {};
    if (s.observedGeneration === generation && s.readyReplicas === replicas && s.updatedReplicas === replicas)
      return;
    const now = new Date().toISOString();
    const status = {
      observedGeneration: generation,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      conditions: [
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
      ],
    };
    try {
      await apps.patchNamespacedDeploymentStatus(
        { name: meta.name, namespace: meta.namespace, body: { status } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      marked++;
    } catch (err) {
      // 404: deleted meanwhile; 409: changed meanwhile, the watch brings the new version.
      const code = /** @type {{ code?: number }} */ (err).code;
      if (code !== 404 && code !== 409) opts.onError?.(err);
    }
  }

  const watch = new k8s.Watch(kc);
  async function start() {
    if (stopped) return;
    try {
      const list = await apps.listDeploymentForAllNamespaces();
      for (const d of list.items) await markReady(d);
      request = await watch.watch(
        '/apis/apps/v1/deployments',
        { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
        (type, obj) => {
          if (type === 'ADDED' || type === 'MODIFIED') void markReady(obj);
        },
        () => {
          if (!stopped) setTimeout(start, 500);
        },
      );
    } catch (err) {
      opts.onError?.(err);
      if (!stopped) setTimeout(start, 1000);
    }
  }
  await start();
  return {
    stop() {
      stopped = true;
      request?.abort();
    },
    marked: () => marked,
  };
}
