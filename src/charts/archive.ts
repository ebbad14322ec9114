// What mooring reads inside a chart archive (.tgz): its Chart.yaml and its default values,
// with its subcharts' defaults (vendored as folders or archives under charts/) nested under
// each subchart's name or alias, as helm coalesces them. Read for `plan` and `explain`;
// helm itself gets the archive.
import { gunzipSync } from 'node:zlib';
import { MooringError } from '../errors.js';
import { isPlainMap } from '../model/schema.js';
import { parseYaml } from '../model/yaml.js';
import type { Values, ValuesLayer } from '../resolve/merge.js';

/** Unpacked archives larger than this are refused (a gzip bomb must not eat the agent). */
const MAX_UNPACKED = 200 * 1024 * 1024;
// Charts from repositories are bigger than values files in Git (kube-prometheus-stack's values.yaml).
const YAML_LIMITS = { maxBytes: 16 * 1024 * 1024, maxExpandedSize: 64 * 1024 * 1024, maxNodes: 2_000_000 };

/** The regular files of a tar archive, by path. */
export function untar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let pos = 0;
  let longName: string | undefined;
  let paxPath: string | undefined;
  while (pos + 512 <= tar.length) {
    const header = tar.subarray(pos, pos + 512);
    if (header.every((b) => b === 0)) break;
    const field = (from: number, len: number) => header.subarray(from, from + len).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156]!);
    const magic = field(257, 6);
    const prefix = magic.startsWith('ustar') ? field(345, 155) : '';
    const data = tar.subarray(pos + 512, pos + 512 + size);
    pos += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = data.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (type === 'x') {
      paxPath = paxRecords(data).path;
      continue;
    }
    if (type === 'g') continue;
    const name = paxPath ?? longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    paxPath = undefined;
    longName = undefined;
    if (type === '0' || type === '\0' || type === '7') files.set(name.replace(/^\.\//, ''), Buffer.from(data));
  }
  return files;
}

function paxRecords(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let text = data.toString('utf8');
  while (text.length > 0) {
    const m = /^(\d+) /.exec(text);
    if (!m) break;
    const len = Number(m[1]);
    const record = text.slice(m[0].length, len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    text = text.slice(len);
  }
  return out;
}

export function gunzipTar(tgz: Buffer, what: string): Map<string, Buffer> {
  try {
    return untar(gunzipSync(tgz, { maxOutputLength: MAX_UNPACKED }));
  } catch (err) {
    throw new MooringError(`${what} is not a readable chart archive: ${(err as Error).message}`);
  }
}

export interface ChartMeta {
  name: string;
  version: string;
}

/** The chart's defaults as values layers: its own values.yaml first, then each subchart's, nested. */
export function chartDefaultsFromArchive(tgz: Buffer, what: string): { meta: ChartMeta; layers: ValuesLayer[] } {
  const files = gunzipTar(tgz, what);
  const top = [...files.keys()].find((p) => /^[^/]+\/Chart\.yaml$/.test(p));
  if (!top) throw new MooringError(`${what} holds no Chart.yaml`);
  return chartDefaults(files, top.slice(0, -'/Chart.yaml'.length), [], (_path, label, parent) =>
    parent ? `values.yaml of ${label} (subchart of ${parent})` : `values.yaml of ${label}`,
  );
}

/**
 * Names the file a layer came from: `path` is the values.yaml's path in `files`, `label`
 * the chart's `<name>-<version>`, `parent` the top chart's label (undefined for the top chart),
 * `archive` the path of the subchart archive it was read from, if any.
 */
export type LayerName = (path: string, label: string, parent: string | undefined, archive?: string) => string;

/** The defaults of the chart in folder `dir` of `files` (a chart folder read from disk, or an archive). */
export function chartDefaults(
  files: Map<string, Buffer>,
  dir: string,
  at: string[],
  name: LayerName,
  parent?: string,
  archive?: string,
): { meta: ChartMeta; layers: ValuesLayer[] } {
  const chartYaml = readMap(files, `${dir}/Chart.yaml`);
  const meta = { name: String(chartYaml.name ?? dir.split('/').pop()), version: String(chartYaml.version ?? '') };
  const label = `${meta.name}-${meta.version}`;
  const file = name(`${dir}/values.yaml`, label, parent, archive);
  const layers: ValuesLayer[] = [
    { source: { file, layer: 'chart', secret: false }, values: nest(at, readMap(files, `${dir}/values.yaml`)) },
  ];
  const aliases = new Map<string, string>();
  if (Array.isArray(chartYaml.dependencies)) {
    for (const d of chartYaml.dependencies) {
      if (isPlainMap(d) && typeof d.name === 'string' && typeof d.alias === 'string') aliases.set(d.name, d.alias);
    }
  }
  const subs: Array<{ files: Map<string, Buffer>; dir: string; archive?: string }> = [];
  const folder = new RegExp(`^${escape(dir)}/charts/([^/]+)/Chart\\.yaml$`);
  const packed = new RegExp(`^${escape(dir)}/charts/[^/]+\\.tgz$`);
  for (const path of [...files.keys()].sort()) {
    const m = folder.exec(path);
    if (m) subs.push({ files, dir: `${dir}/charts/${m[1]}` });
    else if (packed.test(path)) {
      const inner = gunzipTar(files.get(path)!, path);
      const innerTop = [...inner.keys()].find((p) => /^[^/]+\/Chart\.yaml$/.test(p));
      if (innerTop) subs.push({ files: inner, dir: innerTop.slice(0, -'/Chart.yaml'.length), archive: path });
    }
  }
  for (const sub of subs) {
    const subName = String(readMap(sub.files, `${sub.dir}/Chart.yaml`).name ?? sub.dir.split('/').pop());
    const key = aliases.get(subName) ?? subName;
    layers.push(...chartDefaults(sub.files, sub.dir, [...at, key], name, parent ?? label, sub.archive ?? archive).layers);
  }
  return { meta, layers };
}

function readMap(files: Map<string, Buffer>, path: string): Values {
  const data = files.get(path);
  if (!data) return {};
  const doc = parseYaml(data.toString('utf8'), path, YAML_LIMITS);
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
