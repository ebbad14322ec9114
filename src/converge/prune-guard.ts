// The prune guard (SPEC §8): with --prune, a revision that would uninstall every release
// of the cluster in one pass is refused as invalid, unless the agent runs with
// --prune-allow-empty. An emptied or deleted releases.yaml, or a deleted
// environments/common/, looks exactly like that, and one bad commit should not take a
// whole cluster down. Nothing from a refused revision is applied: no install, no uninstall.

/** A release mooring manages in the cluster, as its record says. */
export interface ManagedRelease {
  name: string;
  state?: string;
}

export interface PruneGuardInput {
  /** The releases the revision declares for this cluster (disabled ones excluded). */
  declared: readonly { name: string }[];
  /** The releases mooring has records of in the cluster. */
  managed: readonly ManagedRelease[];
  prune: boolean;
  allowEmpty: boolean;
}

/**
 * Why the revision must be refused, or undefined when it may go on: it would uninstall
 * every release mooring manages here (failed and orphaned ones included), and at least one.
 */
export function pruneRefusal(input: PruneGuardInput): string | undefined {
  if (!input.prune || input.allowEmpty) return undefined;
  const installed = input.managed.filter((r) => r.state !== 'pruned');
  if (installed.length === 0) return undefined;
  const declared = new Set(input.declared.map((r) => r.name));
  if (installed.some((r) => declared.has(r.name))) return undefined;
  const names = installed.map((r) => r.name).sort();
  const what =
    input.declared.length === 0
      ? 'it declares no releases for this cluster'
      : 'none of the releases it declares for this cluster is installed yet';
  return (
    `with --prune this revision would uninstall every release of the cluster (${names.join(', ')}): ` +
    `${what}; refused as invalid, nothing was applied (an emptied or deleted releases.yaml or ` +
    `environments/common/ looks like this; run the agent with --prune-allow-empty to allow it)`
  );
}
