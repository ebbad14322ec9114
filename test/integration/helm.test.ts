// The Helm adapter against the real helm v4 binary and the local control plane.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createHelm, HelmError, type Helm } from '../../src/converge/helm.js';

const HELM = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.tools', 'bin', 'helm');

let dir: string;
let chart: string;
let brokenChart: string;
let kubeconfig: string;
let core: CoreV1Api;
let apps: AppsV1Api;
let helm: Helm;
const spawned: string[][] = [];
// One namespace per run, so reruns against the same control plane start clean.
const ns = `helm-it-${Date.now().toString(36)}`;

beforeAll(async () => {
  kubeconfig = inject('kubeconfig');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  helm = createHelm({ binary: HELM, kubeconfig, onSpawn: (args) => spawned.push([...args]) });

  dir = await mkdtemp(join(tmpdir(), 'mooring-helm-it-'));
  chart = join(dir, 'web');
  await mkdir(join(chart, 'templates'), { recursive: true });
  await writeFile(
    join(chart, 'Chart.yaml'),
    'apiVersion: v2\nname: web\nversion: 1.2.3\nappVersion: "4.5"\n',
  );
  await writeFile(
    join(chart, 'values.yaml'),
    'greeting: hello\nreplicas: 1\nlabel: plain\nimage: registry.example/web:1\n',
  );
  await writeFile(
    join(chart, 'templates', 'configmap.yaml'),
    [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: {{ .Release.Name }}-config',
      '  labels:',
      '    flavour: {{ .Values.label | quote }}',
      'data:',
      '  greeting: {{ .Values.greeting | quote }}',
      '',
    ].join('\n'),
  );
  await writeFile(
    join(chart, 'templates', 'deployment.yaml'),
    [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: {{ .Release.Name }}',
      'spec:',
      '  replicas: {{ .Values.replicas }}',
      '  selector: {matchLabels: {app: {{ .Release.Name }}}}',
      '  template:',
      '    metadata: {labels: {app: {{ .Release.Name }}}}',
      '    spec:',
      '      containers: [{name: web, image: {{ .Values.image | quote }}}]',
      '',
    ].join('\n'),
  );

  brokenChart = join(dir, 'broken');
  await mkdir(join(brokenChart, 'templates'), { recursive: true });
  await writeFile(join(brokenChart, 'Chart.yaml'), 'apiVersion: v2\nname: broken\nversion: 0.1.0\n');
  await writeFile(
    join(brokenChart, 'templates', 'bad.yaml'),
    'kind: ConfigMap\ndata: {{ .Values.missing.key }}\n',
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

const install = (
  values: Record<string, unknown>,
  extra: Partial<Parameters<Helm['upgradeInstall']>[0]> = {},
) =>
  helm.upgradeInstall({
    release: 'web',
    namespace: ns,
    chart,
    values,
    timeoutSeconds: 60,
    // No kubelet in the test control plane: Deployments never become ready on their own.
    wait: false,
    rollbackOnFailure: false,
    createNamespace: true,
    labels: { 'mooring.io/managed': 'true' },
    ...extra,
  });

describe('helm adapter against a real cluster', () => {
  it('status of a release that does not exist is undefined, and its history empty', async () => {
    expect(await helm.status('web', ns)).toBeUndefined();
    expect(await helm.history('web', ns)).toEqual([]);
  });

  it('installs a chart with values from stdin into a new namespace', async () => {
    const release = await install({ greeting: 'from mooring' });

    expect(release).toMatchObject({
      name: 'web',
      namespace: ns,
      revision: 1,
      status: 'deployed',
      chart: 'web',
    });
    const cm = await core.readNamespacedConfigMap({ name: 'web-config', namespace: ns });
    expect(cm.data).toEqual({ greeting: 'from mooring' });
    const deployment = await apps.readNamespacedDeployment({ name: 'web', namespace: ns });
    expect(deployment.spec?.replicas).toBe(1);
  });

  it('upgrades with changed values, which the cluster then holds', async () => {
    const release = await install({ greeting: 'changed', replicas: 3 });

    expect(release.revision).toBe(2);
    const cm = await core.readNamespacedConfigMap({ name: 'web-config', namespace: ns });
    expect(cm.data?.greeting).toBe('changed');
    const deployment = await apps.readNamespacedDeployment({ name: 'web', namespace: ns });
    expect(deployment.spec?.replicas).toBe(3);
  });

  it('reports status, history and release labels', async () => {
    const status = await helm.status('web', ns);
    expect(status).toMatchObject({
      revision: 2,
      status: 'deployed',
      chart: 'web',
      chartVersion: '1.2.3',
      appVersion: '4.5',
      labels: { 'mooring.io/managed': 'true' },
    });
    const history = await helm.history('web', ns);
    expect(history.map((h) => [h.revision, h.status])).toEqual([
      [1, 'superseded'],
      [2, 'deployed'],
    ]);
  });

  it('finds the releases mooring installed by their label', async () => {
    const managed = await helm.list({ allNamespaces: true, selector: 'mooring.io/managed=true' });
    expect(managed.filter((r) => r.namespace === ns).map((r) => [r.name, r.chart, r.chartVersion])).toEqual([
      ['web', 'web', '1.2.3'],
    ]);
    const unmanaged = await helm.list({ namespace: ns, selector: 'mooring.io/managed!=true' });
    expect(unmanaged).toEqual([]);
  });

  it('with server-side apply, an upgrade over a field another manager took needs forceConflicts', async () => {
    await core.patchNamespacedConfigMap(
      {
        name: 'web-config',
        namespace: ns,
        body: { data: { greeting: 'edited by hand' } },
        fieldManager: 'kubectl-edit',
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );

    const err = await install({ greeting: 'from git' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HelmError);
    expect((err as HelmError).message).toMatch(/conflict with "kubectl-edit".*: \.data\.greeting/);

    await install({ greeting: 'changed' }, { forceConflicts: true });
    const cm = await core.readNamespacedConfigMap({ name: 'web-config', namespace: ns });
    expect(cm.data?.greeting).toBe('changed');
  });

  it('returns the manifest helm recorded', async () => {
    const manifest = await helm.manifest('web', ns);
    expect(manifest).toContain('greeting: "changed"');
    expect(await helm.manifest('ghost', ns)).toBeUndefined();
  });

  it('waits for readiness when asked, and succeeds once the Deployment is ready', async () => {
    // A new image changes the pod template, so the Deployment must roll out before helm returns.
    const upgrade = install(
      { greeting: 'waited', image: 'registry.example/web:2' },
      { wait: true, timeoutSeconds: 60 },
    );
    await keepDeploymentReady('web', upgrade);
    const release = await upgrade;
    expect(release).toMatchObject({ revision: 5, status: 'deployed' });
  });

  it('fails an upgrade whose Deployment never becomes ready within the timeout', async () => {
    const err = await install({ image: 'registry.example/web:3' }, { wait: true, timeoutSeconds: 2 }).catch(
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(HelmError);
    expect((err as HelmError).failure).toBe('failed');
    expect((err as HelmError).message).toMatch(/Deployment\/.*\/web not ready/);
    expect(await helm.status('web', ns)).toMatchObject({ revision: 6, status: 'failed' });
  });

  it('on shutdown stops helm with SIGTERM, and helm records the release failed, not pending', async () => {
    const shutdown = new AbortController();
    const upgrade = helm
      .upgradeInstall({
        release: 'stopped',
        namespace: ns,
        chart,
        values: {},
        timeoutSeconds: 60,
        wait: true,
        rollbackOnFailure: false,
        createNamespace: false,
        signal: shutdown.signal,
      })
      .catch((e: unknown) => e);
    // Abort once helm is waiting, i.e. after it created the Deployment.
    for (;;) {
      const found = await apps
        .readNamespacedDeployment({ name: 'stopped', namespace: ns })
        .catch(() => undefined);
      if (found !== undefined) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    shutdown.abort();

    const err = await upgrade;
    expect(err).toBeInstanceOf(HelmError);
    expect((err as HelmError).failure).toBe('canceled');
    expect(await helm.status('stopped', ns)).toMatchObject({ revision: 1, status: 'failed' });
  });

  it('renders manifests with `template` without touching the cluster', async () => {
    const out = await helm.template({
      release: 'web',
      namespace: 'elsewhere',
      chart,
      values: { greeting: 'rendered' },
    });
    expect(out).toContain('name: web-config');
    expect(out).toContain('greeting: "rendered"');
    expect(out).toContain('kind: Deployment');
  });

  it('a chart that does not render fails with a HelmError naming the release and chart', async () => {
    const err = await helm
      .template({ release: 'oops', namespace: ns, chart: brokenChart, values: {} })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HelmError);
    const h = err as HelmError;
    expect(h.message).toContain(
      `helm template of release oops in namespace ${ns} (chart ${brokenChart}) failed`,
    );
    expect(h.message).toContain('bad.yaml');
    expect(h.context.release).toBe('oops');
    expect(h.exitCode).toBe(1);

    const upgradeErr = await helm
      .upgradeInstall({
        release: 'oops',
        namespace: ns,
        chart: brokenChart,
        values: {},
        timeoutSeconds: 30,
        wait: false,
        rollbackOnFailure: false,
        createNamespace: false,
      })
      .catch((e: unknown) => e);
    expect(upgradeErr).toBeInstanceOf(HelmError);
    expect((upgradeErr as HelmError).message).toMatch(/^helm upgrade --install of release oops .* failed/);
    expect(await helm.status('oops', ns)).toBeUndefined();
  });

  it('keeps a secret value out of the error when the API server echoes it back', async () => {
    const secret = 'hunter2 is not a label';
    const err = await install({ label: secret }, { redact: [secret] }).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(HelmError);
    const h = err as HelmError;
    expect(h.stderr).toContain('Invalid value: "[redacted]"');
    expect(`${h.message}\n${h.stderr}\n${JSON.stringify(h.toJSON())}`).not.toContain('hunter2');
  });

  it('uninstalls, and says so only when there was something to uninstall', async () => {
    expect(await helm.uninstall('web', ns, { wait: false, timeoutSeconds: 60 })).toBe(true);
    expect(await helm.status('web', ns)).toBeUndefined();
    expect(await helm.uninstall('web', ns, { wait: false, timeoutSeconds: 60 })).toBe(false);
  });

  it('reported every helm process it started, none of them with values in its arguments', () => {
    expect(spawned.length).toBeGreaterThan(10);
    for (const args of spawned) expect(args.join(' ')).not.toMatch(/hunter2|from mooring|changed/);
  });
});

/**
 * Plays the kubelet and the deployment controller until `done` settles: whenever the
 * Deployment's generation moves ahead of what was observed, marks it rolled out and ready.
 */
async function keepDeploymentReady(name: string, done: Promise<unknown>): Promise<void> {
  let settled = false;
  void done.finally(() => {
    settled = true;
  });
  while (!settled) {
    const d = await apps.readNamespacedDeployment({ name, namespace: ns });
    const generation = d.metadata?.generation ?? 0;
    if (generation > (d.status?.observedGeneration ?? 0)) {
      const replicas = d.spec?.replicas ?? 1;
      await apps.replaceNamespacedDeploymentStatus({
        name,
        namespace: ns,
        body: {
          ...d,
          status: {
            observedGeneration: generation,
            replicas,
            updatedReplicas: replicas,
            readyReplicas: replicas,
            availableReplicas: replicas,
            conditions: [
              { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'test' },
              { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: 'test' },
            ],
          },
        },
      });
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
