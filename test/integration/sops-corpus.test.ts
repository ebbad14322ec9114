// The SOPS differential suite: every file of test/fixtures/sops-corpus (encrypted by real
// sops 3.7, 3.8, 3.9 and 3.13, and tampered copies of them) is opened by mooring and by
// `sops -d` of the version that wrote it, with the same key. Both must give the same
// values, or both must refuse; a refusal by mooring names the file and never carries a
// value of the corpus' plaintext. A mismatch is a bug in mooring, never in the corpus.
// To add a case: put its plaintext in plain/, add it to encrypt.mjs, run encrypt.mjs.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MooringError } from '../../src/errors.js';
import { loadAgeIdentities, type AgeIdentity } from '../../src/resolve/age-key.js';
import { decryptSops } from '../../src/resolve/sops.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CORPUS = join(ROOT, 'test', 'fixtures', 'sops-corpus');
const BIN = join(ROOT, '.tools', 'bin');
const KEY_FILE = join(CORPUS, 'age-key.txt');
const BINARIES: Record<string, string> = {
  '3.7.3': 'sops-3.7.3',
  '3.8.1': 'sops-3.8.1',
  '3.9.4': 'sops-3.9.4',
  '3.13.3': 'sops',
};

interface CorpusFile {
  version: string;
  /** encrypted/<version>/<name> or tampered/<version>/<name> */
  path: string;
}

function corpusFiles(): CorpusFile[] {
  const files: CorpusFile[] = [];
  for (const kind of ['encrypted', 'tampered']) {
    for (const version of Object.keys(BINARIES)) {
      const dir = join(CORPUS, kind, version);
      // A missing version fails the first test below instead of hiding the others.
      if (!existsSync(dir)) continue;
      for (const name of readdirSync(dir).sort()) files.push({ version, path: join(kind, version, name) });
    }
  }
  return files;
}

/** Every plaintext value of the corpus long enough to be recognised in a message. */
function plaintextValues(): string[] {
  const values = new Set<string>();
  const collect = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(collect);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(collect);
    else if (v !== null && v !== undefined && String(v).length >= 4) values.add(String(v));
  };
  for (const name of readdirSync(join(CORPUS, 'plain'))) {
    const text = readFileSync(join(CORPUS, 'plain', name), 'utf8');
    if (/\.(ya?ml|json)$/.test(name)) {
      for (const doc of parseAllDocuments(text, { merge: true })) collect(doc.toJS());
    } else {
      for (const m of text.matchAll(/=\s*(\S+)$/gm)) collect(m[1]);
    }
  }
  return [...values];
}

let identities: AgeIdentity[];
let home: string;
let secrets: string[];

beforeAll(async () => {
  identities = await loadAgeIdentities({ env: { SOPS_AGE_KEY_FILE: KEY_FILE } });
  home = await mkdtemp(join(tmpdir(), 'mooring-sops-corpus-'));
  secrets = plaintextValues();
});

afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

/**
 * `sops -d` of the version that wrote the file: the first document it prints, or its error.
 * Read back as helm reads it (merge keys merged); where it holds U+2028, U+2029 or U+0085,
 * which YAML readers disagree on, as JSON, whose strings are exact.
 */
async function sopsDecrypt(
  file: CorpusFile,
): Promise<{ ok: true; value: unknown } | { ok: false; stderr: string }> {
  const run = (output: 'json' | 'yaml') =>
    execa(
      join(BIN, BINARIES[file.version] ?? 'sops'),
      ['--decrypt', '--input-type', 'yaml', '--output-type', output, join(CORPUS, file.path)],
      {
        cwd: home,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, SOPS_AGE_KEY_FILE: KEY_FILE },
        extendEnv: false,
        reject: false,
      },
    );
  const yaml = await run('yaml');
  if (yaml.exitCode !== 0) return { ok: false, stderr: yaml.stderr };
  if (/[\u0085\u2028\u2029]/.test(yaml.stdout)) {
    const json = await run('json');
    if (json.exitCode === 0) return { ok: true, value: helmMerge(JSON.parse(json.stdout)) };
  }
  const [first] = parseAllDocuments(yaml.stdout, { merge: true });
  return { ok: true, value: first?.toJS() ?? {} };
}

/**
 * What helm makes of a `<<` key in the decrypted file (sops keeps it as a key and prints
 * `!!merge <<:`; helm reads YAML 1.1 and merges): keys of the map win, then the merged maps
 * in order.
 */
function helmMerge(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(helmMerge);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  const sources: unknown[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (key === '<<') sources.push(...(Array.isArray(v) ? v : [v]));
    else out[key] = helmMerge(v);
  }
  for (const source of sources) {
    for (const [key, v] of Object.entries(helmMerge(source) as Record<string, unknown>)) {
      if (!(key in out)) out[key] = v;
    }
  }
  return out;
}

async function mooringDecrypt(
  file: CorpusFile,
): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }> {
  const text = readFileSync(join(CORPUS, file.path), 'utf8');
  try {
    return { ok: true, value: await decryptSops(text, file.path, identities) };
  } catch (error) {
    return { ok: false, error };
  }
}

describe('the SOPS corpus', () => {
  test('holds files of every sops version, and tampered copies', () => {
    for (const version of Object.keys(BINARIES)) {
      expect(existsSync(join(BIN, BINARIES[version] ?? ''))).toBe(true);
      expect(readdirSync(join(CORPUS, 'encrypted', version)).length).toBeGreaterThan(20);
      expect(readdirSync(join(CORPUS, 'tampered', version)).length).toBeGreaterThan(20);
    }
  });

  describe.concurrent.each(corpusFiles())('$path', (file) => {
    test('opens as sops -d of the same version opens it', async () => {
      const [sops, mooring] = await Promise.all([sopsDecrypt(file), mooringDecrypt(file)]);
      if (sops.ok) {
        if (!mooring.ok) throw new Error(`sops opens it, mooring refuses: ${String(mooring.error)}`);
        expect(mooring.value).toEqual(sops.value);
        return;
      }
      if (mooring.ok) throw new Error(`sops refuses it (${sops.stderr.trim()}), mooring opens it`);
      expect(mooring.error).toBeInstanceOf(MooringError);
      const err = mooring.error as MooringError;
      expect(err.context.file).toBe(file.path);
      const said = `${err.describe()} ${JSON.stringify(err.toJSON())}`;
      for (const secret of secrets) expect(said).not.toContain(secret);
    });
  });
});
