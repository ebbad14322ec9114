// Leadership under CPU-heavy work, and after a freeze. Two replicas (real
// `node bin/mooring.js run` processes, run the build first):
// - a commit of 10,000 files inside the release's in-repo chart (kept out of helm's package
//   by .helmignore, not out of mooring's chart digest). Fetching, checking out and digesting
//   them is seconds of CPU and I/O; it must not stall the leader's event loop (lease renewal,
//   the leader check), so the lease never changes hands, helm never runs twice at once, and
//   the agents' own metric reports the event loop never blocked for a second;
// - a leader frozen (SIGSTOP) past its lease, then resumed: it must start no helm, although
//   its helm slot frees up before any renewal could tell it that it lost the lease.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import {
  configData,
  helmRevisions,
  processesMatching,
  readRelease,
  spawnAgent,
  startRig,
  uniqueName,
  waitFor,
  type AgentProcess,
  type AgentRig,
  type TestRepo,
} from '../rig/agent.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

const FILES = 10_000;

/** Commits `count` small files under `folder/` plus `changes`, with git's own index (fast). */
async function commitMany(
  repo: TestRepo,
  folder: string,
  count: number,
  changes: Record<string, string>,
): Promise<string> {
  const scratch = await mkdtemp(join(tmpdir(), 'mooring-many-'));
  try {
    const env = {
      ...process.env,
      GIT_INDEX_FILE: join(scratch, 'index'),
      GIT_AUTHOR_NAME: 'Mooring Test',
      GIT_AUTHOR_EMAIL: 'test@mooring.invalid',
      GIT_COMMITTER_NAME: 'Mooring Test',
      GIT_COMMITTER_EMAIL: 'test@mooring.invalid',
    };
    const work = join(scratch, 'tree');
    const git = (...args: string[]) =>
      execa('git', [`--git-dir=${repo.gitdir}`, `--work-tree=${work}`, ...args], { env });
    for (let d = 0; d < count / 100; d++) {
      const dir = join(work, folder, `part-${d}`);
      await mkdir(dir, { recursive: true });
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          writeFile(join(dir, `file-${d * 100 + i}.yaml`), `key: value ${d * 100 + i}\n`.repeat(10)),
        ),
      );
    }
    for (const [path, content] of Object.entries(changes)) {
      await mkdir(join(work, path, '..'), { recursive: true });
      await writeFile(join(work, path), content);
    }
    await git('read-tree', 'refs/heads/main');
    await git('add', '--', folder, ...Object.keys(changes));
    const tree = (await git('write-tree')).stdout.trim();
    const parent = (await git('rev-parse', 'refs/heads/main')).stdout.trim();
    const sha = (await git('commit-tree', tree, '-p', parent, '-m', `${count} files`)).stdout.trim();
    await git('update-ref', 'refs/heads/main', sha);
    return sha;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The address an agent process listens on, from its log. */
async function addressOf(agent: AgentProcess): Promise<string> {
  return waitFor('the agent to listen', async () => {
    const m = /"address":"([^"]+)","msg":"listening"/.exec(agent.output());
    return m?.[1];
  });
}

/**
 * GET /metrics on a connection of its own: a kept-alive one may be closed by the agent's
 * idle timeout just as the next scrape reuses it (ECONNRESET), which says nothing about the
 * agent. A dead agent still fails it (refused).
 */
function scrape(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`http://${address}/metrics`, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    }).on('error', reject);
  });
}

function metric(text: string, name: string): number | undefined {
  // Every series carries the agent's `cluster` label.
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('two replicas and a commit of 10,000 files', () => {
  it('no lease flap, no helm overlap, event-loop lag under 1 s, and the release converges', async () => {
    const cluster = uniqueName('load');
    const agentNs = `${cluster}-agent`;
    const ns = `${cluster}-app`;
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { app: {} }, { app: 'config: {v: "1"}\n' }));
    const replicas = ['east', 'west'].map((identity) =>
      spawnAgent(
        [
          ...['--repo', repo.url, '--cluster', cluster, '--namespace', agentNs, '--identity', identity],
          ...['--work-dir', `${rig.dir}/${cluster}-${identity}-work`, '--interval', '2s'],
          ...['--listen', '127.0.0.1:0', '--log-level', 'info'],
        ],
        rig.env,
      ),
    );
    onTestFinished(() => {
      for (const r of replicas) r.killGroup('SIGKILL');
    });
    const addresses = await Promise.all(replicas.map(addressOf));
    await waitFor(
      'the first converge',
      async () => (await readRelease(rig.clients, agentNs, 'app'))?.state === 'ready',
    );
    const readLease = () =>
      rig.clients.coordination.readNamespacedLease({ name: `mooring-${cluster}`, namespace: agentNs });
    const before = (await readLease()).spec!;

    // Sample while the commit is fetched, checked out and converged.
    const lags: number[][] = [[], []];
    const leaders: string[] = [];
    const holders = new Set<string>();
    let overlaps = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [lease, procs, ...scrapes] = await Promise.all([
          readLease(),
          processesMatching(new RegExp(`helm upgrade app .*--namespace ${ns}( |$)`)),
          ...addresses.map(scrape),
        ]);
        holders.add(lease.spec?.holderIdentity ?? '');
        if (procs.length > 1) overlaps++;
        scrapes.forEach((text, i) => {
          lags[i]!.push(metric(text, 'mooring_event_loop_lag_seconds') ?? NaN);
          if (metric(text, 'mooring_leader') === 1) leaders.push(`${i}`);
        });
        await new Promise((r) => setTimeout(r, 500));
      }
    })();

    const change = await commitMany(repo, 'charts/app/bulk', FILES, {
      'charts/app/.helmignore': 'bulk/\n',
      'environments/test/values/app.yaml': 'config: {v: "2"}\n',
    });
    await waitFor(
      'the replicas to converge the big commit',
      async () => {
        const status = await readRelease(rig.clients, agentNs, 'app');
        return status?.state === 'ready' && status.deployedRevision === change;
      },
      180_000,
    );
    sampling = false;
    await sampler;

    const after = (await readLease()).spec!;
    expect(after.holderIdentity).toBe(before.holderIdentity);
    expect(after.leaseTransitions).toBe(before.leaseTransitions);
    expect([...holders]).toEqual([before.holderIdentity]);
    expect(overlaps).toBe(0);
    // Both answered every scrape, and neither one's loop ever stalled for a second.
    for (const series of lags) {
      expect(series.length).toBeGreaterThan(3);
      expect(series.every((v) => Number.isFinite(v))).toBe(true);
      expect(Math.max(...series)).toBeLessThan(1);
    }
    // Exactly one replica led all along, and it never lost leadership.
    expect(new Set(leaders).size).toBe(1);
    const leader = replicas[Number(leaders[0])]!;
    expect(leader.output()).not.toContain('lost leadership');
    expect(await configData(rig.clients, ns, 'app-config')).toEqual({ v: '2' });
  }, 300_000);
});

describe('a leader frozen past its lease (SIGSTOP of its PID)', () => {
  it('once it runs again it starts no helm: the release the new leader upgraded is upgraded once', async () => {
    const cluster = uniqueName('frozen');
    const agentNs = `${cluster}-agent`;
    const identities = ['first', 'second'];
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { 'a-slow': {}, 'b-fast': {} }, { 'a-slow': 'config: {v: "1"}\n' }),
    );
    // One helm at a time: while a-slow's helm runs, b-fast's waits for the slot.
    const replicas = identities.map((identity) =>
      spawnAgent(
        [
          ...['--repo', repo.url, '--cluster', cluster, '--namespace', agentNs, '--identity', identity],
          ...['--work-dir', `${rig.dir}/${cluster}-${identity}-work`, '--interval', '2s'],
          ...['--concurrency', '1', '--listen', '127.0.0.1:0', '--log-level', 'info'],
        ],
        rig.env,
      ),
    );
    onTestFinished(() => {
      for (const r of replicas) {
        r.killGroup('SIGCONT');
        r.killGroup('SIGKILL');
      }
    });
    await waitFor('the first converge', async () => {
      const [a, b] = await Promise.all(['a-slow', 'b-fast'].map((n) => readRelease(rig.clients, agentNs, n)));
      return a?.state === 'ready' && b?.state === 'ready';
    });
    const lease = await rig.clients.coordination.readNamespacedLease({
      name: `mooring-${cluster}`,
      namespace: agentNs,
    });
    const leaderIndex = identities.indexOf(lease.spec!.holderIdentity!);
    const leader = replicas[leaderIndex]!;
    const standby = identities[1 - leaderIndex]!;

    // a-slow's rollout never gets ready (helm gives up after 8 s); b-fast's is quick.
    const change = await repo.commit({
      'environments/test/releases.yaml': rig.releasesYaml(cluster, {
        'a-slow': { timeout: '8s' },
        'b-fast': {},
      }),
      'environments/test/values/a-slow.yaml': 'config: {v: "2"}\nneverReady: true\n',
      'environments/test/values/b-fast.yaml': 'config: {v: "2"}\n',
    });
    const upgrades = (release: string) =>
      processesMatching(new RegExp(`helm upgrade ${release} .*--namespace ${cluster}-${release}( |$)`));
    const [slowHelm] = await waitFor('the leader to run helm on a-slow', async () => {
      const procs = await upgrades('a-slow');
      return procs.length === 1 && procs;
    });
    // Frozen with b-fast still waiting for the helm slot.
    process.kill(leader.pid, 'SIGSTOP');
    expect(await upgrades('b-fast')).toEqual([]);

    let overlaps = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        if ((await upgrades('b-fast')).length > 1) overlaps++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // The standby takes the expired lease and converges b-fast.
    await waitFor(
      'the standby to converge b-fast',
      async () => {
        const b = await readRelease(rig.clients, agentNs, 'b-fast');
        return b?.state === 'ready' && b.deployedRevision === change;
      },
      120_000,
    );
    // The frozen leader's helm on a-slow has ended (a zombie until the leader reaps it).
    await waitFor(
      "the frozen leader's helm to end",
      async () => (await upgrades('a-slow')).every((p) => p.pid !== slowHelm!.pid),
      60_000,
    );

    // It runs again: helm's exit frees the slot b-fast waited for, before any renewal can answer.
    process.kill(leader.pid, 'SIGCONT');
    await waitFor('the old leader to notice', async () => leader.output().includes('lost leadership'));
    await new Promise((r) => setTimeout(r, 3000));
    sampling = false;
    await sampler;

    expect(overlaps).toBe(0);
    const made = (await helmRevisions(rig.clients, `${cluster}-b-fast`, 'b-fast')).filter(
      (r) => r.secret.metadata?.labels?.['mooring.io/revision'] === change,
    );
    expect(made.map((r) => r.secret.metadata?.labels?.['mooring.io/replica'])).toEqual([standby]);
  }, 300_000);
});
