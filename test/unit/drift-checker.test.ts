// The drift checker's bookkeeping, with the Kubernetes API replaced by an in-memory fake:
// what it reads and how often, which releases it checks, what it writes to the release
// status, and the modes. What the API server makes of an apply is tested against the real
// one in test/integration/drift.test.ts; the fake only merges maps.
import type { StorageSecret as V1Secret } from '../../src/converge/helm-storage.js';
import { describe, expect, it } from 'vitest';
import type { DriftChecker } from '../../src/agent/agent.js';
import { encodeRelease } from '../../src/converge/helm-storage.js';
import type { AnyObject, JsonPatchOperation } from '../../src/kube/client.js';
import type { DriftMode } from '../../src/model/releases.js';
import type { ClusterPlan, PlannedRelease } from '../../src/plan/cluster-plan.js';
import type { ResolvedRelease } from '../../src/resolve/resolve.js';
import { createDriftChecker, type DriftObjectApi } from '../../src/observe/drift/index.js';
import type { ReleaseStatusPatch, ReleaseStatusRecord } from '../../src/observe/status.js';

const T0 = Date.parse('2025-03-01T10:00:00Z');

function manifest(name: string): string {
  return [
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}-config\ndata:\n  greeting: hello\n`,
    `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${name}\nspec:\n  replicas: 2\n`,
  ].join('---\n');
}

/** What helm stores for one revision. */
function storageSecret(name: string, namespace: string, revision: number, status: string): V1Secret {
  const record = {
    name,
    namespace,
    version: revision,
    info: { status },
    manifest: manifest(name),
    config: { password: 'pw' },
    apply_method: 'ssa',
  };
  return {
    metadata: {
      name: `sh.helm.release.v1.${name}.v${revision}`,
      namespace,
      labels: { owner: 'helm', name, status, version: String(revision) },
    },
    data: { release: encodeRelease(record) },
  };
}

function merge(live: unknown, applied: unknown): unknown {
  if (typeof live !== 'object' || live === null || Array.isArray(live)) return structuredClone(applied);
  if (typeof applied !== 'object' || applied === null || Array.isArray(applied))
    return structuredClone(applied);
  const out: Record<string, unknown> = { ...(live as Record<string, unknown>) };
  for (const [k, v] of Object.entries(applied)) out[k] = merge(out[k], v);
  return out;
}

/** A cluster of objects in memory; every call is counted. */
function fakeCluster() {
  const objects = new Map<string, AnyObject>();
  const calls: string[] = [];
  let rv = 100;
  const key = (o: { kind?: string; metadata?: { name?: string; namespace?: string } }) =>
    `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
  const api: DriftObjectApi = {
    isNamespaced: async () => true,
    readRaw: async (ref) => {
      calls.push(`get ${key(ref)}`);
      return structuredClone(objects.get(key(ref)));
    },
    listRaw: async (apiVersion, kind, options = {}) => {
      calls.push(`list ${kind}${options.namespace ? ` in ${options.namespace}` : ''}`);
      const items = [...objects.values()].filter(
        (o) => o.kind === kind && (!options.namespace || o.metadata?.namespace === options.namespace),
      );
      return { items: structuredClone(items) };
    },
    applyRaw: async (object, params) => {
      calls.push(`${params.dryRun ? 'dry-run ' : ''}apply ${key(object)}`);
      const live = objects.get(key(object));
      const result = merge(live ?? {}, object) as AnyObject;
      result.metadata = { ...result.metadata, resourceVersion: live?.metadata?.resourceVersion ?? '' };
      if (params.dryRun) return result;
      result.metadata.resourceVersion = String(++rv);
      objects.set(key(object), result);
      return structuredClone(result);
    },
    jsonPatchRaw: async (ref, patch: readonly JsonPatchOperation[]) => {
      calls.push(`patch ${key(ref)} ${patch.length}`);
      return structuredClone(objects.get(key(ref))!);
    },
  };
  const put = (object: AnyObject) => {
    object.metadata = { ...object.metadata, resourceVersion: String(++rv) };
    objects.set(key(object), object);
  };
  return { api, calls, objects, put };
}

/** Installs release `name` in namespace `name` as helm would have (objects match the manifest). */
function installed(cluster: ReturnType<typeof fakeCluster>, name: string, replicas = 2) {
  const meta = (n: string) => ({
    name: n,
    namespace: name,
    labels: { 'app.kubernetes.io/managed-by': 'Helm' },
    annotations: { 'meta.helm.sh/release-name': name, 'meta.helm.sh/release-namespace': name },
  });
  cluster.put({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(`${name}-config`),
    data: { greeting: 'hello' },
  });
  cluster.put({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta(name), spec: { replicas } });
}

function fakeCore(secrets: V1Secret[]) {
  const calls: string[] = [];
  const kube = {
    request: async (method: string, path: string, init?: { query?: { labelSelector?: string } }) => {
      if (method !== 'GET' || path !== '/api/v1/secrets') throw new Error(`unexpected ${method} ${path}`);
      calls.push(`list secrets ${init?.query?.labelSelector}`);
      return { items: secrets, metadata: {} };
    },
  } as never;
  return { kube, calls };
}

function planOf(releases: { name: string; mode?: DriftMode; resolved?: boolean }[]): ClusterPlan {
  return {
    cluster: { name: 'c1', environment: 'dev' } as ClusterPlan['cluster'],
    disabled: [],
    releases: releases.map((r): PlannedRelease => ({
      name: r.name,
      namespace: r.name,
      chart: './charts/web',
      dependsOn: [],
      ...(r.resolved === false
        ? {}
        : {
            resolved: {
              release: {
                name: r.name,
                namespace: r.name,
                drift: { ...(r.mode ? { mode: r.mode } : {}), ignore: [] },
              },
              secretStrings: [],
            } as unknown as ResolvedRelease,
          }),
    })),
  };
}

function fakeStatus(initial: ReleaseStatusRecord[] = []) {
  const records = new Map(initial.map((r) => [r.name, r]));
  const updates: [string, ReleaseStatusPatch][] = [];
  return {
    updates,
    store: {
      list: async () => [...records.values()],
      update: async (name: string, patch: ReleaseStatusPatch) => {
        updates.push([name, patch]);
        const next = { ...(records.get(name) ?? { name, managed: true, conditions: [] }) } as Record<
          string,
          unknown
        >;
        for (const [k, v] of Object.entries(patch)) {
          if (v === null) delete next[k];
          else next[k] = v;
        }
        records.set(name, next as unknown as ReleaseStatusRecord);
      },
    },
  };
}

const ready = (name: string): ReleaseStatusRecord => ({
  name,
  managed: true,
  conditions: [],
  state: 'ready',
});

function setup(opts: { mode?: DriftMode; secrets: V1Secret[]; statuses?: ReleaseStatusRecord[] }) {
  const cluster = fakeCluster();
  const { kube, calls: coreCalls } = fakeCore(opts.secrets);
  const status = fakeStatus(opts.statuses);
  const events: string[] = [];
  const metrics: { drifted: number; corrected: number; failed: number }[] = [];
  const logs: string[] = [];
  let now = T0;
  const drift = createDriftChecker({
    objects: cluster.api,
    kube,
    status: status.store,
    events: {
      emit: (release, type, reason, message) => events.push(`${release} ${type} ${reason}: ${message}`),
    },
    metrics: { driftChecked: (result) => metrics.push(result) },
    mode: opts.mode ?? 'correct',
    log: {
      info: (o, m) => logs.push(`${m} ${JSON.stringify(o)}`),
      warn: (o, m) => logs.push(`${m} ${JSON.stringify(o)}`),
    },
    now: () => now,
  });
  return { drift, cluster, coreCalls, status, events, metrics, logs, advance: (ms: number) => (now += ms) };
}

describe('a drift check', () => {
  it('reads helm storage once, each kind once, and makes one dry run per object', async () => {
    const names = ['api', 'web', 'worker'];
    const t = setup({
      secrets: names.map((n) => storageSecret(n, n, 1, 'deployed')),
      statuses: names.map(ready),
    });
    for (const n of names) installed(t.cluster, n);

    expect(await t.drift.check({ plan: planOf(names.map((name) => ({ name }))) })).toEqual({
      drifted: 0,
      corrected: 0,
      failed: 0,
    });

    expect(t.coreCalls).toEqual([
      'list secrets owner=helm,status in (deployed,failed,pending-install,pending-upgrade,pending-rollback)',
    ]);
    expect(t.cluster.calls.filter((c) => c.startsWith('list')).sort()).toEqual([
      'list ConfigMap',
      'list Deployment',
    ]);
    expect(t.cluster.calls.filter((c) => c.startsWith('dry-run apply'))).toHaveLength(6);
    expect(t.cluster.calls).toHaveLength(8);
  });

  it('finds drift, corrects it without helm, and reports it once to status, Events and metrics', async () => {
    const t = setup({ secrets: [storageSecret('web', 'web', 3, 'deployed')], statuses: [ready('web')] });
    installed(t.cluster, 'web', 5);

    expect(await t.drift.check({ plan: planOf([{ name: 'web' }]) })).toEqual({
      drifted: 1,
      corrected: 1,
      failed: 0,
    });

    expect(t.cluster.calls).toContain('apply Deployment/web/web');
    expect(t.cluster.objects.get('Deployment/web/web')?.spec).toEqual({ replicas: 2 });
    expect(t.events).toEqual([
      'web Warning DriftDetected: live objects differ from helm revision 3: 1 modified field(s), 0 deleted object(s), 0 field(s) added by hand: modified Deployment/web/web:/spec/replicas',
      'web Normal DriftCorrected: restored helm revision 3 without a new revision: restored Deployment/web/web:/spec/replicas',
    ]);
    expect(t.status.updates).toEqual([
      [
        'web',
        {
          drift: {
            count: 1,
            fields: ['Deployment/web/web:/spec/replicas'],
            deletedObjects: [],
            corrected: true,
            mode: 'correct',
            checkedAt: '2025-03-01T10:00:00Z',
          },
        },
      ],
    ]);
    expect(t.metrics).toEqual([{ drifted: 1, corrected: 1, failed: 0 }]);
  });

  it('marks a release drifted in warn mode, and ready again once the drift is gone', async () => {
    const t = setup({
      mode: 'warn',
      secrets: [storageSecret('web', 'web', 1, 'deployed')],
      statuses: [ready('web')],
    });
    installed(t.cluster, 'web', 5);
    await t.drift.check({ plan: planOf([{ name: 'web' }]) });
    expect(t.status.updates.at(-1)?.[1]).toMatchObject({
      state: 'drifted',
      drift: { count: 1, corrected: false },
    });
    expect(t.cluster.calls.filter((c) => c.startsWith('apply'))).toEqual([]);

    installed(t.cluster, 'web', 2);
    await t.drift.check({ plan: planOf([{ name: 'web' }]) });
    expect(t.status.updates.at(-1)?.[1]).toMatchObject({ state: 'ready', drift: { count: 0 } });
  });

  it('leaves the state of a release that failed or waits alone, and records its drift', async () => {
    const t = setup({
      mode: 'warn',
      secrets: [storageSecret('web', 'web', 1, 'deployed')],
      statuses: [{ name: 'web', managed: true, conditions: [], state: 'failed' }],
    });
    installed(t.cluster, 'web', 5);
    await t.drift.check({ plan: planOf([{ name: 'web' }]) });
    expect(t.status.updates).toHaveLength(1);
    expect(t.status.updates[0]![1]).not.toHaveProperty('state');
    expect(t.status.updates[0]![1].drift).toMatchObject({ count: 1 });
  });

  it('writes an unchanged drift summary again only after an hour', async () => {
    const t = setup({ secrets: [storageSecret('web', 'web', 1, 'deployed')], statuses: [ready('web')] });
    installed(t.cluster, 'web');
    const plan = planOf([{ name: 'web' }]);
    await t.drift.check({ plan });
    t.advance(30 * 60_000);
    await t.drift.check({ plan });
    expect(t.status.updates).toHaveLength(1);
    t.advance(31 * 60_000);
    await t.drift.check({ plan });
    expect(t.status.updates).toHaveLength(2);
    expect(t.status.updates[1]![1].drift?.checkedAt).toBe('2025-03-01T11:01:00Z');
  });

  it('does not check a release whose latest helm revision is pending or failed', async () => {
    const t = setup({
      secrets: [
        storageSecret('web', 'web', 1, 'deployed'),
        storageSecret('web', 'web', 2, 'pending-upgrade'),
        storageSecret('api', 'api', 4, 'deployed'),
        storageSecret('api', 'api', 5, 'failed'),
      ],
    });
    installed(t.cluster, 'web', 5);
    installed(t.cluster, 'api', 5);
    expect(await t.drift.check({ plan: planOf([{ name: 'web' }, { name: 'api' }]) })).toEqual({
      drifted: 0,
      corrected: 0,
      failed: 0,
    });
    expect(t.cluster.calls).toEqual([]);
    expect(t.logs.join('\n')).toContain('helm revision 2 is pending-upgrade');
    expect(t.logs.join('\n')).toContain('helm revision 5 is failed');
  });

  it('follows the release mode over the agent mode, and only warns for a release whose settings could not be read', async () => {
    const t = setup({
      mode: 'correct',
      secrets: ['web', 'api', 'broken'].map((n) => storageSecret(n, n, 1, 'deployed')),
    });
    for (const n of ['web', 'api', 'broken']) installed(t.cluster, n, 5);
    const result = await t.drift.check({
      plan: planOf([
        { name: 'web', mode: 'warn' },
        { name: 'api', mode: 'off' },
        { name: 'broken', resolved: false },
      ]),
    });
    expect(result).toEqual({ drifted: 2, corrected: 0, failed: 0 });
    expect(t.cluster.calls.filter((c) => c.startsWith('apply'))).toEqual([]);
    expect(t.cluster.calls.some((c) => c.includes('/api/'))).toBe(false);
  });

  it('clears the drift report of a release switched off', async () => {
    const t = setup({
      secrets: [storageSecret('web', 'web', 1, 'deployed')],
      statuses: [
        {
          ...ready('web'),
          state: 'drifted',
          drift: {
            count: 1,
            fields: ['x'],
            deletedObjects: [],
            corrected: false,
            checkedAt: '2025-03-01T09:00:00Z',
          },
        },
      ],
    });
    await t.drift.check({ plan: planOf([{ name: 'web', mode: 'off' }]) });
    expect(t.status.updates).toEqual([['web', { drift: null, state: 'ready' }]]);
  });

  it('looks for HPAs only in namespaces where replicas drifted', async () => {
    const t = setup({ mode: 'warn', secrets: ['web', 'api'].map((n) => storageSecret(n, n, 1, 'deployed')) });
    installed(t.cluster, 'web', 5);
    installed(t.cluster, 'api', 2);
    t.cluster.put({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'web', namespace: 'web' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' } },
    });
    expect(await t.drift.check({ plan: planOf([{ name: 'web' }, { name: 'api' }]) })).toEqual({
      drifted: 0,
      corrected: 0,
      failed: 0,
    });
    expect(t.cluster.calls.filter((c) => c.includes('HorizontalPodAutoscaler'))).toEqual([
      'list HorizontalPodAutoscaler in web',
    ]);
  });

  it('lists per namespace when the agent may not list across namespaces, and stops asking', async () => {
    const forbidden = Object.assign(new Error('forbidden'), { code: 403 });
    const t = setup({ secrets: ['web', 'api'].map((n) => storageSecret(n, n, 1, 'deployed')) });
    for (const n of ['web', 'api']) installed(t.cluster, n);
    const listRaw = t.cluster.api.listRaw;
    t.cluster.api.listRaw = async (apiVersion, kind, options = {}) => {
      if (!options.namespace) {
        t.cluster.calls.push(`refused list ${kind}`);
        throw forbidden;
      }
      return listRaw(apiVersion, kind, options);
    };
    const plan = planOf([{ name: 'web' }, { name: 'api' }]);

    expect(await t.drift.check({ plan })).toEqual({ drifted: 0, corrected: 0, failed: 0 });
    const lists = () => t.cluster.calls.filter((c) => c.includes('list')).sort();
    const gets = () => t.cluster.calls.filter((c) => c.startsWith('get')).sort();
    expect(lists()).toEqual(['refused list ConfigMap', 'refused list Deployment']);
    // One object of a kind per namespace: a GET is as cheap as a list.
    expect(gets()).toEqual([
      'get ConfigMap/api/api-config',
      'get ConfigMap/web/web-config',
      'get Deployment/api/api',
      'get Deployment/web/web',
    ]);
    t.cluster.calls.length = 0;
    t.cluster.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated', namespace: 'web' } });
    await t.drift.check({ plan });
    expect(lists()).toEqual([]);
    expect(gets()).toHaveLength(4);
  });

  it('decodes a helm revision once, not at every check', async () => {
    const secret = storageSecret('web', 'web', 1, 'deployed');
    secret.metadata = { ...secret.metadata, uid: 'u1', resourceVersion: '7' };
    const encoded = secret.data!.release!;
    let decoded = 0;
    secret.data = {};
    Object.defineProperty(secret.data, 'release', { enumerable: true, get: () => (decoded++, encoded) });
    const t = setup({ secrets: [secret] });
    installed(t.cluster, 'web');
    const plan = planOf([{ name: 'web' }]);
    await t.drift.check({ plan });
    await t.drift.check({ plan });
    expect(decoded).toBe(1);
    expect(t.cluster.calls.filter((c) => c.startsWith('dry-run'))).toHaveLength(4);
  });

  it("is the agent loop's DriftChecker", async () => {
    const t = setup({ secrets: [storageSecret('web', 'web', 1, 'deployed')] });
    installed(t.cluster, 'web', 5);
    const checker: DriftChecker = t.drift;
    const result = await checker.check({
      plan: planOf([{ name: 'web' }]),
      snapshot: { revision: 'a'.repeat(40), dir: '/nowhere' },
    });
    expect(result).toEqual({ drifted: 1, corrected: 1, failed: 0 });
  });
});
