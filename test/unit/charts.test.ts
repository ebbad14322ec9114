// The chart source's pure parts: --chart-auth-file (longest prefix, refusals), cutting a
// repository index (compared with parsing it whole), picking versions as helm does, and
// reading chart defaults (with subcharts) out of an archive.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { chartTreeFromArchive, untar } from '../../src/charts/archive.js';
import { chartCrds, defaultLayers, enabledChart } from '../../src/charts/chart-tree.js';
import { parseChartAuth } from '../../src/charts/auth.js';
import { missingDependencies } from '../../src/charts/dependencies.js';
import type { MooringError } from '../../src/errors.js';
import { indexEntries } from '../../src/charts/repo-index.js';
import { pickVersion } from '../../src/charts/versions.js';
import { mergeValues } from '../../src/resolve/merge.js';

describe('--chart-auth-file', () => {
  const file = 'chart-auth.yaml';

  it('uses the longest matching URL prefix, on path boundaries only', () => {
    const auth = parseChartAuth(
      stringify([
        { url: 'https://charts.example.com', username: 'all', password: 'pw-all' },
        { url: 'https://charts.example.com/team/', token: 'tok-team' },
        { url: 'oci://registry.example.com/charts/', username: 'u', password: 'pw-oci', plainHTTP: true },
      ]),
      file,
    );
    expect(auth.for('https://charts.example.com/stable/index.yaml').authorization).toBe(
      `Basic ${Buffer.from('all:pw-all').toString('base64')}`,
    );
    expect(auth.for('https://charts.example.com/team/index.yaml').authorization).toBe('Bearer tok-team');
    expect(auth.for('https://charts.example.com/teams/index.yaml').authorization).toBe(
      `Basic ${Buffer.from('all:pw-all').toString('base64')}`,
    );
    expect(auth.for('https://charts.example.com.evil.io/x').authorization).toBeUndefined();
    expect(auth.for('oci://registry.example.com/charts/redis/')).toMatchObject({
      plainHTTP: true,
      username: 'u',
    });
    expect(auth.for('oci://registry.example.com/other/')).toEqual({ plainHTTP: false });
    expect(auth.secrets()).toEqual(expect.arrayContaining(['pw-all', 'tok-team', 'pw-oci']));
  });

  it('refuses a URL with credentials, naming the file and the field, and never echoes them', () => {
    const err = (() => {
      try {
        parseChartAuth(stringify([{ url: 'https://deploy:hunter22@charts.example.com/' }]), file);
      } catch (e) {
        return e as Error & { describe(): string };
      }
      throw new Error('accepted');
    })();
    expect(err.describe()).toBe(
      'chart-auth.yaml: [0].url: the URL must not carry credentials; use username and password (or token)',
    );
    expect(err.describe()).not.toContain('hunter22');
  });

  it.each([
    [[{ url: 'https://a/', token: 't', username: 'u', password: 'p' }], '[0].token: give either token'],
    [[{ url: 'https://a/', password: 'p' }], '[0].username: password needs a username'],
    [[{ url: 'https://a/', plainHTTP: true }], '[0].plainHTTP: plainHTTP applies to oci://'],
    [[{ url: 'https://a/', ca: 'not pem' }], '[0].ca: ca must hold PEM'],
    [
      [{ url: 'https://a/', usernme: 'u' }],
      '[0].usernme: unknown field "usernme" (did you mean "username"?)',
    ],
    [[{ url: 'ftp://a/' }], '[0].url: expected an http(s):// or oci:// URL prefix'],
  ])('refuses %j', (entries, message) => {
    expect(() => parseChartAuth(stringify(entries), file)).toThrow(message.split(': ').slice(1).join(': '));
    try {
      parseChartAuth(stringify(entries), file);
    } catch (e) {
      expect((e as { describe(): string }).describe()).toContain(`chart-auth.yaml: ${message}`);
    }
  });
});

describe('repository index', () => {
  // An index as `helm repo index` writes it, with a chart whose name is a prefix of another,
  // quoted keys and a block scalar that holds lines looking like keys.
  const index = stringify(
    {
      apiVersion: 'v1',
      entries: {
        web: [
          {
            name: 'web',
            version: '1.1.0',
            digest: 'a'.repeat(64),
            urls: ['web-1.1.0.tgz'],
            description: 'x\n  y: 1\n',
          },
          {
            name: 'web',
            version: '1.0.0',
            digest: 'b'.repeat(64),
            urls: ['https://cdn.example/web-1.0.0.tgz'],
          },
        ],
        'web-extra': [{ name: 'web-extra', version: '0.1.0', digest: 'c'.repeat(64), urls: ['we.tgz'] }],
        'needs:quote': [{ name: 'needs:quote', version: '2.0.0', urls: ['q.tgz'] }],
      },
      generated: '2026-01-01T00:00:00Z',
    },
    { indent: 2 },
  );

  it('cuts out the wanted charts exactly as parsing the whole index reads them', () => {
    const names = ['web', 'web-extra', 'needs:quote', 'absent'];
    const cut = indexEntries(index, names);
    const whole = parse(index) as { entries: Record<string, Array<Record<string, unknown>>> };
    for (const name of names) {
      const expected = (whole.entries[name] ?? []).map((e) => ({
        name,
        version: e.version,
        urls: e.urls,
        ...(e.digest ? { digest: e.digest } : {}),
      }));
      expect(cut.get(name), name).toEqual(expected);
    }
  });

  it('reads a JSON index (no blocks to cut) by parsing it whole', () => {
    const json = JSON.stringify(parse(index));
    expect(
      indexEntries(json, ['web'])
        .get('web')!
        .map((e) => e.version),
    ).toEqual(['1.1.0', '1.0.0']);
  });
});

describe('picking a version', () => {
  const available = ['1.0.0', '1.2.0', '1.10.1', '2.0.0-rc.1', '0.9.0', 'v1.3.0'];

  it.each([
    [undefined, '1.10.1'],
    ['1.2.0', '1.2.0'],
    ['^1.0.0', '1.10.1'],
    ['~1.2', '1.2.0'],
    ['>=1.0.0, <1.3.0', '1.2.0'],
    ['1.3.x', 'v1.3.0'],
    ['0.9.0 || 1.0.0', '1.0.0'],
    ['>=2.0.0-rc.0', '2.0.0-rc.1'],
  ])('%s picks %s', (constraint, version) => {
    expect(pickVersion(available, constraint)).toEqual({ ok: true, version });
  });

  it('a range with no match and a constraint that is no range say so', () => {
    expect(pickVersion(available, '^3.0.0')).toEqual({
      ok: false,
      reason: 'no version matches "^3.0.0" (available: 2.0.0-rc.1, 1.10.1, v1.3.0, 1.2.0, 1.0.0, ...)',
    });
    expect(pickVersion(available, 'latest please')).toMatchObject({ ok: false });
    expect(pickVersion(['2.0.0-rc.1'], undefined)).toEqual({
      ok: false,
      reason: 'no stable version among 2.0.0-rc.1',
    });
  });
});

describe('chart archives', () => {
  function packaged(): Buffer {
    const dir = mkdtempSync(join(tmpdir(), 'mooring-archive-'));
    const write = (rel: string, text: string) => {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), text);
    };
    write(
      'parent/Chart.yaml',
      'apiVersion: v2\nname: parent\nversion: 1.0.0\ndependencies:\n  - name: db\n    alias: database\n    version: 0.1.0\n',
    );
    write('parent/values.yaml', 'image: {tag: "1"}\ndatabase: {port: 5433, user: null}\n');
    write('parent/charts/db/Chart.yaml', 'apiVersion: v2\nname: db\nversion: 0.1.0\n');
    write('parent/charts/db/values.yaml', 'port: 5432\nuser: admin\nsize: 1Gi\n');
    // A long path forces a PAX or GNU long-name header in the tar.
    write(`parent/templates/${'x'.repeat(120)}.yaml`, '# long\n');
    execFileSync('tar', ['-czf', join(dir, 'parent.tgz'), '-C', dir, 'parent']);
    return readFileSync(join(dir, 'parent.tgz'));
  }

  it('reads files with long names', () => {
    const tgz = packaged();
    const files = untar(gunzipSync(tgz));
    expect([...files.keys()]).toContain(`parent/templates/${'x'.repeat(120)}.yaml`);
  });

  it('gives the chart values over its subcharts, nested under the alias, each layer named', () => {
    const tree = chartTreeFromArchive(packaged(), 'parent-1.0.0');
    expect(tree.meta).toEqual({ name: 'parent', version: '1.0.0' });
    const layers = defaultLayers(tree);
    expect(layers.map((l) => l.source.file)).toEqual([
      'values.yaml of parent-1.0.0',
      'values.yaml of db-0.1.0 (subchart of parent-1.0.0)',
    ]);
    const merged = mergeValues({ chartDefaults: layers, layers: [] });
    expect(merged.values).toEqual({ image: { tag: '1' }, database: { port: 5433, size: '1Gi' } });
    const origin = (key: string) => merged.leaves.find((l) => l.path.join('.') === key)?.source.file;
    expect(origin('database.port')).toBe('values.yaml of parent-1.0.0');
    expect(origin('database.size')).toBe('values.yaml of db-0.1.0 (subchart of parent-1.0.0)');
  });

  function tarball(files: Record<string, string>): Buffer {
    const dir = mkdtempSync(join(tmpdir(), 'mooring-archive-'));
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), text);
    }
    execFileSync('tar', ['-czf', join(dir, 'out.tgz'), '-C', dir, Object.keys(files)[0]!.split('/')[0]!]);
    return readFileSync(join(dir, 'out.tgz'));
  }

  const app = () =>
    chartTreeFromArchive(
      tarball({
        'app/Chart.yaml': [
          'apiVersion: v2',
          'name: app',
          'version: 1.0.0',
          'dependencies:',
          '  - {name: db, version: 0.1.0, condition: "db.enabled,global.db"}',
          '  - {name: cache, version: 0.1.0, tags: [backend]}',
          '  - name: lib',
          '    version: 0.1.0',
          '    alias: shared',
          '    import-values: [defaults, {child: settings, parent: fromLib.settings}]',
          '',
        ].join('\n'),
        'app/values.yaml': 'db: {enabled: false, size: 2Gi}\nfromLib: {settings: {mode: parent}}\n',
        'app/crds/app.yaml': 'kind: CustomResourceDefinition\n',
        'app/charts/db/Chart.yaml': 'apiVersion: v2\nname: db\nversion: 0.1.0\n',
        'app/charts/db/values.yaml': 'size: 1Gi\nport: 5432\n',
        'app/charts/db/crds/db.yaml': 'kind: CustomResourceDefinition\n',
        'app/charts/cache/Chart.yaml': 'apiVersion: v2\nname: cache\nversion: 0.1.0\n',
        'app/charts/cache/values.yaml': 'ttl: 60\n',
        'app/charts/lib/Chart.yaml': 'apiVersion: v2\nname: lib\nversion: 0.1.0\n',
        'app/charts/lib/values.yaml':
          'exports: {defaults: {imported: true, level: low}}\nsettings: {mode: lib, retries: 3}\n',
      }),
      'app-1.0.0',
    );
  const effective = (user: Record<string, unknown>) => {
    const tree = app();
    const layers = [{ source: { file: 'user.yaml', layer: 'common' as const, secret: false }, values: user }];
    const first = mergeValues({ chartDefaults: defaultLayers(tree, { imports: false }), layers }).values;
    const enabled = enabledChart(tree, first);
    return { enabled, merge: mergeValues({ chartDefaults: defaultLayers(enabled), layers }) };
  };

  it('drops a subchart its condition disables: no defaults, no CRDs', () => {
    const { enabled, merge } = effective({});
    expect(enabled.subcharts.map((s) => s.key)).toEqual(['cache', 'shared']);
    expect(merge.values.db).toEqual({ enabled: false, size: '2Gi' });
    expect(chartCrds(enabled).map((c) => c.file)).toEqual(['app-1.0.0.tgz: app/crds/app.yaml']);
  });

  it('reads conditions from the user values, the first boolean of the list winning', () => {
    expect(effective({ db: { enabled: true } }).merge.values.db).toEqual({
      enabled: true,
      size: '2Gi',
      port: 5432,
    });
    expect(chartCrds(effective({ db: { enabled: true } }).enabled)).toHaveLength(2);
    // db.enabled is no boolean: the next condition decides.
    expect(effective({ db: { enabled: 'no' }, global: { db: true } }).merge.values.db).toMatchObject({
      port: 5432,
    });
  });

  it('switches a subchart off only when all its given tags are false, a condition winning over tags', () => {
    expect(effective({}).merge.values.cache).toEqual({ ttl: 60 });
    expect(effective({ tags: { backend: false } }).merge.values.cache).toBeUndefined();
    expect(effective({ tags: { backend: true } }).merge.values.cache).toEqual({ ttl: 60 });
  });

  it('imports values below the parent values, named after the import', () => {
    const { merge } = effective({});
    expect(merge.values.imported).toBe(true);
    expect(merge.values.level).toBe('low');
    // The parent's own value wins over the imported one; the rest is imported.
    expect(merge.values.fromLib).toEqual({ settings: { mode: 'parent', retries: 3 } });
    const origin = (key: string) => merge.leaves.find((l) => l.path.join('.') === key)?.source.file;
    expect(origin('fromLib.settings.retries')).toBe(
      'import-values of app-1.0.0 from lib-0.1.0 (shared.settings)',
    );
    expect(origin('fromLib.settings.mode')).toBe('values.yaml of app-1.0.0');
  });
});

describe('dependencies mooring does not fetch', () => {
  function repoWith(dependencies: string): string {
    const root = mkdtempSync(join(tmpdir(), 'mooring-deps-'));
    mkdirSync(join(root, 'charts/web'), { recursive: true });
    writeFileSync(
      join(root, 'charts/web/Chart.yaml'),
      `apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n${dependencies}`,
    );
    return root;
  }

  it('a file:// dependency that is not vendored is refused, naming Chart.yaml and the field', () => {
    const root = repoWith(
      '  - {name: lib, version: 1.0.0, repository: "https://charts.example.com"}\n  - {name: shared, version: 0.1.0, repository: "file://../shared"}\n',
    );
    let error: MooringError | undefined;
    try {
      missingDependencies(root, 'charts/web');
    } catch (err) {
      error = err as MooringError;
    }
    expect(error?.message).toBe(
      'dependency shared is not vendored under charts/web/charts/, and file:// dependencies must be vendored',
    );
    expect(error?.context).toMatchObject({
      file: 'charts/web/Chart.yaml',
      field: 'dependencies[1].repository',
    });
    expect(error?.hint).toBe('run helm dependency build charts/web and commit charts/web/charts/');
  });

  it('a repository name from helm repo add is refused, naming Chart.yaml and the field', () => {
    const root = repoWith('  - {name: redis, version: 18.0.0, repository: "@bitnami"}\n');
    expect(() => missingDependencies(root, 'charts/web')).toThrow(
      /dependency redis: repository "@bitnami" must be an http\(s\):\/\/ or oci:\/\/ URL/,
    );
  });

  it('a vendored file:// dependency is fine: nothing to fetch', () => {
    const root = repoWith('  - {name: shared, version: 0.1.0, repository: "file://../shared"}\n');
    mkdirSync(join(root, 'charts/web/charts/shared'), { recursive: true });
    writeFileSync(
      join(root, 'charts/web/charts/shared/Chart.yaml'),
      'apiVersion: v2\nname: shared\nversion: 0.1.0\n',
    );
    expect(missingDependencies(root, 'charts/web')).toEqual([]);
  });
});
