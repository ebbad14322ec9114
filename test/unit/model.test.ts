import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MooringError } from '../../src/errors.js';
import { loadClusterModel, scanLayer } from '../../src/model/repo.js';
import { mergeReleases, parseReleasesFile } from '../../src/model/releases.js';
import { DEFAULT_YAML_LIMITS, parseYaml } from '../../src/model/yaml.js';
import { resolveCluster } from '../../src/resolve/resolve.js';

/** Writes a repository from a map of path -> content into a fresh temp dir. */
function repo(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'mooring-model-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

function errorOf(fn: () => unknown): MooringError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MooringError) return err;
    throw err;
  }
  throw new Error('expected a MooringError');
}

const CHART = { 'charts/web/Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n' };

describe('YAML loading', () => {
  it('reads YAML 1.1 the way helm does', () => {
    expect(parseYaml('a: yes\nb: on\nc: 0777\nd: "yes"\n', 'f.yaml')).toEqual({
      a: true,
      b: true,
      c: 511,
      d: 'yes',
    });
  });

  it('refuses an alias bomb quickly, naming the file', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++)
      bomb.push(
        `${'b'.repeat(i)}: &${'b'.repeat(i)} [${Array(9)
          .fill(i === 1 ? '*a' : `*${'b'.repeat(i - 1)}`)
          .join(',')}]`,
      );
    const err = errorOf(() => parseYaml(bomb.join('\n'), 'values.yaml'));
    expect(err.context.file).toBe('values.yaml');
    expect(err.message).toMatch(/alias/);
  });

  it('refuses oversized files before parsing them', () => {
    const err = errorOf(() =>
      parseYaml(`a: "${'x'.repeat(2000)}"`, 'big.yaml', { ...DEFAULT_YAML_LIMITS, maxBytes: 1000 }),
    );
    expect(err.message).toMatch(/over the limit of 1000 bytes/);
  });

  it('reports malformed YAML with its line', () => {
    const err = errorOf(() => parseYaml('a: 1\n  b: [\n', 'bad.yaml'));
    expect(err.describe()).toMatch(/^bad\.yaml: invalid YAML: .*line \d+/);
  });

  it('refuses duplicate keys and several documents', () => {
    expect(errorOf(() => parseYaml('a: 1\na: 2\n', 'd.yaml')).message).toMatch(/unique/);
    expect(errorOf(() => parseYaml('a: 1\n---\nb: 2\n', 'm.yaml')).message).toMatch(/2 YAML documents/);
  });
});

describe('releases.yaml', () => {
  it('rejects unknown fields and suggests the field meant', () => {
    const err = errorOf(() =>
      parseReleasesFile({ releases: { web: { chart: './charts/web', namspace: 'web' } } }, 'releases.yaml'),
    );
    expect(err.context).toMatchObject({ file: 'releases.yaml', field: 'releases.web.namspace' });
    expect(err.message).toMatch(/did you mean "namespace"/);
  });

  it('reports every problem of a file at once', () => {
    const err = errorOf(() =>
      parseReleasesFile(
        { releases: { web: { chart: 3, wait: 'yes-please', timeout: 'soon' }, Bad_Name: {} } },
        'r.yaml',
      ),
    );
    expect(err.message).toMatch(/4 problems/);
    expect(err.message).toMatch(/releases\.web\.chart: expected a string, found the number 3/);
    expect(err.message).toMatch(/releases\.web\.timeout/);
    expect(err.message).toMatch(/Bad_Name/);
  });

  it('merges fields by release name, later layers over earlier, and honours enabled: false', () => {
    const { releases, disabled } = mergeReleases([
      {
        file: 'environments/common/releases.yaml',
        releases: { web: { chart: './charts/web', namespace: 'web' }, legacy: { chart: './charts/legacy' } },
      },
      {
        file: 'environments/prod/releases.yaml',
        releases: { web: { timeout: '10m', drift: { mode: 'warn' } } },
      },
      {
        file: 'clusters/p1/releases.yaml',
        releases: { legacy: { enabled: false }, web: { drift: { ignore: [{ path: '/spec/replicas' }] } } },
      },
    ]);
    expect(disabled).toEqual(['legacy']);
    expect(releases).toHaveLength(1);
    expect(releases[0]).toMatchObject({
      name: 'web',
      chart: { kind: 'local', path: 'charts/web' },
      namespace: 'web',
      timeoutSeconds: 600,
      drift: { mode: 'warn', ignore: [{ path: '/spec/replicas' }] },
      declaredIn: [
        'environments/common/releases.yaml',
        'environments/prod/releases.yaml',
        'clusters/p1/releases.yaml',
      ],
    });
  });

  it('needs a chart from some layer, and names the release', () => {
    const err = errorOf(() =>
      mergeReleases([{ file: 'a/releases.yaml', releases: { web: { namespace: 'web' } } }]),
    );
    expect(err.context).toMatchObject({ release: 'web', field: 'releases.web.chart' });
  });

  it('distinguishes in-repository, Helm repository and OCI charts', () => {
    const { releases } = mergeReleases([
      {
        file: 'r.yaml',
        releases: {
          a: { chart: './charts/a' },
          b: { chart: 'redis', repo: 'https://charts.example.com', version: '18.6.1' },
          c: { chart: 'oci://registry.example.com/charts/c', version: '^1.0.0' },
        },
      },
    ]);
    expect(releases.map((r) => r.chart)).toEqual([
      { kind: 'local', path: 'charts/a' },
      { kind: 'repo', repo: 'https://charts.example.com', name: 'redis', version: '18.6.1' },
      { kind: 'oci', url: 'oci://registry.example.com/charts/c', version: '^1.0.0' },
    ]);
  });

  it('refuses a chart path that is neither local nor a reference', () => {
    const err = errorOf(() => mergeReleases([{ file: 'r.yaml', releases: { a: { chart: 'charts/a' } } }]));
    expect(err.message).toMatch(/neither an in-repository path/);
  });
});

describe('repository layout', () => {
  it('loads a cluster with its three layers', () => {
    const root = repo({
      ...CHART,
      'environments/common/releases.yaml': 'releases:\n  web: {chart: ./charts/web}\n',
      'environments/common/values.yaml': 'a: 1\n',
      'environments/dev/values/web.yaml': 'b: 2\n',
      'clusters/c1/cluster.yaml': 'environment: dev\nregion: us-east-1\n',
      'clusters/c1/secrets/web.sops.yaml': 'x: 1\n',
    });
    const model = loadClusterModel(root, 'c1');
    expect(model.cluster).toMatchObject({ name: 'c1', environment: 'dev', region: 'us-east-1' });
    expect(model.layers.map((l) => l.dir)).toEqual([
      'environments/common',
      'environments/dev',
      'clusters/c1',
    ]);
    expect(model.layers[1]!.valuesFor.get('web')).toBe('environments/dev/values/web.yaml');
    expect(model.layers[2]!.secretsFor.get('web')).toBe('clusters/c1/secrets/web.sops.yaml');
    expect(model.releases.map((r) => r.name)).toEqual(['web']);
  });

  it('names the missing environment and lists the known ones', () => {
    const root = repo({
      'environments/dev/values.yaml': '',
      'clusters/c1/cluster.yaml': 'environment: prod\n',
    });
    const err = errorOf(() => loadClusterModel(root, 'c1'));
    expect(err.context).toMatchObject({
      file: 'clusters/c1/cluster.yaml',
      field: 'environment',
      cluster: 'c1',
    });
    expect(err.hint).toMatch(/known environments: dev/);
  });

  it('reserves "common" as an environment name', () => {
    const root = repo({
      'environments/common/values.yaml': '',
      'clusters/c1/cluster.yaml': 'environment: common\n',
    });
    expect(errorOf(() => loadClusterModel(root, 'c1')).message).toMatch(/reserved/);
  });

  it('refuses unknown files in a layer, so typos do not go unnoticed', () => {
    const root = repo({ 'environments/dev/value.yaml': 'a: 1\n' });
    const err = errorOf(() => scanLayer(root, 'environment', 'dev', 'environments/dev'));
    expect(err.context.file).toBe('environments/dev/value.yaml');
  });

  it('refuses a symlink that points outside the repository', () => {
    const outside = repo({ 'secret.yaml': 'password: hunter2\n' });
    const root = repo({ 'environments/dev/values.yaml': 'a: 1\n' });
    mkdirSync(join(root, 'environments/dev/values'));
    symlinkSync(join(outside, 'secret.yaml'), join(root, 'environments/dev/values/web.yaml'));
    const err = errorOf(() => scanLayer(root, 'environment', 'dev', 'environments/dev'));
    expect(err.message).toMatch(/points outside the repository/);
    expect(err.context.file).toBe('environments/dev/values/web.yaml');
  });

  it('refuses a chart path that leaves the repository', async () => {
    const root = repo({
      'environments/common/releases.yaml': 'releases:\n  web: {chart: ./../../etc}\n',
      'environments/dev/values.yaml': '',
      'clusters/c1/cluster.yaml': 'environment: dev\n',
    });
    const [result] = await resolveCluster(loadClusterModel(root, 'c1'), {
      decrypt: () => Promise.reject(new Error('unused')),
    });
    expect(result).toMatchObject({ ok: false, name: 'web' });
    const err = (result as { error: MooringError }).error;
    expect(err.message).toMatch(/leaves the repository/);
    expect(err.context).toMatchObject({
      file: 'environments/common/releases.yaml',
      field: 'releases.web.chart',
      cluster: 'c1',
    });
  });

  it('refuses an absolute chart path, naming the field', () => {
    const err = errorOf(() => mergeReleases([{ file: 'r.yaml', releases: { a: { chart: '/etc' } } }]));
    expect(err.context).toMatchObject({ file: 'r.yaml', field: 'releases.a.chart' });
  });

  it('refuses an environment folder that is a symlink leaving the repository', () => {
    const outside = repo({ 'values.yaml': 'a: 1\n' });
    const root = repo({ 'clusters/c1/cluster.yaml': 'environment: dev\n' });
    mkdirSync(join(root, 'environments'));
    symlinkSync(outside, join(root, 'environments/dev'));
    const err = errorOf(() => loadClusterModel(root, 'c1'));
    expect(err.message).toMatch(/environments\/dev is a symlink that points outside the repository/);
    expect(err.context).toMatchObject({ file: 'clusters/c1/cluster.yaml', field: 'environment' });
  });

  it('names each release a broken shared values file fails, not only the first', async () => {
    const root = repo({
      ...CHART,
      'environments/common/releases.yaml':
        'releases:\n  web: {chart: ./charts/web}\n  api: {chart: ./charts/web}\n',
      'environments/common/values.yaml': 'replicaCount: [1\n',
      'environments/dev/values.yaml': '',
      'clusters/c1/cluster.yaml': 'environment: dev\n',
    });
    const results = await resolveCluster(loadClusterModel(root, 'c1'), {
      decrypt: () => Promise.reject(new Error('unused')),
    });
    const errors = results.map((r) => (r.ok ? undefined : r.error.context));
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ release: 'web', cluster: 'c1', file: 'environments/common/values.yaml' }),
        expect.objectContaining({ release: 'api', cluster: 'c1', file: 'environments/common/values.yaml' }),
      ]),
    );
  });

  it('validates cluster.yaml fields', () => {
    const root = repo({
      'environments/dev/values.yaml': '',
      'clusters/c1/cluster.yaml': 'environment: dev\nsync: {mode: sometimes}\nregoin: x\n',
    });
    const err = errorOf(() => loadClusterModel(root, 'c1'));
    expect(err.message).toMatch(/sync\.mode: expected one of auto, manual/);
    expect(err.message).toMatch(/regoin.*did you mean "region"/);
  });
});
