// Differential test: every file of test/fixtures/yaml-corpus/ is given to `helm template`
// as a values file, and mooring must read it exactly as helm did.
//   yaml-corpus/*.yaml           helm reads it; mooring's value equals helm's (through toJson)
//   yaml-corpus/refused/*.yaml   helm refuses it; mooring refuses it too, naming the file
//   yaml-corpus/stricter/*.yaml  helm reads it, mooring refuses it on purpose (a duplicate key,
//                                several documents): a clear error beats a silent choice
// The corpus grows: add a file for every scalar that ever surprised someone. A mismatch is
// a bug in src/model/yaml.ts, never in the corpus.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { MooringError } from '../../src/errors.js';
import { parseYaml } from '../../src/model/yaml.js';

const run = promisify(execFile);
const helm = process.env.MOORING_HELM ?? join(import.meta.dirname, '../../.tools/bin/helm');
const corpus = join(import.meta.dirname, '../fixtures/yaml-corpus');
const dir = mkdtempSync(join(tmpdir(), 'mooring-yaml-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const chart = join(dir, 'values-as-json');
mkdirSync(join(chart, 'templates'), { recursive: true });
writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: values-as-json\nversion: 0.1.0\n');
writeFileSync(join(chart, 'templates', 'values.yaml'), '{{ toJson .Values }}\n');

type HelmResult = { ok: true; values: unknown } | { ok: false; error: string };

async function helmReads(file: string): Promise<HelmResult> {
  try {
    const { stdout } = await run(helm, ['template', 'r', chart, '--values', file], { encoding: 'utf8' });
    return { ok: true, values: JSON.parse(stdout.replace(/^---\n# Source: [^\n]*\n/, '')) };
  } catch (err) {
    return { ok: false, error: String((err as { stderr?: string }).stderr ?? err) };
  }
}

function mooringReads(
  folder: string,
  name: string,
): { ok: true; values: unknown } | { ok: false; error: MooringError } {
  try {
    return { ok: true, values: parseYaml(readFileSync(join(corpus, folder, name)), name) ?? {} };
  } catch (err) {
    if (err instanceof MooringError) return { ok: false, error: err };
    throw err;
  }
}

const files = (folder: string) => readdirSync(join(corpus, folder)).filter((f) => f.endsWith('.yaml'));

describe('YAML as helm reads it', () => {
  it('has a corpus in every category', () => {
    expect(files('.').length).toBeGreaterThan(10);
    expect(files('refused').length).toBeGreaterThan(10);
    expect(files('stricter').length).toBeGreaterThan(0);
  });

  it.each(files('.'))('%s: the same values as helm', async (name) => {
    const theirs = await helmReads(join(corpus, name));
    if (!theirs.ok) throw new Error(`helm refuses ${name}; move it to refused/: ${theirs.error}`);
    const ours = mooringReads('.', name);
    if (!ours.ok) throw new Error(`mooring refuses ${name}: ${ours.error.describe()}`);
    expect(ours.values).toEqual(theirs.values);
  });

  it.each(files('refused'))('refused/%s: refused, as helm refuses it, naming the file', async (name) => {
    const theirs = await helmReads(join(corpus, 'refused', name));
    expect(theirs.ok, `helm reads refused/${name}`).toBe(false);
    const ours = mooringReads('refused', name);
    expect(ours.ok, `mooring reads refused/${name}: ${JSON.stringify(ours)}`).toBe(false);
    if (!ours.ok) expect(ours.error.context.file).toBe(name);
  });

  it.each(files('stricter'))(
    'stricter/%s: helm reads it, mooring refuses it naming the file',
    async (name) => {
      expect((await helmReads(join(corpus, 'stricter', name))).ok).toBe(true);
      const ours = mooringReads('stricter', name);
      expect(ours.ok).toBe(false);
      if (!ours.ok) expect(ours.error.context.file).toBe(name);
    },
  );
});
