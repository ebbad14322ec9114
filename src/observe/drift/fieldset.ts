// Reading `metadata.managedFields`: which field manager owns which fields of an object
// (server-side apply's FieldsV1 format), and where those fields are as JSON pointers. Drift
// uses it to find fields added by hand (fields that people's tools, kubectl edit, label,
// annotate, patch ..., own on a chart's object and that the chart does not set), to name
// the manager that changed each drifted field, and to ignore the fields of named managers.
import { deepEqual, formatPointer, type Segment } from './pointer.js';
import { isPlainMap } from '../../model/schema.js';

/** One step of a FieldsV1 path: a map field, a keyed list item, a set item or a list index. */
export type PathElement =
  { field: string } | { key: Record<string, unknown> } | { value: unknown } | { index: number };

export type FieldPath = PathElement[];

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  subresource?: string;
  fieldsV1?: unknown;
}

function parseElement(token: string): PathElement | undefined {
  const body = token.slice(2);
  try {
    switch (token.slice(0, 2)) {
      case 'f:':
        return { field: body };
      case 'k:': {
        const key: unknown = JSON.parse(body);
        return isPlainMap(key) ? { key } : undefined;
      }
      case 'v:':
        return { value: JSON.parse(body) as unknown };
      case 'i:': {
        const index = Number(body);
        return Number.isInteger(index) ? { index } : undefined;
      }
    }
  } catch {
    // An element we cannot read names nothing we can report.
  }
  return undefined;
}

/**
 * Every path a FieldsV1 set owns: leaves, and nodes marked `.` (the node itself, e.g. a list
 * item's existence). Parents of owned fields are not owned by that alone.
 */
export function ownedPaths(fieldsV1: unknown): FieldPath[] {
  return walkFieldSet(fieldsV1, true);
}

/**
 * The fields a FieldsV1 set owns as values: leaves only. A `.` marker (the node exists: a
 * list item, a map someone created) is left out, as every manager that sets a field inside a
 * list item also owns the item's existence; it says nothing about who changed a value.
 */
export function ownedLeaves(fieldsV1: unknown): FieldPath[] {
  return walkFieldSet(fieldsV1, false);
}

/** The leaves of a FieldsV1 set and, with `markers`, the nodes marked `.` as well. */
function walkFieldSet(fieldsV1: unknown, markers: boolean): FieldPath[] {
  const out: FieldPath[] = [];
  const walk = (node: unknown, prefix: FieldPath): void => {
    if (!isPlainMap(node)) return;
    for (const [token, child] of Object.entries(node)) {
      if (token === '.') {
        if (markers && prefix.length > 0) out.push(prefix);
        continue;
      }
      const element = parseElement(token);
      if (element === undefined) continue;
      const path = [...prefix, element];
      if (isPlainMap(child) && Object.keys(child).length > 0) walk(child, path);
      else out.push(path);
    }
  };
  walk(fieldsV1, []);
  return out;
}

/** A value field one field manager owns on an object. */
export interface OwnedField {
  manager: string;
  path: FieldPath;
  /** Where it is in the object the managedFields were read from. */
  pointer: string;
}

/**
 * Who owns which value on `object`, from its managedFields: every manager's leaves, the
 * scale subresource's included (`kubectl scale`), status left out (apply never sets it).
 */
export function fieldOwners(object: { metadata?: { managedFields?: unknown } } | undefined): OwnedField[] {
  const entries = (
    Array.isArray(object?.metadata?.managedFields) ? object.metadata.managedFields : []
  ) as ManagedFieldsEntry[];
  const out: OwnedField[] = [];
  for (const entry of entries) {
    if (entry.manager === undefined || entry.subresource === 'status') continue;
    for (const path of ownedLeaves(entry.fieldsV1)) {
      const first = path[0];
      if (first !== undefined && 'field' in first && first.field === 'status') continue;
      const at = resolvePath(object, path);
      if (at !== undefined) out.push({ manager: entry.manager, path, pointer: formatPointer(at) });
    }
  }
  return out;
}

/** Whether `a` is `b`, or one of them lies below the other. */
export function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

/**
 * The managers other than `applier` (helm's manager) that own the field at `pointer`, a
 * field below it (a list or map that changed as a whole) or above it (an atomic list): who
 * changed it, since a manager that changes a value takes it from the others. Sorted; empty
 * when nobody owns it any more (a field removed by hand).
 */
export function managersOf(owners: readonly OwnedField[], pointer: string, applier: string): string[] {
  const found = new Set<string>();
  for (const owner of owners) {
    if (owner.manager !== applier && overlaps(owner.pointer, pointer)) found.add(owner.manager);
  }
  return [...found].sort();
}

export function pathKey(path: FieldPath): string {
  return JSON.stringify(path);
}

/** The path and all its ancestors, as keys. */
function withAncestors(path: FieldPath): string[] {
  return path.map((_, i) => pathKey(path.slice(0, i + 1)));
}

/** Where `path` is in `doc`, as pointer segments; undefined when it is not there. */
export function resolvePath(doc: unknown, path: FieldPath): Segment[] | undefined {
  const segments: Segment[] = [];
  let node = doc;
  for (const element of path) {
    if ('field' in element) {
      if (!isPlainMap(node) || !Object.hasOwn(node, element.field)) return undefined;
      segments.push(element.field);
      node = node[element.field];
      continue;
    }
    if (!Array.isArray(node)) return undefined;
    let index: number;
    if ('index' in element) index = element.index < node.length ? element.index : -1;
    else if ('value' in element) index = node.findIndex((item) => deepEqual(item, element.value));
    else {
      const key = element.key;
      index = node.findIndex(
        (item) => isPlainMap(item) && Object.entries(key).every(([k, v]) => deepEqual(item[k], v)),
      );
    }
    if (index < 0) return undefined;
    segments.push(index);
    node = node[index];
  }
  return segments;
}

/**
 * Field managers that are people at a terminal rather than controllers: kubectl's managers
 * (`kubectl`, `kubectl-edit`, `kubectl-label`, `kubectl-client-side-apply`, ...) and k9s.
 */
export function isHandManager(manager: string): boolean {
  return manager === 'kubectl' || manager.startsWith('kubectl-') || manager === 'k9s';
}

/**
 * Fields people's tools own on `object` that the applier (helm's field manager, whose Apply
 * entry holds exactly the recorded object's fields) does not: fields added by hand. A field
 * the chart also sets is never "added", nor is a parent of one (a label map, a container).
 * Only the outermost added path is returned (a whole added env var, not its name and value).
 */
export function fieldsAddedByHand(
  object: { kind?: string; metadata?: { managedFields?: unknown } },
  applier: string,
): FieldPath[] {
  const entries = (
    Array.isArray(object.metadata?.managedFields) ? object.metadata.managedFields : []
  ) as ManagedFieldsEntry[];
  if (!entries.some((e) => e.manager !== undefined && isHandManager(e.manager))) return [];
  const applied = new Set<string>();
  for (const entry of entries) {
    if (entry.manager === applier && entry.operation === 'Apply' && !entry.subresource) {
      for (const path of ownedPaths(entry.fieldsV1)) {
        for (const key of withAncestors(path)) applied.add(key);
        // A Secret's `stringData` is written into `data` by the API server: the chart sets both.
        const first = path[0];
        if (
          object.kind === 'Secret' &&
          first !== undefined &&
          'field' in first &&
          first.field === 'stringData'
        ) {
          for (const key of withAncestors([{ field: 'data' }, ...path.slice(1)])) applied.add(key);
        }
      }
    }
  }
  const candidates = new Map<string, FieldPath>();
  for (const entry of entries) {
    if (entry.manager === undefined || !isHandManager(entry.manager) || entry.subresource === 'status')
      continue;
    for (const path of ownedPaths(entry.fieldsV1)) {
      const first = path[0];
      if (first !== undefined && 'field' in first && first.field === 'status') continue;
      if (!applied.has(pathKey(path))) candidates.set(pathKey(path), path);
    }
  }
  return [...candidates.values()].filter(
    (path) => !path.slice(0, -1).some((_, i) => candidates.has(pathKey(path.slice(0, i + 1)))),
  );
}
