// Leadership under CPU-heavy work: two replicas (real `node bin/mooring.js run` processes,
// run the build first) and a commit of 10,000 files inside the release's in-repo chart (kept
// out of helm's package by .helmignore, not out of mooring's chart digest). Fetching,
// checking out and digesting them is seconds of CPU and I/O; it must not stall the leader's
// event loop (lease renewal, the leader check), so the lease never changes hands, helm never
// runs twice at once, and the agents' own metric reports the event loop never blocked for a
// second.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import {
  configData,
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
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
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
