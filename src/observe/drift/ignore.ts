// Which drift not to report or correct. Rules are JSON pointers (a `*` segment matches any
// one segment; a rule covers everything below its path), or field managers whose fields are
// theirs (`managedFieldsManagers`, as in Argo CD; with a path, only their fields under it),
// with an optional target: API group, kind, name, namespace. They come from the release (`drift.ignore` in releases.yaml), from
// the agent (`--drift-ignore-file`) and from built-in defaults: the replicas of an object an
// HPA scales, and the restart stamp `kubectl rollout restart` sets. An object opts out as a
// whole with the annotation `mooring.io/drift: ignore`.
import type { AnyObject } from '../../kube/objects.js';
import type { IgnoreRule } from '../../model/releases.js';
import { fieldOwners, resolvePath } from './fieldset.js';
import { groupOf, type ObjectId } from './objects.js';
import { getAt, parsePointer, removeAt, setAt, type Segment } from './pointer.js';
import { isPlainMap } from '../../model/schema.js';

export const OPT_OUT_ANNOTATION = 'mooring.io/drift';
export const OPT_OUT_VALUE = 'ignore';

/** Ignored everywhere unless a release says otherwise (it cannot: rules only add). */
export const DEFAULT_IGNORE_RULES: readonly IgnoreRule[] = [
  // `kubectl rollout restart` stamps the pod template; undoing it would restart the pods again.
  { path: '/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt' },
];

export function optsOut(object: AnyObject | undefined): boolean {
  return object?.metadata?.annotations?.[OPT_OUT_ANNOTATION] === OPT_OUT_VALUE;
}

export function ruleTargets(rule: IgnoreRule, id: ObjectId): boolean {
  return (
    (rule.group === undefined || rule.group === groupOf(id.apiVersion)) &&
    (rule.kind === undefined || rule.kind === id.kind) &&
    (rule.name === undefined || rule.name === id.name) &&
    (rule.namespace === undefined || rule.namespace === (id.namespace ?? ''))
  );
}

/** Whether `pattern` (segments, `*` for any) is `pointer` or one of its ancestors. */
function covers(pattern: readonly string[], pointer: readonly string[]): boolean {
  return pattern.length <= pointer.length && pattern.every((s, i) => s === '*' || s === pointer[i]);
}

/** The ignore rules that apply to one object, ready to match pointers. */
export interface ObjectIgnores {
  /** Path rules without managers, as pointer segments. */
  readonly patterns: readonly string[][];
  /** Whether a path rule covers `pointer`, whoever changed it. */
  ignores(pointer: string): boolean;
  /** Whether a manager rule covers `manager`'s field at `pointer`. */
  ignoresManager(manager: string, pointer: string): boolean;
  /** Whether any manager rule applies to the object. */
  readonly byManager: boolean;
}

export function ignoresFor(rules: readonly IgnoreRule[], id: ObjectId): ObjectIgnores {
  const targeting = rules.filter((r) => ruleTargets(r, id));
  const patterns = targeting
    .filter((r) => r.path !== undefined && (r.managedFieldsManagers ?? []).length === 0)
    .map((r) => parsePointer(r.path!));
  const managerRules = targeting
    .filter((r) => (r.managedFieldsManagers ?? []).length > 0)
    .map((r) => ({
      managers: new Set(r.managedFieldsManagers),
      pattern: r.path === undefined ? [] : parsePointer(r.path),
    }));
  return {
    patterns,
    ignores: (pointer) => {
      const segments = parsePointer(pointer);
      return patterns.some((p) => covers(p, segments));
    },
    ignoresManager: (manager, pointer) => {
      const segments = parsePointer(pointer);
      return managerRules.some((r) => r.managers.has(manager) && covers(r.pattern, segments));
    },
    byManager: managerRules.length > 0,
  };
}

/** A drifted field is ignored when a path rule covers it, or every manager that changed it is ignored there. */
export function ignoredField(ignores: ObjectIgnores, pointer: string, managers: readonly string[]): boolean {
  return (
    ignores.ignores(pointer) ||
    (managers.length > 0 && managers.every((m) => ignores.ignoresManager(m, pointer)))
  );
}

/**
 * `/spec/replicas` of every object an HPA scales: the HPA's field, not the chart's. Works
 * for HPAs from the recorded manifest and live ones alike (autoscaling/v1 and v2).
 */
export function hpaIgnoreRules(objects: readonly AnyObject[], defaultNamespace?: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const hpa of objects) {
    if (hpa.kind !== 'HorizontalPodAutoscaler') continue;
    const target = (
      hpa.spec as { scaleTargetRef?: { apiVersion?: string; kind?: string; name?: string } } | undefined
    )?.scaleTargetRef;
    const namespace = hpa.metadata?.namespace ?? defaultNamespace;
    if (!target?.kind || !target.name || !namespace) continue;
    rules.push({
      path: '/spec/replicas',
      kind: target.kind,
      name: target.name,
      namespace,
      ...(target.apiVersion ? { group: groupOf(target.apiVersion) } : {}),
    });
  }
  return rules;
}

/** Concrete pointers (as segments) in `doc` that `pattern` names, `*` expanded. */
export function expandPattern(doc: unknown, pattern: readonly string[]): Segment[][] {
  let paths: { at: Segment[]; node: unknown }[] = [{ at: [], node: doc }];
  for (const segment of pattern) {
    const next: typeof paths = [];
    for (const { at, node } of paths) {
      if (segment === '*') {
        if (Array.isArray(node)) node.forEach((v, i) => next.push({ at: [...at, i], node: v }));
        else if (isPlainMap(node))
          for (const [k, v] of Object.entries(node)) next.push({ at: [...at, k], node: v });
      } else {
        const found = getAt(node, [segment]);
        if (found.found)
          next.push({ at: [...at, Array.isArray(node) ? Number(segment) : segment], node: found.value });
      }
    }
    paths = next;
  }
  return paths.map((p) => p.at);
}

/**
 * The recorded object with every ignored field it sets replaced by the live value, so that
 * applying it leaves ignored fields as they are. A field the live object lacks is left out.
 * Fields that ignored managers own on the live object are left out too: helm's manager then
 * claims nothing of theirs, and the apply leaves them to their owner.
 * Returns `recorded` itself when it sets no ignored field; never modifies it.
 * Maps are merged key by key (ignoring `/metadata/labels` keeps the chart's labels at their
 * live values, and claims no label the chart does not set).
 */
export function keepIgnoredAsLive(
  recorded: AnyObject,
  live: AnyObject | undefined,
  ignores: ObjectIgnores,
): AnyObject {
  const targets = live === undefined ? [] : ignores.patterns.flatMap((p) => expandPattern(recorded, p));
  const theirs =
    live === undefined || !ignores.byManager
      ? []
      : fieldOwners(live)
          .filter((o) => ignores.ignoresManager(o.manager, o.pointer))
          .map((o) => resolvePath(recorded, o.path))
          .filter((at): at is Segment[] => at !== undefined);
  // Most objects set no ignored field: no copy then (a check makes one per object).
  if (live === undefined || targets.length + theirs.length === 0) return recorded;
  const out = structuredClone(recorded);
  const removals: Segment[][] = [];
  for (const at of targets) {
    const liveValue = getAt(live, at);
    if (!liveValue.found) {
      removals.push(at);
      continue;
    }
    const current = getAt(out, at);
    if (current.found) setAt(out, at, mergeLive(current.value, liveValue.value));
  }
  removals.push(...theirs);
  // Last first, so removing a list item does not shift the ones still to remove; once each.
  const unique = new Map(removals.map((at) => [JSON.stringify(at), at]));
  for (const at of [...unique.values()].sort((a, b) => compareSegments(b, a))) removeAt(out, at);
  return out;
}

function mergeLive(recorded: unknown, live: unknown): unknown {
  if (!isPlainMap(recorded) || !isPlainMap(live)) return structuredClone(live);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(recorded)) if (Object.hasOwn(live, k)) out[k] = mergeLive(v, live[k]);
  return out;
}

function compareSegments(a: Segment[], b: Segment[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x).localeCompare(String(y));
  }
  return a.length - b.length;
}
