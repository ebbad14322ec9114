// A chart as helm loads it, for what mooring must know without running helm: its
// Chart.yaml, its values.yaml, the CRDs in its crds/ folder, and its subcharts (vendored as
// folders or archives under charts/), each under the key its values live at in the parent
// (the dependency's alias, else its name).
//
// Helm decides which subcharts take part before anything else (`ProcessDependencies`):
// - Chart.yaml's `tags` switch a dependency on or off from the top-level `tags:` values
//   (any tag true: on; all tags given and false: off), then its `condition` (comma-separated
//   paths, the first that holds a boolean wins) overrides them. Both are read from the values
//   as merged so far (the user's over every chart default). A disabled subchart brings no
//   defaults and no CRDs.
// - `import-values` then copy tables from an enabled subchart into its parent, below the
//   parent's own values: `- name` takes the child's `exports.name` to the parent's root,
//   `- {child: a.b, parent: c}` takes the child's `a.b` to the parent's `c`.
// `enabledChart` and `defaultLayers` reproduce that, so `plan` and `explain` show the values
// helm will use; a differential test against `helm template` on real charts checks it.
import { isPlainMap } from '../model/schema.js';
import { parseYaml } from '../model/yaml.js';
import { getPath, mergeValues, type Values, type ValuesLayer } from '../resolve/merge.js';

// Charts from repositories are bigger than values files in Git (kube-prometheus-stack's values.yaml).
export const CHART_YAML_LIMITS = { maxBytes: 16 * 1024 * 1024, maxExpandedSize: 64 * 1024 * 1024, maxNodes: 2_000_000 };

export interface ChartMeta {
  name: string;
  version: string;
}

/** One entry of Chart.yaml's `dependencies`, as far as values and CRDs care. */
export interface ChartDependency {
  name: string;
  alias?: string;
  condition?: string;
  tags: string[];
  importValues: unknown[];
}

/** One file of a chart's crds/ folder. */
export interface CrdFile {
  /** Where it came from: a repository path, or `<archive>: <path inside it>`. */
  file: string;
  text: string;
}

export interface ChartTree {
  meta: ChartMeta;
  /** `<name>-<version>`. */
  label: string;
  values: Values;
  /** How its values.yaml is named in `explain`. */
  valuesFile: string;
  crds: CrdFile[];
  /** The subcharts helm would load, before tags and conditions. */
  subcharts: Subchart[];
}

export interface Subchart {
  /** The key its values live under in the parent: the dependency's alias, else the chart's name. */
  key: string;
  chart: ChartTree;
  /** The Chart.yaml entry that declares it; none for a subchart only vendored. */
  dependency?: ChartDependency;
}

/**
 * Names the file a layer came from: `path` is the values.yaml's path in `files`, `label`
 * the chart's `<name>-<version>`, `parent` the top chart's label (undefined for the top chart),
 * `archive` the path of the subchart archive it was read from, if any.
 */
export type LayerName = (path: string, label: string, parent: string | undefined, archive?: string) => string;

/** Unpacks an archive found inside a chart (a vendored subchart). */
export type Unpack = (tgz: Buffer, what: string) => Map<string, Buffer>;

/**
 * Loads the chart in folder `dir` of `files` (a chart folder read from disk, or an archive).
 * `where` prefixes the names of CRD files (the archive a remote chart came from).
 */
export function loadChartTree(
  files: Map<string, Buffer>,
  dir: string,
  options: { name: LayerName; unpack: Unpack; where?: string; parent?: string; archive?: string },
): ChartTree {
  const chartYaml = readMap(files, `${dir}/Chart.yaml`);
  const meta = { name: String(chartYaml.name ?? dir.split('/').pop()), version: String(chartYaml.version ?? '') };
  const label = `${meta.name}-${meta.version}`;
  const where = options.archive ?? options.where;
  const crds: CrdFile[] = [];
  for (const path of [...files.keys()].sort()) {
    if (path.startsWith(`${dir}/crds/`) && /\.(ya?ml|json)$/.test(path)) {
      crds.push({ file: where ? `${where}: ${path}` : path, text: files.get(path)!.toString('utf8') });
    }
  }
  const vendored: ChartTree[] = [];
  const folder = new RegExp(`^${escape(dir)}/charts/([^/]+)/Chart\\.yaml$`);
  const packed = new RegExp(`^${escape(dir)}/charts/[^/]+\\.tgz$`);
  const child = { name: options.name, unpack: options.unpack, parent: options.parent ?? label };
  for (const path of [...files.keys()].sort()) {
    const m = folder.exec(path);
    if (m) vendored.push(loadChartTree(files, `${dir}/charts/${m[1]}`, { ...child, ...optional('archive', options.archive), ...optional('where', options.where) }));
    else if (packed.test(path)) {
      const inner = options.unpack(files.get(path)!, path);
      const innerTop = [...inner.keys()].find((p) => /^[^/]+\/Chart\.yaml$/.test(p));
      if (innerTop) {
        const archive = options.archive ?? (options.where ? `${options.where}: ${path}` : path);
        vendored.push(loadChartTree(inner, innerTop.slice(0, -'/Chart.yaml'.length), { ...child, archive }));
      }
    }
  }
  return {
    meta,
    label,
    values: readMap(files, `${dir}/values.yaml`),
    valuesFile: options.name(`${dir}/values.yaml`, label, options.parent, options.archive),
    crds,
    subcharts: subchartsOf(dependenciesOf(chartYaml), vendored),
  };
}

/**
 * Helm's pairing of Chart.yaml's dependencies with the vendored charts: a vendored chart no
 * dependency names stays under its own name; each dependency takes the vendored chart of its
 * name under its alias (one chart may serve two aliases).
 */
function subchartsOf(dependencies: ChartDependency[], vendored: ChartTree[]): Subchart[] {
  const out: Subchart[] = [];
  for (const chart of vendored) {
    if (!dependencies.some((d) => d.name === chart.meta.name)) out.push({ key: chart.meta.name, chart });
  }
  for (const dependency of dependencies) {
    const chart = vendored.find((c) => c.meta.name === dependency.name);
    if (chart) out.push({ key: dependency.alias ?? dependency.name, chart, dependency });
  }
  return out;
}

function dependenciesOf(chartYaml: Values): ChartDependency[] {
  const list = Array.isArray(chartYaml.dependencies) ? chartYaml.dependencies : [];
  return list.filter(isPlainMap).flatMap((d) =>
    typeof d.name !== 'string'
      ? []
      : [
          {
            name: d.name,
            ...(typeof d.alias === 'string' && d.alias !== '' ? { alias: d.alias } : {}),
            ...(typeof d.condition === 'string' ? { condition: d.condition } : {}),
            tags: Array.isArray(d.tags) ? d.tags.filter((t): t is string => typeof t === 'string') : [],
            importValues: Array.isArray(d['import-values']) ? d['import-values'] : [],
          },
        ],
  );
}

/**
 * The chart with only the subcharts helm enables for `values` (the user's values merged over
 * every default), at every depth. A condition is read relative to the subchart's parent.
 */
export function enabledChart(tree: ChartTree, values: Values, at: string[] = []): ChartTree {
  const tags = isPlainMap(values.tags) ? values.tags : {};
  const subcharts = tree.subcharts
    .filter((s) => s.dependency === undefined || isEnabled(s.dependency, tags, values, at))
    .map((s) => ({ ...s, chart: enabledChart(s.chart, values, [...at, s.key]) }));
  return { ...tree, subcharts };
}

function isEnabled(dependency: ChartDependency, tags: Values, values: Values, at: string[]): boolean {
  let enabled = true;
  const given = dependency.tags.map((t) => tags[t]).filter((v): v is boolean => typeof v === 'boolean');
  if (given.length > 0 && !given.includes(true)) enabled = false;
  for (const condition of (dependency.condition ?? '').trim().split(',')) {
    if (condition === '') continue;
    const value = getPath(values, [...at, ...condition.split('.')]);
    if (typeof value === 'boolean') return value;
  }
  return enabled;
}

/**
 * The chart's defaults as values layers, highest precedence first: its values.yaml, its
 * subcharts' (nested under their keys), then what it imports from them (`import-values`),
 * which its own values and its subcharts' defaults override.
 */
export function defaultLayers(tree: ChartTree, options: { imports?: boolean } = {}, at: string[] = []): ValuesLayer[] {
  const own: ValuesLayer = { source: { file: tree.valuesFile, layer: 'chart', secret: false }, values: nest(at, tree.values) };
  const below = tree.subcharts.flatMap((s) => defaultLayers(s.chart, options, [...at, s.key]));
  if (options.imports === false) return [own, ...below];
  const imports = importLayers(tree, [own, ...below], at);
  return [own, ...below, ...imports];
}

function importLayers(tree: ChartTree, layers: ValuesLayer[], at: string[]): ValuesLayer[] {
  const importing = tree.subcharts.filter((s) => (s.dependency?.importValues.length ?? 0) > 0);
  if (importing.length === 0) return [];
  // What the parent sees of its subcharts: its own values over their defaults.
  const merged = getPath(mergeValues({ chartDefaults: layers, layers: [] }).values, at);
  const seen = isPlainMap(merged) ? merged : {};
  const out: ValuesLayer[] = [];
  for (const sub of importing) {
    for (const entry of sub.dependency!.importValues) {
      const [child, parent] =
        typeof entry === 'string'
          ? [`exports.${entry}`, '.']
          : isPlainMap(entry) && typeof entry.child === 'string' && typeof entry.parent === 'string'
            ? [entry.child, entry.parent]
            : [undefined, undefined];
      if (child === undefined || parent === undefined) continue;
      const table = getPath(seen, [sub.key, ...child.split('.')]);
      // Helm imports tables only, and warns about anything else.
      if (!isPlainMap(table)) continue;
      const placed = parent === '.' ? table : nest(parent.split('.'), table);
      out.push({
        source: { file: `import-values of ${tree.label} from ${sub.chart.label} (${sub.key}.${child})`, layer: 'chart', secret: false },
        values: nest(at, structuredClone(placed)),
      });
    }
  }
  return out;
}

/**
 * The keys `mergeValues` must drop when null: a subchart's top-level defaults, where its
 * parent declares dependencies. Helm coalesces such a subchart's defaults twice (into the
 * parent when it processes import-values, then at render), and the second pass takes a null
 * for a user's null and deletes the key.
 */
export function nullDefaultKeys(tree: ChartTree, at: string[] = []): string[][] {
  const declares = tree.subcharts.some((s) => s.dependency !== undefined);
  return tree.subcharts.flatMap((s) => [
    ...(declares ? Object.keys(s.chart.values).filter((k) => s.chart.values[k] === null).map((k) => [...at, s.key, k]) : []),
    ...nullDefaultKeys(s.chart, [...at, s.key]),
  ]);
}

/** Every CRD file helm would install for this chart: its own, then its enabled subcharts'. */
export function chartCrds(tree: ChartTree): CrdFile[] {
  return [...tree.crds, ...tree.subcharts.flatMap((s) => chartCrds(s.chart))];
}

function readMap(files: Map<string, Buffer>, path: string): Values {
  const data = files.get(path);
  if (!data) return {};
  const doc = parseYaml(data.toString('utf8'), path, CHART_YAML_LIMITS);
  return isPlainMap(doc) ? doc : {};
}

function nest(path: string[], values: Values): Values {
  let out: Values = values;
  for (const key of [...path].reverse()) out = { [key]: out };
  return out;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V });
}
