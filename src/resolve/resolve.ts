// Resolves what one cluster should run: for every release, its values layered in the order
// of SPEC 2 (chart, common, environment, cluster, identity) with the origin of every value.
// A problem with one release (a broken values file, a SOPS file that fails its MAC) marks
// that release failed and leaves the others alone.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { gunzipTar } from '../charts/archive.js';
import {
  chartCrds,
  defaultLayers,
  enabledChart,
  loadChartTree,
  nullDefaultKeys,
  type ChartTree,
  type CrdFile,
} from '../charts/chart-tree.js';
import { MooringError } from '../errors.js';
import { clusterIdentity, type ClusterSpec } from '../model/cluster.js';
import { readRepoFile, resolveInRepo } from '../model/paths.js';
import type { Release } from '../model/releases.js';
import type { ClusterModel, Layer } from '../model/repo.js';
import { isPlainMap } from '../model/schema.js';
import { parseYaml } from '../model/yaml.js';
import { collectSecretStrings } from '../secrets/mask.js';
import {
  getPath,
  mergeValues,
  type MergeResult,
  type Source,
  type Values,
  type ValuesLayer,
} from './merge.js';

export interface ResolvedRelease {
  release: Release;
  cluster: ClusterSpec;
  merge: MergeResult;
  /** The files that contributed values, lowest precedence first (chart defaults excluded). */
  files: string[];
  /** Paths of leaves that came from SOPS files (masked everywhere they are shown). */
  secretPaths: string[][];
  /** Every decrypted string this release received, for redacting rendered output. */
  secretStrings: string[];
  /** The values layers as read, lowest precedence first (for `explain KEY`). */
  layers: ValuesLayer[];
  /** The files of the chart's crds/ folders (its own and its enabled subcharts'), as helm would install them. */
  crds: CrdFile[];
}

export type Resolution =
  | { name: string; ok: true; resolved: ResolvedRelease }
  | { name: string; ok: false; release?: Release; error: MooringError };

export interface ResolveDeps {
  /** Decrypts a SOPS file's text; returns the plaintext document without `sops` metadata. */
  decrypt(text: string, file: string): Promise<unknown>;
  /**
   * A chart that is not in the repository (its values, subcharts and CRDs), read by the
   * chart source from the pinned archive.
   */
  remoteChart?(release: Release): Promise<ChartTree | undefined>;
}

const IDENTITY_PATH = ['global', 'cluster'];

/** Loads values files once per cluster, whichever releases share them. */
class ValuesFiles {
  private readonly cache = new Map<string, Promise<Values>>();
  constructor(
    private readonly root: string,
    private readonly deps: ResolveDeps,
  ) {}

  load(file: string, secret: boolean): Promise<Values> {
    let p = this.cache.get(file);
    if (!p) {
      p = this.read(file, secret);
      this.cache.set(file, p);
    }
    return p;
  }

  private async read(file: string, secret: boolean): Promise<Values> {
    const text = readRepoFile(this.root, file);
    const doc = secret ? await this.deps.decrypt(text, file) : parseYaml(text, file);
    if (doc === null || doc === undefined) return {};
    if (!isPlainMap(doc)) {
      throw new MooringError(
        `a values file must hold a map at the top level, found ${Array.isArray(doc) ? 'a list' : typeof doc}`,
        { file },
      );
    }
    if (getPath(doc, IDENTITY_PATH) !== undefined) {
      throw new MooringError(
        'global.cluster is reserved: mooring injects the cluster identity from cluster.yaml',
        {
          file,
          field: 'global.cluster',
        },
        { hint: 'remove it, or set region, cloud and labels in cluster.yaml' },
      );
    }
    return doc;
  }
}

/** The files of one layer that apply to `release`, in precedence order. */
function layerFiles(layer: Layer, release: string): { file: string; secret: boolean }[] {
  const out: { file: string; secret: boolean }[] = [];
  if (layer.valuesFile) out.push({ file: layer.valuesFile, secret: false });
  const own = layer.valuesFor.get(release);
  if (own) out.push({ file: own, secret: false });
  if (layer.secretsFile) out.push({ file: layer.secretsFile, secret: true });
  const ownSecret = layer.secretsFor.get(release);
  if (ownSecret) out.push({ file: ownSecret, secret: true });
  return out;
}

export async function resolveCluster(model: ClusterModel, deps: ResolveDeps): Promise<Resolution[]> {
  const files = new ValuesFiles(model.root, deps);
  return Promise.all(model.releases.map((r) => resolveRelease(model, r, files, deps)));
}

async function resolveRelease(
  model: ClusterModel,
  release: Release,
  files: ValuesFiles,
  deps: ResolveDeps,
): Promise<Resolution> {
  try {
    const layers: ValuesLayer[] = [];
    const used: string[] = [];
    const secretStrings = new Set<string>();
    for (const layer of model.layers) {
      for (const { file, secret } of layerFiles(layer, release.name)) {
        const values = await files.load(file, secret);
        layers.push({ source: { file, layer: layer.kind, secret }, values });
        used.push(file);
        if (secret) collectSecretStrings(values, secretStrings);
      }
    }
    const tree = await loadChart(model.root, release, deps);
    const identitySource: Source = {
      file: `clusters/${model.cluster.name}/cluster.yaml`,
      layer: 'identity',
      secret: false,
    };
    const inject = { path: IDENTITY_PATH, value: clusterIdentity(model.cluster), source: identitySource };
    // As helm: tags and conditions are read from the user's values over every chart default,
    // then the disabled subcharts are dropped and imports added.
    const enabled = tree
      ? enabledChart(
          tree,
          mergeValues({ chartDefaults: defaultLayers(tree, { imports: false }), layers, inject }).values,
        )
      : undefined;
    const merge = mergeValues({
      ...(enabled ? { chartDefaults: defaultLayers(enabled), dropIfNull: nullDefaultKeys(enabled) } : {}),
      layers,
      inject,
    });
    return {
      name: release.name,
      ok: true,
      resolved: {
        release,
        cluster: model.cluster,
        merge,
        files: used,
        secretPaths: merge.leaves.filter((l) => l.source.secret).map((l) => l.path),
        secretStrings: [...secretStrings],
        layers,
        crds: enabled ? chartCrds(enabled) : [],
      },
    };
  } catch (err) {
    // A file's error is shared by every release that reads it (files are loaded once), so
    // each release gets its own copy naming it, rather than the first release's name.
    const context = { release: release.name, cluster: model.cluster.name };
    const error =
      err instanceof MooringError
        ? new MooringError(
            err.message,
            { ...context, ...err.context },
            { ...(err.hint === undefined ? {} : { hint: err.hint }), cause: err.cause },
          )
        : new MooringError(`cannot resolve values: ${(err as Error).message}`, context, { cause: err });
    return { name: release.name, ok: false, release, error };
  }
}

async function loadChart(root: string, release: Release, deps: ResolveDeps): Promise<ChartTree | undefined> {
  const chart = release.chart;
  if (chart.kind === 'local') {
    const field = `releases.${release.name}.chart`;
    const ctx = { file: release.declaredIn[release.declaredIn.length - 1], field, release: release.name };
    const dir = resolveInRepo(root, chart.path, ctx);
    if (!existsSync(`${dir}/Chart.yaml`)) {
      throw new MooringError(
        `chart ./${chart.path} not found (no ${chart.path}/Chart.yaml in the repository)`,
        ctx,
      );
    }
    const files = chartFiles(root, chart.path);
    // Dependencies the chart source fetched count as vendored subcharts, as after helm dependency build.
    for (const d of chart.dependencies ?? [])
      files.set(`${chart.path}/charts/${d.name}-${d.version}.tgz`, readFileSync(d.archive));
    return loadChartTree(files, chart.path, {
      name: (path, label, _parent, archive) => (archive ? `values.yaml of ${label} (${archive})` : path),
      unpack: gunzipTar,
    });
  }
  return deps.remoteChart?.(release);
}

/** The files of an in-repository chart helm reads before rendering: Chart.yaml, values.yaml, crds/, subcharts. */
function chartFiles(root: string, chartPath: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const add = (rel: string) => {
    const abs = resolveInRepo(root, rel, { file: rel });
    if (existsSync(abs) && statSync(abs).isFile()) files.set(rel, readFileSync(abs));
  };
  const addTree = (dir: string) => {
    const abs = resolveInRepo(root, dir, { file: dir });
    if (!existsSync(abs) || !statSync(abs).isDirectory()) return;
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      if (entry.isDirectory()) addTree(`${dir}/${entry.name}`);
      else add(`${dir}/${entry.name}`);
    }
  };
  const walk = (dir: string) => {
    add(`${dir}/Chart.yaml`);
    add(`${dir}/values.yaml`);
    addTree(`${dir}/crds`);
    const sub = resolveInRepo(root, `${dir}/charts`, { file: `${dir}/charts` });
    if (!existsSync(sub)) return;
    for (const entry of readdirSync(sub, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(`${dir}/charts/${entry.name}`);
      else if (entry.name.endsWith('.tgz')) add(`${dir}/charts/${entry.name}`);
    }
  };
  walk(chartPath);
  return files;
}
