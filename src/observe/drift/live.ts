// Reading the live objects of every checked release at the least cost in API requests.
// Objects of one kind are read with one list (paged), restricted by label to objects helm
// manages (helm labels every object `app.kubernetes.io/managed-by: Helm`): across all
// namespaces when the kind's objects are spread over several, in the one namespace
// otherwise. An object the list does not return (its label removed by hand, or deleted) and
// a kind with a single object are read with a GET. A list the agent may not make falls back
// to GETs as well.
import type { AnyObject, DriftObjectApi, KubernetesObjectRef } from './api.js';
import { HELM_MANAGED_BY_LABEL, objectKey, type ObjectId } from './objects.js';
import { mapLimit } from './pool.js';

/** A live object, `undefined` when it does not exist, or the error that kept us from reading it. */
export type LiveRead = AnyObject | undefined | Error;

const PAGE = 500;

export async function readLiveObjects(
  api: DriftObjectApi,
  ids: readonly ObjectId[],
  concurrency: number,
): Promise<Map<string, LiveRead>> {
  const out = new Map<string, LiveRead>();
  const groups = new Map<string, ObjectId[]>();
  for (const id of ids) {
    const key = `${id.apiVersion}\u0000${id.kind}`;
    groups.set(key, [...(groups.get(key) ?? []), id]);
  }
  const toGet: ObjectId[] = [];
  await mapLimit([...groups.values()], concurrency, async (group) => {
    if (group.length === 1) {
      toGet.push(group[0]!);
      return;
    }
    const wanted = new Map(group.map((id) => [objectKey(id), id]));
    const namespaces = new Set(group.map((id) => id.namespace ?? ''));
    const namespace = namespaces.size === 1 ? [...namespaces][0] : undefined;
    try {
      let continueToken: string | undefined;
      do {
        const page = await api.listRaw(group[0]!.apiVersion, group[0]!.kind, {
          ...(namespace ? { namespace } : {}),
          labelSelector: `${HELM_MANAGED_BY_LABEL}=Helm`,
          limit: PAGE,
          ...(continueToken ? { continueToken } : {}),
        });
        for (const item of page.items) {
          const id = wanted.get(
            objectKey({
              apiVersion: group[0]!.apiVersion,
              kind: group[0]!.kind,
              name: item.metadata?.name ?? '',
              ...(item.metadata?.namespace ? { namespace: item.metadata.namespace } : {}),
            }),
          );
          if (id === undefined) continue;
          // List items carry no apiVersion and kind; the dry-run result does.
          out.set(objectKey(id), { ...item, apiVersion: id.apiVersion, kind: id.kind });
        }
        continueToken = page.continueToken;
      } while (continueToken);
    } catch {
      // Not allowed to list (or the list failed): read each object instead.
    }
    for (const [key, id] of wanted) if (!out.has(key)) toGet.push(id);
  });
  await mapLimit(toGet, concurrency, async (id) => {
    out.set(objectKey(id), await readOne(api, id));
  });
  return out;
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
