// What an approval binds of a remote chart, against a real Helm HTTP repository (helm package
// + helm repo index) and a real OCI registry (helm push), with the agent as `mooring run`
// builds it and approvals made with `mooring approve`. A version published inside the range
// after the approval, or a tag pushed again with other content, is never applied under that
// approval: what was approved runs, or nothing does and a new plan waits.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { buildAgent } from '../../src/cli/run.js';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { createApprovalStore } from '../../src/gate/approvals.js';
import { createPlanStore, planName } from '../../src/gate/plans.js';
import {
  captureLogs,
  configData,
  eventsIn,
  helmRevisions,
  readRelease,
  startRig,
  uniqueName,
  type AgentRig,
} from '../rig/agent.js';
import { startChartRepo, tinyChart, type ChartRepoServer } from '../rig/chart-repo.js';
import { makeCertificates } from '../rig/git.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, startRegistry, type TestRegistry } from '../rig/registry.js';

const INTERVAL_MS = 10 * 60 * 1000;
const digestsIn = (text: string): string[] => text.match(/sha256:[0-9a-f]{64}/g) ?? [];

let rig: AgentRig;
let context: string;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
  context = rig.clients.kubeConfig.getCurrentContext();
});

afterAll(async () => {
  await rig?.stop();
});

/** `mooring approve --yes` of the pending plan in the agent's namespace. */
async function approve(agentNs: string): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  const code = await main(
    ['approve', '--context', context, '--kubeconfig', rig.kubeconfig, '--namespace', agentNs, '--yes'],
    io,
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A manual agent for one release `web` of the given chart, with a clock tests move. */
async function manualAgent(
  cluster: string,
  web: Record<string, unknown>,
  flags: Record<string, unknown> = {},
) {
  const repo = await rig.createRepo(rig.clusterRepo(cluster, { web }));
  const clock = { now: Date.now() };
  const upgrades: string[][] = [];
  const built = await buildAgent(
    rig.agentFor(cluster, repo, { chartInterval: '10m', approval: 'manual', ...flags }),
    rig.env,
    captureLogs().logger,
    undefined,
    (args) => {
      // Real upgrades only: plans render with helm's server-side dry run.
      if (args[0] === 'upgrade' && !args.includes('--dry-run=server')) upgrades.push([...args]);
    },
    () => clock.now,
  );
  const agentNs = `${cluster}-agent`;
  const plans = createPlanStore({ client: rig.clients.rest, namespace: agentNs });
  const approvals = createApprovalStore({ client: rig.clients.rest, namespace: agentNs });
  return {
    built,
    clock,
    upgrades,
    agentNs,
    releaseNs: `${cluster}-web`,
    async pass() {
      const result = await built.agent.pass();
      await built.events.flush();
      return result;
    },
    /** The plan of the (only) revision, and its release `web`. */
    async plan() {
      const [plan] = await plans.list(cluster);
      return { ...plan!.status, web: plan!.status.releases.find((r) => r.name === 'web')! };
    },
    approvals: () => approvals.list(cluster),
    planName: (revision: string) => planName(cluster, revision),
  };
}

describe('an approved plan of a chart range, then a newer version published in the range', () => {
  const cluster = uniqueName('aprange');
  let charts: ChartRepoServer;
  let a: Awaited<ReturnType<typeof manualAgent>>;

  beforeAll(async () => {
    charts = await startChartRepo();
    await charts.publish('web', '1.0.0');
    await charts.publish('web', '1.2.0');
    await charts.publish('web', '2.0.0'); // outside the range
    a = await manualAgent(cluster, { repo: charts.url, chart: 'web', version: '^1.0.0' });
  });

  afterAll(async () => {
    a?.built.charts.close();
    await charts?.stop();
  });

  it('applies the approved version when the newer one was not seen yet, and plans the newer one for approval', async () => {
    expect(await a.pass()).toMatchObject({ outcome: 'pending-approval' });
    const shown = await a.plan();
    expect(shown.web).toMatchObject({ action: 'install', chartVersion: '1.2.0' });
    expect((await approve(a.agentNs)).code).toBe(0);
    // Published after the approval, before the agent looks again; the chart interval has not passed.
    await charts.publish('web', '1.3.0');

    const applied = await a.pass();

    expect(applied.outcome, JSON.stringify(applied)).toBe('converged');
    expect(await configData(rig.clients, a.releaseNs, 'web-chart')).toMatchObject({ chartVersion: '1.2.0' });
    const [approval] = await a.approvals();
    expect(approval!.status).toMatchObject({ result: 'applied', manifestCheck: 'as-approved' });

    // Once the chart interval passes the agent sees 1.3.0: a change like any other, so a plan.
    a.clock.now += INTERVAL_MS;
    expect(await a.pass()).toMatchObject({ outcome: 'pending-approval' });
    expect(a.upgrades).toHaveLength(1);
    const next = await a.plan();
    expect(next).toMatchObject({ phase: 'pending' });
    expect(next.web).toMatchObject({
      action: 'upgrade',
      chartVersion: '1.3.0',
      deployedChartVersion: '1.2.0',
    });
    expect(next.web.manifestDiff).toContain('-  chartVersion: 1.2.0\n+  chartVersion: 1.3.0');
    expect((await readRelease(rig.clients, a.agentNs, 'web'))!.version).toBe('1.2.0');
  });

  it('applies nothing under an approval once a newer version is seen: the approval is rejected and a new plan waits', async () => {
    const approvedPlan = await a.plan();
    expect(approvedPlan.web.chartVersion).toBe('1.3.0');
    expect((await approve(a.agentNs)).code).toBe(0);
    await charts.publish('web', '1.4.0');
    a.clock.now += INTERVAL_MS;
    const helmBefore = await helmRevisions(rig.clients, a.releaseNs, 'web');

    const refused = await a.pass();

    expect(refused.outcome).toBe('pending-approval');
    expect(a.upgrades).toHaveLength(1);
    expect(await helmRevisions(rig.clients, a.releaseNs, 'web')).toEqual(helmBefore);
    expect(await configData(rig.clients, a.releaseNs, 'web-chart')).toMatchObject({ chartVersion: '1.2.0' });
    const [rejected] = await a.approvals();
    expect(rejected!.spec.planDigest).toBe(approvedPlan.digest);
    expect(rejected!.status).toMatchObject({ result: 'rejected' });
    expect(rejected!.status.usedAt).toBeUndefined();
    expect(rejected!.status.message).toContain('web: chart version 1.3.0 is now 1.4.0');
    expect(rejected!.status.message).toContain('nothing was applied');
    const events = await eventsIn(rig.clients, a.agentNs, rejected!.name);
    expect(events.map((e) => `${e.type}/${e.reason}`)).toEqual(['Warning/ApprovalRejected']);

    // A new plan of what would run now, for a new approval.
    const replan = await a.plan();
    expect(replan).toMatchObject({ phase: 'pending' });
    expect(replan.digest).not.toBe(approvedPlan.digest);
    expect(replan.web).toMatchObject({
      action: 'upgrade',
      chartVersion: '1.4.0',
      deployedChartVersion: '1.2.0',
    });
    // The only digest a rejection names is the one the approver approved.
    for (const text of [rejected!.status.message!, events[0]!.message!])
      expect(digestsIn(text)).toEqual([approvedPlan.digest]);

    // Approving that one applies exactly it.
    expect((await approve(a.agentNs)).code).toBe(0);
    const applied = await a.pass();
    expect(applied.outcome, JSON.stringify(applied)).toBe('converged');
    expect(await configData(rig.clients, a.releaseNs, 'web-chart')).toMatchObject({ chartVersion: '1.4.0' });
    expect((await a.approvals())[0]!.status).toMatchObject({
      result: 'applied',
      manifestCheck: 'as-approved',
    });
    expect((await readRelease(rig.clients, a.agentNs, 'web'))!.version).toBe('1.4.0');
  });
});

describe('an approved plan of an OCI chart, then its tag pushed again with other content', () => {
  const cluster = uniqueName('apoci');
  let registry: TestRegistry;
  let a: Awaited<ReturnType<typeof manualAgent>>;

  beforeAll(async () => {
    const certs = await makeCertificates(await rig.tempDir('certs'));
    registry = await startRegistry(certs);
    const authFile = await rig.writeFile(
      `${cluster}-chart-auth.yaml`,
      stringify([
        {
          url: `oci://${registry.host}/charts/`,
          username: REGISTRY_USER,
          password: REGISTRY_PASSWORD,
          ca: certs.caPem,
        },
      ]),
    );
    await registry.push('web', '1.0.0');
    a = await manualAgent(
      cluster,
      { chart: `oci://${registry.host}/charts/web`, version: '1.0.0' },
      { chartAuthFile: authFile },
    );
  });

  afterAll(async () => {
    a?.built.charts.close();
    await registry?.stop();
  });

  it('applies nothing under that approval: it is rejected, and a new plan shows the new content', async () => {
    expect(await a.pass()).toMatchObject({ outcome: 'pending-approval' });
    const approvedPlan = await a.plan();
    expect(approvedPlan.web).toMatchObject({ action: 'install', chartVersion: '1.0.0' });
    expect((await approve(a.agentNs)).code).toBe(0);
    // Same tag, other content, pushed after the approval.
    await registry.push('web', '1.0.0', {
      ...tinyChart('web', '1.0.0'),
      'values.yaml': 'image: {repository: r, tag: t}\ngreeting: repushed\n',
    });
    a.clock.now += INTERVAL_MS;

    const refused = await a.pass();

    expect(refused.outcome).toBe('pending-approval');
    expect(a.upgrades).toEqual([]);
    expect(await helmRevisions(rig.clients, a.releaseNs, 'web')).toEqual([]);
    const [rejected] = await a.approvals();
    expect(rejected!.status).toMatchObject({ result: 'rejected' });
    expect(rejected!.status.message).toContain("web: the chart's content changed");
    const replan = await a.plan();
    expect(replan).toMatchObject({ phase: 'pending' });
    expect(replan.digest).not.toBe(approvedPlan.digest);
    expect(digestsIn(rejected!.status.message!)).toEqual([approvedPlan.digest]);
    expect(replan.web.chartVersion).toBe('1.0.0');
    expect(replan.web.chartDigest).not.toBe(approvedPlan.web.chartDigest);
    expect(replan.web.manifestDiff).toContain('greeting: repushed');

    // The new content, approved, is what runs.
    expect((await approve(a.agentNs)).code).toBe(0);
    const applied = await a.pass();
    expect(applied.outcome, JSON.stringify(applied)).toBe('converged');
    expect(a.upgrades).toHaveLength(1);
    expect(await configData(rig.clients, a.releaseNs, 'web-chart')).toMatchObject({ greeting: 'repushed' });
    expect((await a.approvals())[0]!.status).toMatchObject({
      result: 'applied',
      manifestCheck: 'as-approved',
    });
    expect((await readRelease(rig.clients, a.agentNs, 'web'))!.chartDigest).toBe(replan.web.chartDigest);
  });
});
