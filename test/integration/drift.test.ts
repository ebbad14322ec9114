// Drift detection and correction against the local control plane, for releases that helm
// installed with server-side apply (helm 4's default) and with client-side apply (helm 3's
// way, `--server-side=false`). Each test installs its own release in its own namespace with
// the real helm, changes it the way people do (kubectl scale, set image, patch, delete,
// label), runs one drift check, and looks at the objects, helm's history, the release
// status, the Events, the metrics and the log.
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppsV1Api } from '@kubernetes/client-node';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createHelm, type Helm } from '../../src/converge/helm.js';
import { listRevisions } from '../../src/converge/helm-storage.js';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import type { DriftMode, IgnoreRule, Release } from '../../src/model/releases.js';
import type { ClusterPlan } from '../../src/plan/cluster-plan.js';
import type { ResolvedRelease } from '../../src/resolve/resolve.js';
import { ensureCrds } from '../../src/observe/crds.js';
import { createDriftChecker, loadIgnoreFile, type DriftCheckerDeps } from '../../src/observe/drift/index.js';
import { createEventRecorder, type EventRecorder } from '../../src/observe/events.js';
import { createMetrics } from '../../src/observe/metrics.js';
import { createStatusStore, type StatusStore } from '../../src/observe/status.js';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.tools', 'bin');
const run = Date.now().toString(36);
const agentNs = `drift-agent-${run}`;
const namespaces: string[] = [agentNs];
const PASSWORD = 'hunter2-original-secret';
const NEW_PASSWORD = 'sw0rdfish-set-by-hand';

let kubeconfig: string;
let clients: KubeClients;
let apps: AppsV1Api;
let helm: Helm;
let status: StatusStore;
let events: EventRecorder;
let dir: string;
let chart: string;
let sequence = 0;

const kubectl = async (...args: string[]): Promise<string> =>
  (await execa(join(BIN, 'kubectl'), ['--kubeconfig', kubeconfig, ...args])).stdout;

beforeAll(async () => {
  kubeconfig = inject('kubeconfig');
  const kc = loadKubeConfig({ kubeconfig });
  clients = createKubeClients(kc);
  apps = kc.makeApiClient(AppsV1Api);
  helm = createHelm({ binary: join(BIN, 'helm'), kubeconfig });
  await ensureCrds(clients);
  await clients.core.createNamespace({ body: { metadata: { name: agentNs } } });
  status = createStatusStore({
    client: clients.rest,
    namespace: agentNs,
    cluster: 'drift-it',
  });
  events = createEventRecorder({
    client: clients.rest,
    namespace: agentNs,
  });

  dir = await mkdtemp(join(tmpdir(), 'mooring-drift-it-'));
  chart = join(dir, 'web');
  await mkdir(join(chart, 'templates'), { recursive: true });
  await writeFile(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: web\nversion: 1.0.0\n');
  await writeFile(
    join(chart, 'values.yaml'),
    ['replicas: 2', 'image: registry.example/web:1', 'password: ""', 'hpa: false', ''].join('\n'),
  );
  await writeFile(
    join(chart, 'templates', 'objects.yaml'),
    `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
  labels:
    app: web
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
stringData:
  password: {{ .Values.password | quote }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels:
    app: web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: {{ .Values.image }}
          resources:
            requests:
              cpu: 0.5
              memory: 64Mi
{{- if .Values.hpa }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .Release.Name }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .Release.Name }}
  minReplicas: 1
  maxReplicas: 5
{{- end }}
`,
  );
});

afterAll(async () => {
  for (const ns of namespaces) await clients.core.deleteNamespace({ name: ns }).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

interface Installed {
  name: string;
  namespace: string;
}

/** Installs the chart as a new release in a new namespace, and records it ready (as the converger would). */
async function install(
  serverSide: boolean,
  values: Record<string, unknown> = {},
  into?: string,
): Promise<Installed> {
  const name = `web${++sequence}`;
  const namespace = into ?? `drift-${serverSide ? 'ssa' : 'csa'}-${run}-${sequence}`;
  if (!namespaces.includes(namespace)) namespaces.push(namespace);
  await helm.upgradeInstall({
    release: name,
    namespace,
    chart,
    values: { password: PASSWORD, ...values },
    redact: [PASSWORD],
    timeoutSeconds: 60,
    wait: false,
    rollbackOnFailure: false,
    createNamespace: true,
    serverSide,
  });
  await status.update(name, { namespace, state: 'ready' });
  return { name, namespace };
}

/** A cluster plan holding `release`, as the agent's planner makes it (only what drift reads). */
function planOf(release: Installed, drift: { mode?: DriftMode; ignore?: IgnoreRule[] } = {}): ClusterPlan {
  const model = {
    name: release.name,
    namespace: release.namespace,
    drift: { ...(drift.mode ? { mode: drift.mode } : {}), ignore: drift.ignore ?? [] },
  } as Partial<Release> as Release;
  const resolved = {
    release: model,
    secretStrings: [PASSWORD],
  } as Partial<ResolvedRelease> as ResolvedRelease;
  return {
    cluster: { name: 'drift-it', environment: 'test' } as ClusterPlan['cluster'],
    releases: [
      { name: release.name, namespace: release.namespace, chart: './charts/web', dependsOn: [], resolved },
    ],
    disabled: [],
  };
}

function checker(overrides: Partial<DriftCheckerDeps> = {}) {
  const lines: string[] = [];
  const line = (level: string) => (obj: object, msg: string) =>
    lines.push(`${level} ${msg} ${JSON.stringify(obj)}`);
  const metrics = createMetrics({ processMetrics: false });
  const drift = createDriftChecker({
    objects: clients.objects,
    kube: clients.rest,
    status,
    events,
    metrics,
    mode: 'correct',
    log: { info: line('info'), warn: line('warn') },
    ...overrides,
  });
  return { drift, lines, metrics };
}

async function eventsOf(release: string): Promise<{ reason: string; message: string }[]> {
  await events.flush();
  const list = await clients.core.listNamespacedEvent({
    namespace: agentNs,
    fieldSelector: `involvedObject.name=${release}`,
  });
  return list.items.map((e) => ({ reason: e.reason ?? '', message: e.message ?? '' }));
}

const helmRevisions = async (r: Installed) => (await listRevisions(clients.rest, r.namespace, r.name)).length;
const replicas = async (r: Installed) =>
  (await apps.readNamespacedDeployment({ name: r.name, namespace: r.namespace })).spec?.replicas;

describe.each([
  { method: 'server-side apply (helm 4 default)', serverSide: true },
  { method: 'client-side apply (--server-side=false)', serverSide: false },
])('a release installed with $method', ({ serverSide }) => {
  it('is clean right after install', async () => {
    const release = await install(serverSide);
    const { drift } = checker();
    expect(await drift.check({ plan: planOf(release) })).toEqual({ drifted: 0, corrected: 0, failed: 0 });
    const record = await status.get(release.name);
    expect(record?.drift).toMatchObject({ count: 0, fields: [], deletedObjects: [], corrected: false });
    expect(record?.state).toBe('ready');
  });

  it('restores scaled replicas, a changed image, an edited ConfigMap, a deleted Service and a label added by hand, with no new helm revision', async () => {
    const release = await install(serverSide);
    const { name, namespace } = release;
    await kubectl('-n', namespace, 'scale', `deployment/${name}`, '--replicas=5');
    await kubectl('-n', namespace, 'set', 'image', `deployment/${name}`, 'web=registry.example/evil:6');
    await kubectl(
      '-n',
      namespace,
      'patch',
      'configmap',
      `${name}-config`,
      '--type=merge',
      '-p',
      '{"data":{"greeting":"bonjour"}}',
    );
    await kubectl('-n', namespace, 'delete', 'service', name);
    await kubectl('-n', namespace, 'label', `deployment/${name}`, 'owner=someone');
    await kubectl('-n', namespace, 'label', 'configmap', `${name}-config`, 'app-');

    const { drift, metrics } = checker();
    const result = await drift.check({ plan: planOf(release) });

    expect(result).toEqual({ drifted: 1, corrected: 1, failed: 0 });
    const deployment = await apps.readNamespacedDeployment({ name, namespace });
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe('registry.example/web:1');
    expect(deployment.metadata?.labels).toEqual({ app: 'web', 'app.kubernetes.io/managed-by': 'Helm' });
    expect(deployment.metadata?.annotations).toMatchObject({ 'meta.helm.sh/release-name': name });
    const config = await clients.core.readNamespacedConfigMap({ name: `${name}-config`, namespace });
    expect(config.data).toEqual({ greeting: 'hello' });
    expect(config.metadata?.labels?.app).toBe('web');
    const service = await clients.core.readNamespacedService({ name, namespace });
    expect(service.spec?.ports?.[0]?.port).toBe(80);
    expect(await helmRevisions(release)).toBe(1);

    const record = await status.get(name);
    expect(record?.state).toBe('ready');
    expect(record?.drift).toMatchObject({
      count: 6,
      corrected: true,
      deletedObjects: [`Service/${namespace}/${name}`],
    });
    expect([...(record?.drift?.fields ?? [])].sort()).toEqual(
      [
        `ConfigMap/${namespace}/${name}-config:/data/greeting`,
        `ConfigMap/${namespace}/${name}-config:/metadata/labels/app`,
        `Deployment/${namespace}/${name}:/spec/replicas`,
        `Deployment/${namespace}/${name}:/spec/template/spec/containers/0/image`,
        `Deployment/${namespace}/${name}:/metadata/labels/owner`,
      ].sort(),
    );
    expect(record?.conditions.find((c) => c.type === 'Drifted')).toMatchObject({
      status: 'False',
      reason: 'DriftCorrected',
    });

    const recorded = await eventsOf(name);
    const detected = recorded.find((e) => e.reason === 'DriftDetected');
    expect(detected?.message).toContain(`Deployment/${namespace}/${name}:/spec/replicas`);
    expect(detected?.message).toContain(`deleted Service/${namespace}/${name}`);
    expect(detected?.message).toContain(
      `added by hand Deployment/${namespace}/${name}:/metadata/labels/owner`,
    );
    expect(recorded.find((e) => e.reason === 'DriftCorrected')?.message).toContain(
      `recreated Service/${namespace}/${name}`,
    );

    const exposition = (await metrics.render()).body;
    expect(exposition).toMatch(/^mooring_drift_detected_total 6$/m);
    expect(exposition).toMatch(/^mooring_drift_corrected_total 6$/m);
    expect(exposition).toMatch(/^mooring_last_drift_check_timestamp_seconds \d+/m);

    // Corrected means clean: the next check finds nothing, and writes the release ready.
    expect(await drift.check({ plan: planOf(release) })).toEqual({ drifted: 0, corrected: 0, failed: 0 });
    expect((await status.get(name))?.drift?.count).toBe(0);

    // helm keeps working on the corrected objects: the next upgrade applies, and is the new reference.
    await helm.upgradeInstall({
      release: name,
      namespace,
      chart,
      values: { password: PASSWORD, replicas: 3 },
      redact: [PASSWORD],
      timeoutSeconds: 60,
      wait: false,
      rollbackOnFailure: false,
      createNamespace: false,
      serverSide,
    });
    expect(await replicas(release)).toBe(3);
    expect(await drift.check({ plan: planOf(release) })).toEqual({ drifted: 0, corrected: 0, failed: 0 });
  });

  it('in warn mode reports drift and changes nothing', async () => {
    const release = await install(serverSide);
    await kubectl('-n', release.namespace, 'scale', `deployment/${release.name}`, '--replicas=4');
    const { drift } = checker({ mode: 'warn' });

    expect(await drift.check({ plan: planOf(release) })).toEqual({ drifted: 1, corrected: 0, failed: 0 });
    expect(await replicas(release)).toBe(4);
    const record = await status.get(release.name);
    expect(record?.state).toBe('drifted');
    expect(record?.drift).toMatchObject({ count: 1, corrected: false });
    expect(record?.conditions.find((c) => c.type === 'Drifted')).toMatchObject({
      status: 'True',
      reason: 'DriftDetected',
    });
    const reasons = (await eventsOf(release.name)).map((e) => e.reason);
    expect(reasons).toContain('DriftDetected');
    expect(reasons).not.toContain('DriftCorrected');
  });

  it('a release set to correct in releases.yaml is corrected under a warn agent, and one set to warn is not under a correcting agent', async () => {
    const corrected = await install(serverSide);
    const warned = await install(serverSide);
    for (const r of [corrected, warned])
      await kubectl('-n', r.namespace, 'scale', `deployment/${r.name}`, '--replicas=4');

    await checker({ mode: 'warn' }).drift.check({ plan: planOf(corrected, { mode: 'correct' }) });
    await checker({ mode: 'correct' }).drift.check({ plan: planOf(warned, { mode: 'warn' }) });

    expect(await replicas(corrected)).toBe(2);
    expect(await replicas(warned)).toBe(4);
  });

  it('leaves replicas alone where an HPA scales the Deployment: one in the chart, or one created by hand', async () => {
    const withChartHpa = await install(serverSide, { hpa: true });
    const withLiveHpa = await install(serverSide);
    await kubectl(
      '-n',
      withLiveHpa.namespace,
      'autoscale',
      `deployment/${withLiveHpa.name}`,
      '--min=1',
      '--max=5',
    );
    for (const r of [withChartHpa, withLiveHpa]) {
      // What the HPA controller does (the control plane runs none): scale the target.
      await kubectl('-n', r.namespace, 'scale', `deployment/${r.name}`, '--replicas=3');
    }
    const { drift } = checker();

    for (const r of [withChartHpa, withLiveHpa]) {
      expect(await drift.check({ plan: planOf(r) })).toEqual({ drifted: 0, corrected: 0, failed: 0 });
      expect(await replicas(r)).toBe(3);
    }
    // Ignoring replicas is not ignoring the Deployment: another change is still corrected, replicas kept.
    await kubectl(
      '-n',
      withLiveHpa.namespace,
      'set',
      'image',
      `deployment/${withLiveHpa.name}`,
      'web=registry.example/evil:7',
    );
    expect(await drift.check({ plan: planOf(withLiveHpa) })).toEqual({ drifted: 1, corrected: 1, failed: 0 });
    const deployment = await apps.readNamespacedDeployment({
      name: withLiveHpa.name,
      namespace: withLiveHpa.namespace,
    });
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe('registry.example/web:1');
    expect(deployment.spec?.replicas).toBe(3);
  });

  it('honours ignore rules from the release and from the agent, and the opt-out annotation', async () => {
    const release = await install(serverSide);
    const { name, namespace } = release;
    await kubectl(
      '-n',
      namespace,
      'patch',
      'configmap',
      `${name}-config`,
      '--type=merge',
      '-p',
      '{"data":{"greeting":"bonjour"}}',
    );
    await kubectl('-n', namespace, 'set', 'image', `deployment/${name}`, 'web=registry.example/evil:8');
    await kubectl('-n', namespace, 'label', 'service', name, 'team=payments');
    await kubectl('-n', namespace, 'delete', 'secret', `${name}-db`);

    const releaseRules: IgnoreRule[] = [{ path: '/data', kind: 'ConfigMap' }];
    const agentRules: IgnoreRule[] = [
      { path: '/spec/template/spec/containers/*/image', group: 'apps', kind: 'Deployment' },
    ];
    // Someone is debugging the Service: it opts out as a whole.
    await kubectl('-n', namespace, 'annotate', 'service', name, 'mooring.io/drift=ignore');
    const { drift } = checker({ ignore: agentRules });

    const result = await drift.check({ plan: planOf(release, { ignore: releaseRules }) });

    // Only the deleted Secret is drift.
    expect(result).toEqual({ drifted: 1, corrected: 1, failed: 0 });
    expect((await status.get(name))?.drift).toMatchObject({
      count: 1,
      fields: [],
      deletedObjects: [`Secret/${namespace}/${name}-db`],
    });
    expect((await clients.core.readNamespacedConfigMap({ name: `${name}-config`, namespace })).data).toEqual({
      greeting: 'bonjour',
    });
    const deployment = await apps.readNamespacedDeployment({ name, namespace });
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe('registry.example/evil:8');
    expect((await clients.core.readNamespacedService({ name, namespace })).metadata?.labels?.team).toBe(
      'payments',
    );
    expect(await clients.core.readNamespacedSecret({ name: `${name}-db`, namespace })).toBeDefined();
  });

  it('names the field manager of each drifted field, and leaves the fields of a manager a rule names to it', async () => {
    const release = await install(serverSide);
    const { name, namespace } = release;
    // A controller with its own field manager takes over a field the chart sets (server-side apply).
    const controllerApplies = (greeting: string, force: boolean) =>
      execa(
        join(BIN, 'kubectl'),
        [
          '--kubeconfig',
          kubeconfig,
          'apply',
          '--server-side',
          '--field-manager=cert-rotator',
          ...(force ? ['--force-conflicts'] : []),
          '-f',
          '-',
        ],
        {
          input: JSON.stringify({
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name: `${name}-config`, namespace },
            data: { greeting },
          }),
        },
      );
    const greeting = async () =>
      (await clients.core.readNamespacedConfigMap({ name: `${name}-config`, namespace })).data?.greeting;
    await controllerApplies('rotated-1', true);
    await kubectl('-n', namespace, 'label', '--overwrite', 'configmap', `${name}-config`, 'app=other');
    await kubectl('-n', namespace, 'scale', `deployment/${name}`, '--replicas=4');

    const warned = checker({ mode: 'warn' });
    expect(await warned.drift.check({ plan: planOf(release) })).toEqual({
      drifted: 1,
      corrected: 0,
      failed: 0,
    });
    const reported = (await status.get(name))?.drift;
    const config = `ConfigMap/${namespace}/${name}-config`;
    const byField = new Map(reported?.fieldManagers?.map((f) => [f.field, f.managers]));
    expect(byField.get(`${config}:/data/greeting`)).toEqual(['cert-rotator']);
    expect(byField.get(`${config}:/metadata/labels/app`)).toEqual(['kubectl-label']);
    expect(byField.get(`Deployment/${namespace}/${name}:/spec/replicas`)?.[0]).toMatch(/^kubectl/);
    expect(byField.size).toBe(3);
    const detected = (await eventsOf(name)).find((e) => e.reason === 'DriftDetected');
    expect(detected?.message).toContain(`${config}:/data/greeting (by cert-rotator)`);
    expect(warned.lines.find((l) => l.includes('drift detected'))).toContain(
      `"${config}:/data/greeting":["cert-rotator"]`,
    );

    // A release rule naming the manager: its field is neither reported nor corrected, and the
    // correction of the ConfigMap's other drift claims nothing of it.
    const byManager: IgnoreRule[] = [{ managedFieldsManagers: ['cert-rotator'] }];
    expect(await checker().drift.check({ plan: planOf(release, { ignore: byManager }) })).toEqual({
      drifted: 1,
      corrected: 1,
      failed: 0,
    });
    expect(await greeting()).toBe('rotated-1');
    expect(
      (await clients.core.readNamespacedConfigMap({ name: `${name}-config`, namespace })).metadata?.labels
        ?.app,
    ).toBe('web');
    expect(await replicas(release)).toBe(2);
    expect((await status.get(name))?.drift?.fields).toEqual([
      `${config}:/metadata/labels/app`,
      `Deployment/${namespace}/${name}:/spec/replicas`,
    ]);
    // The controller still owns its field alone: it applies again without forcing a conflict.
    await controllerApplies('rotated-2', false);

    // The same rule in the agent-wide ignore file.
    const file = join(dir, `${name}-ignore.yaml`);
    await writeFile(file, '- managedFieldsManagers: [cert-rotator]\n  kind: ConfigMap\n');
    const agentWide = checker({ ignore: loadIgnoreFile(file) });
    expect(await agentWide.drift.check({ plan: planOf(release) })).toEqual({
      drifted: 0,
      corrected: 0,
      failed: 0,
    });
    expect(await greeting()).toBe('rotated-2');
    expect(await helmRevisions(release)).toBe(1);
  });

  it('finds no drift in an object deleted and created again by hand with the same content', async () => {
    const release = await install(serverSide);
    const { name, namespace } = release;
    const saved = JSON.parse(await kubectl('-n', namespace, 'get', `deployment/${name}`, '-o', 'json')) as {
      metadata: Record<string, unknown>;
      status?: unknown;
    };
    for (const field of ['uid', 'resourceVersion', 'creationTimestamp', 'generation', 'managedFields'])
      delete saved.metadata[field];
    delete saved.status;
    await kubectl('-n', namespace, 'delete', `deployment/${name}`);
    const file = join(dir, `${name}.json`);
    await writeFile(file, JSON.stringify(saved));
    // kubectl create now owns every field, defaults included; they are no fields added by hand.
    await kubectl('-n', namespace, 'create', '-f', file);

    expect(await checker().drift.check({ plan: planOf(release) })).toEqual({
      drifted: 0,
      corrected: 0,
      failed: 0,
    });
  });

  it("reports a Secret's drifted data by key, never its values, in Events, status and logs", async () => {
    const release = await install(serverSide);
    const { name, namespace } = release;
    await kubectl(
      '-n',
      namespace,
      'patch',
      'secret',
      `${name}-db`,
      '--type=merge',
      '-p',
      JSON.stringify({ stringData: { password: NEW_PASSWORD } }),
    );
    const { drift, lines } = checker({ mode: 'warn' });

    await drift.check({ plan: planOf(release) });

    const record = await status.get(name);
    expect(record?.drift?.fields).toEqual([`Secret/${namespace}/${name}-db:/data/password`]);
    const told = JSON.stringify([record, await eventsOf(name), lines]);
    expect(told).toContain('/data/password');
    for (const secret of [PASSWORD, NEW_PASSWORD]) {
      expect(told).not.toContain(secret);
      expect(told).not.toContain(Buffer.from(secret).toString('base64'));
    }

    // Corrected, the chart's value is back (the chart sets it through stringData).
    const correcting = checker();
    expect(await correcting.drift.check({ plan: planOf(release) })).toEqual({
      drifted: 1,
      corrected: 1,
      failed: 0,
    });
    const secret = await clients.core.readNamespacedSecret({ name: `${name}-db`, namespace });
    expect(Buffer.from(secret.data?.password ?? '', 'base64').toString()).toBe(PASSWORD);
    const toldAfter = JSON.stringify([await status.get(name), await eventsOf(name), correcting.lines]);
    for (const value of [PASSWORD, NEW_PASSWORD]) expect(toldAfter).not.toContain(value);
    expect(await correcting.drift.check({ plan: planOf(release) })).toEqual({
      drifted: 0,
      corrected: 0,
      failed: 0,
    });
  });
});

it('runs no helm process: a check works with a helm on PATH that only records that it ran', async () => {
  const release = await install(true);
  await kubectl('-n', release.namespace, 'scale', `deployment/${release.name}`, '--replicas=4');
  const fakeBin = join(dir, 'fake-bin');
  const marker = join(dir, 'helm-ran');
  await mkdir(fakeBin, { recursive: true });
  await writeFile(join(fakeBin, 'helm'), `#!/bin/sh\necho "$@" >> ${marker}\nexit 1\n`);
  await chmod(join(fakeBin, 'helm'), 0o755);
  const saved = { PATH: process.env.PATH, MOORING_HELM: process.env.MOORING_HELM };
  process.env.PATH = `${fakeBin}:${saved.PATH ?? ''}`;
  process.env.MOORING_HELM = join(fakeBin, 'helm');
  try {
    // The checker's dependencies hold no helm: it has no way to run one.
    const { drift } = checker();
    expect(await drift.check({ plan: planOf(release) })).toEqual({ drifted: 1, corrected: 1, failed: 0 });
  } finally {
    process.env.PATH = saved.PATH;
    if (saved.MOORING_HELM === undefined) delete process.env.MOORING_HELM;
    else process.env.MOORING_HELM = saved.MOORING_HELM;
  }
  await expect(readFile(marker, 'utf8')).rejects.toThrow(/ENOENT/);
  expect(await replicas(release)).toBe(2);
});

it('works for an agent that may act only in the namespaces it manages (no cluster-wide lists)', async () => {
  const first = await install(true);
  const second = await install(false, {}, first.namespace);
  // What the agent's chart grants with rbac.namespaces: everything, in listed namespaces only.
  const user = `drift-agent-${run}`;
  for (const ns of [first.namespace, agentNs]) {
    await kubectl('-n', ns, 'create', 'role', `${user}-all`, '--verb=*', '--resource=*.*');
    await kubectl('-n', ns, 'create', 'rolebinding', `${user}-all`, `--role=${user}-all`, `--user=${user}`);
  }
  const out = join(dir, `${user}.kubeconfig`);
  await execa(join(BIN, 'mooring-controlplane'), [
    'mint',
    '--dir',
    dirname(kubeconfig),
    '--user',
    user,
    '--out',
    out,
  ]);
  const restricted = createKubeClients(loadKubeConfig({ kubeconfig: out }));
  await expect(restricted.core.listSecretForAllNamespaces({ limit: 1 })).rejects.toThrow();
  for (const r of [first, second])
    await kubectl('-n', r.namespace, 'scale', `deployment/${r.name}`, '--replicas=4');

  const { drift, lines } = checker({ objects: restricted.objects, kube: restricted.rest });
  const plan = planOf(first);
  plan.releases.push(...planOf(second).releases);

  expect(await drift.check({ plan })).toEqual({ drifted: 2, corrected: 2, failed: 0 });
  expect(await replicas(first)).toBe(2);
  expect(await replicas(second)).toBe(2);
  expect(lines.filter((l) => l.startsWith('warn'))).toEqual([]);
});
