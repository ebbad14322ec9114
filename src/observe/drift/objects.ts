// The objects of a release as Helm recorded them: the manifest of a stored revision split
// into Kubernetes objects, each named the way drift reports name it. Helm adds its ownership
// label and annotations at install time (they are not in the recorded manifest), so they are
// added back here: applying the manifest without them would strip them from the live object.
import type { AnyObject } from '../../kube/objects.js';
import { isPlainMap } from '../../model/schema.js';
import { parseManifestDocuments } from '../../plan/manifest-yaml.js';

/** Names one Kubernetes object. */
export interface ObjectId {
  apiVersion: string;
  kind: string;
  name: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
}

export const HELM_MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const HELM_RELEASE_NAME_ANNOTATION = 'meta.helm.sh/release-name';
export const HELM_RELEASE_NAMESPACE_ANNOTATION = 'meta.helm.sh/release-namespace';

/** The API group of an apiVersion: `apps/v1` -> `apps`, `v1` -> `` (core). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

export function idOf(object: AnyObject): ObjectId {
  const namespace = object.metadata?.namespace;
  return {
    apiVersion: object.apiVersion ?? '',
    kind: object.kind ?? '',
    name: object.metadata?.name ?? '',
    ...(namespace ? { namespace } : {}),
  };
}

/** `Deployment/web/api` for namespaced objects, `ClusterRole/api` for cluster-scoped ones. */
export function describeObject(id: ObjectId): string {
  return id.namespace ? `${id.kind}/${id.namespace}/${id.name}` : `${id.kind}/${id.name}`;
}

/** Identifies an object across API versions of its group (lists and reads may use any). */
export function objectKey(id: ObjectId): string {
  return [groupOf(id.apiVersion), id.kind, id.namespace ?? '', id.name].join('\u0000');
}

/**
 * The objects of a recorded manifest (multi-document YAML), in manifest order, read as helm
 * and the API server read it (go-yaml v2 rules, src/plan/manifest-yaml.ts: `yes` is a
 * boolean, `0777` octal, `12:30` and timestamps strings). Documents that are empty or not
 * objects are skipped, as helm skips them; `List` kinds are flattened.
 */
export function parseManifest(manifest: string): AnyObject[] {
  const objects: AnyObject[] = [];
  for (const value of parseManifestDocuments(manifest, 'the recorded manifest')) {
    if (!isPlainMap(value) || typeof value.kind !== 'string') continue;
    if (value.kind.endsWith('List') && Array.isArray(value.items)) {
      for (const item of value.items) if (isPlainMap(item)) objects.push(item as AnyObject);
    } else {
      objects.push(value as AnyObject);
    }
  }
  return objects;
}

/**
 * The object as helm applied it: namespaced objects without a namespace get the release's,
 * and Helm's ownership label and annotations are set.
 */
export function asHelmApplied(
  object: AnyObject,
  release: { name: string; namespace: string },
  namespaced: boolean,
): AnyObject {
  const copy = structuredClone(object);
  const metadata = (copy.metadata ??= {});
  if (namespaced) metadata.namespace ??= release.namespace;
  else delete metadata.namespace;
  metadata.labels = { ...metadata.labels, [HELM_MANAGED_BY_LABEL]: 'Helm' };
  metadata.annotations = {
    ...metadata.annotations,
    [HELM_RELEASE_NAME_ANNOTATION]: release.name,
    [HELM_RELEASE_NAMESPACE_ANNOTATION]: release.namespace,
  };
  return copy;
}
