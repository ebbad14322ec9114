// The local Kubernetes rig, checked end to end: the control plane started by the
// integration project's global setup serves what mooring relies on. Helm installs into
// it, the Kubernetes client reads the result back, RBAC is enforced for a non-admin user,
// CustomResourceDefinitions and ValidatingAdmissionPolicies work, and namespaces can be
// deleted (the in-process namespace controller finishes the job).
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  RbacAuthorizationV1Api,
} from '@kubernetes/client-node';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, makeKubeConfig, mintUser, uniqueName } from '../rig/kube.js';

let work: string;
let core: CoreV1Api;
const namespaces: string[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mooring-smoke-'));
  core = makeKubeConfig().makeApiClient(CoreV1Api);
});

afterAll(async () => {
  // Not awaited to completion: the namespace controller finishes after the run.
  await Promise.all(namespaces.map((name) => core.deleteNamespace({ name }).catch(() => undefined)));
  await rm(work, { recursive: true, force: true });
});

async function createNamespace(prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name } } });
  namespaces.push(name);
  return name;
}

/** The HTTP status of a failed client call (403, 404, ...), or the error itself. */
async function statusOf(call: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await call;
    return 'ok';
  } catch (err) {
    if (err instanceof ApiException) return (err as ApiException<unknown>).code;
    throw err;
  }
}

/** Polls `check` until it returns true; the cluster's controllers act asynchronously. */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('the local control plane', () => {
  it('takes a Helm install (ConfigMap, Deployment, Service) that the Kubernetes client reads back', async () => {
    const chart = join(work, 'smoke');
    await mkdir(join(chart, 'templates'), { recursive: true });
    await writeFile(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: smoke\nversion: 0.1.0\n');
    await writeFile(join(chart, 'values.yaml'), 'greeting: hello\nreplicas: 2\n');
    await writeFile(
      join(chart, 'templates', 'configmap.yaml'),
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: {{ .Release.Name }}-config',
        'data:',
        '  greeting: {{ .Values.greeting | quote }}',
        '  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}',
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
        '  selector:',
        '    matchLabels: {app: {{ .Release.Name }}}',
        '  template:',
        '    metadata:',
        '      labels: {app: {{ .Release.Name }}}',
        '    spec:',
        '      containers:',
        '        - name: web',
        '          image: registry.invalid/web:1.0',
        '          ports: [{containerPort: 8080}]',
        '',
      ].join('\n'),
    );
    await writeFile(
      join(chart, 'templates', 'service.yaml'),
      [
        'apiVersion: v1',
        'kind: Service',
        'metadata:',
        '  name: {{ .Release.Name }}',
        'spec:',
        '  selector: {app: {{ .Release.Name }}}',
        '  ports: [{port: 80, targetPort: 8080}]',
        '',
      ].join('\n'),
    );
    const namespace = uniqueName('smoke-helm');
    namespaces.push(namespace);

    // No kubelet runs, so the Deployment never becomes ready: install without waiting for
    // it (helm 4's default wait strategy only waits for hooks; spelt out here).
    await execa('helm', [
      'upgrade',
      '--install',
      'web',
      chart,
      '--namespace',
      namespace,
      '--create-namespace',
      '--wait=hookOnly',
      '--set',
      'greeting=ahoy',
      '--kubeconfig',
      kubeconfigPath(),
    ]);

    const kc = makeKubeConfig();
    const config = await core.readNamespacedConfigMap({ name: 'web-config', namespace });
    expect(config.data).toEqual({ greeting: 'ahoy', kubeVersion: expect.stringMatching(/^v1\.\d+\.\d+$/) });
    const deployment = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: 'web', namespace });
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.metadata?.annotations?.['meta.helm.sh/release-name']).toBe('web');
    const service = await core.readNamespacedService({ name: 'web', namespace });
    expect(service.spec?.ports?.[0]?.port).toBe(80);
    expect(service.spec?.clusterIP).toMatch(/^10\.96\./);

    const { stdout } = await execa('helm', [
      'list',
      '--namespace',
      namespace,
      '--output',
      'json',
      '--kubeconfig',
      kubeconfigPath(),
    ]);
    expect(JSON.parse(stdout)).toEqual([
      expect.objectContaining({ name: 'web', status: 'deployed', revision: '1' }),
    ]);
  });

  it('refuses a user without RBAC bindings (403) and admits it once a RoleBinding grants access', async () => {
    const namespace = await createNamespace('smoke-rbac');
    const user = uniqueName('reader');
    const asUser = makeKubeConfig(await mintUser(user, ['smoke-readers'])).makeApiClient(CoreV1Api);

    expect(await statusOf(asUser.listNamespacedSecret({ namespace }))).toBe(403);

    const rbac = makeKubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: 'secret-reader' },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'secret-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secret-reader' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
      },
    });

    // The authorizer sees the binding through its informer cache, a moment later.
    await eventually(
      'listing secrets is allowed',
      async () => (await statusOf(asUser.listNamespacedSecret({ namespace }))) === 'ok',
    );
    // The grant is for this namespace and this verb only.
    expect(await statusOf(asUser.listNamespacedSecret({ namespace: 'default' }))).toBe(403);
    expect(
      await statusOf(
        asUser.createNamespacedSecret({
          namespace,
          body: { metadata: { name: 'nope' }, stringData: { a: 'b' } },
        }),
      ),
    ).toBe(403);
  });

  it('finishes deleting a namespace and everything in it', async () => {
    const namespace = await createNamespace('smoke-delete');
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'left-behind' }, data: { a: 'b' } },
    });

    await core.deleteNamespace({ name: namespace });

    await eventually(
      `namespace ${namespace} is gone`,
      async () => (await statusOf(core.readNamespace({ name: namespace }))) === 404,
    );
    expect(await statusOf(core.readNamespacedConfigMap({ name: 'left-behind', namespace }))).toBe(404);
  });

  it('serves a CustomResourceDefinition and enforces a ValidatingAdmissionPolicy', async () => {
    const kc = makeKubeConfig();
    const namespace = await createNamespace('smoke-policy');
    const extensions = kc.makeApiClient(ApiextensionsV1Api);
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    // Cluster-scoped objects: names unique to this test, removed at its end.
    const group = `${uniqueName('smoke')}.mooring.test`;
    const crdName = `widgets.${group}`;
    const policyName = uniqueName('smoke-no-forbidden-key');
    try {
      await extensions.createCustomResourceDefinition({
        body: {
          metadata: { name: crdName },
          spec: {
            group,
            names: { kind: 'Widget', plural: 'widgets', singular: 'widget' },
            scope: 'Namespaced',
            versions: [
              {
                name: 'v1',
                served: true,
                storage: true,
                schema: {
                  openAPIV3Schema: {
                    type: 'object',
                    properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } },
                  },
                },
              },
            ],
          },
        },
      });
      await eventually(`CRD ${crdName} is established`, async () => {
        const crd = await extensions.readCustomResourceDefinition({ name: crdName });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
      });
      const custom = kc.makeApiClient(CustomObjectsApi);
      const widget = { group, version: 'v1', namespace, plural: 'widgets' };
      await eventually('the widgets resource is served', async () => {
        const status = await statusOf(
          custom.createNamespacedCustomObject({
            ...widget,
            body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } },
          }),
        );
        return status === 'ok' || status === 409;
      });
      expect(await custom.getNamespacedCustomObject({ ...widget, name: 'w1' })).toMatchObject({
        spec: { size: 3 },
      });

      await admission.createValidatingAdmissionPolicy({
        body: {
          metadata: { name: policyName },
          spec: {
            failurePolicy: 'Fail',
            matchConstraints: {
              resourceRules: [
                { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] },
              ],
            },
            validations: [
              {
                expression: "!has(object.data) || !('forbidden' in object.data)",
                message: 'no forbidden key',
              },
            ],
          },
        },
      });
      await admission.createValidatingAdmissionPolicyBinding({
        body: {
          metadata: { name: policyName },
          spec: {
            policyName,
            validationActions: ['Deny'],
            matchResources: {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
            },
          },
        },
      });
      const configMap = (key: string) => ({ metadata: { name: `cm-${key}` }, data: { [key]: 'x' } });
      // Admission picks the policy up from its informers, a moment later; dry runs are
      // admitted (or not) like real requests but leave nothing behind.
      await eventually(
        'the policy denies a forbidden key',
        async () =>
          (await statusOf(
            core.createNamespacedConfigMap({ namespace, body: configMap('forbidden'), dryRun: 'All' }),
          )) === 422,
      );
      expect(await statusOf(core.createNamespacedConfigMap({ namespace, body: configMap('allowed') }))).toBe(
        'ok',
      );
      // The binding selects this namespace only.
      const other = await createNamespace('smoke-policy-other');
      expect(
        await statusOf(
          core.createNamespacedConfigMap({ namespace: other, body: configMap('forbidden'), dryRun: 'All' }),
        ),
      ).toBe('ok');
    } finally {
      await admission.deleteValidatingAdmissionPolicyBinding({ name: policyName }).catch(() => undefined);
      await admission.deleteValidatingAdmissionPolicy({ name: policyName }).catch(() => undefined);
      await extensions.deleteCustomResourceDefinition({ name: crdName }).catch(() => undefined);
    }
  });
});
