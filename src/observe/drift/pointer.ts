// JSON pointers (RFC 6901), the one way drift names a field: in reports, in ignore rules and
// when removing fields added by hand. Kept small and total: reading a path that does not
// exist answers "not found" instead of throwing.
import { isPlainMap } from '../../model/schema.js';

export type Segment = string | number;

export function escapeSegment(segment: Segment): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function formatPointer(segments: readonly Segment[]): string {
  return segments.map((s) => `/${escapeSegment(s)}`).join('');
}

/** `/spec/template` -> ['spec', 'template']; the empty pointer is the whole document. */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The value at `segments`, if there is one. */
export function getAt(
  doc: unknown,
  segments: readonly Segment[],
): { found: true; value: unknown } | { found: false } {
  let node: unknown = doc;
  for (const segment of segments) {
    if (Array.isArray(node)) {
      const index = Number(segment);
      if (!Number.isInteger(index) || index < 0 || index >= node.length) return { found: false };
      node = node[index];
    } else if (isPlainMap(node) && Object.hasOwn(node, String(segment))) {
      node = node[String(segment)];
    } else {
      return { found: false };
    }
  }
  return { found: true, value: node };
}

/** Replaces the value at `segments`; the parent must exist. Returns whether it did. */
export function setAt(doc: unknown, segments: readonly Segment[], value: unknown): boolean {
  if (segments.length === 0) return false;
  const parent = getAt(doc, segments.slice(0, -1));
  if (!parent.found) return false;
  const last = segments[segments.length - 1]!;
  if (Array.isArray(parent.value)) {
    const index = Number(last);
    if (!Number.isInteger(index) || index < 0 || index >= parent.value.length) return false;
    parent.value[index] = value;
    return true;
  }
  if (!isPlainMap(parent.value)) return false;
  parent.value[String(last)] = value;
  return true;
}

/** Removes the value at `segments`. Returns whether there was one. */
export function removeAt(doc: unknown, segments: readonly Segment[]): boolean {
  if (segments.length === 0) return false;
  const parent = getAt(doc, segments.slice(0, -1));
  if (!parent.found) return false;
  const last = segments[segments.length - 1]!;
  if (Array.isArray(parent.value)) {
    const index = Number(last);
    if (!Number.isInteger(index) || index < 0 || index >= parent.value.length) return false;
    parent.value.splice(index, 1);
    return true;
  }
  if (!isPlainMap(parent.value) || !Object.hasOwn(parent.value, String(last))) return false;
  delete parent.value[String(last)];
  return true;
}

/** Structural equality of JSON values (key order does not matter). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isPlainMap(a)) {
    if (!isPlainMap(b)) return false;
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
    );
  }
  return false;
}
