// The Kubernetes API as drift uses it: raw JSON in and out (typed models would drop fields
// and turn times into Dates, and a comparison must see exactly what the server holds).
// `ObjectApi` from src/kube/objects.ts implements it; unit tests pass fakes.
import type { AnyObject, JsonPatchOperation, ObjectRef } from '../../kube/objects.js';

export type { AnyObject, JsonPatchOperation };

/** apiVersion, kind, name and (for namespaced kinds) namespace of one object. */
export type KubernetesObjectRef = ObjectRef;

export interface DriftObjectApi {
  /** Whether the server serves the kind namespaced; undefined when it does not serve it. */
  isNamespaced(apiVersion: string, kind: string): Promise<boolean | undefined>;
  /** undefined when the object does not exist. */
  readRaw(object: KubernetesObjectRef): Promise<AnyObject | undefined>;
  listRaw(
    apiVersion: string,
    kind: string,
    options?: { namespace?: string; labelSelector?: string; limit?: number; continueToken?: string },
  ): Promise<{ items: AnyObject[]; continueToken?: string }>;
  /** Server-side apply; with dryRun, the object as it would be, changing nothing. */
  applyRaw(
    object: AnyObject,
    params: { fieldManager: string; force: boolean; dryRun: boolean },
  ): Promise<AnyObject>;
  jsonPatchRaw(
    object: KubernetesObjectRef,
    patch: readonly JsonPatchOperation[],
    params: { fieldManager: string; dryRun?: boolean },
  ): Promise<AnyObject>;
}
