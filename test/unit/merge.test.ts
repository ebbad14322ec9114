import { describe, expect, it } from 'vitest';
import { formatPath, mergeValues, type Source, type Values } from '../../src/resolve/merge.js';

const src = (file: string, layer: Source['layer'] = 'common', secret = false): Source => ({
  file,
  layer,
  secret,
});
const layer = (file: string, values: Values, secret = false) => ({
  source: src(file, 'common', secret),
  values,
});
const chart = (values: Values) => ({ source: src('charts/c/values.yaml', 'chart'), values });

function originOf(result: ReturnType<typeof mergeValues>, path: string): string | undefined {
  return result.leaves.find((l) => formatPath(l.path) === path)?.source.file;
}

describe('mergeValues (Helm semantics)', () => {
  it('merges maps deeply and lets later layers win on scalars', () => {
    const r = mergeValues({
      layers: [
        layer('a.yaml', { image: { repo: 'nginx', tag: '1' }, replicas: 1 }),
        layer('b.yaml', { image: { tag: '2' } }),
      ],
    });
    expect(r.values).toEqual({ image: { repo: 'nginx', tag: '2' }, replicas: 1 });
    expect(originOf(r, 'image.tag')).toBe('b.yaml');
    expect(originOf(r, 'image.repo')).toBe('a.yaml');
  });

  it('replaces lists instead of merging them', () => {
    const r = mergeValues({
      layers: [layer('a.yaml', { hosts: ['a', 'b'] }), layer('b.yaml', { hosts: ['c'] })],
    });
    expect(r.values).toEqual({ hosts: ['c'] });
    expect(originOf(r, 'hosts')).toBe('b.yaml');
  });

  it('deletes chart defaults with null, at the top level and nested, and says which file did', () => {
    const r = mergeValues({
      chartDefaults: chart({ a: { b: 1, c: 2, d: { e: 1 } }, del: 5, keep: 1 }),
      layers: [layer('env.yaml', { a: { b: null, d: { e: null, f: 1 } }, del: null })],
    });
    expect(r.values).toEqual({ a: { c: 2, d: { f: 1 } }, keep: 1 });
    expect(r.deletions.map((d) => [formatPath(d.path), d.source.file]).sort()).toEqual([
      ['a.b', 'env.yaml'],
      ['a.d.e', 'env.yaml'],
      ['del', 'env.yaml'],
    ]);
    expect(originOf(r, 'a.c')).toBe('charts/c/values.yaml');
  });

  it('keeps a null for a key the chart does not know at the top level, as helm does', () => {
    const r = mergeValues({
      chartDefaults: chart({ keep: 1 }),
      layers: [layer('a.yaml', { onlynull: null, z: { q: null } })],
    });
    expect(r.values).toEqual({ keep: 1, onlynull: null, z: { q: null } });
  });

  it('keeps a nested null for a key the chart lacks, even inside a map the chart has', () => {
    const r = mergeValues({
      chartDefaults: chart({ a: { b: 1 } }),
      layers: [layer('a.yaml', { a: { zz: null } })],
    });
    expect(r.values).toEqual({ a: { b: 1, zz: null } });
    expect(r.deletions).toEqual([]);
  });

  it('lets a later layer bring back a key an earlier layer deleted', () => {
    const r = mergeValues({
      chartDefaults: chart({ a: { b: 1, c: 2 } }),
      layers: [layer('common.yaml', { a: null }), layer('prod.yaml', { a: { new: 1 } })],
    });
    expect(r.values).toEqual({ a: { b: 1, c: 2, new: 1 } });
    expect(r.userValues).toEqual({ a: { new: 1 } });
  });

  it('replaces a map with a scalar and a scalar with a map', () => {
    const r = mergeValues({
      chartDefaults: chart({ m2s: { x: 1 }, s2m: 'hello' }),
      layers: [layer('a.yaml', { m2s: 'scalar', s2m: { y: 2 } })],
    });
    expect(r.values).toEqual({ m2s: 'scalar', s2m: { y: 2 } });
  });

  it('keeps nulls in the values handed to helm so that helm deletes the same keys', () => {
    const r = mergeValues({ chartDefaults: chart({ del: 1 }), layers: [layer('a.yaml', { del: null })] });
    expect(r.userValues).toEqual({ del: null });
    expect(r.values).toEqual({});
  });

  it('injects the identity last, replacing whatever a layer put there', () => {
    const r = mergeValues({
      layers: [layer('a.yaml', { global: { team: 'x' } })],
      inject: {
        path: ['global', 'cluster'],
        value: { name: 'c1' },
        source: src('clusters/c1/cluster.yaml', 'identity'),
      },
    });
    expect(r.values).toEqual({ global: { team: 'x', cluster: { name: 'c1' } } });
    expect(originOf(r, 'global.cluster.name')).toBe('clusters/c1/cluster.yaml');
  });

  it('marks leaves from secret files as secret', () => {
    const r = mergeValues({ layers: [layer('v.yaml', { a: 1 }), layer('s.sops.yaml', { pw: 'x' }, true)] });
    expect(r.leaves.filter((l) => l.source.secret).map((l) => formatPath(l.path))).toEqual(['pw']);
  });

  it('does not let merging mutate its inputs', () => {
    const a = { m: { x: 1 } };
    const b = { m: { y: 2 } };
    mergeValues({ chartDefaults: chart({ m: { z: 3 } }), layers: [layer('a.yaml', a), layer('b.yaml', b)] });
    expect(a).toEqual({ m: { x: 1 } });
    expect(b).toEqual({ m: { y: 2 } });
  });

  it('records an empty map as a leaf with its origin', () => {
    const r = mergeValues({ layers: [layer('a.yaml', { resources: {} })] });
    expect(originOf(r, 'resources')).toBe('a.yaml');
  });

  it('formats paths with dots quoted', () => {
    expect(formatPath(['podAnnotations', 'prometheus.io/scrape'])).toBe(
      'podAnnotations["prometheus.io/scrape"]',
    );
  });
});
