// `--path DIR` (MOORING_PATH): the GitOps layout in a folder of a larger repository, against
// the real git server, control plane and helm. A commit that touches only files outside the
// folder costs the agent no plan and no converge; one inside it converges as usual. The
// offline commands take the same flag on a local checkout.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { runOnce, startLoop, startRig, uniqueName, type AgentRig } from '../rig/agent.js';

const LAYOUT = 'deploy/gitops';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

/** The rig's cluster repository, moved under `folder`, next to files of an application. */
function monorepo(cluster: string, folder: string): Record<string, string> {
  const layout = rig.clusterRepo(cluster, { web: {} }, { web: 'config:\n  LEVEL: info\n' });
  return {
    'README.md': '# an application repository\n',
    'src/main.go': 'package main\n',
    ...Object.fromEntries(Object.entries(layout).map(([file, text]) => [`${folder}/${file}`, text])),
  };
}

describe('mooring run --path', () => {
  it('converges the layout in the folder; commits outside it cost no plan and no converge', async () => {
    const cluster = uniqueName('path');
    const repo = await rig.createRepo(monorepo(cluster, LAYOUT));
    const first = await rig.git.requests.length;
    const agent = startLoop(rig.agentFor(cluster, repo, { path: `./${LAYOUT}/`, interval: '1s' }), rig.env);
    try {
      const converged = await agent.waitForPass((p) => p.outcome === 'converged');
      expect(converged.converge!.releases.map((r) => [r.name, r.state])).toEqual([['web', 'ready']]);
      const initial = converged.revision!;
      const helmBefore = agent.helm.length;
      expect(agent.helm.filter((h) => h.command === 'upgrade').map((h) => h.release)).toEqual(['web']);

      // Outside the folder: the agent fetches the commit once, sees the same tree, and stays.
      const outside = await repo.commit({ 'README.md': '# changed\n', 'src/main.go': null }, 'app change');
      const seen = agent.passes.length;
      await waitForLog(
        agent,
        (e) => e.revision === outside && /changes nothing under deploy\/gitops/.test(String(e.msg)),
      );
      const fromRequest = rig.git.requests.length;
      const after = await agent.waitForPass(() => true, { from: agent.passes.length + 1 });
      const later = agent.passes.slice(seen);
      expect(later.length).toBeGreaterThanOrEqual(2);
      for (const p of later) {
        expect(p.outcome).toBe('converged');
        expect(p.revision).toBe(initial);
        expect(p.converge).toBeUndefined();
      }
      expect(after.revision).toBe(initial);
      expect(agent.helm.length).toBe(helmBefore);
      // Once the head is known to change nothing, a poll is one small request again.
      const polls = rig.git.requests.slice(fromRequest);
      expect(polls.length).toBeGreaterThan(0);
      expect(polls.map((r) => r.command)).toEqual(polls.map(() => 'ls-refs'));

      // Inside the folder: a new revision, planned and converged.
      const inside = await repo.commit(
        { [`${LAYOUT}/environments/test/values/web.yaml`]: 'config:\n  LEVEL: debug\n' },
        'web: debug logs',
      );
      const changed = await agent.waitForPass((p) => p.revision === inside && p.converge !== undefined, {
        from: agent.passes.length,
      });
      expect(changed.outcome).toBe('converged');
      expect(changed.converge!.releases.map((r) => [r.name, r.state])).toEqual([['web', 'ready']]);
      const cm = await rig.clients.core.readNamespacedConfigMap({
        name: 'web-config',
        namespace: `${cluster}-web`,
      });
      expect(cm.data).toEqual({ LEVEL: 'debug' });
      expect(rig.git.requests.length).toBeGreaterThan(first);
    } finally {
      expect(await agent.stop()).toBe(0);
    }
  });

  it('a revision without the folder is invalid, naming --path and the revision, and applies nothing', async () => {
    const cluster = uniqueName('path');
    const repo = await rig.createRepo(monorepo(cluster, LAYOUT));
    const head = await repo.commit({ 'README.md': 'moved\n' }, 'unrelated');
    const run = await runOnce(rig.agentFor(cluster, repo, { path: 'deploy/elsewhere' }), rig.env);

    expect(run.code, run.log()).toBe(1);
    expect(run.passes.map((p) => p.outcome)).toEqual(['invalid']);
    expect(run.passes[0]!.error).toContain(`--path deploy/elsewhere is not a folder in revision ${head}`);
    expect(run.helm).toEqual([]);
  });

  it('refuses a --path that leaves the repository, as a usage error', async () => {
    const cluster = uniqueName('path');
    const repo = await rig.createRepo(monorepo(cluster, LAYOUT));
    expect(() => rig.agentFor(cluster, repo, { path: 'deploy/../../etc' })).toThrow(
      /--path "deploy\/..\/..\/etc" leaves the repository/,
    );
  });
});

describe('validate, plan and explain --path on a checkout', () => {
  async function run(args: string[], env: Record<string, string> = {}) {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
    const saved = { ...process.env };
    Object.assign(process.env, { MOORING_HELM: rig.env.MOORING_HELM, MOORING_PATH: '' }, env);
    try {
      const code = await main(args, io);
      return { code, stdout: out.join('\n'), stderr: err.join('\n') };
    } finally {
      process.env = saved;
    }
  }

  it('reads the layout from the folder, by flag or MOORING_PATH; a missing folder is an error naming --path', async () => {
    const checkout = await rig.tempDir('checkout');
    for (const [file, text] of Object.entries(monorepo('edge-1', LAYOUT))) {
      await mkdir(join(checkout, file, '..'), { recursive: true });
      await writeFile(join(checkout, file), text);
    }

    const flag = await run(['validate', '--repo', checkout, '--path', LAYOUT]);
    expect(flag.stderr).toBe('');
    expect(flag.stdout).toMatch(/ok\s+edge-1: 1 release \(web\)/);
    expect(flag.code).toBe(0);

    const env = await run(
      ['explain', '--repo', checkout, '--cluster', 'edge-1', '--release', 'web', 'config.LEVEL'],
      {
        MOORING_PATH: LAYOUT,
      },
    );
    expect(env.code).toBe(0);
    expect(env.stdout).toContain('environments/test/values/web.yaml');

    const plan = await run([
      'plan',
      '--repo',
      checkout,
      '--path',
      LAYOUT,
      '--cluster',
      'edge-1',
      '-o',
      'json',
    ]);
    expect(plan.code).toBe(0);
    expect((JSON.parse(plan.stdout) as { releases: { name: string }[] }).releases.map((r) => r.name)).toEqual(
      ['web'],
    );

    // Without --path the root has no layout: that is what validate says, not a crash.
    const root = await run(['validate', '--repo', checkout, '--no-render']);
    expect(root.code).toBe(1);
    expect(root.stdout).toContain('no clusters/ folder');

    const missing = await run(['validate', '--repo', checkout, '--path', 'deploy/nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('--path deploy/nope is not a folder of');
  });
});

async function waitForLog(
  agent: ReturnType<typeof startLoop>,
  match: (entry: Record<string, unknown>) => boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (agent.logs.entries().some(match)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no matching log line within ${timeoutMs}ms`);
}
