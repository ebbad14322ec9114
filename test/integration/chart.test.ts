// The agent's own Helm chart (charts/mooring): it lints strictly, renders a hardened pod
// whose settings are ones `mooring run` knows, refuses values the agent would refuse, and
// installs into a real API server (which validates every object). The RBAC it grants is
// proven sufficient by running the agent as the chart's ServiceAccount.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments, stringify as toYaml } from 'yaml';
import { AGENT_SETTINGS, loadAgentConfig } from '../../src/agent/config.js';
import { runAgent } from '../../src/cli/run.js';
import { approvalPolicyObjects } from '../../src/gate/policy.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import { createRepo, startGitServer, type GitServer } from '../rig/git.js';

interface ControlPlaneRig {
  startControlPlane(opts: { dir: string; exitWithPid?: number }): Promise<{ kubeconfig: string }>;
  stopControlPlane(dir: string): Promise<void>;
}
const rig = (await import(
  new URL('../../scripts/lib/controlplane.mjs', import.meta.url).href
)) as ControlPlaneRig;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHART = join(ROOT, 'charts', 'mooring');
const HELM = join(ROOT, '.tools', 'bin', 'helm');
const KUBECTL = join(ROOT, '.tools', 'bin', 'kubectl');
const REQUIRED = [
  '--set',
  'repo.url=https://git.example.com/platform/gitops.git',
  '--set',
  'cluster.name=prod-eu-west',
];
/** Every optional feature switched on, each Secret referenced. */
const EVERYTHING = [
  ...['--set', 'repo.credentials.existingSecret=git-credentials'],
  ...['--set', 'repo.ca.existingSecret=git-ca'],
  ...['--set', 'ageKey.existingSecret=sops-age'],
  ...['--set', 'webhook.enabled=true'],
  ...['--set', 'notifications.existingSecret=slack-webhook', '--set', 'notifications.format=json'],
  ...['--set', 'charts.auth.existingSecret=chart-auth', '--set', 'charts.interval=30m'],
  ...['--set', 'networkPolicy.enabled=true'],
  ...[
    '--set-json',
    'networkPolicy.ingressFrom=[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}}]',
  ],
  ...['--set', 'replicaCount=2'],
];

type K8sObject = { kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown };

async function render(...args: string[]): Promise<K8sObject[]> {
  const { stdout } = await execa(HELM, ['template', 'mooring', CHART, '-n', 'mooring-system', ...args]);
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

async function renderError(...args: string[]): Promise<string> {
  const result = await execa(HELM, ['template', 'mooring', CHART, ...args], { reject: false });
  expect(result.exitCode).not.toBe(0);
  return result.stderr;
}

function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!found)
    throw new Error(`no ${kind}${name ? ` ${name}` : ''} in ${objects.map((o) => o.kind).join(', ')}`);
  return found;
}

interface Container {
  args: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
  volumeMounts: { name: string; mountPath: string }[];
  securityContext: Record<string, unknown>;
  livenessProbe: { httpGet: { path: string } };
  readinessProbe: { httpGet: { path: string } };
}
interface PodSpec {
  securityContext: Record<string, unknown>;
  serviceAccountName: string;
  containers: Container[];
  volumes: { name: string; secret?: { secretName: string; items: { key: string; path: string }[] } }[];
}
const podOf = (objects: K8sObject[]) =>
  (find(objects, 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
const envOf = (container: Container) =>
  Object.fromEntries(container.env.map((e) => [e.name, e.value ?? e.valueFrom]));

describe('the chart, rendered', () => {
  it('passes helm lint --strict with the two required values, in every mode', async () => {
    for (const extra of [
      [],
      ['--set', 'rbac.clusterAdmin=false', '--set', 'rbac.namespaces={web,cache}'],
      EVERYTHING,
      ['--set', 'serviceMonitor.enabled=true', '--set', 'approval.mode=manual', '--set', 'prune=true'],
    ]) {
      const result = await execa(HELM, ['lint', '--strict', CHART, ...REQUIRED, ...extra], { reject: false });
      expect(result.stdout + result.stderr, extra.join(' ')).toContain(
        '1 chart(s) linted, 0 chart(s) failed',
      );
      expect(result.exitCode).toBe(0);
    }
  });

  it('refuses to render without repo.url or cluster.name, naming them', async () => {
    // Required at install (the template's `required`); helm lint renders them empty.
    expect(await renderError('--set', 'cluster.name=prod-eu-west')).toMatch(/repo\.url is required/);
    expect(await renderError('--set', 'repo.url=https://git.example.com/g.git')).toMatch(
      /cluster\.name is required/,
    );
  });

  it('refuses values the agent would refuse', async () => {
    expect(await renderError(...REQUIRED, '--set', 'approval.mode=sometimes')).toMatch(/\/approval\/mode/);
    expect(await renderError(...REQUIRED, '--set', 'drift.mode=fix')).toMatch(/\/drift\/mode/);
    expect(
      await renderError(...REQUIRED, '--set', 'repo.url=https://bob:hunter2@git.example.com/g.git'),
    ).toMatch(/\/repo\/url/);
    expect(await renderError(...REQUIRED, '--set', 'cluster.name=Prod_EU')).toMatch(/\/cluster\/name/);
    expect(await renderError(...REQUIRED, '--set', 'repo.interval=often')).toMatch(/\/repo\/interval/);
    // A misspelt key is an error, not a silently ignored value.
    expect(await renderError(...REQUIRED, '--set', 'approvals.mode=manual')).toMatch(/approvals/);
    expect(await renderError(...REQUIRED, '--set', 'rbac.clusterAdmin=false')).toMatch(
      /rbac.clusterAdmin is false and rbac.namespaces is empty/,
    );
  });

  it('runs a hardened pod: non-root, read-only root filesystem, no privilege escalation, no capabilities', async () => {
    const pod = podOf(await render(...REQUIRED));
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.containers[0]!.securityContext).toEqual({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.containers[0]!.livenessProbe.httpGet.path).toBe('/healthz');
    expect(pod.containers[0]!.readinessProbe.httpGet.path).toBe('/readyz');
    // Writable places: /tmp and the snapshot folder, both emptyDirs.
    expect(pod.containers[0]!.volumeMounts).toEqual([
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'work', mountPath: '/tmp/mooring' },
    ]);
    expect(envOf(pod.containers[0]!).MOORING_WORK_DIR).toBe('/tmp/mooring');
  });

  it('sets only settings `mooring run` knows, and takes its identity from the downward API', async () => {
    const container = podOf(await render(...REQUIRED, ...EVERYTHING)).containers[0]!;
    const known = new Set([
      ...AGENT_SETTINGS.map((s) => s.env),
      'SOPS_AGE_KEY_FILE',
      'POD_NAME',
      'POD_NAMESPACE',
    ]);
    expect(container.env.map((e) => e.name).filter((n) => !known.has(n))).toEqual([]);
    expect(container.args).toEqual(['run']);
    const env = envOf(container);
    expect(env.POD_NAME).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(env.POD_NAMESPACE).toEqual({ fieldRef: { fieldPath: 'metadata.namespace' } });
    // The settings as the agent reads them (files stand in for the mounted Secrets).
    const config = loadAgentConfig(
      {},
      Object.fromEntries(container.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!])),
    );
    expect(config).toMatchObject({
      repo: 'https://git.example.com/platform/gitops.git',
      branch: 'main',
      cluster: 'prod-eu-west',
      approval: 'auto',
      drift: 'correct',
      prune: false,
      intervalSeconds: 60,
      driftIntervalSeconds: 300,
      leaderElection: true,
      listen: ':8080',
      gitUsernameFile: '/etc/mooring/git/username',
      gitPasswordFile: '/etc/mooring/git/password',
      gitCaFile: '/etc/mooring/git-ca/ca.crt',
      webhookSecretFile: '/etc/mooring/webhook/secret',
      notifyUrlFile: '/etc/mooring/notify/url',
      notifyFormat: 'json',
      chartIntervalSeconds: 1800,
      chartAuthFile: '/etc/mooring/chart-auth/auth.yaml',
    });
  });

  it('mounts each referenced Secret as files where the agent looks for them', async () => {
    const pod = podOf(await render(...REQUIRED, ...EVERYTHING));
    const secrets = Object.fromEntries(pod.volumes.filter((v) => v.secret).map((v) => [v.name, v.secret!]));
    expect(secrets).toEqual({
      'git-credentials': {
        secretName: 'git-credentials',
        defaultMode: 0o440,
        items: [
          { key: 'username', path: 'username' },
          { key: 'password', path: 'password' },
        ],
      },
      'git-ca': { secretName: 'git-ca', defaultMode: 0o440, items: [{ key: 'ca.crt', path: 'ca.crt' }] },
      'age-key': {
        secretName: 'sops-age',
        defaultMode: 0o440,
        items: [{ key: 'keys.txt', path: 'keys.txt' }],
      },
      'webhook-secret': {
        secretName: 'mooring-webhook',
        defaultMode: 0o440,
        items: [{ key: 'secret', path: 'secret' }],
      },
      'notify-url': { secretName: 'slack-webhook', defaultMode: 0o440, items: [{ key: 'url', path: 'url' }] },
      'chart-auth': {
        secretName: 'chart-auth',
        defaultMode: 0o440,
        items: [{ key: 'auth.yaml', path: 'auth.yaml' }],
      },
    });
    const mounts = Object.fromEntries(pod.containers[0]!.volumeMounts.map((m) => [m.name, m.mountPath]));
    const env = envOf(pod.containers[0]!);
    expect(env.SOPS_AGE_KEY_FILE).toBe(`${mounts['age-key']}/keys.txt`);
    expect(env.MOORING_GIT_PASSWORD_FILE).toBe(`${mounts['git-credentials']}/password`);
    expect(env.MOORING_NOTIFY_URL_FILE).toBe(`${mounts['notify-url']}/url`);
    expect(env.MOORING_CHART_AUTH_FILE).toBe(`${mounts['chart-auth']}/auth.yaml`);
  });

  it('binds cluster-admin only when asked to, and Roles per namespace otherwise', async () => {
    const admin = await render(...REQUIRED);
    expect(find(admin, 'ClusterRoleBinding', 'mooring-system-mooring-cluster-admin')).toMatchObject({
      roleRef: { kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ kind: 'ServiceAccount', name: 'mooring', namespace: 'mooring-system' }],
    });
    const confined = await render(
      ...REQUIRED,
      '--set',
      'rbac.clusterAdmin=false',
      '--set',
      'rbac.namespaces={web,cache}',
    );
    expect(
      confined.filter((o) => (o as { roleRef?: { name: string } }).roleRef?.name === 'cluster-admin'),
    ).toEqual([]);
    expect(
      confined.filter((o) => o.kind === 'Role').map((o) => `${o.metadata.namespace}/${o.metadata.name}`),
    ).toEqual(['mooring-system/mooring', 'web/mooring-releases', 'cache/mooring-releases']);
  });

  it('renders the approval policy the agent applies, named and bound per namespace; or none', async () => {
    // The agent builds the same objects from the same file (src/gate/policy.ts): it must find
    // what the chart installed, under the same name, or it would warn and try to install it.
    for (const namespace of ['mooring-system', 'team-b']) {
      const { stdout } = await execa(HELM, ['template', 'mooring', CHART, '-n', namespace, ...REQUIRED]);
      const objects = parseAllDocuments(stdout)
        .map((d) => d.toJS() as K8sObject | null)
        .filter((o): o is K8sObject => o !== null && o.kind.startsWith('ValidatingAdmissionPolicy'));
      const comparable = (o: Record<string, unknown>) => ({
        apiVersion: o.apiVersion,
        kind: o.kind,
        name: (o.metadata as { name: string }).name,
        spec: o.spec,
      });
      expect(objects.map(comparable)).toEqual(approvalPolicyObjects(namespace).map(comparable));
      expect(objects.map((o) => o.metadata.name)).toEqual([
        `mooring-approval-approver-${namespace}`,
        `mooring-approval-approver-${namespace}`,
      ]);
      // The agent may read exactly those (it checks they are in place).
      const reader = parseAllDocuments(stdout)
        .map(
          (d) => d.toJS() as { kind?: string; rules?: { resources: string[]; resourceNames?: string[] }[] },
        )
        .find(
          (o) =>
            o?.kind === 'ClusterRole' &&
            o.rules?.some((r) => r.resources.includes('validatingadmissionpolicies')),
        );
      expect(
        reader!.rules!.find((r) => r.resources.includes('validatingadmissionpolicies'))!.resourceNames,
      ).toEqual([`mooring-approval-approver-${namespace}`]);
    }
    const without = await render(...REQUIRED, '--set', 'approval.policy.create=false');
    expect(without.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
  });

  it('documents every value in docs/install.md', async () => {
    const values = parseYaml(await readFile(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const keys: string[] = [];
    const walk = (obj: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(obj)) {
        const key = prefix + k;
        if (
          v !== null &&
          typeof v === 'object' &&
          !Array.isArray(v) &&
          Object.keys(v).length > 0 &&
          !/securityContext|resources|Probe$/i.test(k)
        )
          walk(v as Record<string, unknown>, `${key}.`);
        else keys.push(key);
      }
    };
    walk(values, '');
    const docs = await readFile(join(ROOT, 'docs', 'install.md'), 'utf8');
    expect(keys.filter((k) => !docs.includes(`\`${k}\``))).toEqual([]);
  });
});

describe('the chart, installed', () => {
  const work = { dir: '' };
  let kubeconfig: string;
  let clients: KubeClients;
  let git: GitServer;
  const helm = (...args: string[]) => execa(HELM, ['--kubeconfig', kubeconfig, ...args]);
  const kubectl = async (...args: string[]) =>
    (await execa(KUBECTL, ['--kubeconfig', kubeconfig, ...args])).stdout;

  beforeAll(async () => {
    work.dir = await mkdtemp(join(tmpdir(), 'mooring-chart-'));
    // A control plane of its own: the chart owns cluster-scoped objects (the CRDs, the
    // admission policy) that other tests' agents create on the shared one.
    const plane = await rig.startControlPlane({ dir: join(work.dir, 'cp'), exitWithPid: process.pid });
    kubeconfig = plane.kubeconfig;
    clients = createKubeClients(loadKubeConfig({ kubeconfig }));
    for (const name of ['team-a', 'team-b'])
      await clients.core.createNamespace({ body: { metadata: { name } } });

    // The GitOps repository: one in-repo chart with a ConfigMap, for cluster ship-1.
    const repo = join(work.dir, 'repo');
    const files: Record<string, string> = {
      'clusters/ship-1/cluster.yaml': 'environment: dev\n',
      'environments/dev/values.yaml': 'greeting: hello from dev\n',
      'environments/common/releases.yaml':
        'releases:\n  hello:\n    chart: ./charts/hello\n    namespace: team-a\n',
      'charts/hello/Chart.yaml': 'apiVersion: v2\nname: hello\nversion: 1.0.0\n',
      'charts/hello/values.yaml': 'greeting: hi\n',
      'charts/hello/templates/configmap.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
    };
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(repo, path)), { recursive: true });
      await writeFile(join(repo, path), text);
    }
    const served = join(work.dir, 'served');
    createRepo(served, 'gitops.git', repo);
    git = await startGitServer({ root: served });
  });

  afterAll(async () => {
    await git?.stop();
    await rig.stopControlPlane(join(work.dir, 'cp'));
    await rm(work.dir, { recursive: true, force: true });
  });

  it('installs confined to listed namespaces: the API server accepts every object', async () => {
    const result = await helm(
      ...['install', 'mooring', CHART, '-n', 'mooring-system', '--create-namespace'],
      ...['--set', `repo.url=${git.repoUrl('gitops.git')}`, '--set', 'cluster.name=ship-1'],
      ...['--set', 'rbac.clusterAdmin=false', '--set', 'rbac.namespaces={team-a}'],
      ...EVERYTHING,
    );
    expect(result.stdout).toContain('STATUS: deployed');
    const objects = (
      await kubectl(
        'get',
        'deploy,sa,role,rolebinding,svc,pdb,networkpolicy,secret',
        '-n',
        'mooring-system',
        '-o',
        'name',
      )
    )
      .split('\n')
      .sort();
    expect(objects).toEqual(
      expect.arrayContaining([
        'deployment.apps/mooring',
        'serviceaccount/mooring',
        'role.rbac.authorization.k8s.io/mooring',
        'rolebinding.rbac.authorization.k8s.io/mooring',
        'service/mooring',
        'poddisruptionbudget.policy/mooring',
        'networkpolicy.networking.k8s.io/mooring',
        'secret/mooring-webhook',
      ]),
    );
    expect(await kubectl('get', 'role', 'mooring-releases', '-n', 'team-a', '-o', 'name')).toBe(
      'role.rbac.authorization.k8s.io/mooring-releases',
    );
    expect(await kubectl('get', 'crd', '-o', 'name')).toContain('mooringreleases.mooring.io');
    expect(await kubectl('get', 'validatingadmissionpolicy', '-o', 'name')).toBe(
      'validatingadmissionpolicy.admissionregistration.k8s.io/mooring-approval-approver-mooring-system',
    );
  });

  it('grants the agent enough to converge in its namespaces, and nothing outside them', async () => {
    const can = async (verb: string, what: string, ns?: string) =>
      (
        await execa(
          KUBECTL,
          [
            '--kubeconfig',
            kubeconfig,
            'auth',
            'can-i',
            verb,
            what,
            ...(ns === undefined ? [] : ['-n', ns]),
            '--as',
            'system:serviceaccount:mooring-system:mooring',
          ],
          { reject: false },
        )
      ).stdout;
    expect(await can('create', 'configmaps', 'team-a')).toBe('yes');
    expect(await can('create', 'configmaps', 'team-b')).toBe('no');
    expect(await can('create', 'clusterroles')).toBe('no');
    expect(await can('create', 'approvals.mooring.io', 'mooring-system')).toBe('no');

    // The agent itself, as the ServiceAccount, for one full pass.
    const token = await kubectl('create', 'token', 'mooring', '-n', 'mooring-system', '--duration', '1h');
    const admin = parseYaml(await readFile(kubeconfig, 'utf8')) as {
      clusters: { cluster: Record<string, unknown> }[];
    };
    const asAgent = join(work.dir, 'agent.kubeconfig');
    await writeFile(
      asAgent,
      toYaml({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: admin.clusters[0]!.cluster }],
        users: [{ name: 'mooring', user: { token } }],
        contexts: [
          { name: 'agent', context: { cluster: 'c', user: 'mooring', namespace: 'mooring-system' } },
        ],
        'current-context': 'agent',
      }),
      { mode: 0o600 },
    );
    const env = {
      PATH: process.env.PATH,
      HOME: work.dir,
      KUBECONFIG: asAgent,
      MOORING_HELM: HELM,
      POD_NAMESPACE: 'mooring-system',
      POD_NAME: 'mooring-test-0',
    };
    // The chart just created the CRDs: the API server answers 429 until their storage is up.
    for (let i = 0; ; i++) {
      const list = await execa(
        KUBECTL,
        ['--kubeconfig', kubeconfig, 'get', 'mooringreleases,mooringplans,approvals', '-A'],
        {
          reject: false,
        },
      );
      if (list.exitCode === 0) break;
      if (i > 100) throw new Error(`mooring.io kinds are not served: ${list.stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const logs: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(line) });
    const config = loadAgentConfig(
      {
        repo: git.repoUrl('gitops.git'),
        cluster: 'ship-1',
        once: true,
        workDir: join(work.dir, 'snapshots'),
      },
      env,
    );
    const code = await runAgent(config, env, { logger });
    expect(code, logs.join('')).toBe(EXIT.ok);
    // It found the chart's approval policy under the name it looks for (it may only read it).
    expect(logs.join('')).not.toContain('approval admission policy');
    expect(
      await kubectl('get', 'configmap', 'hello', '-n', 'team-a', '-o', 'jsonpath={.data.greeting}'),
    ).toBe('hello from dev');
    expect(
      await kubectl(
        'get',
        'mooringrelease',
        'hello',
        '-n',
        'mooring-system',
        '-o',
        'jsonpath={.status.state}',
      ),
    ).toBe('ready');
  });

  it('upgrades to cluster-admin rights, dropping the namespace Roles and keeping the webhook secret', async () => {
    const secretBefore = await kubectl(
      'get',
      'secret',
      'mooring-webhook',
      '-n',
      'mooring-system',
      '-o',
      'jsonpath={.data.secret}',
    );
    expect(Buffer.from(secretBefore, 'base64').toString()).toMatch(/^[A-Za-z0-9]{40}$/);
    await helm(
      ...['upgrade', 'mooring', CHART, '-n', 'mooring-system', '--reuse-values'],
      ...['--set', 'rbac.clusterAdmin=true'],
    );
    expect(
      await kubectl(
        'get',
        'clusterrolebinding',
        'mooring-system-mooring-cluster-admin',
        '-o',
        'jsonpath={.roleRef.name}',
      ),
    ).toBe('cluster-admin');
    expect(await kubectl('get', 'role', '-n', 'team-a', '-o', 'name')).toBe('');
    expect(
      await kubectl(
        'get',
        'secret',
        'mooring-webhook',
        '-n',
        'mooring-system',
        '-o',
        'jsonpath={.data.secret}',
      ),
    ).toBe(secretBefore);
  });

  it('installs again in another namespace with its own approval policy, each guarding its namespace', async () => {
    const second = await helm(
      ...['install', 'mooring', CHART, '-n', 'mooring-second', '--create-namespace'],
      ...['--set', `repo.url=${git.repoUrl('gitops.git')}`, '--set', 'cluster.name=ship-2'],
    );
    expect(second.stdout).toContain('STATUS: deployed');
    // A further release in a namespace that has one leaves the policy to it.
    const third = await helm(
      ...['install', 'mooring-b', CHART, '-n', 'mooring-second'],
      ...['--set', `repo.url=${git.repoUrl('gitops.git')}`, '--set', 'cluster.name=ship-3'],
      ...['--set', 'approval.policy.create=false'],
    );
    expect(third.stdout).toContain('STATUS: deployed');
    const policies = await kubectl(
      'get',
      'validatingadmissionpolicy,validatingadmissionpolicybinding',
      '-o',
      'name',
    );
    expect(
      policies
        .split('\n')
        .map((n) => n.split('/')[1])
        .sort(),
    ).toEqual([
      'mooring-approval-approver-mooring-second',
      'mooring-approval-approver-mooring-second',
      'mooring-approval-approver-mooring-system',
      'mooring-approval-approver-mooring-system',
    ]);
    // An Approval in someone else's name is refused in each namespace, by that namespace's policy.
    for (const namespace of ['mooring-system', 'mooring-second']) {
      const deadline = Date.now() + 30_000;
      let refusal = '';
      while (!refusal) {
        try {
          await clients.customObjects.createNamespacedCustomObject({
            group: 'mooring.io',
            version: 'v1alpha1',
            plural: 'approvals',
            namespace,
            dryRun: 'All',
            body: {
              apiVersion: 'mooring.io/v1alpha1',
              kind: 'Approval',
              metadata: { generateName: 'forged-' },
              spec: {
                cluster: 'ship-1',
                revision: 'a'.repeat(40),
                planDigest: `sha256:${'d'.repeat(64)}`,
                approvedBy: { username: 'the-cto' },
              },
            },
          });
        } catch (err) {
          refusal = String((err as { body?: unknown }).body ?? err);
        }
        // Policies take effect once the API server has loaded them.
        if (!refusal && Date.now() > deadline)
          throw new Error(`no policy refused a forged approval in ${namespace}`);
        if (!refusal) await new Promise((r) => setTimeout(r, 250));
      }
      expect(refusal).toContain(`ValidatingAdmissionPolicy 'mooring-approval-approver-${namespace}'`);
      expect(refusal).toContain('spec.approvedBy.username must be the user making the request');
    }
  });
});
