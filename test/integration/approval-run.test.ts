// Manual mode end to end, the way an operator meets it: `mooring run --once` with
// --approval manual leaves a pending plan and exits 3; `mooring approve --yes` records the
// approval; the next `mooring run --once` applies exactly that revision. An approved upgrade
// that fails is failed everywhere an operator looks: the MooringRelease, the metrics, the
// Approval, and `mooring status` (exit 1).
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { createApprovalStore } from '../../src/gate/approvals.js';
import { createPlanStore, planName } from '../../src/gate/plans.js';
import { whoAmI } from '../../src/kube/client.js';
import {
  eventReasons,
  helmRevisions,
  kubectl,
  readRelease,
  runOnce,
  startLoop,
  startRig,
  uniqueName,
  type AgentRig,
} from '../rig/agent.js';

let rig: AgentRig;
beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});
afterAll(async () => {
  await rig?.stop();
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  const code = await main(args, io);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('mooring run --approval manual, then mooring approve', () => {
  it('waits with a pending plan (exit 3), then applies exactly the approved revision', async () => {
    const cluster = uniqueName('manual');
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }, { web: 'replicas: 1\n' }));
    const config = rig.agentFor(cluster, repo, { approval: 'manual' });
    const agentNs = config.namespace;

    const first = await runOnce(config, rig.env);
    expect(first.code, first.log()).toBe(3);
    // Plans render with helm's server-side dry run; nothing else runs helm while a plan waits.
    expect(first.helm.filter((c) => c.command === 'upgrade' && !c.args.includes('--dry-run=server'))).toEqual(
      [],
    );
    const plans = JSON.parse(
      await kubectl(rig.kubeconfig, 'get', 'mooringplans', '-n', agentNs, '-o', 'json'),
    ) as {
      items: { status?: { revision?: string; digest?: string } }[];
    };
    expect(plans.items).toHaveLength(1);
    const head = first.passes[0]!.revision!;
    expect(plans.items[0]!.status?.revision).toBe(head);

    // The branch moves on after the plan was shown; the approval names the older revision.
    await repo.commit({ 'environments/test/values/web.yaml': 'replicas: 3\n' }, 'scale up');

    const approved = await cli([
      'approve',
      '--context',
      'mooring-local',
      '--kubeconfig',
      rig.kubeconfig,
      '--namespace',
      agentNs,
      '--revision',
      head,
      '--yes',
      '--output',
      'json',
    ]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(JSON.parse(approved.stdout)).toMatchObject({ approved: true });

    const second = await runOnce(config, rig.env);
    expect(second.passes[0]!.converge?.revision, second.log()).toBe(head);
    const record = await readRelease(rig.clients, agentNs, 'web');
    expect(record?.deployedRevision).toBe(head);
    const replicas = await kubectl(
      rig.kubeconfig,
      'get',
      'deployment',
      'web',
      '-n',
      `${cluster}-web`,
      '-o',
      'jsonpath={.spec.replicas}',
    );
    expect(replicas).toBe('1');
    expect(second.code).toBe(0);

    // The next pass finds the newer revision unapproved: a new pending plan, exit 3, no upgrade.
    const third = await runOnce(config, rig.env);
    expect(third.code, third.log()).toBe(3);
    expect(third.helm.filter((c) => c.command === 'upgrade' && !c.args.includes('--dry-run=server'))).toEqual(
      [],
    );
    expect(third.passes[0]!.revision).not.toBe(head);
  });
});

describe('an approved upgrade that fails', () => {
  it('is failed in the MooringRelease, the metrics, the Approval and `mooring status`, and stays so while its retry waits', async () => {
    const cluster = uniqueName('manfail');
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { web: { timeout: '3s' } }, { web: 'config: {greeting: hello}\n' }),
    );
    const agentNs = `${cluster}-agent`;
    const loop = startLoop(
      rig.agentFor(cluster, repo, { approval: 'manual', interval: '1s', listen: '127.0.0.1:0' }),
      rig.env,
    );
    const approve = () =>
      cli(['approve', '--context', 'mooring-local', '--kubeconfig', rig.kubeconfig, '-n', agentNs, '--yes']);
    const metric = async (state: string): Promise<number | undefined> => {
      const text = await (await fetch(`http://${await loop.address}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith('mooring_releases{') && l.includes(`state="${state}"`));
      return line === undefined ? undefined : Number(line.split(' ').pop());
    };
    const status = async () => {
      vi.stubEnv('KUBECONFIG', rig.kubeconfig);
      try {
        return await cli(['status', '--namespace', agentNs, '-o', 'json']);
      } finally {
        vi.unstubAllEnvs();
      }
    };
    try {
      // Installed with an approval: ready everywhere.
      await loop.waitForPass((p) => p.outcome === 'pending-approval');
      expect((await approve()).code).toBe(0);
      await loop.waitForPass((p) => p.outcome === 'converged' && p.converge !== undefined);
      expect(await readRelease(rig.clients, agentNs, 'web')).toMatchObject({ state: 'ready' });
      expect(await metric('ready')).toBe(1);
      expect((await status()).code).toBe(0);

      // An upgrade whose Deployment never becomes ready: its dry run passes, so it is approved.
      await repo.commit({
        'environments/test/values/web.yaml': 'config: {greeting: hi}\nneverReady: true\n',
      });
      const from = loop.passes.length;
      await loop.waitForPass((p) => p.outcome === 'pending-approval', { from });
      expect((await approve()).code).toBe(0);
      const failed = await loop.waitForPass((p) => p.converge !== undefined && p.outcome === 'failed', {
        from,
      });
      expect(failed.converge!.releases.map((r) => [r.name, r.action, r.state])).toEqual([
        ['web', 'upgrade', 'failed'],
      ]);
      expect((await helmRevisions(rig.clients, `${cluster}-web`, 'web')).map((r) => r.status)).toContain(
        'failed',
      );

      // The passes after it plan the retry for approval; the truth stays `failed` meanwhile.
      await loop.waitForPass((p) => p.outcome === 'pending-approval', { from: loop.passes.length });
      const record = await readRelease(rig.clients, agentNs, 'web');
      expect(record).toMatchObject({ state: 'failed' });
      expect(String(record!.lastError)).not.toBe('');
      expect(await metric('failed')).toBe(1);
      expect((await metric('pending-approval')) ?? 0).toBe(0);
      const [approval] = await createApprovalStore({
        client: rig.clients.rest,
        namespace: agentNs,
      }).list(cluster);
      expect(approval!.status).toMatchObject({ result: 'failed' });
      expect(approval!.status.message).toContain('did not converge');
      // The retry of the same desired state is a new plan, waiting for a new approval.
      const plans = await createPlanStore({
        client: rig.clients.rest,
        namespace: agentNs,
      }).list(cluster);
      expect(plans.find((p) => p.status.revision === failed.revision)!.status.phase).toBe('pending');
      const shown = await status();
      expect(shown.code, shown.stdout).toBe(1);
      const [reported] = (
        JSON.parse(shown.stdout) as { clusters: { releases: { release: string; state: string }[] }[] }
      ).clusters;
      expect(reported!.releases.filter((r) => r.release === 'web').map((r) => r.state)).toEqual(['failed']);
      expect(await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mrel', 'web')).toMatch(/web\s+failed/);
    } finally {
      await loop.stop();
    }
  });
});

describe('a plan the cluster refuses, and a forged approval', () => {
  it('shows the refusal in one line and no diff for that object, is not approved without --force, and a digest the agent never published is rejected with an Event', async () => {
    const cluster = uniqueName('manref');
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { web: {} }, { web: 'config: {greeting: hello}\n' }),
    );
    const config = rig.agentFor(cluster, repo, { approval: 'manual' });
    const agentNs = config.namespace;
    const approve = (...extra: string[]) =>
      cli([
        'approve',
        '--context',
        'mooring-local',
        '--kubeconfig',
        rig.kubeconfig,
        '-n',
        agentNs,
        '--yes',
        ...extra,
      ]);
    const approvals = createApprovalStore({ client: rig.clients.rest, namespace: agentNs });
    expect((await runOnce(config, rig.env)).code).toBe(3);
    expect((await approve()).code).toBe(0);
    const installed = await runOnce(config, rig.env);
    expect(installed.code, installed.log()).toBe(0);

    // A ConfigMap key the API server does not accept.
    const bad = await repo.commit({
      'environments/test/values/web.yaml': 'config: {greeting: hello, "not a key!": x}\n',
    });
    const waiting = await runOnce(config, rig.env);
    expect(waiting.code, waiting.log()).toBe(3);
    const plans = createPlanStore({ client: rig.clients.rest, namespace: agentNs });
    const [web] = (await plans.get(planName(cluster, bad)))!.status.releases;
    expect(web).toMatchObject({ name: 'web', action: 'upgrade' });
    expect(web!.dryRunError).toMatch(/web-config.*not a key!/);
    expect(web!.dryRunError).not.toContain('\n');
    // No diff is invented for the refused object; the Deployment's real change is shown.
    expect(web!.manifestDiff).not.toContain('web-config');
    expect(web!.manifestDiff).toContain(`+++ desired/Deployment/${cluster}-web/web`);

    const refused = await approve();
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the dry run against the cluster failed for web');
    expect(refused.stderr).toContain('pass --force to approve it anyway');
    expect(await approvals.list(cluster)).toHaveLength(1);

    // A forged approval of that revision, with a digest the agent never published.
    const me = await whoAmI(rig.clients);
    const forged = await approvals.create({
      cluster,
      revision: bad,
      planDigest: `sha256:${'e'.repeat(64)}`,
      approvedBy: { username: me.username, groups: me.groups },
    });
    const helmBefore = await helmRevisions(rig.clients, `${cluster}-web`, 'web');
    const after = await runOnce(config, rig.env);
    expect(after.code, after.log()).toBe(3);
    expect(after.helm.filter((c) => c.command === 'upgrade' && !c.args.includes('--dry-run=server'))).toEqual(
      [],
    );
    expect(await helmRevisions(rig.clients, `${cluster}-web`, 'web')).toEqual(helmBefore);
    const [rejected] = (await approvals.list(cluster)).filter((a) => a.name === forged.name);
    expect(rejected!.status).toMatchObject({ result: 'rejected' });
    expect(rejected!.status.message).toContain('not the plan this agent published');
    expect(await eventReasons(rig.clients, agentNs, forged.name)).toEqual(['Warning/ApprovalRejected']);
  });
});
