// YAML read exactly as helm reads it, bounded, for every file that comes from Git (values,
// releases.yaml, cluster.yaml) and for rendered manifests.
//
// helm reads values with sigs.k8s.io/yaml: go-yaml v2 decodes the file into Go values and
// the result goes through JSON. So the rules are go-yaml v2's plain-scalar resolution (a
// YAML 1.1 subset: `y`/`on`/`off` are booleans, `0777` is octal, `0x1F`, `1_000`, `~`,
// `.inf`), not YAML 1.1 itself: there is no base 60 (`12:30` is a string), an exponent needs
// digits before it (`e2`, `.`, `-e2` are strings), timestamps stay the text they were
// written as, and keys become strings the way the JSON step writes them (`on:` is the key
// `"true"`, `1.0:` the key `"1"`). A NaN or an infinity is refused, as helm refuses it.
//
// The `yaml` package only parses here (with the failsafe schema, so every scalar stays
// text); resolution is ours, written from go-yaml v2's documented behaviour and checked by
// a differential test against `helm template` (test/integration/yaml-vs-helm.test.ts,
// corpus in test/fixtures/yaml-corpus/).
//
// Everything from Git is untrusted: the file size is bounded, and so is the size of what
// it expands to through aliases, computed before anything is expanded.
import {
  CST,
  isAlias,
  Lexer,
  isMap,
  isScalar,
  isSeq,
  parseAllDocuments,
  Scalar,
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type ScalarTag,
} from 'yaml';
import { MooringError } from '../errors.js';
import { goFormatG } from './go-number.js';

export interface YamlLimits {
  /** Largest accepted file, in bytes. */
  maxBytes: number;
  /**
   * Largest size after alias expansion: one per node plus the characters of every scalar,
   * counted once per time an alias repeats it. A file without aliases is about its own size.
   */
  maxExpandedSize: number;
  /**
   * Most nodes (scalars, aliases, flow collections) in the file, counted by the lexer before
   * the parser builds anything: the parser needs about 2 KB of memory per node.
   */
  maxNodes: number;
}

export const DEFAULT_YAML_LIMITS: YamlLimits = {
  maxBytes: 1024 * 1024,
  maxExpandedSize: 4 * 1024 * 1024,
  maxNodes: 100_000,
};

export interface YamlReadOptions {
  limits?: YamlLimits;
  /**
   * Files people write refuse a key given twice in one map (helm would silently keep the
   * last). Rendered manifests keep the last, as helm and kubectl do.
   */
  duplicateKeys?: 'refuse' | 'last';
}

// Explicit standard tags are parsed as text and resolved by us, never by the `yaml` package.
const PASSTHROUGH_TAGS: ScalarTag[] = ['int', 'float', 'bool', 'null', 'binary', 'timestamp', 'merge'].map(
  (name) => ({ tag: `tag:yaml.org,2002:${name}`, default: false, resolve: (text: string) => text }),
);

const OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  schema: 'failsafe',
  customTags: PASSTHROUGH_TAGS,
  uniqueKeys: false,
  merge: false,
  prettyErrors: true,
  // The raw text of double-quoted scalars, to refuse the escapes go-yaml refuses.
  keepSourceTokens: true,
};

/** Decodes file bytes as UTF-8, refusing what helm refuses (it never guesses a replacement). */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const line = bytes.subarray(0, offset).filter((b) => b === 0x0a).length + 1;
    const byte = (bytes[offset] ?? 0).toString(16).padStart(2, '0');
    throw new MooringError(
      `is not valid UTF-8 (byte 0x${byte} on line ${line}, offset ${offset}); helm refuses such a file`,
      { file },
    );
  }
}

/**
 * Parses one YAML document as helm would read it. An empty file is `null`. Errors name the
 * file and, where known, the field or the line.
 */
export function parseYaml(
  input: string | Uint8Array,
  file: string,
  limitsOrOptions: YamlLimits | YamlReadOptions = {},
): unknown {
  const options = 'maxBytes' in limitsOrOptions ? { limits: limitsOrOptions } : limitsOrOptions;
  const docs = parseDocuments(input, file, options);
  if (docs.length > 1) {
    throw new MooringError(`holds ${docs.length} YAML documents; exactly one is allowed`, { file });
  }
  return docs[0] ?? null;
}

/**
 * Parses a multi-document YAML stream (a rendered manifest) as helm reads each document:
 * one value per document, `null` for an empty one. Duplicate keys keep the last.
 */
export function parseYamlDocuments(
  input: string | Uint8Array,
  file: string,
  options: YamlReadOptions = {},
): unknown[] {
  return parseDocuments(input, file, { duplicateKeys: 'last', ...options });
}

function parseDocuments(input: string | Uint8Array, file: string, options: YamlReadOptions): unknown[] {
  const limits = options.limits ?? DEFAULT_YAML_LIMITS;
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > limits.maxBytes) {
    throw new MooringError(`file is ${size} bytes, over the limit of ${limits.maxBytes} bytes`, { file });
  }
  let text = typeof input === 'string' ? input : decodeUtf8(input, file);
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  refuseControlCharacters(text, file);
  refuseTooManyNodes(text, file, limits.maxNodes);

  let docs;
  try {
    docs = parseAllDocuments(text, OPTIONS);
  } catch (err) {
    throw new MooringError(`invalid YAML: ${firstLine((err as Error).message)}`, { file });
  }
  if (!Array.isArray(docs)) docs = [docs];
  for (const doc of docs) {
    const problem = doc.errors[0];
    if (problem !== undefined) {
      const message = firstLine(problem.message).replace(/:\s*$/, '');
      throw new MooringError(
        `invalid YAML: ${message}${/line \d+/.test(message) ? '' : at(problem.linePos?.[0])}`,
        { file },
      );
    }
  }
  const reader = new Reader(file, options.duplicateKeys ?? 'refuse');
  // Every document is measured before any is expanded: the bound holds for the whole file.
  let expanded = 0;
  for (const doc of docs) {
    expanded += reader.measure(doc, limits.maxExpandedSize - expanded);
  }
  return docs.map((doc) => reader.read(doc));
}

// ---------------------------------------------------------------------------------------
// Plain scalars, as go-yaml v2 resolves them.

type Resolved =
  | { kind: 'null' }
  | { kind: 'bool'; value: boolean }
  | { kind: 'int'; value: bigint }
  | { kind: 'float'; value: number }
  | { kind: 'str'; value: string }
  | { kind: 'timestamp'; value: string };

const WORDS = new Map<string, Resolved>();
for (const [value, words] of [
  [true, ['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON']],
  [false, ['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF']],
] as const) {
  for (const word of words) WORDS.set(word, { kind: 'bool', value });
}
for (const word of ['', '~', 'null', 'Null', 'NULL']) WORDS.set(word, { kind: 'null' });
for (const word of ['.nan', '.NaN', '.NAN']) WORDS.set(word, { kind: 'float', value: NaN });
for (const word of ['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF']) {
  WORDS.set(word, { kind: 'float', value: Infinity });
}
for (const word of ['-.inf', '-.Inf', '-.INF']) WORDS.set(word, { kind: 'float', value: -Infinity });

/** go-yaml only tries to resolve a plain scalar whose first character hints it may not be a string. */
function hint(text: string): 'word' | 'dot' | 'number' | undefined {
  const c = text[0];
  if (c === undefined || 'yYnNtTfFoO~'.includes(c)) return 'word';
  if (c === '.') return 'dot';
  if (c === '+' || c === '-' || (c >= '0' && c <= '9')) return 'number';
  return undefined;
}

const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** Go's strconv.ParseInt/ParseUint with base 0 (0x, 0o, 0b, a leading 0 for octal). */
function goParseInteger(text: string, signed: boolean): bigint | undefined {
  let s = text;
  let negative = false;
  if (signed && (s.startsWith('+') || s.startsWith('-'))) {
    negative = s.startsWith('-');
    s = s.slice(1);
  }
  let digits: RegExp;
  let prefix: string;
  if (s.length >= 3 && s[0] === '0' && 'xX'.includes(s[1]!))
    [digits, prefix, s] = [/^[0-9a-fA-F]+$/, '0x', s.slice(2)];
  else if (s.length >= 3 && s[0] === '0' && 'oO'.includes(s[1]!))
    [digits, prefix, s] = [/^[0-7]+$/, '0o', s.slice(2)];
  else if (s.length >= 3 && s[0] === '0' && 'bB'.includes(s[1]!))
    [digits, prefix, s] = [/^[01]+$/, '0b', s.slice(2)];
  else if (s.length >= 1 && s[0] === '0') [digits, prefix, s] = [/^[0-7]*$/, '0o', s.slice(1) || '0'];
  else [digits, prefix] = [/^[0-9]+$/, ''];
  if (!digits.test(s)) return undefined;
  const magnitude = BigInt(`${prefix}${s}`);
  const value = negative ? -magnitude : magnitude;
  if (signed ? value < INT64_MIN || value > INT64_MAX : value > UINT64_MAX) return undefined;
  return value;
}

/** Go's rule for underscores in a number: only between digits. */
function underscoresOk(text: string): boolean {
  let saw = '^';
  for (const c of text) {
    if (c >= '0' && c <= '9') saw = '0';
    else if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
    } else {
      if (saw === '_') return false;
      saw = '!';
    }
  }
  return saw !== '_';
}

function finiteFloat(text: string): number | undefined {
  const value = Number(text);
  // Go's ParseFloat reports overflow as an error (go-yaml then keeps the text); underflow is 0.
  return Number.isFinite(value) ? value : undefined;
}

const TIMESTAMP =
  /^(\d{4})-(\d{1,2})-(\d{1,2})(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?))?$/;

/** The formats go-yaml v2 accepts as a timestamp (through Go's time.Parse). */
function isTimestamp(text: string): boolean {
  const m = TIMESTAMP.exec(text);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate())
    return false;
  const hour = Number(m[4] ?? m[7] ?? 0);
  const minute = Number(m[5] ?? m[8] ?? 0);
  const second = Number(m[6] ?? m[9] ?? 0);
  return hour < 24 && minute < 60 && second < 60;
}

/** What a plain (untagged, unquoted) scalar means to go-yaml v2. */
function resolvePlain(text: string): Resolved {
  const h = hint(text);
  if (h === undefined) return { kind: 'str', value: text };
  const word = WORDS.get(text);
  if (word !== undefined) return word;
  if (h === 'dot') {
    if (underscoresOk(text)) {
      const plain = text.replaceAll('_', '');
      if (/^\.[0-9]+([eE][-+]?[0-9]+)?$/.test(plain)) {
        const value = finiteFloat(plain);
        if (value !== undefined) return { kind: 'float', value };
      }
    }
  } else if (h === 'number') {
    if (isTimestamp(text)) return { kind: 'timestamp', value: text };
    const plain = text.replaceAll('_', '');
    const int = goParseInteger(plain, true) ?? goParseInteger(plain, false);
    if (int !== undefined) return { kind: 'int', value: int };
    if (YAML_STYLE_FLOAT.test(plain)) {
      const value = finiteFloat(plain);
      if (value !== undefined) return { kind: 'float', value };
    }
  }
  return { kind: 'str', value: text };
}

const SHORT_TAG_PREFIX = 'tag:yaml.org,2002:';
const RESOLVABLE = new Set(['', '!!str', '!!bool', '!!int', '!!float', '!!timestamp', '!!null']);

function shortTag(tag: string | undefined): string {
  if (!tag) return '';
  return tag.startsWith(SHORT_TAG_PREFIX) ? `!!${tag.slice(SHORT_TAG_PREFIX.length)}` : tag;
}

// ---------------------------------------------------------------------------------------
// Documents, as go-yaml v2 decodes them into interface{} and sigs.k8s.io/yaml into JSON.

type Node = NonNullable<Document['contents']>;

class Reader {
  /** What each alias of the current document refers to: the latest anchor of its name before it. */
  private targets = new Map<unknown, unknown>();
  private readonly sizes = new Map<unknown, number>();

  constructor(
    private readonly file: string,
    private readonly duplicateKeys: 'refuse' | 'last',
  ) {}

  /** The expanded size of a document, without expanding it; throws past `budget`. */
  measure(doc: Document, budget: number): number {
    this.link(doc);
    const visiting = new Set<unknown>();
    const size = (node: unknown): number => {
      if (node === null || node === undefined) return 1;
      if (isAlias(node)) {
        const target = this.target(node);
        if (target === undefined) throw this.error(`unknown anchor '${node.source}' referenced`);
        if (visiting.has(target)) throw this.error(`anchor '${node.source}' value contains itself`);
        return size(target);
      }
      const known = this.sizes.get(node);
      if (known !== undefined) return known;
      let total = 1;
      if (isScalar(node)) total += String(node.source ?? node.value ?? '').length;
      else if (isMap(node) || isSeq(node)) {
        visiting.add(node);
        for (const item of node.items as unknown[]) {
          if (isMap(node)) {
            const pair = item as { key: unknown; value: unknown };
            total += size(pair.key) + size(pair.value);
          } else total += size(item);
          if (total > budget) break;
        }
        visiting.delete(node);
      }
      if (total > budget) {
        throw this.error(
          `expands to more than ${budget} (nodes plus characters) through its aliases; the limit guards the agent's memory`,
        );
      }
      this.sizes.set(node, total);
      return total;
    };
    try {
      return size(doc.contents);
    } catch (err) {
      if (err instanceof RangeError) throw this.error('is nested too deeply');
      throw err;
    }
  }

  read(doc: Document): unknown {
    this.link(doc);
    try {
      return this.value(doc.contents, []);
    } catch (err) {
      if (err instanceof RangeError) throw this.error('is nested too deeply');
      throw err;
    }
  }

  /**
   * Finds every alias's anchor in one pass in document order (the `yaml` package's own
   * lookup walks the whole document for each alias, which a file of many aliases abuses).
   */
  private link(doc: Document): void {
    this.targets = new Map();
    const anchors = new Map<string, unknown>();
    const visit = (node: unknown): void => {
      if (isAlias(node)) {
        this.targets.set(node, anchors.get(node.source));
        return;
      }
      if (isScalar(node) || isMap(node) || isSeq(node)) {
        if (node.anchor) anchors.set(node.anchor, node);
        if (isMap(node)) {
          for (const pair of node.items as { key: unknown; value: unknown }[]) {
            visit(pair.key);
            visit(pair.value);
          }
        } else if (isSeq(node)) {
          for (const item of node.items) visit(item);
        }
      }
    };
    visit(doc.contents);
  }

  private target(alias: unknown): unknown {
    return this.targets.get(alias);
  }

  private value(node: unknown, path: readonly (string | number)[]): unknown {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) return this.value(this.target(node), path);
    if (isScalar(node)) return this.scalarValue(node, path);
    if (isSeq(node)) return node.items.map((item, i) => this.value(item, [...path, i]));
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      this.fill(out, node, path, true);
      return out;
    }
    throw this.error('holds a YAML node mooring cannot read', path);
  }

  /** Sets the pairs of a mapping into `out`, in document order, with merge keys where they stand. */
  private fill(
    out: Record<string, unknown>,
    node: Node,
    path: readonly (string | number)[],
    own: boolean,
  ): void {
    if (!isMap(node)) throw this.error('map merge requires a map or a sequence of maps as the value', path);
    const seen = new Set<string>();
    for (const pair of node.items as { key: unknown; value: unknown }[]) {
      if (this.isMergeKey(pair.key)) {
        this.merge(out, pair.value, path);
        continue;
      }
      const key = this.key(pair.key, path);
      if (own && this.duplicateKeys === 'refuse' && seen.has(key)) {
        throw this.error(`the key ${JSON.stringify(key)} is given twice in this map; keys must be unique`, [
          ...path,
          key,
        ]);
      }
      seen.add(key);
      const value = this.value(pair.value, [...path, key]);
      if (key === '__proto__') {
        Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      } else out[key] = value;
    }
  }

  private merge(out: Record<string, unknown>, value: unknown, path: readonly (string | number)[]): void {
    const target = isAlias(value) ? this.target(value) : value;
    if (isSeq(target) && !isAlias(value)) {
      // Earlier maps win: go-yaml merges the list from its last item to its first.
      for (const item of [...target.items].reverse()) {
        const map = isAlias(item) ? this.target(item) : item;
        this.fill(out, map as Node, path, false);
      }
      return;
    }
    this.fill(out, target as Node, path, false);
  }

  private isMergeKey(key: unknown): boolean {
    if (!isScalar(key) || key.source !== '<<') return false;
    const tag = shortTag(key.tag);
    return (key.type === Scalar.PLAIN && tag === '') || tag === '!!merge';
  }

  /** A map key as sigs.k8s.io/yaml writes it into JSON. */
  private key(node: unknown, path: readonly (string | number)[]): string {
    const target = isAlias(node) ? this.target(node) : node;
    if (target === null || target === undefined)
      throw this.error('a map key is empty (null); helm refuses it', path);
    if (!isScalar(target)) throw this.error('a map key is a list or a map; helm refuses it', path);
    const r = this.resolve(target, path);
    switch (r.kind) {
      case 'str':
      case 'timestamp':
        return r.value;
      case 'bool':
        return String(r.value);
      case 'null':
        throw this.error(`the map key ${JSON.stringify(target.source)} is null; helm refuses it`, path);
      case 'int':
        if (r.value > INT64_MAX) {
          throw this.error(
            `the map key ${String(target.source)} is too large for helm (it refuses the file)`,
            path,
          );
        }
        return r.value.toString();
      case 'float':
        if (Number.isNaN(r.value)) return '.nan';
        if (r.value === Infinity) return '.inf';
        if (r.value === -Infinity) return '-.inf';
        return goFormatG(r.value, 32);
    }
  }

  private scalarValue(node: Scalar, path: readonly (string | number)[]): unknown {
    const r = this.resolve(node, path);
    switch (r.kind) {
      case 'null':
        return null;
      case 'int':
        return Number(r.value);
      case 'float':
        if (!Number.isFinite(r.value)) {
          throw this.error(
            `${String(node.source)} is not a number helm can read (helm fails with "json: unsupported value: ${goFormatG(r.value)}"); quote it to mean the text`,
            path,
          );
        }
        return r.value;
      default:
        return r.value;
    }
  }

  /** go-yaml v2's resolve(): a plain scalar by its text, any scalar by its explicit tag. */
  private resolve(node: Scalar, path: readonly (string | number)[]): Resolved {
    const text = String(node.source ?? node.value ?? '');
    if (node.type === Scalar.QUOTE_DOUBLE) this.checkEscapes(node, path);
    const tag = shortTag(node.tag);
    if (tag === '' && node.type !== Scalar.PLAIN) return { kind: 'str', value: text };
    if (tag === '!!binary') return { kind: 'str', value: this.binary(text, path) };
    if (!RESOLVABLE.has(tag)) return { kind: 'str', value: text };
    if (tag === '!!str') return { kind: 'str', value: text };
    const r = resolvePlain(text);
    if (tag === '' || `!!${r.kind}` === tag) return r;
    if (tag === '!!float' && r.kind === 'int') return { kind: 'float', value: Number(r.value) };
    throw this.error(`cannot decode !!${r.kind} \`${text}\` as a ${tag}`, path);
  }

  /** go-yaml refuses `\\u` escapes of surrogates (even paired) and beyond U+10FFFF. */
  private checkEscapes(node: Scalar, path: readonly (string | number)[]): void {
    const raw = node.srcToken && 'source' in node.srcToken ? node.srcToken.source : '';
    for (const m of raw.matchAll(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/gs)) {
      const escape = m[1]!;
      if (escape.length === 1) continue;
      const code = parseInt(escape.slice(1), 16);
      if ((code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) {
        throw this.error(`found invalid Unicode character escape code \\${escape}; helm refuses it`, path);
      }
    }
  }

  private binary(text: string, path: readonly (string | number)[]): string {
    const compact = text.replace(/[\r\n]/g, '');
    if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
      throw this.error('!!binary value contains invalid base64 data', path);
    }
    return new TextDecoder('utf-8').decode(Buffer.from(compact, 'base64'));
  }

  private error(message: string, path: readonly (string | number)[] = []): MooringError {
    return new MooringError(message, {
      file: this.file,
      ...(path.length > 0 ? { field: fieldPath(path) } : {}),
    });
  }
}

function fieldPath(path: readonly (string | number)[]): string {
  return path
    .map((p, i) =>
      typeof p === 'number'
        ? `[${p}]`
        : /^[A-Za-z0-9_-]+$/.test(p)
          ? `${i ? '.' : ''}${p}`
          : `[${JSON.stringify(p)}]`,
    )
    .join('');
}

// go-yaml accepts only printable characters in the stream (escapes may still make others).
const NOT_PRINTABLE = /[^\t\n\r\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

function refuseControlCharacters(text: string, file: string): void {
  const m = NOT_PRINTABLE.exec(text);
  if (!m) return;
  const before = text.slice(0, m.index);
  const line = before.split('\n').length;
  const column = m.index - before.lastIndexOf('\n');
  const code = m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  throw new MooringError(
    `invalid YAML: control character U+${code} at line ${line}, column ${column}; helm refuses it (write it as an escape in a double-quoted string)`,
    { file },
  );
}

const NODE_TOKENS = new Set([
  'scalar',
  'single-quoted-scalar',
  'double-quoted-scalar',
  'alias',
  'flow-map-start',
  'flow-seq-start',
]);

function refuseTooManyNodes(text: string, file: string, maxNodes: number): void {
  let nodes = 0;
  for (const token of new Lexer().lex(text)) {
    const type = CST.tokenType(token);
    if (type !== null && NODE_TOKENS.has(type) && ++nodes > maxNodes) {
      throw new MooringError(`holds more than ${maxNodes} YAML nodes; the limit guards the agent's memory`, {
        file,
      });
    }
  }
}

function firstInvalidUtf8(bytes: Uint8Array): number {
  const decodes = (end: number, stream: boolean): boolean => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, end), { stream });
      return true;
    } catch {
      return false;
    }
  };
  // Bisect for the longest prefix that decodes when a sequence cut at its end is allowed.
  let lo = 0;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    if (decodes(mid, true)) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0 || decodes(lo, false)) return Math.min(lo, bytes.length - 1);
  // The prefix ends inside a multi-byte sequence that never completes: point at its first byte.
  let start = lo;
  while (start > 0 && (bytes[start - 1]! & 0xc0) === 0x80) start--;
  return Math.max(start - 1, 0);
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

function at(pos: { line: number; col: number } | undefined): string {
  return pos ? ` (line ${pos.line}, column ${pos.col})` : '';
}
