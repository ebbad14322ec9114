// src/model/yaml.ts beyond what the differential corpus checks against helm
// (test/integration/yaml-vs-helm.test.ts): the bounds that protect the agent's memory, the
// errors people read, and multi-document manifests.
import { describe, expect, it } from 'vitest';
import { MooringError } from '../../src/errors.js';
import { DEFAULT_YAML_LIMITS, parseYaml, parseYamlDocuments } from '../../src/model/yaml.js';

function errorOf(fn: () => unknown): MooringError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MooringError) return err;
    throw err;
  }
  throw new Error('expected a MooringError');
}

describe('the alias expansion bound', () => {
  it('refuses a file whose aliases would expand past the bound, before expanding anything', () => {
    // 40 levels of ten aliases each: expanded, this is 10^40 nodes. Returning at all proves
    // that the size was computed without expanding it.
    const lines = ['l0: &l0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i <= 40; i++)
      lines.push(
        `l${i}: &l${i} [${Array(10)
          .fill(`*l${i - 1}`)
          .join(', ')}]`,
      );
    const err = errorOf(() => parseYaml(lines.join('\n'), 'environments/prod/values.yaml'));
    expect(err.context.file).toBe('environments/prod/values.yaml');
    expect(err.message).toMatch(/aliases/);
  });

  it('refuses a large string repeated by aliases under the file size limit', () => {
    // The case that took 40 s and 1 GB: one big string referenced 99 times.
    const big = 'x'.repeat(DEFAULT_YAML_LIMITS.maxBytes - 2000);
    const text = `s: &s ${big}\nlist: [${Array(99).fill('*s').join(', ')}]\n`;
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(DEFAULT_YAML_LIMITS.maxBytes);
    const err = errorOf(() => parseYaml(text, 'values/web.yaml'));
    expect(err.describe()).toMatch(/^values\/web\.yaml: expands to more than \d+/);
  });

  it('accepts many aliases of a small map (the old limit of 100 aliases refused this)', () => {
    const text = `base: &b {image: nginx, port: 80}\n${Array.from({ length: 300 }, (_, i) => `r${i}: *b`).join('\n')}\n`;
    const values = parseYaml(text, 'values.yaml') as Record<string, unknown>;
    expect(values.r299).toEqual({ image: 'nginx', port: 80 });
    // Each alias is its own copy: changing one never changes another.
    (values.r0 as Record<string, unknown>).port = 1;
    expect(values.r1).toEqual({ image: 'nginx', port: 80 });
  });

  it('counts every document of a stream against one bound', () => {
    const doc = `a: &a [${Array(50).fill('yyyyyyyyyy').join(', ')}]\nb: [${Array(50).fill('*a').join(', ')}]\n`;
    const limits = { ...DEFAULT_YAML_LIMITS, maxExpandedSize: 50_000 };
    expect(parseYamlDocuments(doc, 'one.yaml', { limits })).toHaveLength(1);
    const err = errorOf(() => parseYamlDocuments(`${doc}---\n${doc}`, 'two.yaml', { limits }));
    expect(err.context.file).toBe('two.yaml');
  });
});

describe('the node bound', () => {
  it('refuses a file of too many nodes before the parser builds them, naming the file', () => {
    const limits = { ...DEFAULT_YAML_LIMITS, maxNodes: 1000 };
    expect(parseYaml(`l: [${'1,'.repeat(997)}1]`, 'ok.yaml', limits)).toMatchObject({ l: { length: 998 } });
    const err = errorOf(() => parseYaml(`l: [${'1,'.repeat(1000)}1]`, 'many.yaml', limits));
    expect(err.describe()).toMatch(/^many\.yaml: holds more than 1000 YAML nodes/);
  });
});

describe('bytes that are not UTF-8', () => {
  it('are refused naming the file, the byte and its line', () => {
    const bytes = Buffer.concat([Buffer.from('a: 1\nb: caf'), Buffer.from([0xe9]), Buffer.from('\n')]);
    const err = errorOf(() => parseYaml(bytes, 'clusters/eu/cluster.yaml'));
    expect(err.describe()).toBe(
      'clusters/eu/cluster.yaml: is not valid UTF-8 (byte 0xe9 on line 2, offset 11); helm refuses such a file',
    );
  });

  it('a byte-order mark is fine, as it is to helm', () => {
    expect(parseYaml(Buffer.from('\uFEFFa: on\n'), 'bom.yaml')).toEqual({ a: true });
  });
});

describe('errors name the field', () => {
  it('a NaN says where it is and how to keep it as text', () => {
    const err = errorOf(() => parseYaml('resources:\n  limits:\n    cpu: .nan\n', 'values.yaml'));
    expect(err.context).toMatchObject({ file: 'values.yaml', field: 'resources.limits.cpu' });
    expect(err.message).toMatch(/quote it/);
  });

  it('a duplicate key names the key and its map', () => {
    const err = errorOf(() => parseYaml('web:\n  on: 1\n  true: 2\n', 'values.yaml'));
    expect(err.context).toMatchObject({ file: 'values.yaml', field: 'web.true' });
  });
});

describe('rendered manifests', () => {
  it('reads every document, YAML 1.1 scalars included, duplicate keys keeping the last', () => {
    const manifest = [
      '---',
      '# Source: web/templates/cm.yaml',
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata: {name: web}',
      'data: {a: "1", b: 1}',
      '---',
      '# Source: web/templates/empty.yaml',
      '---',
      'kind: Thing',
      'spec: {mode: 0755, on: off, when: 12:30, e: e2, k: 1, k: 2}',
    ].join('\n');
    expect(parseYamlDocuments(manifest, 'manifest')).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web' }, data: { a: '1', b: 1 } },
      null,
      { kind: 'Thing', spec: { mode: 493, true: false, when: '12:30', e: 'e2', k: 2 } },
    ]);
  });
});
