// Helm's values merge, reproduced with provenance: for every value, the file that set it,
// and for every deleted key, the file that deleted it.
//
// Helm combines values in two steps, and so do we:
//  1. the user's files (`-f a.yaml -f b.yaml`) merge in order: maps merge deeply, anything
//     else (lists, scalars, null) replaces what was there. A null is kept at this stage.
//  2. the result is coalesced over the chart's own values.yaml: a null removes the key (and
//     the chart's default for it); a key the chart has and the user lacks is copied in.
//     Below the top level Helm removes a null only where the chart has a value for that
//     key, so a null for a key the chart knows nothing about stays null, exactly as
//     `helm template` shows it.
// Step 1's result is what mooring hands to helm (nulls included), so helm's own coalescing
// gives the very values step 2 computes; the differential test against helm proves it.
import { isPlainMap } from '../model/schema.js';

export type Values = Record<string, unknown>;

export interface Source {
  /** Repository-relative file, or a description for values that come from no file. */
  file: string;
  /** `chart`, `common`, `environment`, `cluster` or `identity`. */
  layer: 'chart' | 'common' | 'environment' | 'cluster' | 'identity';
  /** The value came from a SOPS file: never show it. */
  secret: boolean;
}

export interface Origin {
  path: string[];
  source: Source;
}

export interface ValuesLayer {
  source: Source;
  values: Values;
}

export interface MergeResult {
  /** The user layers merged, nulls kept: what helm receives on stdin. */
  userValues: Values;
  /** What the chart's templates see. */
  values: Values;
  /** The origin of every leaf of `values` (scalars, lists, nulls and empty maps). */
  leaves: Origin[];
  /** Keys removed by a null, with the file that held the null. */
  deletions: Origin[];
}

type Node = MapNode | LeafNode;
interface MapNode {
  kind: 'map';
  entries: Map<string, Node>;
  source: Source;
}
interface LeafNode {
  kind: 'leaf';
  value: unknown;
  source: Source;
}

function fromJS(value: unknown, source: Source): Node {
  if (isPlainMap(value)) {
    const entries = new Map<string, Node>();
    for (const [k, v] of Object.entries(value)) entries.set(k, fromJS(v, source));
    return { kind: 'map', entries, source };
  }
  return { kind: 'leaf', value, source };
}

function toJS(node: Node): unknown {
  if (node.kind === 'leaf') return structuredClone(node.value);
  const out: Values = {};
  for (const [k, v] of node.entries) out[k] = toJS(v);
  return out;
}

function cloneNode(node: Node): Node {
  if (node.kind === 'leaf') return node;
  return {
    kind: 'map',
    source: node.source,
    entries: new Map([...node.entries].map(([k, v]) => [k, cloneNode(v)])),
  };
}

const isNull = (n: Node | undefined): n is LeafNode => n?.kind === 'leaf' && n.value === null;

/** Step 1: Helm's mergeMaps, in place on `dst`. */
function mergeInto(dst: MapNode, src: MapNode): void {
  for (const [k, s] of src.entries) {
    const d = dst.entries.get(k);
    if (s.kind === 'map' && d?.kind === 'map') mergeInto(d, s);
    else dst.entries.set(k, cloneNode(s));
  }
}

/** Step 2 at the top level: Helm's coalesceValues. */
function coalesceTop(user: MapNode, chart: MapNode, deletions: Origin[]): void {
  for (const [k, c] of chart.entries) {
    const u = user.entries.get(k);
    if (u === undefined) user.entries.set(k, cloneNode(c));
    else if (isNull(u)) {
      user.entries.delete(k);
      deletions.push({ path: [k], source: u.source });
    } else if (u.kind === 'map' && c.kind === 'map') coalesceTables(u, c, [k], deletions);
  }
}

/**
 * Step 2 below the top level: Helm's coalesceTables (dst = user, src = chart). A null
 * removes the key only where the chart has a non-null value for it; otherwise it stays.
 */
function coalesceTables(dst: MapNode, src: MapNode, path: string[], deletions: Origin[]): void {
  for (const [k, s] of src.entries) {
    const d = dst.entries.get(k);
    if (isNull(d)) {
      if (!isNull(s)) {
        dst.entries.delete(k);
        deletions.push({ path: [...path, k], source: d.source });
      }
    } else if (d === undefined) dst.entries.set(k, cloneNode(s));
    else if (s.kind === 'map' && d.kind === 'map') coalesceTables(d, s, [...path, k], deletions);
  }
}

function collectLeaves(node: Node, path: string[], out: Origin[]): void {
  if (node.kind === 'leaf' || node.entries.size === 0) {
    out.push({ path, source: node.source });
    return;
  }
  for (const [k, v] of node.entries) collectLeaves(v, [...path, k], out);
}

/**
 * Merges values layers, lowest precedence first, over the chart's defaults.
 * `inject` is applied after every layer and replaces what it names (the cluster identity).
 */
export function mergeValues(input: {
  /** The chart's values.yaml, then its subcharts' (nested under their names): highest first. */
  chartDefaults?: ValuesLayer | ValuesLayer[];
  layers: ValuesLayer[];
  inject?: { path: string[]; value: unknown; source: Source };
  /**
   * Keys removed when their merged value is null: the top-level keys of a subchart's
   * defaults, which helm coalesces twice, the second time deleting a null (chart-tree.ts).
   */
  dropIfNull?: readonly string[][];
}): MergeResult {
  const root: MapNode = { kind: 'map', entries: new Map(), source: input.layers[0]?.source ?? IDENTITY };
  for (const layer of input.layers) {
    const node = fromJS(layer.values, layer.source);
    if (node.kind === 'map') mergeInto(root, node);
  }
  if (input.inject) setPath(root, input.inject.path, fromJS(input.inject.value, input.inject.source));
  const userValues = toJS(root) as Values;

  const deletions: Origin[] = [];
  const full = cloneNode(root) as MapNode;
  const chart = chartNode(input.chartDefaults);
  if (chart) coalesceTop(full, chart, deletions);
  for (const path of input.dropIfNull ?? []) {
    const parent = mapAt(full, path.slice(0, -1));
    const key = path[path.length - 1]!;
    const node = parent?.entries.get(key);
    if (parent && isNull(node)) {
      parent.entries.delete(key);
      deletions.push({ path, source: node.source });
    }
  }
  const leaves: Origin[] = [];
  for (const [k, v] of full.entries) collectLeaves(v, [k], leaves);
  return { userValues, values: toJS(full) as Values, leaves, deletions };
}

/** The chart's layers as helm sees them: a parent's values over its subcharts' defaults. */
function chartNode(defaults: ValuesLayer | ValuesLayer[] | undefined): MapNode | undefined {
  const layers = defaults === undefined ? [] : Array.isArray(defaults) ? defaults : [defaults];
  let node: MapNode | undefined;
  for (const layer of layers) {
    const next = fromJS(layer.values, layer.source);
    if (next.kind !== 'map') continue;
    if (!node) node = next;
    else coalesceTables(node, next, [], []);
  }
  return node;
}

function mapAt(root: MapNode, path: string[]): MapNode | undefined {
  let node: Node | undefined = root;
  for (const key of path) {
    if (node?.kind !== 'map') return undefined;
    node = node.entries.get(key);
  }
  return node?.kind === 'map' ? node : undefined;
}

const IDENTITY: Source = { file: 'cluster identity', layer: 'identity', secret: false };

function setPath(root: MapNode, path: string[], value: Node): void {
  let node = root;
  for (const key of path.slice(0, -1)) {
    let next = node.entries.get(key);
    if (next?.kind !== 'map') {
      next = { kind: 'map', entries: new Map(), source: value.source };
      node.entries.set(key, next);
    }
    node = next;
  }
  node.entries.set(path[path.length - 1]!, value);
}

/** `a.b.c`, quoting keys that hold dots or spaces: `a["b.c"]`. */
export function formatPath(path: string[]): string {
  return path
    .map((k, i) => (/^[A-Za-z0-9_-]+$/.test(k) ? (i === 0 ? k : `.${k}`) : `[${JSON.stringify(k)}]`))
    .join('');
}

/** Reads the value at `path`, or undefined. */
export function getPath(values: unknown, path: string[]): unknown {
  let cur = values;
  for (const k of path) {
    if (!isPlainMap(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}
