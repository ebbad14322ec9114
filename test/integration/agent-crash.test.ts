// The agent killed alone (kill -9 of its PID, as a shell, a VM or a systemd unit without
// process-group kill does it), at the worst moments: while helm upgrades, and right after
// helm succeeded but before the agent recorded it. The killed agents are real
// `node bin/mooring.js run` processes (run the build first); a sampler watches every helm
// process of the release (/proc) and helm's storage all along.
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeRelease } from '../../src/converge/helm-storage.js';
import {
  configData,
  eventReasons,
  helmRevisions,
  HELM,
  processesMatching,
  readRelease,
  runOnce,
  spawnAgent,
  startLoop,
  startRig,
  uniqueName,
  waitFor,
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

interface Sample {
  at: number;
  /** PIDs of the `helm upgrade` processes of the release. */
  helm: number[];
  /** `<revision>:<status>`, and `<revision>:failed-by-mooring` for a revision mooring unlocked. */
  revisions: string[];
}

/** Samples the release's helm upgrade processes and its revisions every 100 ms until stopped. */
function sample(namespace: string, release: string) {
  const samples: Sample[] = [];
  const pattern = new RegExp(`helm upgrade ${release} .*--namespace ${namespace}( |$)`);
  let running = true;
  const loop = (async () => {
    while (running) {
      const [procs, revisions] = await Promise.all([
        processesMatching(pattern),
        helmRevisions(rig.clients, namespace, release),
      ]);
      samples.push({
        at: Date.now(),
        helm: procs.map((p) => p.pid),
        revisions: revisions.map((r) => {
          if (r.status !== 'failed') return `${r.revision}:${r.status}`;
          const info = decodeRelease(r.secret).info as { description?: string } | undefined;
          return `${r.revision}:${info?.description?.startsWith('mooring:') ? 'failed-by-mooring' : 'failed'}`;
        }),
      });
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    samples,
    async stop(): Promise<Sample[]> {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** `promise`, or its error with the in-process agent's log appended (a test that waits in vain says why). */
async function withLog<T>(promise: Promise<T>, agent: { logs: { lines: string[] } }): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw new Error(`${(err as Error).message}\nthe agent's log:\n${agent.logs.lines.join('')}`);
  }
}

/** The agent flags for a process agent of `cluster`. */
function agentFlags(repo: TestRepo, cluster: string, identity: string, extra: string[] = []): string[] {
  return [
    '--repo',
    repo.url,
    '--cluster',
    cluster,
    '--namespace',
    `${cluster}-agent`,
    '--identity',
    identity,
    '--work-dir',
    `${rig.dir}/${cluster}-${identity}-work`,
    '--log-level',
    'debug',
    ...extra,
  ];
}

/**
 * A repository whose `app` release is installed (helm revision 1), then a commit that makes
 * its next rollout never get ready, with helm timeout `timeout`: a slow upgrade.
 */
async function slowUpgrade(cluster: string, timeout: string): Promise<TestRepo> {
  const repo = await rig.createRepo(rig.clusterRepo(cluster, { app: {} }, { app: 'config: {v: "1"}\n' }));
  const setup = await runOnce(rig.agentFor(cluster, repo), rig.env);
  expect(setup.code, setup.log()).toBe(0);
  await repo.commit({
    'environments/test/releases.yaml': rig.releasesYaml(cluster, { app: { timeout } }),
    'environments/test/values/app.yaml': 'config: {v: "2"}\nneverReady: true\n',
  });
  return repo;
}

/** Every sample: at most one helm upgrade on the release, and no revision unlocked while the killed agent's helm ran. */
function expectSafe(samples: Sample[], orphan: number): void {
  expect(samples.length).toBeGreaterThan(50);
  const overlaps = samples.filter((s) => s.helm.length > 1);
  expect(overlaps, JSON.stringify(overlaps.slice(0, 3))).toEqual([]);
  const unlockedUnderHelm = samples.filter(
    (s) => s.helm.includes(orphan) && s.revisions.some((r) => r.endsWith('failed-by-mooring')),
  );
  expect(unlockedUnderHelm, JSON.stringify(unlockedUnderHelm.slice(0, 3))).toEqual([]);
}

describe('kill -9 of the agent PID alone', () => {
  it.concurrent(
    'during a slow upgrade: helm dies with it; the next leader waits out the timeout, recovers and converges',
    // The context's hook: with concurrent tests, the global one may belong to another test.
    async ({ onTestFinished }) => {
      const cluster = uniqueName('pidkill');
      const ns = `${cluster}-app`;
      // Long enough that the successor, once the lease expired, finds the revision still young.
      const repo = await slowUpgrade(cluster, '30s');
      const doomed = spawnAgent(agentFlags(repo, cluster, 'doomed', ['--once']), rig.env);
      onTestFinished(() => doomed.killGroup('SIGKILL'));
      const watch = sample(ns, 'app');
      const [orphan] = await waitFor('helm to be upgrading app', async () => {
        const revisions = await helmRevisions(rig.clients, ns, 'app');
        const procs = await processesMatching(new RegExp(`helm upgrade app .*--namespace ${ns}( |$)`));
        return (
          revisions.at(-1)?.status === 'pending-upgrade' && procs.length === 1 && procs.map((p) => p.pid)
        );
      });

      process.kill(doomed.pid, 'SIGKILL');
      expect(await doomed.exited).toMatchObject({ signal: 'SIGKILL' });
      // The leash: helm got SIGKILL from the kernel when the agent died.
      await waitFor(
        'the helm process of the killed agent to be gone',
        async () => (await processesMatching(/helm upgrade app /)).every((p) => p.pid !== orphan),
        5000,
      );
      expect((await helmRevisions(rig.clients, ns, 'app')).map((r) => r.status)).toEqual([
        'deployed',
        'pending-upgrade',
      ]);

      // Git lets the rollout get ready; a new agent starts and takes over once the lease expires.
      const fixed = await repo.commit({
        'environments/test/releases.yaml': rig.releasesYaml(cluster, { app: {} }),
        'environments/test/values/app.yaml': 'config: {v: "3"}\n',
      });
      const successor = startLoop(
        rig.agentFor(cluster, repo, { identity: 'successor', interval: '1h' }),
        rig.env,
      );
      onTestFinished(async () => {
        await successor.stop();
      });
      // It cannot know the old helm is gone: it says it waits for that revision's timeout.
      const waiting = await waitFor('the successor to wait for the pending revision', async () => {
        const status = await readRelease(rig.clients, `${cluster}-agent`, 'app');
        return status?.state === 'waiting' && status;
      });
      expect(waiting.lastError).toMatch(
        /helm revision 2 is pending-upgrade: the helm process that started it may still be running; waiting until \S+ \(its start plus its timeout\)/,
      );
      await withLog(
        successor.waitForPass((p) => p.revision === fixed && p.outcome === 'converged', {
          timeoutMs: 150_000,
        }),
        successor,
      );
      const samples = await watch.stop();

      expectSafe(samples, orphan!);
      expect((await helmRevisions(rig.clients, ns, 'app')).map((r) => r.status)).toEqual([
        'superseded',
        'failed',
        'deployed',
      ]);
      expect(await readRelease(rig.clients, `${cluster}-agent`, 'app')).toMatchObject({
        state: 'ready',
        deployedRevision: fixed,
        helmRevision: 3,
      });
      expect(await configData(rig.clients, ns, 'app-config')).toEqual({ v: '3' });
      expect(successor.helm.filter((c) => c.command === 'upgrade').map((c) => c.release)).toEqual(['app']);
      // The unlock came only after the deadline: the wait logged before it.
      const entries = successor.logs.entries();
      const waited = entries.findIndex((e) => e.msg === 'waiting for a pending helm revision');
      const recovered = entries.findIndex((e) => e.msg === 'recovered a pending release');
      expect(waited).toBeGreaterThanOrEqual(0);
      expect(recovered).toBeGreaterThan(waited);
      expect(entries[recovered]!.time as number).toBeGreaterThanOrEqual(
        Date.parse(String(entries[waited]!.until)),
      );
    },
    240_000,
  );

  it.concurrent(
    'without the leash, its helm runs on as an orphan: the next leader never runs helm beside it, and converges after it',
    // The context's hook: with concurrent tests, the global one may belong to another test.
    async ({ onTestFinished }) => {
      const cluster = uniqueName('orphan');
      const ns = `${cluster}-app`;
      // helm found in a folder without mooring-leash: the agent runs helm directly.
      const bare = await rig.tempDir('bare-helm');
      await symlink(HELM, join(bare, 'helm'));
      const env = { ...rig.env, MOORING_HELM: join(bare, 'helm') };
      // Far longer than the lease (and a slow start on a busy machine): the successor leads while the orphan still waits.
      const repo = await slowUpgrade(cluster, '45s');
      const doomed = spawnAgent(agentFlags(repo, cluster, 'doomed', ['--once']), env);
      onTestFinished(() => doomed.killGroup('SIGKILL'));
      const watch = sample(ns, 'app');
      const [orphan] = await waitFor('helm to be upgrading app', async () => {
        const revisions = await helmRevisions(rig.clients, ns, 'app');
        const procs = await processesMatching(new RegExp(`helm upgrade app .*--namespace ${ns}( |$)`));
        return (
          revisions.at(-1)?.status === 'pending-upgrade' && procs.length === 1 && procs.map((p) => p.pid)
        );
      });
      expect(doomed.output()).toContain('no mooring-leash next to helm');

      process.kill(doomed.pid, 'SIGKILL');
      await doomed.exited;
      await new Promise((r) => setTimeout(r, 1000));
      expect((await processesMatching(/helm upgrade app /)).map((p) => p.pid)).toContain(orphan);

      const fixed = await repo.commit({
        'environments/test/releases.yaml': rig.releasesYaml(cluster, { app: {} }),
        'environments/test/values/app.yaml': 'config: {v: "3"}\n',
      });
      const successor = startLoop(
        rig.agentFor(cluster, repo, { identity: 'successor', interval: '1h' }),
        rig.env,
      );
      onTestFinished(async () => {
        await successor.stop();
      });
      await withLog(
        successor.waitForPass((p) => p.revision === fixed && p.outcome === 'converged', {
          timeoutMs: 120_000,
        }),
        successor,
      );
      const samples = await watch.stop();

      expectSafe(samples, orphan!);
      // The orphan was still running when the successor first looked.
      const led = successor.logs.entries().find((e) => e.msg === 'became leader');
      expect(samples.some((s) => s.helm.includes(orphan!) && s.at > (led!.time as number))).toBe(true);
      expect(await readRelease(rig.clients, `${cluster}-agent`, 'app')).toMatchObject({
        state: 'ready',
        deployedRevision: fixed,
      });
      expect(await configData(rig.clients, ns, 'app-config')).toEqual({ v: '3' });
    },
    180_000,
  );

  it.concurrent(
    'right after helm succeeded, before the record: the next agent records that revision and runs no second upgrade',
    // The context's hook: with concurrent tests, the global one may belong to another test.
    async ({ onTestFinished }) => {
      const cluster = uniqueName('recorded');
      const agentNs = `${cluster}-agent`;
      const repo = await rig.createRepo(rig.clusterRepo(cluster, { app: {} }, { app: 'config: {v: "1"}\n' }));
      const setup = await runOnce(rig.agentFor(cluster, repo), rig.env);
      expect(setup.code, setup.log()).toBe(0);
      const change = await repo.commit({ 'environments/test/values/app.yaml': 'config: {v: "2"}\n' });

      // A helm that kills the agent (its parent) the moment an upgrade succeeded.
      const dir = await rig.tempDir('crashing-helm');
      await mkdir(dir, { recursive: true });
      const wrapper = join(dir, 'helm');
      await writeFile(
        wrapper,
        `#!/bin/sh\n"${HELM}" "$@"\nrc=$?\nif [ "$1" = upgrade ] && [ $rc -eq 0 ]; then kill -9 $PPID; fi\nexit $rc\n`,
        { mode: 0o755 },
      );
      const doomed = spawnAgent(agentFlags(repo, cluster, 'doomed', ['--once']), {
        ...rig.env,
        MOORING_HELM: wrapper,
      });
      onTestFinished(() => doomed.killGroup('SIGKILL'));
      expect(await doomed.waitForExit(), doomed.output()).toMatchObject({ signal: 'SIGKILL' });
      // helm made revision 2; the agent never wrote it down.
      expect((await helmRevisions(rig.clients, `${cluster}-app`, 'app')).map((r) => r.status)).toEqual([
        'superseded',
        'deployed',
      ]);
      expect(await readRelease(rig.clients, agentNs, 'app')).toMatchObject({
        state: 'progressing',
        helmRevision: 1,
      });

      const successor = await runOnce(rig.agentFor(cluster, repo, { identity: 'successor' }), rig.env);
      expect(successor.code, successor.log()).toBe(0);
      expect(successor.helm.filter((c) => c.command === 'upgrade')).toEqual([]);
      expect((await helmRevisions(rig.clients, `${cluster}-app`, 'app')).map((r) => r.status)).toEqual([
        'superseded',
        'deployed',
      ]);
      expect(await readRelease(rig.clients, agentNs, 'app')).toMatchObject({
        state: 'ready',
        deployedRevision: change,
        helmRevision: 2,
      });
      expect(await eventReasons(rig.clients, agentNs, 'app')).toEqual([
        'Normal/Converged',
        'Normal/Converged',
      ]);
      expect(await configData(rig.clients, `${cluster}-app`, 'app-config')).toEqual({ v: '2' });

      // And the mark is what told it: revision 2 carries this agent, the digest and the commit.
      const labels = (await helmRevisions(rig.clients, `${cluster}-app`, 'app'))[1]!.secret.metadata!.labels!;
      expect(labels).toMatchObject({
        'mooring.io/managed': 'true',
        'mooring.io/cluster': cluster,
        'mooring.io/agent': agentNs,
        'mooring.io/replica': 'doomed',
        'mooring.io/revision': change,
        'mooring.io/helm-revision': '2',
        'mooring.io/timeout': '20',
      });
    },
    120_000,
  );
});
