// Manual mode end to end, the way an operator meets it: `mooring run --once` with
// --approval manual leaves a pending plan and exits 3; `mooring approve --yes` records the
// approval; the next `mooring run --once` applies exactly that revision.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { kubectl, readRelease, runOnce, startRig, uniqueName, type AgentRig } from '../rig/agent.js';

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
