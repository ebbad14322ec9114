// A Helm repository's index.yaml, read for the few charts a cluster uses. Public indexes run
// to several MB (bitnami's is ~8 MB) and parsing one whole costs hundreds of MB, so the
// entries of the wanted charts are cut out of the text first (`helm repo index` writes one
// block per chart under `entries:`) and only those are parsed. An index in another shape
// (JSON, flow style) is parsed whole.
import { parse } from 'yaml';
import { isPlainMap } from '../model/schema.js';

export interface IndexEntry {
  name: string;
  version: string;
  /** `sha256` hex of the archive, as the index lists it (helm repo index always writes it). */
  digest?: string;
  urls: string[];
}

/** The entries of `names` in the index text; a name absent from the index maps to []. */
export function indexEntries(text: string, names: readonly string[]): Map<string, IndexEntry[]> {
  const blocks = cutBlocks(text, names);
  const raw: Record<string, unknown> = {};
  if (blocks) {
    for (const [name, block] of blocks) raw[name] = block === undefined ? [] : parse(block, { version: '1.1' });
  } else {
    const doc = parse(text, { version: '1.1' }) as unknown;
    const entries = isPlainMap(doc) && isPlainMap(doc.entries) ? doc.entries : {};
    for (const name of names) raw[name] = entries[name] ?? [];
  }
  const out = new Map<string, IndexEntry[]>();
  for (const name of names) out.set(name, toEntries(name, raw[name]));
  return out;
}

function toEntries(name: string, value: unknown): IndexEntry[] {
  if (!Array.isArray(value)) return [];
  const out: IndexEntry[] = [];
  for (const v of value) {
    if (!isPlainMap(v) || v.version === undefined || v.version === null) continue;
    const urls = Array.isArray(v.urls) ? v.urls.filter((u): u is string => typeof u === 'string') : [];
    const digest = typeof v.digest === 'string' ? v.digest.replace(/^sha256:/, '').toLowerCase() : undefined;
    out.push({ name, version: String(v.version), urls, ...(digest ? { digest } : {}) });
  }
  return out;
}

/**
 * The text of each wanted chart's list under the top-level `entries:` key, or undefined when
 * the index is not laid out one key per line (then the caller parses it whole).
 */
function cutBlocks(text: string, names: readonly string[]): Map<string, string | undefined> | undefined {
  const start = /^entries:[ \t]*\r?\n/m.exec(text);
  if (!start) return undefined;
  const wanted = new Set(names);
  const out = new Map<string, string | undefined>(names.map((n) => [n, undefined]));
  let pos = start.index + start[0].length;
  let indent: string | undefined;
  let current: { name: string; from: number } | undefined;
  const finish = (end: number) => {
    if (current && wanted.has(current.name)) out.set(current.name, dedent(text.slice(current.from, end), indent!));
    current = undefined;
  };
  while (pos < text.length) {
    const eol = text.indexOf('\n', pos);
    const end = eol === -1 ? text.length : eol + 1;
    const line = text.slice(pos, end);
    if (line.trim() === '' || line.trimStart().startsWith('#')) {
      pos = end;
      continue;
    }
    const lead = /^[ \t]*/.exec(line)![0];
    if (lead === '') {
      finish(pos); // the next top-level key: entries are over
      return out;
    }
    indent ??= lead;
    if (lead === indent && !line.slice(lead.length).startsWith('-')) {
      const key = /^[ \t]*("(?:[^"\\]|\\.)*"|'[^']*'|[^:'"\s][^:]*?):[ \t]*(\S.*)?\r?\n?$/.exec(line);
      if (!key || (key[2] !== undefined && !key[2].startsWith('#'))) return undefined; // flow style
      finish(pos);
      const name = unquote(key[1]!);
      current = { name, from: end };
    }
    pos = end;
  }
  finish(text.length);
  return out;
}

function unquote(key: string): string {
  if (key.startsWith('"')) return JSON.parse(key) as string;
  if (key.startsWith("'")) return key.slice(1, -1);
  return key;
}

function dedent(block: string, indent: string): string {
  return block
    .split('\n')
    .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l))
    .join('\n');
}
