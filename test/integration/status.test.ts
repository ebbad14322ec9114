// What the agent reports, against the local control plane: mooring's CRDs, MooringRelease
// status, Events, and the Kubernetes client helpers they rest on.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureCrds, loadCrds } from '../../src/observe/crds.js';
import { createEventRecorder } from '../../src/observe/events.js';
import { createStatusStore, readReleaseStatuses, type StatusStore } from '../../src/observe/status.js';
import {
  createKubeClients,
  loadKubeConfig,
  serverSideApply,
  whoAmI,
  type KubeClients,
} from '../../src/kube/client.js';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.tools', 'bin');
const KUBECTL = join(BIN, 'kubectl');
const CONTROL_PLANE = join(BIN, 'mooring-controlplane');
const cleanup: string[] = [];
const ns = `status-it-${Date.now().toString(36)}`;
const SHA_A = 'a'.repeat(40);
const SHA_B = '0123456789abcdef0123456789abcdef01234567';

let kubeconfig: string;
let clients: KubeClients;
let store: StatusStore;
let clock = Date.parse('2025-03-01T10:00:00Z');

const kubectl = async (...args: string[]): Promise<string> =>
  (await execa(KUBECTL, ['--kubeconfig', kubeconfig, ...args])).stdout;

beforeAll(async () => {
  kubeconfig = inject('kubeconfig');
  clients = createKubeClients(loadKubeConfig({ kubeconfig }));
  await clients.core.createNamespace({ body: { metadata: { name: ns } } });
  await ensureCrds(clients);
  store = createStatusStore({
    client: clients.rest,
    namespace: ns,
    cluster: 'eu-1',
    now: () => clock,
  });
});

afterAll(async () => {
  await clients.core.deleteNamespace({ name: ns }).catch(() => undefined);
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

describe('CRDs', () => {
  it('ships MooringRelease, MooringPlan, Approval and MooringAgent in group mooring.io', () => {
    expect(loadCrds().map((c) => c.metadata.name)).toEqual([
      'approvals.mooring.io',
      'mooringagents.mooring.io',
      'mooringplans.mooring.io',
      'mooringreleases.mooring.io',
    ]);
  });

  it('can be applied again (the agent does so at every start)', async () => {
    const result = await ensureCrds(clients);
    expect(result.applied).toHaveLength(4);
    const crd = await clients.apiExtensions.readCustomResourceDefinition({
      name: 'mooringreleases.mooring.io',
    });
    expect(crd.spec.names.shortNames).toEqual(['mrel']);
  });

  it('tolerates an agent that may not write CRDs when they are already served', async () => {
    const user = await mintUser('agent-without-crd-rights');
    const restricted = createKubeClients(loadKubeConfig({ kubeconfig: user }));
    const result = await ensureCrds(restricted);
    expect(result).toEqual({
      applied: [],
      alreadyServed: [
        'approvals.mooring.io',
        'mooringagents.mooring.io',
        'mooringplans.mooring.io',
        'mooringreleases.mooring.io',
      ],
    });
  });

  it('refuse an Approval that is changed after it was created', async () => {
    // The admission policy only lets users record approvals in their own name.
    const me = await whoAmI(clients);
    const approval = {
      apiVersion: 'mooring.io/v1alpha1',
      kind: 'Approval',
      metadata: { name: 'approve-a', namespace: ns },
      spec: {
        cluster: 'eu-1',
        revision: SHA_A,
        planDigest: 'sha256:plan',
        approvedBy: { username: me.username, groups: me.groups },
      },
    };
    await serverSideApply(clients, approval, { fieldManager: 'test' });
    const changed = { ...approval, spec: { ...approval.spec, revision: SHA_B } };
    await expect(
      serverSideApply(clients, changed, { fieldManager: 'test', force: true }),
    ).rejects.toMatchObject({
      code: 422,
    });
  });
});

describe('MooringRelease status', () => {
  it('creates the object on first write and reads back what was written', async () => {
    await store.update('web', {
      namespace: 'web',
      chart: './charts/web',
      version: '1.2.3',
      state: 'progressing',
      desiredRevision: SHA_B,
      desiredDigest: 'sha256:desired',
      managed: true,
      lastAttemptAt: '2025-03-01T10:00:00Z',
    });

    const record = await store.get('web');
    expect(record).toMatchObject({
      name: 'web',
      cluster: 'eu-1',
      namespace: 'web',
      state: 'progressing',
      desiredRevision: SHA_B,
      managed: true,
    });
    expect(await store.list()).toEqual([record]);
  });

  it('merges later writes, and null removes a field', async () => {
    await store.update('web', { lastError: 'helm upgrade failed' });
    clock += 60_000;
    await store.update('web', {
      state: 'ready',
      deployedRevision: SHA_B,
      deployedDigest: 'sha256:desired',
      helmRevision: 3,
      lastError: null,
      lastSuccessAt: '2025-03-01T10:01:00Z',
    });

    const record = await store.get('web');
    expect(record).toMatchObject({ chart: './charts/web', state: 'ready', helmRevision: 3, managed: true });
    expect(record?.lastError).toBeUndefined();
  });

  it('keeps a Ready condition for `kubectl wait`, with its transition time', async () => {
    const ready = (await store.get('web'))?.conditions.find((c) => c.type === 'Ready');
    expect(ready).toEqual({
      type: 'Ready',
      status: 'True',
      reason: 'Converged',
      message: '',
      lastTransitionTime: '2025-03-01T10:01:00Z',
      observedGeneration: 1,
    });
    clock += 60_000;
    await store.update('web', { lastAttemptAt: '2025-03-01T10:02:00Z' });
    const still = (await store.get('web'))?.conditions.find((c) => c.type === 'Ready');
    expect(still?.lastTransitionTime).toBe('2025-03-01T10:01:00Z');
  });

  it('records a drift summary', async () => {
    await store.update('web', {
      state: 'drifted',
      drift: {
        count: 2,
        fields: ['Deployment/web/web:.spec.replicas'],
        deletedObjects: ['ConfigMap/web/web-config'],
        corrected: false,
        checkedAt: '2025-03-01T10:03:00Z',
      },
    });
    const record = await store.get('web');
    expect(record?.drift?.count).toBe(2);
    expect(record?.conditions.find((c) => c.type === 'Drifted')).toMatchObject({
      status: 'True',
      reason: 'DriftDetected',
    });
  });

  it('is readable with kubectl: state, chart version, desired and deployed revisions, helm revision, last error', async () => {
    await store.update('cache', {
      namespace: 'cache',
      state: 'failed',
      desiredRevision: SHA_A,
      lastError: 'chart redis 18.6.1 not found',
      managed: true,
    });

    const table = await kubectl('get', 'mrel', '-n', ns);
    expect(columns(table)).toEqual([
      {
        NAME: 'cache',
        STATE: 'failed',
        VERSION: '',
        DESIRED: 'aaaaaaa',
        DEPLOYED: '',
        'HELM REV': '',
        'LAST ERROR': 'chart redis 18.6.1 not found',
      },
      {
        NAME: 'web',
        STATE: 'drifted',
        VERSION: '1.2.3',
        DESIRED: '0123456',
        DEPLOYED: '0123456',
        'HELM REV': '3',
        'LAST ERROR': '',
      },
    ]);
    await kubectl('wait', '--for=condition=Ready=false', 'mrel/cache', '-n', ns, '--timeout=10s');
  });

  it('lists the records of this cluster and removes one', async () => {
    expect((await store.list()).map((r) => r.name)).toEqual(['cache', 'web']);
    await store.remove('cache');
    await store.remove('cache');
    expect((await store.list()).map((r) => r.name)).toEqual(['web']);
  });

  it('can be read across namespaces, for `mooring status`', async () => {
    const all = await readReleaseStatuses(clients.rest);
    expect(all.filter((r) => r.objectNamespace === ns).map((r) => [r.name, r.cluster, r.state])).toEqual([
      ['web', 'eu-1', 'drifted'],
    ]);
  });

  it('shortens an overlong error so the write is not refused', async () => {
    await store.update('web', { lastError: 'x'.repeat(10_000) });
    const record = await store.get('web');
    expect(record?.lastError?.length).toBe(4096);
    expect(record?.lastError).toMatch(/\(truncated\)$/);
  });
});

describe('Events', () => {
  it('are recorded about the MooringRelease, and a repeat bumps the count', async () => {
    const errors: Error[] = [];
    const recorder = createEventRecorder({
      client: clients.rest,
      namespace: ns,
      instance: 'mooring-0',
      onError: (e) => errors.push(e),
    });

    recorder.emit('web', 'Normal', 'Converged', 'upgraded to revision 0123456 (helm revision 3)');
    recorder.emit('web', 'Warning', 'DriftDetected', '2 drifted fields');
    await recorder.flush();
    recorder.emit('web', 'Warning', 'DriftDetected', '2 drifted fields');
    await recorder.flush();

    expect(errors).toEqual([]);
    const uid = (
      (await clients.customObjects.getNamespacedCustomObject({
        group: 'mooring.io',
        version: 'v1alpha1',
        plural: 'mooringreleases',
        namespace: ns,
        name: 'web',
      })) as { metadata: { uid: string } }
    ).metadata.uid;
    const events = await clients.core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.kind=MooringRelease,involvedObject.name=web,involvedObject.uid=${uid}`,
    });
    const byReason = Object.fromEntries(events.items.map((e) => [e.reason, e]));
    expect(byReason.Converged).toMatchObject({
      type: 'Normal',
      count: 1,
      source: { component: 'mooring', host: 'mooring-0' },
    });
    expect(byReason.DriftDetected).toMatchObject({ type: 'Warning', count: 2, message: '2 drifted fields' });
    expect(events.items).toHaveLength(2);
  });

  it('show up in `kubectl describe`', async () => {
    const out = await kubectl('describe', 'mrel', 'web', '-n', ns);
    expect(out).toMatch(/Normal\s+Converged\s+.*mooring.*upgraded to revision 0123456/);
  });

  it('are best effort: a failure is reported, never thrown', async () => {
    const errors: Error[] = [];
    const recorder = createEventRecorder({
      client: clients.rest,
      namespace: ns,
      onError: (e) => errors.push(e),
    });
    recorder
      .forObject({ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', namespace: 'no-such-namespace-here' })
      .emit('Normal', 'Approved', 'approved by alice');
    await recorder.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(/recording event Approved for ConfigMap no-such-namespace-here\/x/);
  });
});

describe('Kubernetes client helpers', () => {
  it('whoAmI returns the identity the API server sees', async () => {
    const user = await mintUser('alice', 'ops');
    const me = await whoAmI(createKubeClients(loadKubeConfig({ kubeconfig: user })));
    expect(me.username).toBe('alice');
    expect(me.groups).toEqual(expect.arrayContaining(['ops', 'system:authenticated']));
  });

  it('server-side apply keeps fields the typed client models do not know', async () => {
    const applied = await serverSideApply(
      clients,
      {
        apiVersion: 'mooring.io/v1alpha1',
        kind: 'MooringPlan',
        metadata: { name: 'plan-a', namespace: ns, labels: { 'x-kubernetes-ish': 'kept' } },
        spec: {},
      },
      { fieldManager: 'test' },
    );
    expect(applied.metadata?.labels).toEqual({ 'x-kubernetes-ish': 'kept' });
    const dry = await serverSideApply(
      clients,
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dry', namespace: ns }, data: { a: '1' } },
      { fieldManager: 'test', dryRun: true },
    );
    expect((dry as { data?: unknown }).data).toEqual({ a: '1' });
    await expect(clients.core.readNamespacedConfigMap({ name: 'dry', namespace: ns })).rejects.toMatchObject({
      code: 404,
    });
  });

  it('a missing context is named with the ones that exist', () => {
    expect(() => loadKubeConfig({ kubeconfig, context: 'nope' })).toThrow(/no context named nope/);
  });
});

/** Reads kubectl's table by the header's column offsets, so empty cells stay empty. AGE is left out. */
function columns(table: string): Record<string, string>[] {
  const [header = '', ...rows] = table.split('\n').filter((l) => l.trim() !== '');
  // Column titles may contain single spaces ("HELM REV"); columns are separated by two or more.
  const titles = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ title: m[0], start: m.index }));
  return rows.map((row) => {
    const cells: Record<string, string> = {};
    titles.forEach(({ title, start }, i) => {
      if (title !== 'AGE') cells[title] = row.slice(start, titles[i + 1]?.start).trim();
    });
    return cells;
  });
}

/** A kubeconfig for another user, with a client certificate minted by the control plane. */
async function mintUser(user: string, group?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mooring-status-it-'));
  cleanup.push(dir);
  const out = join(dir, `${user}.kubeconfig`);
  await execa(CONTROL_PLANE, [
    'mint',
    '--dir',
    dirname(kubeconfig),
    '--user',
    user,
    ...(group === undefined ? [] : ['--group', group]),
    '--out',
    out,
  ]);
  return out;
}
