// The agent's /metrics as Prometheus scrapes it, linted by client_golang's promlint (what
// `promtool check metrics` runs; test/tools/promlint), with the per-release, build and
// process series a fleet dashboard needs; and the chart's alerts, checked and unit-tested by
// Prometheus's own rule packages (test/tools/promrules: `check rules`, `test rules`).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { HELM, REPO_ROOT, startLoop, startRig, TOOLS_BIN, uniqueName, type AgentRig } from '../rig/agent.js';

const PROMLINT = join(TOOLS_BIN, 'mooring-promlint');
const PROMRULES = join(TOOLS_BIN, 'mooring-promrules');

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

describe('/metrics', () => {
  it('passes promlint and carries the cluster, build, per-release and standard process series', async () => {
    const cluster = uniqueName('metr');
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { web: {}, broken: {} }, { broken: 'failRender: on purpose\n' }),
    );
    const agent = startLoop(rig.agentFor(cluster, repo, { interval: '1h', listen: '127.0.0.1:0' }), rig.env);
    try {
      const address = await agent.address;
      const pass = await agent.waitForPass(() => true);
      expect(pass.outcome).toBe('failed');
      const text = await (await fetch(`http://${address}/metrics`)).text();

      const lint = await execa(PROMLINT, { input: text, reject: false });
      expect(`${lint.stdout}${lint.stderr}`).toBe('');
      expect(lint.exitCode).toBe(0);

      const c = `cluster="${cluster}"`;
      expect(text).toMatch(
        new RegExp(
          `mooring_build_info\\{version="\\d+\\.\\d+\\.\\d+",commit="[0-9a-f]{40}|unknown",nodejs_version="v[0-9.]+",${c}\\} 1`,
        ),
      );
      expect(text).toContain(
        `mooring_release_info{release="web",namespace="${cluster}-web",chart="./charts/app",version="0.1.0",state="ready",${c}} 1`,
      );
      expect(text).toContain(`release="broken",namespace="${cluster}-broken"`);
      expect(text).toMatch(
        new RegExp(`mooring_release_info\\{release="broken",[^}]*state="failed",${c}\\} 1`),
      );
      expect(text).toMatch(
        /^mooring_release_reconcile_duration_seconds_count\{[^}]*release="web"[^}]*\} 1$/m,
      );
      expect(text).toContain(`mooring_last_pass_outcome{outcome="failed",${c}} 1`);
      expect(text).toContain(`mooring_last_pass_outcome{outcome="converged",${c}} 0`);
      expect(text).toContain(`mooring_pass_interval_seconds{${c}} 3600`);
      expect(text).toMatch(new RegExp(`^process_cpu_seconds_total\\{${c}\\} `, 'm'));
      expect(text).toMatch(new RegExp(`^nodejs_heap_size_used_bytes\\{${c}\\} `, 'm'));
      expect(text).not.toContain('mooring_process_');
    } finally {
      expect(await agent.stop()).toBe(0);
    }
  });
});

describe('the chart alerts', () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'mooring-rules-'));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('pass check rules, and fire as their unit tests expect', async () => {
    const check = await execa(PROMRULES, ['check', join(REPO_ROOT, 'charts/mooring/monitoring/rules.yaml')], {
      reject: false,
    });
    expect(check.exitCode, check.stdout).toBe(0);
    const test = await execa(PROMRULES, ['test', join(REPO_ROOT, 'test/prometheus/rules.test.yaml')], {
      reject: false,
    });
    expect(test.exitCode, test.stdout).toBe(0);
  });

  it('ship in the chart as a PrometheusRule, and the dashboard as a sidecar ConfigMap', async () => {
    const { stdout } = await execa(HELM, [
      'template',
      'mooring',
      join(REPO_ROOT, 'charts/mooring'),
      ...['--set', 'repo.url=https://git.example.com/gitops.git', '--set', 'cluster.name=prod-eu'],
      ...['--set', 'prometheusRule.enabled=true', '--set', 'grafanaDashboard.enabled=true'],
    ]);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- rendered manifests, read loosely
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as Record<string, any>);
    const rule = docs.find((d) => d?.kind === 'PrometheusRule')!;
    const file = join(scratch, 'rules.yaml');
    await writeFile(file, JSON.stringify(rule.spec));
    const check = await execa(PROMRULES, ['check', file], { reject: false });
    expect(check.exitCode, check.stdout).toBe(0);
    const alerts = rule.spec.groups.flatMap((g: { rules: { alert: string }[] }) =>
      g.rules.map((r) => r.alert),
    );
    expect(alerts).toEqual(
      expect.arrayContaining(['MooringReleaseFailed', 'MooringAgentNotPassing', 'MooringAgentDown']),
    );

    const dashboard = docs.find(
      (d) => d?.kind === 'ConfigMap' && d.metadata.labels?.grafana_dashboard === '1',
    )!;
    const json = JSON.parse(dashboard.data['mooring.json']) as { panels: { targets: { expr: string }[] }[] };
    const exprs = json.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.some((e) => e.includes('mooring_release_info'))).toBe(true);
  });
});
