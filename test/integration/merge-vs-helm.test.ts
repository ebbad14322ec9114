// Differential test: for many random layer combinations, the values that `helm template`
// sees when given the same files as repeated --values equal mooring's in-process merge.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseYaml } from '../../src/model/yaml.js';
import { mergeValues, type Values } from '../../src/resolve/merge.js';

const helm = process.env.MOORING_HELM ?? join(import.meta.dirname, '../../.tools/bin/helm');
const dir = mkdtempSync(join(tmpdir(), 'mooring-merge-'));
afterAll(() => {
  if (!process.env.SEED) rmSync(dir, { recursive: true, force: true });
});

// A deterministic generator (mulberry32), so a failure can be replayed from its seed.
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Keys include a YAML 1.1 word (`on`) that helm's parser turns into a boolean (`true`).
const KEYS = ['a', 'b', 'c', 'list', 'on'];
const SCALARS: unknown[] = [0, 1, 42, -3, 2.5, 'x', 'yes', 'off', '0777', '', true, false, null, null];

function gen(random: () => number, depth: number): Values {
  const out: Values = {};
  const n = 1 + Math.floor(random() * 4);
  for (let i = 0; i < n; i++) {
    const key = KEYS[Math.floor(random() * KEYS.length)]!;
    const roll = random();
    if (roll < 0.35 && depth < 3) out[key] = gen(random, depth + 1);
    else if (roll < 0.45) out[key] = [SCALARS[Math.floor(random() * 6)], 'item'];
    else if (roll < 0.5) out[key] = {};
    else out[key] = SCALARS[Math.floor(random() * SCALARS.length)];
  }
  return out;
}

function writeChart(name: string, defaults: Values): string {
  const chart = join(dir, name);
  mkdirSync(join(chart, 'templates'), { recursive: true });
  writeFileSync(join(chart, 'Chart.yaml'), `apiVersion: v2\nname: ${name}\nversion: 0.1.0\n`);
  writeFileSync(join(chart, 'values.yaml'), stringify(defaults));
  writeFileSync(join(chart, 'templates', 'values.yaml'), '{{ toYaml .Values }}\n');
  return chart;
}

function helmValues(chart: string, files: string[]): unknown {
  const out = execFileSync(helm, ['template', 'r', chart, ...files.flatMap((f) => ['--values', f])], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const body = out.replace(/^---\n# Source: [^\n]*\n/, '');
  return parseYaml(body, 'helm output') ?? {};
}

describe('values merge matches helm', () => {
  const seeds = process.env.SEED ? [Number(process.env.SEED)] : Array.from({ length: 100 }, (_, i) => i + 1);
  it.each(seeds)('random layers, seed %i', (seed) => {
    const random = rng(seed);
    const chart = writeChart(`c${seed}`, gen(random, 0));
    const layers = Array.from({ length: 2 + Math.floor(random() * 4) }, () => gen(random, 0));
    const files = layers.map((values, i) => {
      const file = join(dir, `s${seed}-l${i}.yaml`);
      writeFileSync(file, stringify(values));
      return file;
    });

    // mooring reads the same files with its own parser, so YAML 1.1 parsing is compared too.
    const parsed = (file: string) => (parseYaml(stringifyFile(file), file) ?? {}) as Values;
    const result = mergeValues({
      chartDefaults: {
        source: { file: 'chart', layer: 'chart', secret: false },
        values: parsed(join(chart, 'values.yaml')),
      },
      layers: files.map((file) => ({
        source: { file, layer: 'common', secret: false },
        values: parsed(file),
      })),
    });
    expect(result.values).toEqual(helmValues(chart, files));
  });

  it('gives helm the same values through stdin as through the files', () => {
    const chart = writeChart('stdin', { a: { b: 1, c: 2 }, keep: 'k' });
    const layers: Values[] = [
      { a: { b: null }, list: [1, 2] },
      { a: { d: 'yes' }, keep: null },
    ];
    const files = layers.map((values, i) => {
      const file = join(dir, `stdin-${i}.yaml`);
      writeFileSync(file, stringify(values));
      return file;
    });
    const result = mergeValues({
      chartDefaults: {
        source: { file: 'chart', layer: 'chart', secret: false },
        values: { a: { b: 1, c: 2 }, keep: 'k' },
      },
      layers: files.map((file) => ({
        source: { file, layer: 'common', secret: false },
        values: parseYaml(stringifyFile(file), file) as Values,
      })),
    });
    const out = execFileSync(helm, ['template', 'r', chart, '--values', '-'], {
      encoding: 'utf8',
      input: JSON.stringify(result.userValues),
    });
    expect(parseYaml(out.replace(/^---\n# Source: [^\n]*\n/, ''), 'helm output')).toEqual(
      helmValues(chart, files),
    );
    expect(result.values).toEqual(helmValues(chart, files));
  });
});

function stringifyFile(file: string): string {
  return execFileSync('cat', [file], { encoding: 'utf8' });
}
