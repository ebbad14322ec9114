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
import { isAlias, isMap, isScalar, isSeq, parseAllDocuments, type Scalar } from 'yaml';
import { MooringError } from '../errors.js';
import { isPlainMap } from '../model/schema.js';
import type { AgeIdentity } from './age-key.js';
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
  | { readonly kind: 'unencrypted_regex'; readonly regex: RegExp }
  | { readonly kind: 'encrypted_regex'; readonly regex: RegExp };

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
  identities: readonly AgeIdentity[],
  options: DecryptSopsOptions = {},
): Promise<SopsDocument> {
  const fail = failIn(file);

  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxBytes) throw fail(`file is ${size} bytes, over the limit of ${maxBytes} bytes`);
  if (/^\s*\{/.test(text)) {
    throw fail('looks like a JSON SOPS file; mooring reads SOPS files in YAML (*.sops.yaml)');
  }

  const root = parseSopsYaml(text, fail);
  const metaPair = root.items.find((p) => isScalar(p.key) && p.key.value === 'sops');
  if (metaPair === undefined) {
    throw fail('not a SOPS file: it has no `sops` metadata', undefined, 'encrypt it with sops');
  }
  const meta = readMetadata(toGoValue(metaPair.value, 'sops', fail), file);
  const dataKey = await openDataKey(meta, identities, file, fail);

  const leaves: MacLeaf[] = [];
  const document: SopsDocument = {};
  for (const pair of root.items) {
    if (pair === metaPair) continue;
    const key = keyOf(pair.key, '', fail);
    setOwn(document, key, walk(pair.value, [key], key, { meta, dataKey, leaves, fail }));
  }

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
  return document;
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
        'comment-based encryption rules are not supported by mooring',
        `sops.${name}`,
        'use encrypted_regex, unencrypted_regex or a key suffix instead',
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
    if (v !== undefined) rules.push({ kind: name, regex: goRegex(v, `sops.${name}`, fail) });
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
}

function parseSopsYaml(text: string, fail: Fail): { items: { key: unknown; value: unknown }[] } {
  let docs;
  try {
    // failsafe: every scalar stays text, so that it can be typed the way Go types it.
    docs = parseAllDocuments(text, { schema: 'failsafe', uniqueKeys: true, prettyErrors: true });
  } catch (err) {
    throw fail(`invalid YAML: ${firstLine((err as Error).message)}`);
  }
  if (!Array.isArray(docs)) docs = [docs];
  if (docs.length > 1) throw fail(`holds ${docs.length} YAML documents; a SOPS values file holds one`);
  const doc = docs[0];
  if (doc === undefined || doc.contents === null) throw fail('not a SOPS file: it is empty');
  const problem = doc.errors[0];
  if (problem !== undefined) throw fail(`invalid YAML: ${firstLine(problem.message).replace(/:\s*$/, '')}`);
  if (!isMap(doc.contents)) throw fail('not a SOPS file: the top level is not a map');
  return doc.contents;
}

/** Decrypts (where the file's rule says so), types and hashes one value and everything below it. */
function walk(node: unknown, keys: readonly string[], field: string, ctx: WalkContext): unknown {
  if (isMap(node)) {
    checkCollectionTag(node.tag, 'tag:yaml.org,2002:map', field, ctx.fail);
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const key = keyOf(pair.key, field, ctx.fail);
      const child = field ? `${field}.${key}` : key;
      setOwn(out, key, walk(pair.value, [...keys, key], child, ctx));
    }
    return out;
  }
  if (isSeq(node)) {
    checkCollectionTag(node.tag, 'tag:yaml.org,2002:seq', field, ctx.fail);
    // List items share their list's key path: sops leaves positions out of it.
    return node.items.map((item, i) => walk(item, keys, `${field}[${i}]`, ctx));
  }
  const stored = storedScalar(node, field, ctx.fail);
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

/** A scalar as sops reads it from the file (before decryption). */
function storedScalar(node: unknown, field: string, fail: Fail): SopsScalar {
  if (node === null || node === undefined) return { kind: 'null' };
  if (isAlias(node))
    throw fail('YAML aliases are not supported in SOPS files (sops never writes them)', field);
  if (!isScalar(node)) throw fail('is not a YAML value mooring understands', field);
  const text = String((node as Scalar).value);
  if (node.tag !== undefined) {
    if (node.tag === 'tag:yaml.org,2002:str') return { kind: 'str', value: text };
    throw fail(`the YAML tag ${node.tag} is not supported in SOPS files`, field);
  }
  if (node.type === 'PLAIN') return resolvePlainScalar(text);
  return { kind: 'str', value: text };
}

function keyOf(node: unknown, parent: string, fail: Fail): string {
  const s = storedScalar(node, parent, fail);
  if (s.kind !== 'str') {
    throw fail(
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
function toGoValue(node: unknown, field: string, fail: Fail): unknown {
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const key = keyOf(pair.key, field, fail);
      setOwn(out, key, toGoValue(pair.value, `${field}.${key}`, fail));
    }
    return out;
  }
  if (isSeq(node)) return node.items.map((item, i) => toGoValue(item, `${field}[${i}]`, fail));
  const s = storedScalar(node, field, fail);
  return s.kind === 'unsupported' ? undefined : plainValue(s);
}

// ---- cryptography ---------------------------------------------------------------------

async function openDataKey(
  meta: SopsMetadata,
  identities: readonly AgeIdentity[],
  file: string,
  fail: Fail,
): Promise<Buffer> {
  const recipients = meta.age.map((a) => a.recipient);
  if (identities.length === 0) {
    throw fail(
      `no age key is configured to decrypt ${file} (its recipients: ${recipients.join(', ')})`,
      undefined,
      'give mooring the age key with --age-key-file, SOPS_AGE_KEY_FILE or SOPS_AGE_KEY',
    );
  }
  // Like sops, try every key on every entry: the recipient names in the file are only labels.
  for (const entry of meta.age) {
    for (const identity of identities) {
      const key = await identity.decrypt(entry.enc);
      if (key === undefined) continue;
      if (key.length !== 32) throw fail('holds a data key that is not 32 bytes long', 'sops.age');
      return Buffer.from(key);
    }
  }
  const expected = identities.find((id) => recipients.includes(id.recipient));
  if (expected) {
    throw fail(
      `the age key for ${expected.recipient} (from ${expected.source}) cannot open the data key encrypted for it: the entry is damaged`,
      `sops.age[${recipients.indexOf(expected.recipient)}].enc`,
      're-encrypt the file with sops',
    );
  }
  const n = identities.length;
  throw fail(
    `none of the ${n} age key${n === 1 ? '' : 's'} matches the recipients of ${file}: ${recipients.join(', ')}`,
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

/**
 * Compiles a Go (RE2) regular expression from the file's metadata as a JavaScript one.
 * The common subset means the same in both; Go-only syntax is refused rather than guessed.
 */
function goRegex(source: string, field: string, fail: Fail): RegExp {
  let body = source;
  let flags = '';
  const inline = /^\(\?([imsU]+)\)/.exec(body);
  if (inline) {
    flags = inline[1] ?? '';
    body = body.slice(inline[0].length);
  }
  body = body.replaceAll('(?P<', '(?<');
  if (flags.includes('U') || /\\[AzQEpP]|\[\[:|\(\?[a-zA-Z]/.test(body)) {
    throw fail('uses regular expression syntax only Go understands; mooring cannot evaluate it', field);
  }
  try {
    return new RegExp(body, flags);
  } catch {
    throw fail('is not a regular expression mooring can evaluate', field);
  }
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, so that a key named __proto__ is data, not a prototype change.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}
