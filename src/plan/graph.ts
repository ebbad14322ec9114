// The dependsOn graph of one cluster's releases: which releases must be healthy before
// another converges. Unknown dependencies and cycles are errors of the releases involved;
// the rest of the graph stays usable.
import { MooringError } from '../errors.js';
import type { Release } from '../model/releases.js';

export interface ReleaseGraph {
  /** Direct dependencies of each valid release. */
  dependsOn: Map<string, string[]>;
  /** Releases that cannot be ordered, with the reason. */
  errors: Map<string, MooringError>;
}

export function buildGraph(releases: Release[], disabled: readonly string[] = []): ReleaseGraph {
  const byName = new Map(releases.map((r) => [r.name, r]));
  const errors = new Map<string, MooringError>();
  const fileOf = (r: Release) => r.declaredIn[r.declaredIn.length - 1];
  for (const r of releases) {
    for (const dep of r.dependsOn) {
      if (dep === r.name) {
        errors.set(
          r.name,
          new MooringError(`release ${r.name} depends on itself`, {
            file: fileOf(r),
            field: `releases.${r.name}.dependsOn`,
            release: r.name,
          }),
        );
      } else if (!byName.has(dep)) {
        const why = disabled.includes(dep)
          ? 'is disabled in this cluster'
          : 'is not declared for this cluster';
        errors.set(
          r.name,
          new MooringError(`dependsOn names ${dep}, which ${why}`, {
            file: fileOf(r),
            field: `releases.${r.name}.dependsOn`,
            release: r.name,
          }),
        );
      }
    }
  }
  // Cycles: depth-first search with colours; every release on a cycle is an error.
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      const cycle = stack.slice(stack.indexOf(name));
      for (const member of cycle) {
        const r = byName.get(member)!;
        errors.set(
          member,
          new MooringError(`dependsOn forms a cycle: ${[...cycle, name].join(' -> ')}`, {
            file: fileOf(r),
            field: `releases.${member}.dependsOn`,
            release: member,
          }),
        );
      }
      return;
    }
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of byName.get(name)?.dependsOn ?? []) if (byName.has(dep)) visit(dep);
    stack.pop();
    state.set(name, 'done');
  };
  for (const r of releases) visit(r.name);
  // A release that depends on a broken one cannot converge either.
  let changed = true;
  while (changed) {
    changed = false;
    for (const r of releases) {
      if (errors.has(r.name)) continue;
      const broken = r.dependsOn.find((d) => errors.has(d));
      if (broken) {
        errors.set(
          r.name,
          new MooringError(`depends on ${broken}, which has an error`, {
            file: fileOf(r),
            field: `releases.${r.name}.dependsOn`,
            release: r.name,
          }),
        );
        changed = true;
      }
    }
  }
  const dependsOn = new Map<string, string[]>();
  for (const r of releases) if (!errors.has(r.name)) dependsOn.set(r.name, [...r.dependsOn]);
  return { dependsOn, errors };
}

/** Releases in an order where every release comes after its dependencies. */
export function topologicalOrder(graph: ReleaseGraph): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string) => {
    if (seen.has(n)) return;
    seen.add(n);
    for (const d of graph.dependsOn.get(n) ?? []) visit(d);
    out.push(n);
  };
  for (const n of [...graph.dependsOn.keys()].sort()) visit(n);
  return out;
}
