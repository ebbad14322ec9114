// Comparing a live object with what a server-side apply of the recorded object would make
// of it (the dry-run result). Both come from the API server, defaulted and normalised the
// same way (`cpu: 0.5` is `500m` on both sides), so every difference is a field a
// correction would change: a field modified by someone, or one removed by someone.
import { deepEqual, formatPointer, type Segment } from './pointer.js';
import { isPlainMap } from '../../model/schema.js';

// Bookkeeping the server changes on every write, and status, which apply never sets.
const NOT_COMPARED = new Set(
  [
    ['metadata', 'managedFields'],
    ['metadata', 'resourceVersion'],
    ['metadata', 'generation'],
    ['metadata', 'creationTimestamp'],
    ['metadata', 'uid'],
    ['metadata', 'selfLink'],
    ['status'],
  ].map((segments) => formatPointer(segments)),
);

/**
 * JSON pointers of the fields where `live` and `wouldBe` differ. A list whose items cannot be
 * paired up (different lengths, no unique `name` on every item) is reported as a whole.
 */
export function changedFields(live: unknown, wouldBe: unknown): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, at: Segment[]): void => {
    const pointer = formatPointer(at);
    if (NOT_COMPARED.has(pointer)) return;
    if (isPlainMap(a) && isPlainMap(b)) {
      for (const key of new Set([...Object.keys(b), ...Object.keys(a)])) {
        const inA = Object.hasOwn(a, key);
        const inB = Object.hasOwn(b, key);
        if (inA && inB) walk(a[key], b[key], [...at, key]);
        else if (!NOT_COMPARED.has(formatPointer([...at, key]))) out.push(formatPointer([...at, key]));
      }
      return;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      if (a.length === b.length && !(byName(a) && byName(b) && !sameNames(a, b))) {
        a.forEach((item, i) => walk(item, b[i], [...at, i]));
        return;
      }
      const namesA = byName(a);
      const namesB = byName(b);
      if (namesA && namesB) {
        // Pair items by name (containers, env, volumes, ports): an item removed by hand is
        // reported where the recorded object has it.
        b.forEach((item, i) => {
          const other = namesA.get((item as { name: string }).name);
          if (other === undefined) out.push(formatPointer([...at, i]));
          else walk(a[other], item, [...at, i]);
        });
        a.forEach((item, i) => {
          if (!namesB.has((item as { name: string }).name)) out.push(formatPointer([...at, i]));
        });
        return;
      }
      out.push(pointer);
      return;
    }
    if (!deepEqual(a, b)) out.push(pointer);
  };
  walk(live, wouldBe, []);
  return out;
}

/** name -> index when every item is an object with a unique string `name`. */
function byName(items: unknown[]): Map<string, number> | undefined {
  const names = new Map<string, number>();
  for (const [i, item] of items.entries()) {
    if (!isPlainMap(item) || typeof item.name !== 'string' || names.has(item.name)) return undefined;
    names.set(item.name, i);
  }
  return items.length > 0 ? names : undefined;
}

function sameNames(a: unknown[], b: unknown[]): boolean {
  return a.every((item, i) => (item as { name: string }).name === (b[i] as { name: string }).name);
}
