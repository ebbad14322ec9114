// Opens SOPS files (YAML, age) and verifies their MAC, so that a secrets file changed after
// it was encrypted is refused instead of deployed.
//
// A SOPS file keeps its keys in clear text and encrypts each value with one data key
// (AES-256-GCM, the value's key path as additional data); the data key is encrypted for
// each age recipient under `sops.age`. The MAC is SHA-512 over every value's plaintext in
// document order (nulls and comments skipped; only encrypted values when
// `mac_only_encrypted`), encrypted with the data key and `lastmodified` as additional data.
// The sops-age package decrypts values but never checks that MAC, ignores the file's
// encryption rules and leaves digit-only keys out of a value's additional data, so mooring
// opens the file itself: age-encryption (what sops-age uses) opens the data key, node:crypto
// the values; the tests check mooring and sops-age agree on files the real sops wrote.
//
// Nothing decrypted ever enters an error message: errors name the file, the field path
// and what is wrong with it.
import { createDecipheriv, createHash, timingSafeEqual } from 'node:crypto';
import { RE2JS } from 're2js';
import { isAlias, isMap, isScalar, isSeq, parseAllDocuments, YAMLMap, type Scalar } from 'yaml';
import { MooringError } from '../errors.js';
import { isPlainMap } from '../model/schema.js';
import { AgeKeys, type AgeIdentity } from './age-key.js';
import {
  formatGoFloat,
  normaliseRfc3339,
  parseGoBool,
  parseGoDecimalInt,
  parseGoFloat,
  plainValue,
  resolvePlainScalar,
  sopsMacBytes,
  type SopsScalar,
} from './sops-scalars.js';

/** A decrypted SOPS file: its document without the `sops` metadata key. */
export type SopsDocument = Record<string, unknown>;

/** The one rule (sops allows one per file) that says which values sops encrypted. */
export type SopsCryptRule =
  | { readonly kind: 'unencrypted_suffix'; readonly suffix: string }
  | { readonly kind: 'encrypted_suffix'; readonly suffix: string }
  | { readonly kind: 'unencrypted_regex'; readonly regex: GoRegex }
  | { readonly kind: 'encrypted_regex'; readonly regex: GoRegex };

/**
 * A Go regular expression (RE2 syntax), evaluated by re2js, a port of RE2, as Go's regexp
 * package would: `(?i)` anywhere, `\x{e9}`, `[[:upper:]]`, `\pL`, `.` as one code point.
 * sops ignores the error of an expression Go cannot compile (its regexp.Match returns
 * false), so an invalid one matches no key, here too.
 */
export class GoRegex {
  readonly source: string;
  /** False when Go would refuse the expression (then it matches nothing, as in sops). */
  readonly valid: boolean;
  readonly #re: RE2JS | undefined;

  constructor(source: string) {
    this.source = source;
    let re: RE2JS | undefined;
    try {
      re = RE2JS.compile(source);
    } catch {
      re = undefined;
    }
    this.#re = re;
    this.valid = re !== undefined;
  }

  /** Go's regexp.MatchString: does the expression match anywhere in `text` (as UTF-8)? */
  test(text: string): boolean {
    return this.#re?.test(Buffer.from(text, 'utf8')) ?? false;
  }
}

/** What mooring reads from a file's `sops` key. */
export interface SopsMetadata {
  /** The age recipients the data key was encrypted for, with the armored age file for each. */
  readonly age: readonly { readonly recipient: string; readonly enc: string }[];
  /** `lastmodified` as written (the MAC's additional data is its normalised form). */
  readonly lastModified: string;
  /** The encrypted MAC, `ENC[AES256_GCM,...,type:str]`. */
  readonly mac: string;
  readonly macOnlyEncrypted: boolean;
  readonly rule: SopsCryptRule;
}

/** One value as it feeds the MAC: the bytes sops hashes, and whether it was encrypted. */
export interface MacLeaf {
  readonly bytes: string | Uint8Array;
  readonly encrypted: boolean;
}

/** The parts of an `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]` value. */
export interface SopsEncryptedValue {
  readonly data: Buffer;
  readonly iv: Buffer;
  readonly tag: Buffer;
  readonly type: string;
}

export interface DecryptSopsOptions {
  /** Largest accepted file, in bytes (encryption roughly triples a file's size). */
  maxBytes?: number;
  /**
   * With a plain list of identities: what went wrong loading age keys. Like sops, mooring
   * decrypts with whatever keys did load, and names these only when no key opens a file.
   */
  keyProblems?: readonly string[];
}

/** Builds the errors of one file: every one names the file, most the field. */
type Fail = (message: string, field?: string, hint?: string) => MooringError;

function failIn(file: string): Fail {
  return (message, field, hint) =>
    new MooringError(message, field === undefined ? { file } : { file, field }, hint ? { hint } : {});
}

const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
const DEFAULT_UNENCRYPTED_SUFFIX = '_unencrypted';
// sops starts a mac_only_encrypted MAC with sha256("sops"), so that it never equals the
// MAC of the same file without that setting.
const MAC_ONLY_ENCRYPTED_PREFIX = createHash('sha256').update('sops').digest();

/**
 * Decrypts a SOPS YAML file with the first of `identities` that opens its data key,
 * verifies its MAC and returns the plaintext document without the `sops` key. Values keep
 * the types sops gives them (int, float, bool, str, null; timestamps as RFC 3339 text).
 */
export async function decryptSops(
  text: string,
  file: string,
  keys: AgeKeys | readonly AgeIdentity[],
  options: DecryptSopsOptions = {},
): Promise<SopsDocument> {
  const fail = failIn(file);

  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxBytes) throw fail(`file is ${size} bytes, over the limit of ${maxBytes} bytes`);
  const reader = new SourceReader(text, fail);
  let documents: YAMLMap[];
  try {
    documents = parseSopsYaml(text, fail);
  } catch (err) {
    // sops' other formats are no YAML maps: say which one it is.
    refuseOtherFormats(text, fail);
    throw err;
  }
  // sops reads its metadata from the first document and drops the `sops` key of every other
  // one (it writes it into each document of a multi-document file).
  const isMeta = (p: { key: unknown }): boolean => isScalar(p.key) && p.key.value === 'sops';
  const metaPair = documents[0]?.items.find(isMeta);
  if (metaPair === undefined) {
    refuseOtherFormats(text, fail);
    throw fail('not a SOPS file: it has no `sops` metadata', undefined, 'encrypt it with sops');
  }
  const meta = readMetadata(toGoValue(metaPair.value, 'sops', reader), file);
  const keyring = keys instanceof AgeKeys ? keys : new AgeKeys(keys, options.keyProblems ?? []);
  const dataKey = await openDataKey(meta, keyring, file, fail);

  const leaves: MacLeaf[] = [];
  const ctx: WalkContext = { meta, dataKey, leaves, fail, reader };
  const values = documents.map((doc) => walkMap(doc, [], '', ctx, (p) => isMeta(p)));
  reader.checkLineSeparatorsCovered();

  const storedMac = openMac(meta, dataKey, fail);
  const computedMac = computeSopsMac(leaves, meta.macOnlyEncrypted);
  if (!sameText(storedMac, computedMac)) {
    throw fail(
      storedMac === ''
        ? 'MAC mismatch: the file has no MAC, so its integrity cannot be verified'
        : 'MAC mismatch: the file was modified after it was encrypted (a value, the order of values or the MAC itself changed)',
      undefined,
      'edit SOPS files only with sops, which recomputes the MAC; if nobody meant to change it, treat it as tampering',
    );
  }
  // A file ending in `---` holds a second document with nothing but `sops` in it: fine.
  const extra = values.findIndex((v, i) => i > 0 && Object.keys(v).length > 0);
  if (extra !== -1) {
    throw fail(
      `holds values in YAML document ${extra + 1}; a values file is one document (helm would ignore the others)`,
      undefined,
      'keep one document per SOPS file',
    );
  }
  return values[0] ?? {};
}

/** SHA-512 over the leaves in order, as uppercase hex: the MAC sops stores (encrypted) in `sops.mac`. */
export function computeSopsMac(leaves: Iterable<MacLeaf>, macOnlyEncrypted: boolean): string {
  const hash = createHash('sha512');
  if (macOnlyEncrypted) hash.update(MAC_ONLY_ENCRYPTED_PREFIX);
  for (const leaf of leaves) {
    if (macOnlyEncrypted && !leaf.encrypted) continue;
    hash.update(leaf.bytes);
  }
  return hash.digest('hex').toUpperCase();
}

/**
 * Whether sops encrypts the value at `keys` (the map keys from the root, list positions
 * left out): a suffix or regex rule matches when any key on the path matches it.
 */
export function shouldBeEncrypted(keys: readonly string[], rule: SopsCryptRule): boolean {
  switch (rule.kind) {
    case 'unencrypted_suffix':
      return !keys.some((k) => k.endsWith(rule.suffix));
    case 'encrypted_suffix':
      return keys.some((k) => k.endsWith(rule.suffix));
    case 'unencrypted_regex':
      return !keys.some((k) => rule.regex.test(k));
    case 'encrypted_regex':
      return keys.some((k) => rule.regex.test(k));
  }
}

/** Splits an `ENC[AES256_GCM,...]` value into its parts; undefined when it is not one. */
export function parseEncryptedValue(text: string): SopsEncryptedValue | undefined {
  const m = /^ENC\[AES256_GCM,data:([^,]+),iv:([^,]+),tag:([^,]+),type:([a-z]+)\]$/.exec(text);
  if (!m) return undefined;
  const [data, iv, tag] = [m[1], m[2], m[3]].map(base64);
  if (!data || !iv || !tag || iv.length === 0 || tag.length !== 16) return undefined;
  return { data, iv, tag, type: m[4] ?? '' };
}

/** Reads the `sops` metadata (already typed as Go would) into what decryption needs. */
export function readMetadata(raw: unknown, file: string): SopsMetadata {
  const fail = failIn(file);
  if (!isPlainMap(raw)) throw fail('not a SOPS file: `sops` is not a map', 'sops');
  const str = (name: string): string | undefined => {
    const v = raw[name];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw fail('must be a string', `sops.${name}`);
    return v;
  };

  const groups = raw.key_groups;
  let keys: Record<string, unknown> = raw;
  const keyTypes = ['age', 'pgp', 'kms', 'gcp_kms', 'azure_kv', 'hc_vault', 'hckms'];
  const hasFlatKeys = keyTypes.some((t) => Array.isArray(raw[t]) && raw[t].length > 0);
  if (!hasFlatKeys && Array.isArray(groups) && groups.length > 0) {
    if (groups.length > 1 || !isPlainMap(groups[0])) {
      throw fail(
        'uses Shamir secret sharing across several key groups, which mooring does not support',
        'sops.key_groups',
        're-encrypt the file with age recipients in a single group',
      );
    }
    keys = groups[0];
  }
  const ageEntries = Array.isArray(keys.age) ? keys.age : [];
  if (ageEntries.length === 0) {
    const others = keyTypes.filter((t) => t !== 'age' && Array.isArray(keys[t]) && keys[t].length > 0);
    throw fail(
      others.length > 0
        ? `is encrypted only for ${others.join(', ')}; mooring decrypts SOPS files with age keys only`
        : 'lists no age recipient to decrypt it with',
      'sops.age',
      'add an age recipient to the file (sops updatekeys, or sops --rotate --add-age age1...)',
    );
  }
  const age = ageEntries.map((entry, i) => {
    const field = `sops.age[${i}]`;
    if (!isPlainMap(entry) || typeof entry.enc !== 'string' || typeof entry.recipient !== 'string') {
      throw fail('must hold a recipient and its enc', field);
    }
    return { recipient: entry.recipient, enc: entry.enc };
  });

  for (const name of ['unencrypted_comment_regex', 'encrypted_comment_regex']) {
    if (str(name) !== undefined) {
      throw fail(
        'chooses the encrypted values by their YAML comments, which mooring does not support',
        `sops.${name}`,
        're-encrypt the file with encrypted_regex, unencrypted_regex or a key suffix instead',
      );
    }
  }
  const rules: SopsCryptRule[] = [];
  const suffix = (name: 'unencrypted_suffix' | 'encrypted_suffix'): void => {
    const v = str(name);
    if (v !== undefined) rules.push({ kind: name, suffix: v });
  };
  const regex = (name: 'unencrypted_regex' | 'encrypted_regex'): void => {
    const v = str(name);
    if (v !== undefined) rules.push({ kind: name, regex: new GoRegex(v) });
  };
  suffix('unencrypted_suffix');
  suffix('encrypted_suffix');
  regex('unencrypted_regex');
  regex('encrypted_regex');
  if (rules.length > 1) {
    throw fail(
      'sets more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex and encrypted_regex',
      'sops',
    );
  }

  const lastModified = str('lastmodified');
  if (lastModified === undefined) throw fail('is missing', 'sops.lastmodified');
  const mac = raw.mac ?? '';
  if (typeof mac !== 'string') throw fail('must be a string', 'sops.mac');
  const macOnly = raw.mac_only_encrypted ?? false;
  // sops reads the metadata leniently (mapstructure's weak typing): "true" works too.
  const macOnlyEncrypted = typeof macOnly === 'string' ? parseGoBool(macOnly) : macOnly;
  if (typeof macOnlyEncrypted !== 'boolean') throw fail('must be true or false', 'sops.mac_only_encrypted');

  return {
    age,
    lastModified,
    mac,
    macOnlyEncrypted,
    rule: rules[0] ?? { kind: 'unencrypted_suffix', suffix: DEFAULT_UNENCRYPTED_SUFFIX },
  };
}

// ---- the document ---------------------------------------------------------------------

interface WalkContext {
  readonly meta: SopsMetadata;
  readonly dataKey: Buffer;
  readonly leaves: MacLeaf[];
  readonly fail: Fail;
  readonly reader: SourceReader;
}

/** Catches the other formats sops writes, which are not YAML, and names them. */
function refuseOtherFormats(text: string, fail: Fail): void {
  const hint = 'decrypt it and encrypt it again as YAML: sops --encrypt --input-type yaml --output-type yaml';
  if (/^sops_(version|mac|lastmodified)=/m.test(text)) {
    throw fail('is a SOPS dotenv file; mooring reads SOPS files in YAML only', undefined, hint);
  }
  if (/^\s*\[sops\]\s*$/m.test(text)) {
    throw fail('is a SOPS INI file; mooring reads SOPS files in YAML only', undefined, hint);
  }
}

function parseSopsYaml(text: string, fail: Fail): YAMLMap[] {
  let docs;
  try {
    // failsafe: every scalar stays text, so that it can be typed the way Go types it.
    docs = parseAllDocuments(text, { schema: 'failsafe', uniqueKeys: true, prettyErrors: true });
  } catch (err) {
    throw fail(`invalid YAML: ${firstLine((err as Error).message)}`);
  }
  if (!Array.isArray(docs)) docs = [docs];
  if (docs.length === 0) throw fail('not a SOPS file: it is empty');
  return docs.map((doc, i) => {
    const problem = doc.errors[0];
    if (problem !== undefined) throw fail(`invalid YAML: ${firstLine(problem.message).replace(/:\s*$/, '')}`);
    // An empty document (`---` and nothing after it) is an empty map to sops.
    if (doc.contents === null) return new YAMLMap();
    if (!isMap(doc.contents)) {
      throw fail(`not a SOPS file: the top level of YAML document ${i + 1} is not a map`);
    }
    return doc.contents;
  });
}

/** A YAML map: its values decrypted, typed and hashed in order; `<<` merge keys applied. */
function walkMap(
  node: YAMLMap,
  keys: readonly string[],
  field: string,
  ctx: WalkContext,
  skip: (pair: { key: unknown }) => boolean = () => false,
): Record<string, unknown> {
  checkCollectionTag(node.tag, 'tag:yaml.org,2002:map', field, ctx.fail);
  const out: Record<string, unknown> = {};
  const merged: Record<string, unknown>[] = [];
  for (const pair of node.items) {
    if (skip(pair)) continue;
    const key = keyOf(pair.key, field, ctx);
    const child = field ? `${field}.${key}` : key;
    const value = walk(pair.value, [...keys, key], child, ctx);
    if (isMergeKey(pair.key)) {
      // sops keeps `<<` as a key named "<<" (its path, its MAC) and writes `!!merge <<:`; helm
      // reads the decrypted file as YAML 1.1 and merges it. mooring hands helm the merged map.
      for (const source of Array.isArray(value) ? value : [value]) {
        if (!isPlainMap(source)) {
          throw ctx.fail('is a YAML merge key (<<) whose value is not a map or a list of maps', child);
        }
        merged.push(source);
      }
      continue;
    }
    setOwn(out, key, value);
  }
  // Keys written in the map win over merged ones; of several merged maps, the first wins.
  for (const source of merged) {
    for (const [key, value] of Object.entries(source)) {
      if (!Object.prototype.hasOwnProperty.call(out, key)) setOwn(out, key, value);
    }
  }
  return out;
}

/** A scalar's text (the yaml package holds a `!!merge <<` key as a symbol). */
function scalarValue(node: Scalar): string {
  return typeof node.value === 'symbol' ? (node.source ?? '') : String(node.value);
}

/** `<<` as YAML 1.1 reads it: untagged and unquoted, or tagged `!!merge`. */
function isMergeKey(node: unknown): boolean {
  if (!isScalar(node) || scalarValue(node) !== '<<') return false;
  return node.tag === 'tag:yaml.org,2002:merge' || (node.tag === undefined && node.type === 'PLAIN');
}

/** Decrypts (where the file's rule says so), types and hashes one value and everything below it. */
function walk(node: unknown, keys: readonly string[], field: string, ctx: WalkContext): unknown {
  if (isMap(node)) return walkMap(node, keys, field, ctx);
  if (isSeq(node)) {
    checkCollectionTag(node.tag, 'tag:yaml.org,2002:seq', field, ctx.fail);
    // List items share their list's key path: sops leaves positions out of it.
    const out: unknown[] = [];
    node.items.forEach((item, i) => {
      const itemField = `${field}[${i}]`;
      // sops writes a comment inside an encrypted list as an item `ENC[...,type:comment]`;
      // it decrypts it back into a comment, outside the MAC and outside the values.
      if (isEncryptedComment(item, keys, ctx)) {
        const enc = parseEncryptedValue(String((item as Scalar).value));
        if (enc !== undefined && aesGcmOpen(enc, ctx.dataKey, `${keys.join(':')}:`) === undefined) {
          throw ctx.fail(
            'cannot be decrypted: the encrypted comment was modified, or moved here from another key',
            itemField,
            'edit SOPS files only with sops; if nobody meant to change it, treat it as tampering',
          );
        }
        return;
      }
      out.push(walk(item, keys, itemField, ctx));
    });
    return out;
  }
  const stored = storedScalar(node, field, ctx.reader);
  // sops never encrypts or hashes a null.
  if (stored.kind === 'null') return null;
  const encrypted = shouldBeEncrypted(keys, ctx.meta.rule);
  if (!encrypted) {
    if (stored.kind === 'unsupported') {
      throw ctx.fail(`holds ${stored.reason}, which sops cannot handle`, field);
    }
    ctx.leaves.push({ bytes: sopsMacBytes(stored), encrypted: false });
    return plainValue(stored);
  }
  if (stored.kind !== 'str') {
    throw ctx.fail('is not encrypted, but the file says it must be (was it added without sops?)', field);
  }
  // sops stores an empty string as it is: there is nothing to encrypt.
  if (stored.value === '') {
    ctx.leaves.push({ bytes: '', encrypted: true });
    return '';
  }
  const opened = openValue(stored.value, ctx.dataKey, `${keys.join(':')}:`, field, ctx.fail);
  ctx.leaves.push({ bytes: opened.macBytes, encrypted: true });
  return opened.value;
}

function isEncryptedComment(item: unknown, keys: readonly string[], ctx: WalkContext): boolean {
  if (!isScalar(item) || typeof item.value !== 'string' || !item.value.endsWith(',type:comment]'))
    return false;
  return shouldBeEncrypted(keys, ctx.meta.rule) && parseEncryptedValue(item.value)?.type === 'comment';
}

/** A scalar as sops reads it from the file (before decryption). */
function storedScalar(node: unknown, field: string, reader: SourceReader): SopsScalar {
  const fail = reader.fail;
  if (node === null || node === undefined) return { kind: 'null' };
  if (isAlias(node))
    throw fail('YAML aliases are not supported in SOPS files (sops never writes them)', field);
  if (!isScalar(node)) throw fail('is not a YAML value mooring understands', field);
  const text = reader.scalarText(node as Scalar, field);
  if (node.tag !== undefined) {
    if (node.tag === 'tag:yaml.org,2002:str') return { kind: 'str', value: text };
    if (node.tag === 'tag:yaml.org,2002:merge' && text === '<<') return { kind: 'str', value: text };
    throw fail(`the YAML tag ${node.tag} is not supported in SOPS files`, field);
  }
  if (node.type === 'PLAIN') return resolvePlainScalar(text);
  return { kind: 'str', value: text };
}

function keyOf(node: unknown, parent: string, ctx: { reader: SourceReader }): string {
  const s = storedScalar(node, parent, ctx.reader);
  if (s.kind !== 'str') {
    throw ctx.reader.fail(
      'has a key that is not a string; sops only handles string keys (quote it)',
      parent || undefined,
    );
  }
  return s.value;
}

function checkCollectionTag(tag: string | undefined, allowed: string, field: string, fail: Fail): void {
  if (tag !== undefined && tag !== allowed) {
    throw fail(`the YAML tag ${tag} is not supported in SOPS files`, field || undefined);
  }
}

/** Types the metadata under `sops` the way sops' YAML store would, without decrypting anything. */
function toGoValue(node: unknown, field: string, reader: SourceReader): unknown {
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const key = keyOf(pair.key, field, { reader });
      setOwn(out, key, toGoValue(pair.value, `${field}.${key}`, reader));
    }
    return out;
  }
  if (isSeq(node)) return node.items.map((item, i) => toGoValue(item, `${field}[${i}]`, reader));
  const s = storedScalar(node, field, reader);
  return s.kind === 'unsupported' ? undefined : plainValue(s);
}

// ---- line separators --------------------------------------------------------------------

// sops reads YAML with yaml.v3, which follows YAML 1.1: U+2028 and U+2029 end a line (and
// U+0085 too, read as \n), so the indentation after them is not part of the value. The
// yaml package reads YAML 1.2, where they are ordinary characters. sops writes such a value
// quoted ('x<U+2028>    y') or as a literal block; mooring reads those forms as yaml.v3
// does, and refuses the forms it would read differently, naming the field.
const LINE_SEPARATORS = /[\u0085\u2028\u2029]/g;

class SourceReader {
  readonly fail: Fail;
  readonly #text: string;
  readonly #positions: number[];
  readonly #covered = new Set<number>();

  constructor(text: string, fail: Fail) {
    this.#text = text;
    this.fail = fail;
    this.#positions = [...text.matchAll(LINE_SEPARATORS)].map((m) => m.index);
  }

  /** A scalar's text as yaml.v3 reads it. */
  scalarText(node: Scalar, field: string): string {
    const value = scalarValue(node);
    const range = node.range;
    if (this.#positions.length === 0 || !range) return value;
    const [start, end] = range;
    const inside = this.#positions.filter((p) => p >= start && p < end);
    if (inside.length === 0) return value;
    inside.forEach((p) => this.#covered.add(p));
    const raw = this.#text.slice(start, end);
    const refuse = (how: string): MooringError =>
      this.fail(
        `holds a line separator (U+2028, U+2029 or U+0085) in ${how}, which sops reads as a line break; mooring cannot read it the same way`,
        field || undefined,
        'quote the value with double quotes and write the character as \\L, \\P or \\N',
      );
    switch (node.type) {
      case 'QUOTE_SINGLE':
      case 'QUOTE_DOUBLE': {
        const read = readQuotedV3(raw, node.type === 'QUOTE_DOUBLE');
        if (read === undefined) throw refuse('a quoted value it cannot parse');
        return read;
      }
      case 'BLOCK_LITERAL': {
        const read = literalBlockV3(raw, value);
        if (read === undefined) throw refuse('a literal block');
        return read;
      }
      default:
        throw refuse(node.type === 'BLOCK_FOLDED' ? 'a folded block' : 'an unquoted value');
    }
  }

  /** A line separator outside every value (in a comment, say) changes how sops parses the file. */
  checkLineSeparatorsCovered(): void {
    const outside = this.#positions.find((p) => !this.#covered.has(p));
    if (outside === undefined) return;
    const line = this.#text.slice(0, outside).split('\n').length;
    throw this.fail(
      `line ${line} holds a line separator (U+2028, U+2029 or U+0085) outside a value, which sops reads as a line break`,
      undefined,
      'remove it, or quote it inside a value',
    );
  }
}

const BREAK_AT = /\r\n|[\r\n\u0085\u2028\u2029]/y;

/** The line break at `i` as yaml.v3 keeps it (LS and PS as themselves, others as \n). */
function breakAt(raw: string, i: number): { text: string; length: number } | undefined {
  BREAK_AT.lastIndex = i;
  const m = BREAK_AT.exec(raw);
  if (!m) return undefined;
  return { text: m[0] === '\u2028' || m[0] === '\u2029' ? m[0] : '\n', length: m[0].length };
}

const ESCAPES: Record<string, string> = {
  '0': '\0',
  a: '\x07',
  b: '\b',
  t: '\t',
  '\t': '\t',
  n: '\n',
  v: '\v',
  f: '\f',
  r: '\r',
  e: '\x1b',
  ' ': ' ',
  '"': '"',
  '/': '/',
  "'": "'",
  '\\': '\\',
  N: '\u0085',
  _: '\u00a0',
  L: '\u2028',
  P: '\u2029',
};

/**
 * A single- or double-quoted scalar (with its quotes) folded as yaml.v3's scanner folds it:
 * blanks before a break dropped, indentation after it dropped, a lone \n folded to a space,
 * LS and PS kept. Undefined for what it cannot read (a bad escape).
 */
export function readQuotedV3(raw: string, double: boolean): string | undefined {
  let out = '';
  let i = 1;
  const end = raw.length - 1;
  while (i < end) {
    let escapedBreak = false;
    while (i < end && raw[i] !== ' ' && raw[i] !== '\t' && breakAt(raw, i) === undefined) {
      const c = raw[i] ?? '';
      if (!double && c === "'" && raw[i + 1] === "'") {
        out += "'";
        i += 2;
      } else if (double && c === '\\') {
        const next = raw[i + 1] ?? '';
        const lineBreak = breakAt(raw, i + 1);
        if (lineBreak) {
          i += 1 + lineBreak.length;
          escapedBreak = true;
          break;
        }
        const hex = { x: 2, u: 4, U: 8 }[next];
        if (hex !== undefined) {
          const digits = raw.slice(i + 2, i + 2 + hex);
          if (!/^[0-9a-fA-F]+$/.test(digits) || digits.length !== hex) return undefined;
          const code = parseInt(digits, 16);
          if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return undefined;
          out += String.fromCodePoint(code);
          i += 2 + hex;
        } else {
          const escaped = ESCAPES[next];
          if (escaped === undefined) return undefined;
          out += escaped;
          i += 2;
        }
      } else {
        out += c;
        i += 1;
      }
    }
    if (i >= end) break;
    let whitespace = '';
    let leadingBreak = '';
    let trailingBreaks = '';
    let leadingBlanks = escapedBreak;
    for (;;) {
      const c = raw[i];
      if (i < end && (c === ' ' || c === '\t')) {
        if (!leadingBlanks) whitespace += c;
        i += 1;
        continue;
      }
      const lineBreak = i < end ? breakAt(raw, i) : undefined;
      if (!lineBreak) break;
      i += lineBreak.length;
      if (!leadingBlanks) {
        whitespace = '';
        leadingBreak = lineBreak.text;
        leadingBlanks = true;
      } else {
        trailingBreaks += lineBreak.text;
      }
    }
    if (!leadingBlanks) out += whitespace;
    else if (leadingBreak === '\n') out += trailingBreaks === '' ? ' ' : trailingBreaks;
    else out += leadingBreak + trailingBreaks;
  }
  return out;
}

/**
 * A literal block (`|`) whose value the yaml package read with LS/PS as ordinary characters:
 * yaml.v3 ends the line there and drops the block's indentation after it. Undefined when
 * the text after a separator is less indented than the block (yaml.v3 would end the block).
 */
function literalBlockV3(raw: string, value: string): string | undefined {
  const header = /^\|([-+]?)(\d?)/.exec(raw);
  if (!header || header[2] !== '' || /\u0085/.test(value)) return undefined;
  const firstLine = raw
    .split('\n')
    .slice(1)
    .find((l) => l.trim() !== '');
  const indent = firstLine === undefined ? 0 : (/^ */.exec(firstLine)?.[0].length ?? 0);
  let ok = true;
  const read = value.replace(/([\u2028\u2029])( *)/g, (_, sep: string, spaces: string, offset: number) => {
    const after = value[offset + 1 + spaces.length];
    if (spaces.length < indent && after !== undefined && !/[\n\u2028\u2029]/.test(after)) ok = false;
    return sep + spaces.slice(Math.min(indent, spaces.length));
  });
  return ok ? read : undefined;
}

// ---- cryptography ---------------------------------------------------------------------

async function openDataKey(meta: SopsMetadata, keys: AgeKeys, file: string, fail: Fail): Promise<Buffer> {
  const recipients = meta.age.map((a) => a.recipient);
  const tried = new Map<string, AgeIdentity>();
  const problems = new Set<string>();
  // Like sops, try every key on every entry: the recipient names in the file are only labels.
  for (const entry of meta.age) {
    const found = await keys.forRecipient(entry.recipient);
    found.problems.forEach((p) => problems.add(p));
    for (const identity of found.identities) {
      tried.set(identity.recipient, identity);
      const key = await identity.decrypt(entry.enc);
      if (key === undefined) continue;
      if (key.length !== 32) throw fail('holds a data key that is not 32 bytes long', 'sops.age');
      return Buffer.from(key);
    }
  }
  // What went wrong loading keys explains a failure here, and only here (sops does the same).
  const loading = problems.size > 0 ? `; loading age keys failed: ${[...problems].join('; ')}` : '';
  const identities = [...tried.values()];
  if (identities.length === 0) {
    throw fail(
      `no age key is configured to decrypt ${file} (its recipients: ${recipients.join(', ')})${loading}`,
      undefined,
      'give mooring the age key with --age-key-file, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_KEY_CMD or SOPS_AGE_SSH_PRIVATE_KEY_FILE',
    );
  }
  const expected = identities.find((id) => recipients.includes(id.recipient));
  if (expected) {
    throw fail(
      `the age key for ${expected.recipient} (from ${expected.source}) cannot open the data key encrypted for it: the entry is damaged`,
      `sops.age[${recipients.indexOf(expected.recipient)}].enc`,
      're-encrypt the file with sops',
    );
  }
  const unusable = identities.filter((id) => id.unsupported !== undefined);
  const notes = unusable.map((id) => `; ${id.source} was not tried: ${id.unsupported ?? ''}`).join('');
  const n = identities.length;
  throw fail(
    `none of the ${n} age key${n === 1 ? '' : 's'} matches the recipients of ${file}: ${recipients.join(', ')}${notes}${loading}`,
    undefined,
    `mooring has ${identities.map((id) => `${id.recipient} (from ${id.source})`).join(', ')}; add one of them to the file's recipients (sops updatekeys) or give mooring the right key`,
  );
}

/** Decrypts one value; its additional data binds it to its key path, so a moved value fails here. */
function openValue(
  text: string,
  dataKey: Buffer,
  aad: string,
  field: string,
  fail: Fail,
): { value: string | number | boolean; macBytes: string | Uint8Array } {
  const enc = parseEncryptedValue(text);
  if (enc === undefined) {
    throw fail(
      text.startsWith('ENC[')
        ? 'is a malformed encrypted value (expected ENC[AES256_GCM,data:...,iv:...,tag:...,type:...])'
        : 'is not encrypted, but the file says it must be (was it added without sops?)',
      field,
    );
  }
  const plaintext = aesGcmOpen(enc, dataKey, aad);
  if (plaintext === undefined) {
    throw fail(
      'cannot be decrypted: the encrypted value was modified, or moved here from another key',
      field,
      'edit SOPS files only with sops; if nobody meant to change it, treat it as tampering',
    );
  }
  const malformed = (): MooringError =>
    fail(`decrypts to something that is not a valid ${enc.type} value`, field);
  switch (enc.type) {
    case 'str':
      return { value: plaintext.toString('utf8'), macBytes: plaintext };
    case 'bytes':
      return { value: plaintext.toString('utf8'), macBytes: plaintext };
    case 'int': {
      const v = parseGoDecimalInt(plaintext.toString('utf8'));
      if (v === undefined) throw malformed();
      return { value: Number(v), macBytes: v.toString() };
    }
    case 'float': {
      const v = parseGoFloat(plaintext.toString('utf8'));
      if (v === undefined) throw malformed();
      return { value: v, macBytes: formatGoFloat(v) };
    }
    case 'bool': {
      const v = parseGoBool(plaintext.toString('utf8'));
      if (v === undefined) throw malformed();
      return { value: v, macBytes: v ? 'True' : 'False' };
    }
    case 'time': {
      const v = normaliseRfc3339(plaintext.toString('utf8'), true);
      if (v === undefined) throw malformed();
      return { value: v, macBytes: v };
    }
    case 'comment':
      throw fail('holds an encrypted comment where a value belongs', field);
    default:
      throw fail(`has an unknown encrypted value type "${enc.type}"`, field);
  }
}

function openMac(meta: SopsMetadata, dataKey: Buffer, fail: Fail): string {
  const aad = normaliseRfc3339(meta.lastModified, false);
  if (aad === undefined) throw fail('is not an RFC 3339 time', 'sops.lastmodified');
  if (meta.mac === '') return '';
  const enc = parseEncryptedValue(meta.mac);
  if (enc === undefined) throw fail('is a malformed encrypted value', 'sops.mac');
  const mac = aesGcmOpen(enc, dataKey, aad);
  if (mac === undefined) {
    throw fail(
      'MAC mismatch: the file was modified after it was encrypted (its lastmodified or mac changed)',
      undefined,
      'edit SOPS files only with sops, which recomputes the MAC; if nobody meant to change it, treat it as tampering',
    );
  }
  return mac.toString('utf8');
}

function aesGcmOpen(enc: SopsEncryptedValue, key: Buffer, aad: string): Buffer | undefined {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, enc.iv, { authTagLength: 16 });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(enc.tag);
    return Buffer.concat([decipher.update(enc.data), decipher.final()]);
  } catch {
    return undefined;
  }
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

// ---- small helpers --------------------------------------------------------------------

/** Strict standard base64 (padding required), as Go's base64.StdEncoding reads it. */
function base64(s: string | undefined): Buffer | undefined {
  if (s === undefined || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  return Buffer.from(s, 'base64');
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, so that a key named __proto__ is data, not a prototype change.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}
