// The live side of a plan, read through the Kubernetes API: helm's own record of each
// release (its storage Secrets, decoded only when a diff needs the deployed values and
// manifest), and the live objects with a server-side apply dry run of what helm would send.
// No helm process runs. Implements LiveSource (src/plan/live-diff.ts), and puts it together
// for `mooring plan --context`.
import { describeError, MooringError } from '../errors.js';
import { isPlainMap } from '../model/schema.js';
import { decodeRelease, listRevisions, observe } from '../converge/helm-storage.js';
import type { Kube } from '../kube/connect.js';
import { apiErrorMessage, isNotFound } from '../kube/errors.js';
import { serverSideApply, type AnyObject } from '../kube/objects.js';
import { createStatusStore } from '../observe/status.js';
import { createPlanStore } from './plans.js';
import type { ClusterPlan } from '../plan/cluster-plan.js';
import {
  diffReleases,
  observeLive,
  planChanges,
  type KubeObject,
  type LiveSource,
  type RecordedRelease,
  type ReleaseDiff,
} from '../plan/live-diff.js';

/** Helm v4 applies server-side under this field manager. */
export const HELM_FIELD_MANAGER = 'helm';

export function createLiveCluster(clients: Kube): LiveSource {
  // Namespaces seen to exist (or not) during this source's life: one plan's worth.
  const namespaces = new Map<string, Promise<boolean>>();
  const namespaceExists = (name: string): Promise<boolean> => {
    let known = namespaces.get(name);
    if (!known) {
      known = clients.rest.request('GET', `/api/v1/namespaces/${encodeURIComponent(name)}`).then(
        () => true,
        (err: unknown) => {
          if (isNotFound(err)) return false;
          throw err;
        },
      );
      namespaces.set(name, known);
    }
    return known;
  };

  return {
    async helm(namespace, release) {
      const revisions = await listRevisions(clients.rest, namespace, release);
      const observation = observe(revisions);
      return {
        ...(observation ? { observation } : {}),
        async deployed() {
          const wanted = observation?.lastDeployedRevision ?? observation?.revision;
          const stored = revisions.find((r) => r.revision === wanted);
          if (!stored) return undefined;
          const decoded = decodeRelease(stored.secret);
          const chart = isPlainMap(decoded.chart) ? decoded.chart : {};
          const metadata = isPlainMap(chart.metadata) ? chart.metadata : {};
          return {
            revision: stored.revision,
            values: isPlainMap(decoded.config) ? decoded.config : {},
            manifest: typeof decoded.manifest === 'string' ? decoded.manifest : '',
            ...(typeof metadata.version === 'string' ? { chartVersion: metadata.version } : {}),
          };
        },
      };
    },

    namespaced: (apiVersion, kind) => clients.objects.isNamespaced(apiVersion, kind),

    async get(key) {
      if (key.namespace && !(await namespaceExists(key.namespace))) return undefined;
      const found = await clients.objects.readRaw({
        apiVersion: key.apiVersion,
        kind: key.kind,
        metadata: { name: key.name, ...(key.namespace ? { namespace: key.namespace } : {}) },
      });
      return found as KubeObject | undefined;
    },

    async dryRunApply(object) {
      if (object.metadata.namespace && !(await namespaceExists(object.metadata.namespace))) return undefined;
      // force: show what the object would become, as helm's apply takes its fields.
      try {
        const result = await serverSideApply(clients, object as AnyObject, {
          fieldManager: HELM_FIELD_MANAGER,
          force: true,
          dryRun: true,
        });
        return result as KubeObject;
      } catch (err) {
        // What the API server said (its Status message), not the client's "HTTP-Code: 422".
        throw new MooringError(apiErrorMessage(err), {}, { cause: err });
      }
    },
  };
}

export interface LiveDiff {
  releases: ReleaseDiff[];
  /** What limited the diff (records that could not be read). */
  notes: string[];
}

/**
 * `mooring plan --context`: what applying `plan` would change in a cluster, every release
 * diffed (drift included). mooring's records (MooringRelease, in the agent's namespace) say
 * what mooring deployed; pruning is assumed off, so releases that left Git show as orphaned.
 */
export async function liveDiff(
  plan: ClusterPlan,
  options: {
    clients: Kube;
    namespace: string;
    digestKey: Buffer;
    /** Raw renders by release name, or why one failed; without them there is no manifest diff. */
    rawManifests?: Map<string, { manifest: string } | { error: unknown }>;
    /** Names the cluster in errors, e.g. `context prod`. */
    where: string;
  },
): Promise<LiveDiff> {
  const { clients, namespace, rawManifests } = options;
  const notes: string[] = [];
  let records: RecordedRelease[] = [];
  try {
    records = await createStatusStore({
      client: clients.rest,
      namespace,
      cluster: plan.cluster.name,
    }).list();
  } catch (err) {
    // Without mooring's records every installed release looks like a first converge.
    notes.push(
      `cannot read mooring's release records in namespace ${namespace} (${describeError(err)}); actions are a best guess`,
    );
  }
  // Secret paths the agent's plans recorded: deployed values that were secret stay masked.
  const knownSecretPaths = new Map<string, string[][]>();
  const stored = await createPlanStore({ client: clients.rest, namespace })
    .list(plan.cluster.name)
    .catch(() => []);
  for (const r of stored.flatMap((p) => p.status.releases)) {
    if (r.secretPaths?.length)
      knownSecretPaths.set(r.name, [...(knownSecretPaths.get(r.name) ?? []), ...r.secretPaths]);
  }
  const live = createLiveCluster(clients);
  try {
    const state = await observeLive(plan, records, live);
    const changes = planChanges(plan, state, { revision: 'working-tree', prune: false });
    const releases = await diffReleases(plan, changes, {
      live,
      state,
      key: options.digestKey,
      knownSecretPaths,
      only: 'all',
      ...(rawManifests
        ? {
            render: async (r) => {
              const raw = rawManifests.get(r.name);
              if (raw === undefined) throw new MooringError('the chart was not rendered');
              if ('error' in raw) throw raw.error;
              return raw.manifest;
            },
          }
        : {}),
    });
    return { releases, notes };
  } catch (err) {
    throw new MooringError(
      `cannot read what is live through ${options.where}: ${err instanceof MooringError ? err.describe() : apiErrorMessage(err)}`,
      {},
      { hint: "the live diff reads helm's release Secrets and the objects of each release", cause: err },
    );
  }
}
