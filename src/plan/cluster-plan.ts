// What one cluster should run, computed offline from a checkout: each release with its
// digest, its values (secrets masked) and its rendered manifests (secrets redacted).
// `mooring plan`, `validate` and the agent share it.
import { resolve as resolvePath } from 'node:path';
import type { ChartSource } from '../converge/helm.js';
import { MooringError } from '../errors.js';
import type { ClusterSpec } from '../model/cluster.js';
import { loadClusterModel, type ClusterModel } from '../model/repo.js';
import type { ChartRef } from '../model/releases.js';
import type { Values } from '../resolve/merge.js';
import { maskSecrets, resolveCluster, type ResolvedRelease, type ResolveDeps } from '../resolve/resolve.js';
import { chartDirDigest, hashSecrets, releaseDigest } from './digest.js';
import { buildGraph } from './graph.js';
import { redactManifests } from './redact.js';

export interface PlannedRelease {
  name: string;
  namespace: string;
  chart: string;
  version?: string;
  dependsOn: string[];
  /** Desired-state digest (absent when the release has an error). */
  digest?: string;
  /** Merged values as the chart sees them, secrets masked. */
  values?: Values;
  /** Rendered manifests, secrets redacted (when rendering was asked for and worked). */
  manifests?: string;
  error?: MooringError;
  /** Internal: everything needed to converge. Never serialised. */
  resolved?: ResolvedRelease;
}

export interface ClusterPlan {
  cluster: ClusterSpec;
  releases: PlannedRelease[];
  disabled: string[];
}

export interface PlanDeps extends ResolveDeps {
  /** Key for hashing secrets into digests (see `secretDigestKey`). */
  digestKey: Buffer;
  /** Renders a release's manifests (helm template); omit to skip rendering. */
  render?(release: ResolvedRelease, chart: ChartSource): Promise<string>;
}

export function chartLabel(chart: ChartRef): string {
  if (chart.kind === 'local') return `./${chart.path}`;
  if (chart.kind === 'repo') return `${chart.name} (${chart.repo})`;
  return chart.url;
}

/** The arguments helm needs to find a chart. Local charts are absolute paths in the checkout. */
export function chartSource(root: string, chart: ChartRef): ChartSource {
  if (chart.kind === 'local') return { chart: resolvePath(root, chart.path) };
  if (chart.kind === 'repo')
    return { chart: chart.name, repo: chart.repo, ...(chart.version ? { version: chart.version } : {}) };
  return { chart: chart.url, ...(chart.version ? { version: chart.version } : {}) };
}

export async function planCluster(root: string, clusterName: string, deps: PlanDeps): Promise<ClusterPlan> {
  const model = loadClusterModel(root, clusterName);
  return planModel(model, deps);
}

export async function planModel(model: ClusterModel, deps: PlanDeps): Promise<ClusterPlan> {
  const graph = buildGraph(model.releases, model.disabled);
  const resolutions = await resolveCluster(model, deps);
  const releases = await Promise.all(
    model.releases.map(async (release, i): Promise<PlannedRelease> => {
      const base: PlannedRelease = {
        name: release.name,
        namespace: release.namespace,
        chart: chartLabel(release.chart),
        ...(release.chart.kind !== 'local' && release.chart.version
          ? { version: release.chart.version }
          : {}),
        dependsOn: release.dependsOn,
      };
      const resolution = resolutions[i]!;
      if (!resolution.ok) return { ...base, error: resolution.error };
      const resolved = resolution.resolved;
      const graphError = graph.errors.get(release.name);
      try {
        const digest = releaseDigest({
          release,
          ...(release.chart.kind === 'local'
            ? { chartContentDigest: chartDirDigest(model.root, release.chart.path) }
            : {}),
          values: hashSecrets(resolved.merge.userValues, resolved.secretPaths, deps.digestKey),
        });
        const planned: PlannedRelease = {
          ...base,
          digest,
          values: maskSecrets(resolved.merge.values, resolved.secretPaths),
          resolved,
        };
        if (deps.render) {
          const raw = await deps.render(resolved, chartSource(model.root, release.chart));
          planned.manifests = redactManifests(raw, resolved.secretStrings);
        }
        if (graphError) planned.error = graphError;
        return planned;
      } catch (err) {
        const error =
          err instanceof MooringError ? err : new MooringError((err as Error).message, {}, { cause: err });
        error.context.release ??= release.name;
        error.context.cluster ??= model.cluster.name;
        return { ...base, error, resolved };
      }
    }),
  );
  return { cluster: model.cluster, releases, disabled: model.disabled };
}
