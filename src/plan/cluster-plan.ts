// What one cluster should run, computed offline from a checkout: each release with its
// digest, its values (secrets masked) and its rendered manifests (secrets redacted).
// `mooring plan`, `validate` and the agent share it.
import { resolve as resolvePath } from 'node:path';
import type { ChartSource } from '../converge/helm.js';
import { MooringError } from '../errors.js';
import type { ClusterSpec } from '../model/cluster.js';
import { loadClusterModel, type ClusterModel } from '../model/repo.js';
import type { ChartRef, PinnedChart, Release } from '../model/releases.js';
import type { Values } from '../resolve/merge.js';
import type { ChartTree } from '../charts/chart-tree.js';
import { resolveCluster, type ResolvedRelease, type ResolveDeps } from '../resolve/resolve.js';
import { readRepoFile } from '../model/paths.js';
import { isPlainMap } from '../model/schema.js';
import { parseYaml } from '../model/yaml.js';
import { chartDirDigest, releaseDigest } from './digest.js';
import { hashSecrets } from '../secrets/hash.js';
import { maskSecrets } from '../secrets/mask.js';
import { buildGraph } from './graph.js';
import { redactManifests } from '../secrets/manifests.js';

export interface PlannedRelease {
  name: string;
  namespace: string;
  chart: string;
  /** The exact chart version: resolved from the declared version or range, or the in-repo Chart.yaml's. */
  version?: string;
  /** The version or range as declared in releases.yaml (remote charts). */
  versionConstraint?: string;
  /** `sha256:...` of the chart: the archive (HTTP repository), the manifest (OCI), the folder (in-repo). */
  chartDigest?: string;
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

/** Resolves remote charts to exact archives (src/charts implements it). */
export interface ChartPins {
  pin(release: Release): Promise<PinnedChart>;
  /** The pinned chart as helm loads it: its values, subcharts and CRDs. */
  chart(pinned: PinnedChart): ChartTree;
  /** Fetches the dependencies an in-repo chart declares and does not vendor (none: undefined). */
  dependencies?(root: string, release: Release): Promise<PinnedChart[] | undefined>;
  /** The in-repo chart with its fetched dependencies added: the folder helm is given. */
  assemble?(
    root: string,
    chartPath: string,
    contentDigest: string,
    dependencies: readonly PinnedChart[],
  ): string;
}

export interface PlanDeps extends ResolveDeps {
  /** Remote charts; without it, a release with a remote chart is an error. */
  charts?: ChartPins;
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

/**
 * The arguments helm needs to find a chart: local charts are absolute paths in the checkout,
 * remote charts the exact archive the chart source pinned (never a repository and a range).
 */
export function chartSource(root: string, chart: ChartRef): ChartSource {
  if (chart.kind === 'local') return { chart: chart.assembled ?? resolvePath(root, chart.path) };
  if (!chart.pinned)
    throw new MooringError(`chart ${chartLabel(chart)} was not resolved to an exact version`);
  return { chart: chart.pinned.archive };
}

/** Which part of a cluster to plan. */
export interface PlanScope {
  /**
   * Only these releases (`plan --release`, `explain --release`): the others are neither
   * resolved, nor pinned, nor rendered, and are left out of the plan. Their declarations
   * still count for dependsOn checks. A name the cluster does not run is an error.
   */
  releases?: readonly string[];
}

export async function planCluster(
  root: string,
  clusterName: string,
  deps: PlanDeps,
  scope: PlanScope = {},
): Promise<ClusterPlan> {
  const model = loadClusterModel(root, clusterName);
  return planModel(model, deps, scope);
}

export async function planModel(
  whole: ClusterModel,
  deps: PlanDeps,
  scope: PlanScope = {},
): Promise<ClusterPlan> {
  const graph = buildGraph(whole.releases, whole.disabled);
  const model = narrow(whole, scope.releases);
  const pins = await pinCharts(model, deps.charts);
  const pinned: ClusterModel = { ...model, releases: pins.map((p) => p.release) };
  const pinnedCharts = new Map(pins.flatMap((p) => (p.chart ? [[p.release.name, p.chart] as const] : [])));
  const resolutions = await resolveCluster(pinned, {
    ...deps,
    remoteChart: (release) => Promise.resolve(pinnedCharts.get(release.name)),
  });
  // Releases that share an in-repo chart share its digest: each chart is read once a plan.
  const chartDigests = new Map<string, Promise<string>>();
  const chartDigest = (path: string): Promise<string> => {
    let digest = chartDigests.get(path);
    if (!digest) chartDigests.set(path, (digest = chartDirDigest(model.root, path)));
    return digest;
  };
  const releases = await Promise.all(
    pins.map(async ({ release, error: pinError }, i): Promise<PlannedRelease> => {
      const chart = release.chart;
      const base: PlannedRelease = {
        name: release.name,
        namespace: release.namespace,
        chart: chartLabel(chart),
        ...(chart.kind !== 'local' && chart.pinned ? { version: chart.pinned.version } : {}),
        ...(chart.kind !== 'local' && chart.version ? { versionConstraint: chart.version } : {}),
        ...(chart.kind !== 'local' && chart.pinned ? { chartDigest: chart.pinned.digest } : {}),
        dependsOn: release.dependsOn,
      };
      if (pinError) return { ...base, error: pinError };
      const resolution = resolutions[i]!;
      if (!resolution.ok) return { ...base, error: resolution.error };
      const resolved = resolution.resolved;
      const graphError = graph.errors.get(release.name);
      try {
        const localDigest = chart.kind === 'local' ? await chartDigest(chart.path) : undefined;
        if (chart.kind === 'local' && chart.dependencies && localDigest && deps.charts?.assemble) {
          chart.assembled = deps.charts.assemble(model.root, chart.path, localDigest, chart.dependencies);
        }
        const digest = releaseDigest({
          release,
          ...(localDigest ? { chartContentDigest: localDigest } : {}),
          values: hashSecrets(resolved.merge.userValues, resolved.secretPaths, deps.digestKey),
        });
        const planned: PlannedRelease = {
          ...base,
          ...(localDigest ? { chartDigest: `sha256:${localDigest}` } : {}),
          ...(chart.kind === 'local' ? localVersion(model.root, chart.path) : {}),
          digest,
          values: maskSecrets(resolved.merge.values, resolved.secretPaths),
          resolved,
        };
        if (deps.render) {
          const raw = await deps.render(resolved, chartSource(model.root, chart));
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

/** The model with only the releases asked for; an unknown or disabled one is an error. */
function narrow(model: ClusterModel, only: readonly string[] | undefined): ClusterModel {
  if (only === undefined) return model;
  const cluster = model.cluster.name;
  for (const name of only) {
    if (model.releases.some((r) => r.name === name)) continue;
    throw new MooringError(
      `release ${name} ${model.disabled.includes(name) ? 'is disabled' : 'is not declared'} in cluster ${cluster}`,
      { cluster, release: name },
      { hint: `releases of ${cluster}: ${model.releases.map((r) => r.name).join(', ') || '(none)'}` },
    );
  }
  return {
    ...model,
    releases: model.releases.filter((r) => only.includes(r.name)),
    disabled: [],
  };
}

interface Pin {
  /** The release, its remote chart pinned when that worked. */
  release: Release;
  chart?: ChartTree;
  error?: MooringError;
}

/** Pins every remote chart of the cluster; a chart that cannot be pinned fails only its release. */
async function pinCharts(model: ClusterModel, charts: ChartPins | undefined): Promise<Pin[]> {
  return Promise.all(
    model.releases.map(async (release): Promise<Pin> => {
      const chart = release.chart;
      if (chart.kind === 'local') return pinDependencies(model, release, charts);
      const context = {
        file: release.declaredIn[release.declaredIn.length - 1],
        field: `releases.${release.name}.chart`,
        release: release.name,
        cluster: model.cluster.name,
      };
      if (!charts) {
        return {
          release,
          error: new MooringError(`chart ${chartLabel(chart)} needs a chart source`, context),
        };
      }
      try {
        const pinned = await charts.pin(release);
        return { release: { ...release, chart: { ...chart, pinned } }, chart: charts.chart(pinned) };
      } catch (err) {
        const error =
          err instanceof MooringError
            ? new MooringError(
                err.message,
                { ...context, ...err.context, cluster: model.cluster.name },
                {
                  ...(err.hint === undefined ? {} : { hint: err.hint }),
                },
              )
            : new MooringError((err as Error).message, context, { cause: err });
        return { release, error };
      }
    }),
  );
}

/** An in-repo chart's dependencies that are not vendored, fetched; an unreachable one fails the release. */
async function pinDependencies(
  model: ClusterModel,
  release: Release,
  charts: ChartPins | undefined,
): Promise<Pin> {
  if (release.chart.kind !== 'local' || !charts?.dependencies) return { release };
  try {
    const dependencies = await charts.dependencies(model.root, release);
    if (!dependencies) return { release };
    return { release: { ...release, chart: { ...release.chart, dependencies } } };
  } catch (err) {
    const error =
      err instanceof MooringError
        ? new MooringError(
            err.message,
            { ...err.context, release: release.name, cluster: model.cluster.name },
            {
              ...(err.hint === undefined ? {} : { hint: err.hint }),
            },
          )
        : new MooringError((err as Error).message, { release: release.name, cluster: model.cluster.name });
    return { release, error };
  }
}

/** The version an in-repo chart's Chart.yaml declares (what helm will record). */
function localVersion(root: string, chartPath: string): { version?: string } {
  const file = `${chartPath}/Chart.yaml`;
  const doc = parseYaml(readRepoFile(root, file), file);
  const version = isPlainMap(doc) ? doc.version : undefined;
  return version === undefined || version === null ? {} : { version: String(version) };
}
