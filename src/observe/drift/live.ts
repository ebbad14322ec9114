// Reading the live objects of every checked release at the least cost in API requests.
// Objects of one kind are read with one list (paged), restricted by label to objects helm
// manages (helm labels every object `app.kubernetes.io/managed-by: Helm`): across all
// namespaces when the kind's objects are spread over several, in the one namespace
// otherwise. An agent that may not list across namespaces (the chart's `rbac.namespaces`)
// lists per namespace instead, and remembers the refusal. An object no list returned (its
// label removed by hand, or deleted) and a lone object of its kind are read with a GET.
import { isForbidden } from '../../kube/errors.js';
import type { AnyObject, DriftObjectApi, KubernetesObjectRef } from './api.js';
import { HELM_MANAGED_BY_LABEL, objectKey, type ObjectId } from './objects.js';
import { mapLimit } from './pool.js';

/** A live object, `undefined` when it does not exist, or the error that kept us from reading it. */
export type LiveRead = AnyObject | undefined | Error;

/** Kept by the checker across checks. */
export interface LiveReadMemo {
  /** `apiVersion kind` the agent may not list across namespaces. */
  noClusterList: Set<string>;
}

const PAGE = 500;

export async function readLiveObjects(
  api: DriftObjectApi,
  ids: readonly ObjectId[],
  concurrency: number,
  memo: LiveReadMemo = { noClusterList: new Set() },
): Promise<Map<string, LiveRead>> {
  const out = new Map<string, LiveRead>();
  const lists: { ids: ObjectId[]; namespace?: string }[] = [];
  const toGet: ObjectId[] = [];
  for (const group of groupBy(ids, (id) => `${id.apiVersion} ${id.kind}`).values()) {
    const byNamespace = groupBy(group, (id) => id.namespace ?? '');
    if (group.length === 1) toGet.push(...group);
    else if (byNamespace.size === 1)
      lists.push({ ids: group, ...(group[0]!.namespace ? { namespace: group[0]!.namespace } : {}) });
    else lists.push({ ids: group });
  }

  // Lists refused across namespaces come back as per-namespace lists, run in a second round.
  const runLists = async (round: typeof lists): Promise<typeof lists> => {
    const retry: typeof lists = [];
    await mapLimit(round, concurrency, async (list) => {
      const first = list.ids[0]!;
      const kindKey = `${first.apiVersion} ${first.kind}`;
      const clusterWide = list.namespace === undefined && first.namespace !== undefined;
      const perNamespace = (): void => {
        for (const [namespace, ids] of groupBy(list.ids, (id) => id.namespace ?? '')) {
          if (ids.length === 1) toGet.push(...ids);
          else retry.push({ ids, namespace });
        }
      };
      if (clusterWide && memo.noClusterList.has(kindKey)) return perNamespace();
      const wanted = new Map(list.ids.map((id) => [objectKey(id), id]));
      try {
        let continueToken: string | undefined;
        do {
          const page = await api.listRaw(first.apiVersion, first.kind, {
            ...(list.namespace ? { namespace: list.namespace } : {}),
            labelSelector: `${HELM_MANAGED_BY_LABEL}=Helm`,
            limit: PAGE,
            ...(continueToken ? { continueToken } : {}),
          });
          for (const item of page.items) {
            const name = item.metadata?.name ?? '';
            const namespace = item.metadata?.namespace;
            const id = wanted.get(objectKey({ ...first, name, ...(namespace ? { namespace } : {}) }));
            // List items carry no apiVersion and kind; the dry-run result does.
            if (id !== undefined)
              out.set(objectKey(id), { ...item, apiVersion: id.apiVersion, kind: id.kind });
          }
          continueToken = page.continueToken;
        } while (continueToken);
      } catch (err) {
        if (clusterWide && isForbidden(err)) {
          memo.noClusterList.add(kindKey);
          return perNamespace();
        }
        // Any other failure: each object is read on its own below.
      }
      for (const [key, id] of wanted) if (!out.has(key)) toGet.push(id);
    });
    return retry;
  };
  await runLists(await runLists(lists));
  await mapLimit(toGet, concurrency, async (id) => {
    out.set(objectKey(id), await readOne(api, id));
  });
  return out;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

export async function readOne(api: DriftObjectApi, id: ObjectId): Promise<LiveRead> {
  try {
    return await api.readRaw(refOf(id));
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

export function refOf(id: ObjectId): KubernetesObjectRef {
  return {
    apiVersion: id.apiVersion,
    kind: id.kind,
    metadata: { name: id.name, ...(id.namespace ? { namespace: id.namespace } : {}) },
  };
}
