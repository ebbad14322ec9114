// The converge pass's bookkeeping, with helm, helm's storage and the records in memory: what
// a commit costs (one read of helm's storage for the whole pass, writes only for the
// releases it changes) and when a helm slot is given back.

import { describe, expect, it } from 'vitest';
import {
  converge,
  type ConvergeDeps,
  type RecordPatch,
  type ReleaseRecord,
} from '../../src/converge/converger.js';
import type { Helm, HelmRelease, UpgradeInstallInput } from '../../src/converge/helm.js';
import type { ObjectMetadata } from '../../src/converge/helm-storage.js';
import type { PlannedRelease } from '../../src/plan/cluster-plan.js';
import type { ResolvedRelease } from '../../src/resolve/resolve.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

function release(name: string, digest: string): PlannedRelease {
  return {
    name,
    namespace: `ns-${name}`,
    chart: './charts/app',
    dependsOn: [],
    digest,
    resolved: {
      merge: { userValues: { digest } },
      secretPaths: [],
      secretStrings: [],
      release: {
        chart: { kind: 'local', path: 'charts/app' },
        timeoutSeconds: 60,
        wait: true,
        createNamespace: true,
      },
    } as unknown as ResolvedRelease,
  };
}

/** A cluster in memory: helm's storage labels, MooringRelease records, every call counted. */
function world() {
  const storage: ObjectMetadata[] = [];
  const records = new Map<string, ReleaseRecord>();
  const calls: string[] = [];
  /** Resolves the helm upgrade of a release when the test says so (all at once by default). */
  const gates = new Map<string, Promise<void>>();
  /** Holds the record write of a release in a given state until the test lets it go. */
  const writeGates = new Map<string, Promise<void>>();

  const store = (name: string, namespace: string, revision: number, status: string) =>
    storage.push({
      name: `sh.helm.release.v1.${name}.v${revision}`,
      namespace,
      labels: { owner: 'helm', name, version: String(revision), status },
    });

  const helm = {
    binary: 'helm',
    upgradeInstall: async (input: UpgradeInstallInput): Promise<HelmRelease> => {
      calls.push(`helm upgrade ${input.release}`);
      await gates.get(input.release);
      const previous = storage.filter((s) => s.labels?.name === input.release);
      for (const p of previous) p.labels!.status = 'superseded';
      const revision = previous.length + 1;
      store(input.release, input.namespace, revision, 'deployed');
      calls.push(`helm done ${input.release}`);
      return {
        name: input.release,
        namespace: input.namespace,
        revision,
        status: 'deployed',
        chart: 'app',
        chartVersion: '0.1.0',
      };
    },
  } as unknown as Helm;

  const deps: ConvergeDeps = {
    helm,
    kube: { request: () => Promise.reject(new Error('no API in this test')) },
    listHelmSecrets: async (namespace, selector) => {
      calls.push(`list secrets ${namespace ?? '(all namespaces)'} ${selector}`);
      return structuredClone(storage.filter((s) => namespace === undefined || s.namespace === namespace));
    },
    records: {
      list: async () => {
        calls.push('list records');
        return [...records.values()].map((r) => structuredClone(r));
      },
      update: async (name: string, patch: RecordPatch) => {
        calls.push(`write ${name} ${patch.state ?? ''}`.trim());
        await writeGates.get(`${name} ${patch.state}`);
        const merged: Record<string, unknown> = { ...records.get(name), name, managed: false };
        for (const [k, v] of Object.entries(patch)) {
          if (v === null) delete merged[k];
          else merged[k] = v;
        }
        records.set(name, merged as unknown as ReleaseRecord);
      },
      remove: async (name: string) => {
        records.delete(name);
      },
    },
    events: { emit: (name, _type, reason) => calls.push(`event ${name} ${reason}`) },
    now: () => Date.parse('2026-01-01T00:00:00Z'),
    root: '/repo',
    cluster: 'test',
    agentNamespace: 'mooring-system',
    prune: false,
    concurrency: 4,
  };
  return { deps, calls, records, storage, gates, writeGates };
}

describe('converge bookkeeping', () => {
  it('reads helm storage once for the whole pass and writes only the changed release', async () => {
    const w = world();
    const first = await converge(
      { releases: ['api', 'web', 'worker'].map((n) => release(n, `d1-${n}`)) },
      A,
      w.deps,
    );
    expect(first.converged).toBe(true);
    expect(w.calls.filter((c) => c.startsWith('list secrets'))).toEqual([
      'list secrets (all namespaces) owner=helm',
    ]);

    w.calls.length = 0;
    const second = await converge(
      { releases: [release('api', 'd1-api'), release('web', 'd2-web'), release('worker', 'd1-worker')] },
      B,
      w.deps,
    );

    expect(second.releases.map((r) => [r.name, r.action])).toEqual([
      ['api', 'none'],
      ['web', 'upgrade'],
      ['worker', 'none'],
    ]);
    expect(w.calls.filter((c) => !c.startsWith('event'))).toEqual([
      'list records',
      'list secrets (all namespaces) owner=helm',
      'write web progressing',
      'helm upgrade web',
      'helm done web',
      'write web ready',
    ]);
    // The unchanged releases keep the revision that set their desired state.
    expect(w.records.get('api')).toMatchObject({ state: 'ready', desiredRevision: A, deployedRevision: A });
    expect(w.records.get('web')).toMatchObject({ state: 'ready', desiredRevision: B, deployedRevision: B });
  });

  it('writes the record of an unchanged release that is not settled (failed before, now up to date)', async () => {
    const w = world();
    await converge({ releases: [release('api', 'd1')] }, A, w.deps);
    w.records.set('api', { ...w.records.get('api')!, lastError: 'something went wrong' });

    w.calls.length = 0;
    await converge({ releases: [release('api', 'd1')] }, B, w.deps);

    expect(w.calls.filter((c) => c.startsWith('write') || c.startsWith('helm'))).toEqual(['write api ready']);
    expect(w.records.get('api')).toMatchObject({ state: 'ready', desiredRevision: B });
    expect(w.records.get('api')!.lastError).toBeUndefined();
  });

  it('a commit that changes no release writes nothing and runs no helm', async () => {
    const w = world();
    const releases = ['a', 'b', 'c', 'd', 'e'].map((n) => release(n, `d-${n}`));
    await converge({ releases }, A, w.deps);

    w.calls.length = 0;
    const result = await converge({ releases }, B, w.deps);

    expect(result.converged).toBe(true);
    expect(w.calls).toEqual(['list records', 'list secrets (all namespaces) owner=helm']);
  });

  it('gives the helm slot back when helm exits, before the record is written', async () => {
    const w = world();
    w.deps.concurrency = 1;
    let letReadyThrough!: () => void;
    w.writeGates.set('a ready', new Promise((resolve) => (letReadyThrough = resolve)));

    const pass = converge({ releases: [release('a', 'd-a'), release('b', 'd-b')] }, A, w.deps);
    // With one slot, b's helm can start only once a's helm is done; a's record write is held.
    await waitFor(() => w.calls.includes('helm done b'));
    expect(w.calls).toContain('write a ready');
    expect(w.calls.indexOf('helm upgrade b')).toBeGreaterThan(w.calls.indexOf('helm done a'));
    expect(w.records.get('a')?.state).toBe('progressing');
    letReadyThrough();

    const result = await pass;
    expect(result.releases.map((r) => [r.name, r.state])).toEqual([
      ['a', 'ready'],
      ['b', 'ready'],
    ]);
  });

  it('reads each namespace once when the cluster-wide list is forbidden', async () => {
    const w = world();
    const list = w.deps.listHelmSecrets;
    w.deps.listHelmSecrets = async (namespace, selector) => {
      if (namespace === undefined) {
        w.calls.push('list secrets (all namespaces): forbidden');
        throw Object.assign(new Error('forbidden'), { code: 403 });
      }
      return list(namespace, selector);
    };
    const shared = (name: string) => ({ ...release(name, `d-${name}`), namespace: 'shared' });

    await converge({ releases: [shared('a'), shared('b'), release('c', 'd-c')] }, A, w.deps);

    expect(w.calls.filter((c) => c.startsWith('list secrets')).sort()).toEqual([
      'list secrets (all namespaces): forbidden',
      'list secrets ns-c owner=helm',
      'list secrets shared owner=helm',
    ]);
  });
});

describe('the leader check and a pending revision', () => {
  it('asks right before each helm process: once the lease is no longer safely held, no helm starts', async () => {
    const w = world();
    w.deps.concurrency = 1;
    let leading = true;
    w.deps.mayRunHelm = () => (leading ? undefined : 'the leader lease was not renewed in time');
    // a's helm waits for the test; b queues behind it for the one slot.
    let finishA!: () => void;
    w.gates.set('a', new Promise((resolve) => (finishA = resolve)));

    const pass = converge({ releases: [release('a', 'd-a'), release('b', 'd-b')] }, A, w.deps);
    await waitFor(() => w.calls.includes('helm upgrade a'));
    // The lease becomes unsafe while a's helm runs, after b was decided: b never starts.
    leading = false;
    finishA();
    const result = await pass;

    expect(w.calls.filter((c) => c.startsWith('helm upgrade'))).toEqual(['helm upgrade a']);
    expect(result.releases.map((r) => [r.name, r.action, r.state])).toEqual([
      ['a', 'install', 'ready'],
      ['b', 'blocked', 'waiting'],
    ]);
    expect(result.releases[1]!.error).toBe('the leader lease was not renewed in time');
    expect(result.converged).toBe(false);
  });

  it('does not unlock a pending revision that helm finished after the pass read its index', async () => {
    const w = world();
    await converge({ releases: [release('a', 'd1')] }, A, w.deps);
    // A helm process (another agent's, before a crash) left revision 2 pending; the index says so.
    w.storage.push({
      name: 'sh.helm.release.v1.a.v2',
      namespace: 'ns-a',
      labels: { owner: 'helm', name: 'a', version: '2', status: 'pending-upgrade' },
    });
    // By the time the release is read in full, that helm has finished: revision 2 is deployed.
    const writes: string[] = [];
    w.deps.kube = {
      request: async (method: string) => {
        if (method === 'PUT') return void writes.push('replace');
        return {
          items: [1, 2].map((v) => ({
            metadata: {
              name: `sh.helm.release.v1.a.v${v}`,
              namespace: 'ns-a',
              labels: {
                owner: 'helm',
                name: 'a',
                version: String(v),
                status: v === 2 ? 'deployed' : 'superseded',
              },
            },
          })),
        };
      },
    } as never;

    w.calls.length = 0;
    const result = await converge({ releases: [release('a', 'd2')] }, B, w.deps);

    expect(writes).toEqual([]);
    expect(w.calls.filter((c) => c.startsWith('helm'))).toEqual([]);
    expect(result.releases[0]).toMatchObject({ name: 'a', action: 'blocked', state: 'waiting' });
    expect(result.retryAt).toBeDefined();
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!condition()) throw new Error('condition not met within 1s');
}
