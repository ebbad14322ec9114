// Finding the drift of one object. The reference is a server-side apply dry run of the
// recorded object, as helm's own field manager, with force: the API server answers with the
// object as a correction would leave it. Every difference between that answer and the live
// object is drift (a field someone modified or removed); no answer's resourceVersion means
// the object is gone. Fields people's tools own that the chart does not set are drift too
// (added by hand), read from the answer's managedFields. One request per object: the live
// object was read beforehand, in bulk (live.ts), and the answer's resourceVersion proves it
// is the object the dry run was made against.
import type { IgnoreRule } from '../../model/releases.js';
import { apiErrorMessage } from '../../kube/errors.js';
import type { AnyObject, DriftObjectApi, JsonPatchOperation } from './api.js';
import { changedFields } from './compare.js';
import {
  fieldOwners,
  fieldsAddedByHand,
  isHandManager,
  managersOf,
  resolvePath,
  type FieldPath,
  type ManagedFieldsEntry,
} from './fieldset.js';
import { ignoredField, ignoresFor, keepIgnoredAsLive, optsOut, ruleTargets } from './ignore.js';
import { readOne, refOf, type LiveRead } from './live.js';
import { groupOf, HELM_RELEASE_NAME_ANNOTATION, type ObjectId } from './objects.js';
import { deepEqual, formatPointer, getAt, type Segment } from './pointer.js';
import { isPlainMap } from '../../model/schema.js';

/** One recorded object of a release, ready to be checked. */
export interface ObjectCheck {
  release: string;
  id: ObjectId;
  /** The object as helm applied it (namespace, helm's label and annotations set). */
  recorded: AnyObject;
  /** Every ignore rule for the release: defaults, agent, release, HPAs of the manifest. */
  rules: readonly IgnoreRule[];
  /**
   * A CRD of the chart's crds/ folders (not in helm's manifest), checked as mooring applies
   * it (its own field manager) under the release's `crds:` option: `Create` corrects only a
   * deleted CRD, `CreateReplace` also a changed one. Fields others add to a CRD are not drift
   * (conversion webhooks' CA bundles, annotations of other tools).
   */
  crd?: { policy: 'Create' | 'CreateReplace'; fieldManager: string };
}

export interface AddedField {
  path: FieldPath;
  pointer: string;
}

export interface Finding {
  check: ObjectCheck;
  state: 'clean' | 'drifted' | 'opted-out' | 'failed';
  /** The object does not exist (or is being deleted, see `terminating`). */
  deleted: boolean;
  terminating: boolean;
  /** Fields a correction would change (modified or removed by someone). */
  modified: string[];
  /** Fields people's tools own that the chart does not set. */
  added: AddedField[];
  /**
   * Who changed them: the field managers (other than helm's) that own each modified or added
   * field on the live object, by pointer. A field nobody owns (removed by hand) has none.
   */
  managers: Record<string, string[]>;
  /** Helm's field manager on this object, used for the dry run and the correction. */
  manager: string;
  live?: AnyObject;
  /** `check.rules` plus rules found while checking (live HPAs). */
  rules: readonly IgnoreRule[];
  error?: string;
}

export interface InspectContext {
  api: DriftObjectApi;
  /** `/spec/replicas` rules for objects that live HPAs in `namespace` scale. */
  liveHpaRules(namespace: string): Promise<IgnoreRule[]>;
}

export const DEFAULT_FIELD_MANAGER = 'helm';

export async function inspectObject(
  ctx: InspectContext,
  check: ObjectCheck,
  read: LiveRead,
): Promise<Finding> {
  const base = {
    check,
    deleted: false,
    terminating: false,
    modified: [],
    added: [],
    managers: {},
    rules: check.rules,
  };
  if (read instanceof Error) {
    return {
      ...base,
      state: 'failed',
      manager: DEFAULT_FIELD_MANAGER,
      error: `cannot read it: ${apiErrorMessage(read)}`,
    };
  }
  let live = read;
  for (let attempt = 0; ; attempt++) {
    const manager = check.crd?.fieldManager ?? helmFieldManager(live);
    if (optsOut(live)) return { ...base, state: 'opted-out', manager, ...(live ? { live } : {}) };
    if (live === undefined && deletesItself(check.recorded)) return { ...base, state: 'clean', manager };
    let ignores = ignoresFor(check.rules, check.id);
    let wouldBe: AnyObject;
    try {
      wouldBe = await ctx.api.applyRaw(keepIgnoredAsLive(check.recorded, live, ignores), {
        fieldManager: manager,
        force: true,
        dryRun: true,
      });
    } catch (err) {
      return { ...base, state: 'failed', manager, error: `dry-run apply failed: ${apiErrorMessage(err)}` };
    }
    const seen = live?.metadata?.resourceVersion ?? '';
    if ((wouldBe.metadata?.resourceVersion ?? '') !== seen) {
      // The object changed (or appeared) between our read and the dry run: read it again.
      if (attempt > 0)
        return { ...base, state: 'failed', manager, error: 'it kept changing during the check' };
      const again = await readOne(ctx.api, check.id);
      if (again instanceof Error) {
        return { ...base, state: 'failed', manager, error: `cannot read it: ${apiErrorMessage(again)}` };
      }
      live = again;
      continue;
    }
    if (live === undefined) return { ...base, state: 'drifted', manager, deleted: true };
    if (live.metadata?.deletionTimestamp) {
      return { ...base, state: 'drifted', manager, deleted: true, terminating: true, live };
    }

    let rules = check.rules;
    const owners = fieldOwners(live);
    const managers: Record<string, string[]> = {};
    const managersAt = (pointer: string): string[] =>
      (managers[pointer] ??= managersOf(owners, pointer, manager));
    let modified = changedFields(live, wouldBe).filter((p) => !ignoredField(ignores, p, managersAt(p)));
    if (modified.includes('/spec/replicas') && check.id.namespace) {
      const hpa = (await ctx.liveHpaRules(check.id.namespace)).filter((r) => ruleTargets(r, check.id));
      if (hpa.length > 0) {
        rules = [...rules, ...hpa];
        ignores = ignoresFor(rules, check.id);
        modified = modified.filter((p) => !ignoredField(ignores, p, managersAt(p)));
      }
    }
    const candidates: AddedField[] = [];
    for (const path of check.crd ? [] : fieldsAddedByHand(wouldBe, manager)) {
      const at = resolvePath(wouldBe, path);
      if (at === undefined) continue;
      const pointer = formatPointer(at);
      // A field the correction restores anyway is reported once, as modified.
      const restored = modified.some((m) => pointer === m || pointer.startsWith(`${m}/`));
      if (!restored && !ignoredField(ignores, pointer, managersAt(pointer)))
        candidates.push({ path, pointer });
    }
    const added = await removableFields(ctx.api, check, live, candidates, manager);
    const drifted = modified.length > 0 || added.length > 0;
    const named: Record<string, string[]> = {};
    for (const pointer of [...modified, ...added.map((a) => a.pointer)]) {
      const who = managersAt(pointer);
      if (who.length > 0) named[pointer] = who;
    }
    return {
      ...base,
      state: drifted ? 'drifted' : 'clean',
      manager,
      modified,
      added,
      managers: named,
      live,
      rules,
    };
  }
}

/** A Job with `ttlSecondsAfterFinished` is deleted by Kubernetes once done: that is no drift. */
function deletesItself(recorded: AnyObject): boolean {
  const spec = recorded.spec as { ttlSecondsAfterFinished?: unknown } | undefined;
  return (
    recorded.kind === 'Job' &&
    groupOf(recorded.apiVersion ?? '') === 'batch' &&
    spec?.ttlSecondsAfterFinished !== undefined
  );
}

/**
 * The candidates that removing would really remove. A field the API server puts back when it
 * is removed (a default, owned by whoever created the object by hand with `kubectl create`
 * or `replace`) or refuses to remove (immutable, required) is no addition: it would be
 * "corrected" at every check and never go. Asked with a dry-run JSON patch: one request, and
 * only for objects with candidates; one request per candidate if the patch as a whole fails.
 */
async function removableFields(
  api: DriftObjectApi,
  check: ObjectCheck,
  live: AnyObject,
  candidates: AddedField[],
  manager: string,
): Promise<AddedField[]> {
  if (candidates.length === 0) return [];
  const stays = async (fields: AddedField[]): Promise<Set<AddedField> | undefined> => {
    const at = fields.map((f) => resolvePath(live, f.path)).filter((s): s is Segment[] => s !== undefined);
    try {
      const after = await api.jsonPatchRaw(refOf(check.id), removalPatch(live, at), {
        fieldManager: manager,
        dryRun: true,
      });
      return new Set(
        fields.filter((f) => {
          const before = resolvePath(live, f.path);
          const now = resolvePath(after, f.path);
          return (
            before === undefined || (now !== undefined && deepEqual(getAt(live, before), getAt(after, now)))
          );
        }),
      );
    } catch {
      return undefined;
    }
  };
  const together = await stays(candidates);
  if (together !== undefined) return candidates.filter((c) => !together.has(c));
  const out: AddedField[] = [];
  for (const candidate of candidates) {
    const alone = await stays([candidate]);
    if (alone !== undefined && alone.size === 0) out.push(candidate);
  }
  return out;
}

/** Removes `at` (pointer segments in `object`), guarded by the object's resourceVersion. */
export function removalPatch(object: AnyObject, at: Segment[][]): JsonPatchOperation[] {
  return [
    { op: 'test', path: '/metadata/resourceVersion', value: object.metadata?.resourceVersion ?? '' },
    // Last first: removing a list item shifts the ones after it.
    ...[...at]
      .sort(compareDescending)
      .map((segments): JsonPatchOperation => ({ op: 'remove', path: formatPointer(segments) })),
  ];
}

function compareDescending(a: Segment[], b: Segment[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return y - x;
    return String(y).localeCompare(String(x));
  }
  return b.length - a.length;
}

/**
 * The field manager helm used on `live`: the one that set helm's release annotation, an
 * Apply entry (server-side apply, helm 4's `helm`) before an Update one (client-side apply;
 * helm names its manager after its binary, `helm` unless renamed). `helm` for new objects.
 */
export function helmFieldManager(live: AnyObject | undefined): string {
  const entries = (
    Array.isArray(live?.metadata?.managedFields) ? live.metadata.managedFields : []
  ) as ManagedFieldsEntry[];
  const owners = entries.filter(
    (e) =>
      e.manager !== undefined &&
      !isHandManager(e.manager) &&
      !e.subresource &&
      setsReleaseAnnotation(e.fieldsV1),
  );
  const owner = owners.find((e) => e.operation === 'Apply') ?? owners.find((e) => e.operation === 'Update');
  return owner?.manager ?? DEFAULT_FIELD_MANAGER;
}

function setsReleaseAnnotation(fieldsV1: unknown): boolean {
  const metadata = isPlainMap(fieldsV1) ? fieldsV1['f:metadata'] : undefined;
  const annotations = isPlainMap(metadata) ? metadata['f:annotations'] : undefined;
  return isPlainMap(annotations) && Object.hasOwn(annotations, `f:${HELM_RELEASE_NAME_ANNOTATION}`);
}
