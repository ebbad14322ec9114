// The live side of a plan, without a cluster: which action each release gets, what the plan
// digest covers, and how values and manifest diffs keep secrets out while still showing
// that a secret changed.
import { describe, expect, it } from 'vitest';
import type { HelmObservation } from '../../src/converge/decide.js';
import { MooringError } from '../../src/errors.js';
import type { PlannedRelease } from '../../src/plan/cluster-plan.js';
import {
  diffReleases,
  manifestDiff,
  normalizeObject,
  parseManifest,
  planChanges,
  bindingDigest,
  bindRenders,
  manifestDigest,
  oneLine,
  valuesDiff,
  varyingLinesOf,
  type HelmState,
  type LivePlan,
  type ReleaseRender,
  type KubeObject,
  type LiveSource,
  type LiveState,
  type ObjectKey,
  type RecordedRelease,
} from '../../src/plan/live-diff.js';
import type { ResolvedRelease } from '../../src/resolve/resolve.js';

const KEY = Buffer.from('test digest key');
const REV = '1'.repeat(40);
const cluster = { name: 'prod-eu' };

function planned(name: string, digest: string, extra: Partial<PlannedRelease> = {}): PlannedRelease {
  return { name, namespace: name, chart: `./charts/${name}`, dependsOn: [], digest, ...extra };
}

function helmAt(revision: number, status: HelmObservation['status'] = 'deployed'): HelmState {
  return {
    observation: { revision, status, lastDeployedRevision: revision },
    deployed: async () => undefined,
  };
}

function state(records: RecordedRelease[], helm: Record<string, HelmState>): LiveState {
  return { records, helm: new Map(Object.entries(helm)) };
}

describe('planChanges: the action per release', () => {
  it('installs what helm does not have, leaves alone what converged to the same digest, upgrades the rest', () => {
    const plan = {
      cluster,
      releases: [planned('web', 'sha256:w2'), planned('api', 'sha256:a1'), planned('cache', 'sha256:c1')],
    };
    const live = state(
      [
        { name: 'web', namespace: 'web', managed: true, deployedDigest: 'sha256:w1', helmRevision: 3 },
        { name: 'api', namespace: 'api', managed: true, deployedDigest: 'sha256:a1', helmRevision: 7 },
      ],
      { 'web/web': helmAt(3), 'api/api': helmAt(7) },
    );
    const result = planChanges(plan, live, { revision: REV, prune: false });
    expect(result.releases.map((r) => [r.name, r.action, r.reason])).toEqual([
      ['api', 'none', 'up to date'],
      ['cache', 'install', 'not installed yet'],
      ['web', 'upgrade', 'the desired state changed'],
    ]);
    expect(result.changes).toBe(2);
  });

  it('upgrades a release whose helm revision was made outside mooring, even at the same digest', () => {
    const plan = { cluster, releases: [planned('web', 'sha256:w1')] };
    const live = state(
      [{ name: 'web', namespace: 'web', managed: true, deployedDigest: 'sha256:w1', helmRevision: 3 }],
      {
        'web/web': helmAt(4),
      },
    );
    const [web] = planChanges(plan, live, { revision: REV, prune: false }).releases;
    expect(web).toMatchObject({
      action: 'upgrade',
      reason: 'helm revision 4 was made outside mooring',
      helmRevision: 4,
    });
  });

  it('uninstalls a managed release that left Git only when pruning, and reports it otherwise', () => {
    const plan = { cluster, releases: [] };
    const live = state(
      [{ name: 'old', namespace: 'legacy', managed: true, deployedDigest: 'sha256:o', helmRevision: 2 }],
      {
        'legacy/old': helmAt(2),
      },
    );
    expect(planChanges(plan, live, { revision: REV, prune: true }).releases[0]).toMatchObject({
      name: 'old',
      action: 'uninstall',
    });
    const kept = planChanges(plan, live, { revision: REV, prune: false });
    expect(kept.releases[0]).toMatchObject({
      action: 'none',
      reason: expect.stringContaining('pruning is off'),
    });
    expect(kept.changes).toBe(0);
  });

  it('marks a release that is broken in Git as an error, which changes nothing', () => {
    const error = new MooringError('expected a map', { file: 'clusters/prod-eu/values/web.yaml' });
    const plan = { cluster, releases: [{ ...planned('web', ''), digest: undefined, error }] };
    const result = planChanges(plan, state([], {}), { revision: REV, prune: false });
    expect(result.releases[0]).toMatchObject({
      action: 'error',
      reason: 'clusters/prod-eu/values/web.yaml: expected a map',
    });
    expect(result.changes).toBe(0);
  });

  it('plans a failed release waiting out its retry delay as an upgrade, whatever the clock says', () => {
    const plan = { cluster, releases: [planned('web', 'sha256:w2')] };
    const live = state(
      [
        {
          name: 'web',
          namespace: 'web',
          managed: true,
          deployedDigest: 'sha256:w1',
          helmRevision: 5,
          failedDigest: 'sha256:w2',
          retryAt: Date.now() + 3_600_000,
        },
      ],
      { 'web/web': helmAt(5) },
    );
    expect(planChanges(plan, live, { revision: REV, prune: false }).releases[0]?.action).toBe('upgrade');
  });
});

describe('bindingDigest', () => {
  const plan = { cluster, releases: [planned('web', 'sha256:w2'), planned('api', 'sha256:a1')] };
  const live = (webRevision: number) =>
    state(
      [
        {
          name: 'web',
          namespace: 'web',
          managed: true,
          deployedDigest: 'sha256:w1',
          helmRevision: webRevision,
        },
      ],
      {
        'web/web': helmAt(webRevision),
      },
    );

  it('is the same for the same revision over the same live releases, whatever the order of releases', () => {
    const a = planChanges(plan, live(3), { revision: REV, prune: false });
    const b = planChanges({ cluster, releases: [...plan.releases].reverse() }, live(3), {
      revision: REV,
      prune: false,
    });
    expect(a.binding).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.binding).toBe(a.binding);
  });

  it('changes with the revision, a desired digest, or the live helm revision', () => {
    const base = planChanges(plan, live(3), { revision: REV, prune: false }).binding;
    expect(planChanges(plan, live(3), { revision: '2'.repeat(40), prune: false }).binding).not.toBe(base);
    expect(planChanges(plan, live(4), { revision: REV, prune: false }).binding).not.toBe(base);
    const changed = { cluster, releases: [planned('web', 'sha256:w3'), planned('api', 'sha256:a1')] };
    expect(planChanges(changed, live(3), { revision: REV, prune: false }).binding).not.toBe(base);
  });

  it('ignores the wording of reasons', () => {
    const p = planChanges(plan, live(3), { revision: REV, prune: false });
    const reworded = { ...p, releases: p.releases.map((r) => ({ ...r, reason: 'something else' })) };
    expect(bindingDigest(reworded)).toBe(p.binding);
  });
});

describe('valuesDiff', () => {
  const mask = { key: KEY, paths: [['db', 'password']], strings: ['hunter2-old', 'hunter2-new'] };

  it('shows a changed secret as a changed hash and never the value', () => {
    const diff = valuesDiff({
      release: 'web',
      deployed: { replicas: 2, db: { password: 'hunter2-old', host: 'db' } },
      desired: { replicas: 3, db: { password: 'hunter2-new', host: 'db' } },
      mask,
    });
    expect(diff).toContain('-replicas: 2');
    expect(diff).toContain('+replicas: 3');
    expect(diff).toMatch(/-\s+password: <secret:[0-9a-f]{16}>/);
    expect(diff).toMatch(/\+\s+password: <secret:[0-9a-f]{16}>/);
    expect(diff).not.toContain('hunter2');
  });

  it('is empty when nothing changed, secrets included', () => {
    const values = { db: { password: 'hunter2-old' } };
    expect(valuesDiff({ release: 'web', deployed: values, desired: structuredClone(values), mask })).toBe('');
  });

  it('masks a deployed secret under a path the desired values no longer mark secret', () => {
    const diff = valuesDiff({
      release: 'web',
      deployed: { db: { password: 'hunter2-old' } },
      desired: { db: {} },
      mask: { ...mask, strings: ['hunter2-old'] },
    });
    expect(diff).toContain('password: <secret:');
    expect(diff).not.toContain('hunter2');
  });
});

/** A LiveSource over a map of objects; dry runs merge the desired object over the live one. */
function fakeLive(
  objects: KubeObject[],
  opts: { missingNamespaces?: string[]; unserved?: string[] } = {},
): LiveSource {
  const id = (k: ObjectKey) => `${k.kind}/${k.namespace ?? ''}/${k.name}`;
  const store = new Map(
    objects.map((o) => [id({ ...o, name: o.metadata.name, namespace: o.metadata.namespace }), o]),
  );
  return {
    helm: async () => ({ deployed: async () => undefined }),
    namespaced: async (_apiVersion, kind) =>
      opts.unserved?.includes(kind) ? undefined : !['Namespace', 'ClusterRole'].includes(kind),
    get: async (key) =>
      opts.missingNamespaces?.includes(key.namespace ?? '') ? undefined : store.get(id(key)),
    dryRunApply: async (object) => {
      if (opts.missingNamespaces?.includes(object.metadata.namespace ?? '')) return undefined;
      const current = store.get(
        id({ ...object, name: object.metadata.name, namespace: object.metadata.namespace }),
      );
      return {
        ...current,
        ...structuredClone(object),
        metadata: { ...current?.metadata, ...object.metadata },
      } as KubeObject;
    },
  };
}

const configMap = (data: Record<string, string>, extra: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: {
    name: 'web-config',
    namespace: 'web',
    resourceVersion: '123',
    uid: 'u-1',
    managedFields: [{ manager: 'helm' }],
    labels: { 'app.kubernetes.io/managed-by': 'Helm' },
    annotations: { 'meta.helm.sh/release-name': 'web', 'meta.helm.sh/release-namespace': 'web' },
    ...extra,
  },
  data,
});

describe('manifestDiff', () => {
  const mask = { key: KEY, paths: [], strings: ['s3cr3t-new', 's3cr3t-old'] };

  it('diffs live objects against a dry run, without server bookkeeping', async () => {
    const live = fakeLive([configMap({ greeting: 'hello' })]);
    const desired =
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  greeting: bonjour\n';
    const { diff, notes } = await manifestDiff({ release: 'web', namespace: 'web', desired, live, mask });
    expect(notes).toEqual([]);
    expect(diff).toContain('--- live/ConfigMap/web/web-config');
    expect(diff).toContain('-  greeting: hello');
    expect(diff).toContain('+  greeting: bonjour');
    expect(diff).not.toMatch(/resourceVersion|managedFields|uid:/);
  });

  it('is empty when the live objects already match', async () => {
    const live = fakeLive([configMap({ greeting: 'hello' })]);
    const desired =
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  greeting: hello\n';
    expect((await manifestDiff({ release: 'web', namespace: 'web', desired, live, mask })).diff).toBe('');
  });

  it('shows Secret data as hashes: a changed value shows as changed, no value shows', async () => {
    const secret: KubeObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'web-db', namespace: 'web' },
      data: {
        password: Buffer.from('s3cr3t-old').toString('base64'),
        user: Buffer.from('app').toString('base64'),
      },
    };
    const live = fakeLive([secret]);
    const desired =
      'apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-db\nstringData:\n  password: s3cr3t-new\n  user: app\n';
    const { diff } = await manifestDiff({ release: 'web', namespace: 'web', desired, live, mask });
    expect(diff).toMatch(/-\s+password: <secret:[0-9a-f]{16}>/);
    expect(diff).toMatch(/\+\s+password: <secret:[0-9a-f]{16}>/);
    // `user` is the same value (base64 live, plain in stringData): no change shown for it.
    expect(diff).not.toMatch(/^[-+]\s+user:/m);
    expect(diff).not.toContain('s3cr3t');
    expect(diff).not.toContain(Buffer.from('s3cr3t-old').toString('base64'));
  });

  it('redacts secret strings that a chart copied into other objects, old ones included', async () => {
    const live = fakeLive([configMap({ url: 'postgres://app:s3cr3t-old@db' })]);
    const desired =
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  url: postgres://app:s3cr3t-new@db\n';
    const { diff } = await manifestDiff({ release: 'web', namespace: 'web', desired, live, mask });
    expect(diff).toContain('url: postgres://app:');
    expect(diff).not.toContain('s3cr3t');
  });

  it('shows objects helm deployed that the new manifests drop as deleted, and new ones as rendered', async () => {
    const old: KubeObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'old', namespace: 'web' },
      data: { a: '1' },
    };
    const live = fakeLive([old]);
    const deployed = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\ndata:\n  a: "1"\n';
    const desired = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: new\ndata:\n  b: "2"\n';
    const { diff } = await manifestDiff({ release: 'web', namespace: 'web', desired, deployed, live, mask });
    expect(diff).toContain('--- live/ConfigMap/web/old\n+++ /dev/null');
    expect(diff).toContain('--- /dev/null\n+++ desired/ConfigMap/web/new');
    expect(diff).toContain('+  b: "2"');
    expect(diff).toContain('+    meta.helm.sh/release-name: web');
  });

  it('leaves hooks out, places cluster-scoped kinds outside the namespace, and notes kinds not served yet', async () => {
    const live = fakeLive([], { unserved: ['Widget'] });
    const desired = [
      'apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-upgrade\n',
      'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: web-reader\n  namespace: web\n',
      'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n',
    ].join('---\n');
    const { diff, notes } = await manifestDiff({ release: 'web', namespace: 'web', desired, live, mask });
    expect(diff).not.toContain('migrate');
    expect(diff).toContain('+++ desired/ClusterRole/web-reader');
    expect(notes).toEqual([expect.stringContaining('does not serve Widget')]);
  });

  it('treats objects in a namespace that does not exist yet as new', async () => {
    const live = fakeLive([], { missingNamespaces: ['fresh'] });
    const desired = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: "1"\n';
    const { diff, notes } = await manifestDiff({ release: 'web', namespace: 'fresh', desired, live, mask });
    expect(notes).toEqual([]);
    expect(diff).toContain('+++ desired/ConfigMap/fresh/c');
  });
});

describe('normalizeObject and parseManifest', () => {
  it("drop status, server fields and kubectl's last-applied copy", () => {
    const obj = configMap(
      { a: '1' },
      {
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"data":{"password":"x"}}' },
        creationTimestamp: '2025-01-01T00:00:00Z',
        generation: 4,
      },
    );
    const normal = normalizeObject({ ...obj, status: { phase: 'x' } }, KEY);
    expect(normal.metadata).toEqual({
      name: 'web-config',
      namespace: 'web',
      labels: { 'app.kubernetes.io/managed-by': 'Helm' },
    });
    expect(normal.status).toBeUndefined();
  });

  it('reads List documents and skips empty ones', () => {
    const objects = parseManifest(
      '---\n# Source: x\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n',
    );
    expect(objects.map((o) => o.metadata.name)).toEqual(['a']);
  });
});

describe('diffReleases', () => {
  const resolved = (values: Record<string, unknown>, secretPaths: string[][], secretStrings: string[]) =>
    ({
      merge: { userValues: values },
      secretPaths,
      secretStrings,
      release: { chart: { kind: 'local', path: 'charts/web' } },
    }) as unknown as ResolvedRelease;

  it('diffs only releases that change unless asked for all, and masks deployed secrets found at known paths', async () => {
    const web = planned('web', 'sha256:w2', {
      resolved: resolved({ token: 'tok-new', replicas: 2 }, [['token']], ['tok-new']),
    });
    const api = planned('api', 'sha256:a1', { resolved: resolved({ replicas: 1 }, [], []) });
    const helm: Record<string, HelmState> = {
      'web/web': {
        observation: { revision: 1, status: 'deployed', lastDeployedRevision: 1 },
        deployed: async () => ({
          revision: 1,
          values: { token: 'tok-old', legacyKey: 'old-secret-value', replicas: 1 },
          manifest: '',
        }),
      },
      'api/api': helmAt(1),
    };
    const live = state(
      [
        { name: 'web', namespace: 'web', managed: true, deployedDigest: 'sha256:w1', helmRevision: 1 },
        { name: 'api', namespace: 'api', managed: true, deployedDigest: 'sha256:a1', helmRevision: 1 },
      ],
      helm,
    );
    const plan = { cluster, releases: [web, api] };
    const changes = planChanges(plan, live, { revision: REV, prune: false });
    const diffs = await diffReleases(plan, changes, {
      live: fakeLive([]),
      state: live,
      key: KEY,
      knownSecretPaths: new Map([['web', [['legacyKey']]]]),
    });
    const byName = Object.fromEntries(diffs.map((d) => [d.name, d]));
    expect(byName.api?.valuesDiff).toBe('');
    expect(byName.web?.valuesDiff).toContain('+replicas: 2');
    expect(byName.web?.valuesDiff).toMatch(/-legacyKey: <secret:/);
    expect(byName.web?.valuesDiff).not.toMatch(/tok-|old-secret-value/);
    expect(byName.web?.secretPaths).toEqual([['token']]);
    expect(byName.web?.notes).toEqual(['manifests were not rendered; no manifest diff']);
  });
});

describe('manifests are read as helm and the API server read them (YAML 1.1)', () => {
  it('reads 0755 as the octal file mode 493, and on/yes as booleans', () => {
    const [deployment] = parseManifest(
      'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n' +
        '      volumes:\n        - name: scripts\n          configMap:\n            name: web-scripts\n            defaultMode: 0755\n' +
        '      enableServiceLinks: on\n',
    );
    const spec = (deployment as unknown as { spec: { template: { spec: Record<string, unknown> } } }).spec
      .template.spec;
    expect((spec.volumes as { configMap: { defaultMode: number } }[])[0]!.configMap.defaultMode).toBe(0o755);
    expect(spec.enableServiceLinks).toBe(true);
  });
});

describe('a dry run the API server refuses', () => {
  it('is one clean line, with no fallback diff against what was rendered', async () => {
    const live: LiveSource = {
      ...fakeLive([configMap({ greeting: 'hello' })]),
      dryRunApply: async () => {
        throw new Error(
          'Error: ConfigMap "web-config" is invalid: data: Invalid value: "x"\nmore detail\nand more',
        );
      },
    };
    const desired =
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  greeting: bonjour\n';
    const out = await manifestDiff({
      release: 'web',
      namespace: 'web',
      desired,
      live,
      mask: { key: KEY, paths: [], strings: [] },
    });
    expect(out.diff).toBe('');
    expect(out.refused).toBe(
      'ConfigMap/web/web-config: the API server refused it: ConfigMap "web-config" is invalid: data: Invalid value: "x"',
    );
  });
});

describe('what a plan binds of a render', () => {
  const base: LivePlan = {
    cluster: 'prod',
    revision: REV,
    binding: '',
    changes: 1,
    releases: [{ name: 'web', namespace: 'web', action: 'upgrade', reason: 'x', desiredDigest: 'sha256:w2' }],
  };

  it('binds the chart version, the chart content and the manifest', () => {
    const bind = (render: ReleaseRender) => bindRenders(base, new Map([['web', render]]), KEY).binding;
    const render = {
      manifest: 'kind: ConfigMap\ndata: {a: "1"}\n',
      chartVersion: '1.2.0',
      chartDigest: 'sha256:c1',
    };
    const bound = bind(render);
    expect(bind({ ...render })).toBe(bound);
    expect(bind({ ...render, chartVersion: '1.3.0' })).not.toBe(bound);
    expect(bind({ ...render, chartDigest: 'sha256:c2' })).not.toBe(bound);
    expect(bind({ ...render, manifest: 'kind: ConfigMap\ndata: {a: "2"}\n' })).not.toBe(bound);
    expect(bind({ error: 'refused' })).not.toBe(bound);
  });

  it('leaves out the lines that differ on every render, and only those', () => {
    const a = 'kind: Secret\ndata:\n  password: cmFuZG9tMQ==\n  user: YXBw\n';
    const b = 'kind: Secret\ndata:\n  password: cmFuZG9tMg==\n  user: YXBw\n';
    const varying = varyingLinesOf(a, b);
    expect(varying).toEqual([2]);
    expect(manifestDigest(a, varying, KEY)).toBe(manifestDigest(b, varying, KEY));
    expect(manifestDigest(a.replace('YXBw', 'cm9vdA=='), varying, KEY)).not.toBe(
      manifestDigest(a, varying, KEY),
    );
    // A keyed hash: the digest of a manifest with a short password cannot be guessed offline.
    expect(manifestDigest(a, [], KEY)).not.toBe(manifestDigest(a, [], Buffer.from('another key')));
  });

  it('takes the first line of an error without helm prefixes', () => {
    expect(oneLine('\nError: Error: admission webhook denied the request\nstack...')).toBe(
      'admission webhook denied the request',
    );
  });
});
