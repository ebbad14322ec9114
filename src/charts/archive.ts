// What mooring reads inside a chart archive (.tgz): the tar reader, and the chart it holds
// (chart-tree.ts: Chart.yaml, values, subcharts, CRDs). Read for `plan`, `explain` and the
// CRDs; helm itself gets the archive.
import { gunzipSync } from 'node:zlib';
import { MooringError } from '../errors.js';
import { loadChartTree, type ChartTree } from './chart-tree.js';

/** Unpacked archives larger than this are refused (a gzip bomb must not eat the agent). */
const MAX_UNPACKED = 200 * 1024 * 1024;

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

/** The chart in an archive, its subcharts and CRDs included (see chart-tree.ts). */
export function chartTreeFromArchive(tgz: Buffer, what: string): ChartTree {
  const files = gunzipTar(tgz, what);
  const top = [...files.keys()].find((p) => /^[^/]+\/Chart\.yaml$/.test(p));
  if (!top) throw new MooringError(`${what} holds no Chart.yaml`);
  return loadChartTree(files, top.slice(0, -'/Chart.yaml'.length), {
    name: (_path, label, parent) => (parent ? `values.yaml of ${label} (subchart of ${parent})` : `values.yaml of ${label}`),
    unpack: gunzipTar,
    where: `${what}.tgz`,
  });
}
