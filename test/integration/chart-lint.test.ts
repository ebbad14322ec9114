// The agent's chart as the Helm ecosystem checks it: `helm lint --strict` with the default
// values and with each ci/*-values.yaml (chart-testing's convention), `helm template` of
// those rendered and applied with `kubectl apply --dry-run=server` to the test control plane
// (Kubernetes 1.34, which validates every object against its own OpenAPI schemas), the
// required values enforced at install, and `helm package` with the chart's metadata.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import { HELM, KUBECTL, REPO_ROOT, uniqueName } from '../rig/agent.js';

const CHART = join(REPO_ROOT, 'charts', 'mooring');
const ciValues = (await readdir(join(CHART, 'ci'))).filter((f) => f.endsWith('-values.yaml')).sort();

let kubeconfig: string;
let clients: KubeClients;
let work: string;
const namespace = uniqueName('chart-lint');

beforeAll(async () => {
  kubeconfig = inject('kubeconfig');
  clients = createKubeClients(loadKubeConfig({ kubeconfig }));
  work = await mkdtemp(join(tmpdir(), 'mooring-chart-lint-'));
  for (const name of [namespace, 'ci-ssh-apps']) {
    await clients.core.createNamespace({ body: { metadata: { name } } }).catch(() => undefined);
  }
});

afterAll(async () => {
  await clients?.core.deleteNamespace({ name: namespace }).catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
});

const helm = (args: string[]) =>
  execa(HELM, args, { reject: false, env: { HOME: work, PATH: process.env.PATH } });

describe('helm lint --strict', () => {
  it('passes with the default values, without a warning', async () => {
    const r = await helm(['lint', '--strict', CHART]);
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  });

  it('has chart-testing values files, and passes with each', async () => {
    expect(ciValues).toEqual(expect.arrayContaining(['https-values.yaml', 'ssh-values.yaml']));
    for (const file of ciValues) {
      const r = await helm(['lint', '--strict', CHART, '-f', join(CHART, 'ci', file)]);
      expect(r.exitCode, `${file}: ${r.stdout}`).toBe(0);
      expect(r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  });
});

describe('helm template', () => {
  it('refuses to install without the repository and the cluster name', async () => {
    const r = await helm(['template', 'mooring', CHART]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('repo.url is required');
  });

  it.each(ciValues)('renders %s into objects the Kubernetes 1.34 API server accepts', async (file) => {
    const rendered = await helm([
      'template',
      'mooring',
      CHART,
      '-n',
      namespace,
      '-f',
      join(CHART, 'ci', file),
    ]);
    expect(rendered.exitCode, rendered.stderr).toBe(0);
    const apply = await execa(
      KUBECTL,
      ['--kubeconfig', kubeconfig, 'apply', '--dry-run=server', '--validate=strict', '-f', '-'],
      { input: rendered.stdout, reject: false },
    );
    expect(apply.exitCode, apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/deployment\.apps\/mooring created \(server dry run\)/);
    // The admission policy is cluster-scoped (one per namespace): on this shared control plane
    // an agent in this namespace may have created it already, and kubectl then warns that the
    // existing object lacks its last-applied annotation. That says nothing about the chart;
    // every other warning fails.
    const warnings = apply.stderr
      .split('\n')
      .filter(
        (line) =>
          line.trim() !== '' &&
          !/is missing the kubectl\.kubernetes\.io\/last-applied-configuration/.test(line),
      );
    expect(warnings.join('\n')).not.toMatch(/unknown field|Warning/);
  });

  it('renders the common knobs where the ecosystem expects them', async () => {
    const r = await helm([
      ...['template', 'mooring', CHART, '-f', join(CHART, 'ci', 'https-values.yaml')],
      ...['--set', 'serviceMonitor.enabled=true', '--set', 'serviceMonitor.namespace=monitoring'],
      ...[
        '--set',
        'serviceMonitor.relabelings[0].action=labeldrop',
        '--set',
        'serviceMonitor.relabelings[0].regex=pod',
      ],
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const docs = r.stdout.split(/^---$/m).filter((d) => /^kind: /m.test(d));
    // commonLabels on every object, the approval policy and its binding included.
    expect(docs.length).toBeGreaterThan(10);
    expect(
      docs.filter((d) => !/^ {4}team: platform$/m.test(d)).map((d) => /^kind: (\S+)/m.exec(d)![1]),
    ).toEqual([]);
    const pdb = docs.find((d) => /^kind: PodDisruptionBudget$/m.test(d))!;
    expect(pdb).toMatch(/^ {2}minAvailable: 1$/m);
    expect(pdb).not.toMatch(/maxUnavailable/);
    const deployment = docs.find((d) => /^kind: Deployment$/m.test(d))!;
    expect(deployment).toMatch(/initContainers:\n\s+- command:[\s\S]*name: wait/);
    expect(deployment).toMatch(/envFrom:\n\s+- configMapRef:/);
    expect(deployment).toMatch(/^ {10}name: proxy$/m);
    const monitor = docs.find((d) => /^kind: ServiceMonitor$/m.test(d))!;
    expect(monitor).toMatch(/^ {2}namespace: monitoring$/m);
    expect(monitor).toMatch(/relabelings:\n\s+- action: labeldrop\n\s+regex: pod/);
  });

  it('passes the SSH key, known_hosts and --path to the agent', async () => {
    const r = await helm(['template', 'mooring', CHART, '-f', join(CHART, 'ci', 'ssh-values.yaml')]);
    expect(r.stdout).toContain('name: MOORING_GIT_SSH_KEY_FILE');
    expect(r.stdout).toContain('value: /etc/mooring/git-ssh/known_hosts');
    expect(r.stdout).toMatch(/name: MOORING_PATH\s+value: "deploy\/gitops"/);
  });
});

describe('helm package', () => {
  it('packages the chart with its home, sources and icon', async () => {
    const r = await helm(['package', CHART, '-d', work]);
    expect(r.exitCode, r.stderr).toBe(0);
    const [tgz] = (await readdir(work)).filter((f) => f.endsWith('.tgz'));
    expect(tgz).toMatch(/^mooring-\d+\.\d+\.\d+\.tgz$/);
    const show = await helm(['show', 'chart', join(work, tgz!)]);
    expect(show.stdout).toMatch(/^home: https:\/\//m);
    expect(show.stdout).toMatch(/^sources:\n- https:\/\//m);
    expect(show.stdout).toMatch(/^icon: https:\/\//m);
    const lint = await helm(['lint', '--strict', join(work, tgz!)]);
    expect(lint.exitCode, lint.stdout).toBe(0);
  });
});
