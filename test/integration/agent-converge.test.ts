// `mooring run` converging one cluster, against the real rig: the shared control plane, the
// fake kubelet, a git http-backend server and the real helm. Each describe block is one
// cluster with its own agent namespace and release namespaces, so blocks never interfere.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  configData,
  eventReasons,
  eventsIn,
  helmRevisions,
  kubectl,
  readRelease,
  runOnce,
  startRig,
  uniqueName,
  type AgentRig,
  type TestRepo,
} from '../rig/agent.js';
import { ageKeygen, sopsEncrypt } from '../rig/sops.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

const calls = (run: { helm: Array<{ command: string; release: string | undefined }> }) =>
  run.helm.map((c) => `${c.command} ${c.release}`);

describe('first converge, then one values commit', () => {
  const cluster = uniqueName('conv');
  const agentNs = `${cluster}-agent`;
  let repo: TestRepo;
  let first: string;

  beforeAll(async () => {
    repo = await rig.createRepo(
      rig.clusterRepo(cluster, { web: {}, api: {}, worker: {} }, { web: 'config: {greeting: hello}\n' }),
    );
    first = await repo.commit({ 'README.md': 'test repository\n' }, 'docs');
  });

  it('installs every release, records it in a kubectl-readable MooringRelease and emits Converged', async () => {
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(run.passes.map((p) => p.outcome)).toEqual(['converged']);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.action, r.state])).toEqual([
      ['api', 'install', 'ready'],
      ['web', 'install', 'ready'],
      ['worker', 'install', 'ready'],
    ]);
    expect(calls(run).sort()).toEqual(['upgrade api', 'upgrade web', 'upgrade worker']);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({ greeting: 'hello' });

    const status = JSON.parse(
      await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mrel', 'web', '-o', 'json'),
    ).status as Record<string, unknown>;
    expect(status).toMatchObject({
      namespace: `${cluster}-web`,
      chart: './charts/app',
      state: 'ready',
      desiredRevision: first,
      deployedRevision: first,
      helmRevision: 1,
      helmStatus: 'deployed',
      cluster,
    });
    expect(status.desiredDigest).toMatch(/^sha256:/);
    expect(status.lastError).toBeUndefined();
    const table = await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mrel');
    expect(table).toMatch(/web\s+.*ready/);

    for (const release of ['web', 'api', 'worker']) {
      expect(await eventReasons(rig.clients, agentNs, release)).toEqual(['Normal/Converged']);
    }
    const [converged] = await eventsIn(rig.clients, agentNs, 'web');
    expect(converged!.involvedObject.kind).toBe('MooringRelease');
    expect(converged!.message).toContain(`installed to revision ${first.slice(0, 7)} (helm revision 1)`);
  });

  it('upgrades only the release whose values changed: one helm process, none for the others', async () => {
    const second = await repo.commit({
      'environments/test/values/web.yaml': 'config: {greeting: bonjour}\n',
    });
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(calls(run)).toEqual(['upgrade web']);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.action])).toEqual([
      ['api', 'none'],
      ['web', 'upgrade'],
      ['worker', 'none'],
    ]);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({ greeting: 'bonjour' });
    expect(await readRelease(rig.clients, agentNs, 'web')).toMatchObject({
      state: 'ready',
      desiredRevision: second,
      deployedRevision: second,
      helmRevision: 2,
    });
    // The others are not touched, nor are their records: they keep the revision their
    // desired state comes from.
    expect(await readRelease(rig.clients, agentNs, 'api')).toMatchObject({
      state: 'ready',
      desiredRevision: first,
      deployedRevision: first,
      helmRevision: 1,
    });
    expect((await helmRevisions(rig.clients, `${cluster}-api`, 'api')).map((r) => r.revision)).toEqual([1]);
  });

  it('spawns no helm process at all when nothing was committed', async () => {
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(run.helm).toEqual([]);
    expect(run.passes[0]!.converge!.releases.every((r) => r.action === 'none' && r.state === 'ready')).toBe(
      true,
    );
    expect(await eventReasons(rig.clients, agentNs, 'api')).toEqual(['Normal/Converged']);
  });
});

describe('a release that fails keeps its last good revision; the others converge', () => {
  const cluster = uniqueName('fail');
  const agentNs = `${cluster}-agent`;
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(
      rig.clusterRepo(
        cluster,
        { good: {}, broken: {}, stuck: { timeout: '6s' } },
        {
          good: 'config: {v: "1"}\n',
          broken: 'config: {v: "1"}\n',
          stuck: 'config: {v: "1"}\n',
        },
      ),
    );
    const setup = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(setup.code, setup.log()).toBe(0);
  });

  it('reports a chart that does not render and a rollout that never gets ready, and rolls the latter back', async () => {
    const revision = await repo.commit({
      'environments/test/values/good.yaml': 'config: {v: "2"}\n',
      'environments/test/values/broken.yaml': 'config: {v: "2"}\nfailRender: the template refuses\n',
      'environments/test/values/stuck.yaml': 'config: {v: "2"}\nneverReady: true\n',
    });
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(1);
    expect(run.passes[0]!.outcome).toBe('failed');
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.state])).toEqual([
      ['broken', 'failed'],
      ['good', 'ready'],
      ['stuck', 'failed'],
    ]);

    // The good release moved on.
    expect(await configData(rig.clients, `${cluster}-good`, 'good-config')).toEqual({ v: '2' });
    expect(await readRelease(rig.clients, agentNs, 'good')).toMatchObject({
      state: 'ready',
      helmRevision: 2,
    });

    // The chart that does not render: helm stored nothing new; revision 1 stays deployed.
    const broken = await readRelease(rig.clients, agentNs, 'broken');
    expect(broken).toMatchObject({ state: 'failed', desiredRevision: revision, helmRevision: 1 });
    expect(broken!.deployedRevision).not.toBe(revision);
    expect(broken!.lastError).toContain('cannot render: the template refuses');
    expect(broken!.lastError).toContain('release broken');
    expect((await helmRevisions(rig.clients, `${cluster}-broken`, 'broken')).map((r) => r.status)).toEqual([
      'deployed',
    ]);
    expect(await configData(rig.clients, `${cluster}-broken`, 'broken-config')).toEqual({ v: '1' });
    expect(await eventReasons(rig.clients, agentNs, 'broken')).toEqual([
      'Normal/Converged',
      'Warning/ConvergeFailed',
    ]);

    // The rollout that never gets ready: helm timed out and rolled back to revision 1's config.
    const stuck = await readRelease(rig.clients, agentNs, 'stuck');
    expect(stuck).toMatchObject({ state: 'failed', desiredRevision: revision, helmStatus: 'deployed' });
    expect(stuck!.lastError).toMatch(/release stuck/);
    expect((await helmRevisions(rig.clients, `${cluster}-stuck`, 'stuck')).map((r) => r.status)).toEqual([
      'superseded',
      'failed',
      'deployed',
    ]);
    expect(stuck!.helmRevision).toBe(3);
    const deployment = await rig.apps.readNamespacedDeployment({
      name: 'stuck',
      namespace: `${cluster}-stuck`,
    });
    expect(deployment.metadata?.labels?.['mooring.dev/never-ready']).toBeUndefined();
    expect(await configData(rig.clients, `${cluster}-stuck`, 'stuck-config')).toEqual({ v: '1' });
    // The failure and the rollback are recorded at the same moment: their order is not fixed.
    expect((await eventReasons(rig.clients, agentNs, 'stuck')).sort()).toEqual([
      'Normal/Converged',
      'Warning/ConvergeFailed',
      'Warning/RolledBack',
    ]);
  });

  it('does not retry the same failed state at once: the next pass runs no helm', async () => {
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(1);
    expect(run.helm).toEqual([]);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.action, r.state])).toEqual([
      ['broken', 'wait', 'failed'],
      ['good', 'none', 'ready'],
      ['stuck', 'wait', 'failed'],
    ]);
  });

  it('converges the failed releases once Git fixes them', async () => {
    await repo.commit({
      'environments/test/values/broken.yaml': 'config: {v: "3"}\n',
      'environments/test/values/stuck.yaml': 'config: {v: "3"}\n',
    });
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(calls(run).sort()).toEqual(['upgrade broken', 'upgrade stuck']);
    expect(await configData(rig.clients, `${cluster}-stuck`, 'stuck-config')).toEqual({ v: '3' });
    const stuck = await readRelease(rig.clients, agentNs, 'stuck');
    expect(stuck).toMatchObject({ state: 'ready', helmRevision: 4 });
    expect(stuck!.lastError).toBeUndefined();
  });
});

describe('dependsOn', () => {
  const cluster = uniqueName('deps');
  const agentNs = `${cluster}-agent`;
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await rig.createRepo(
      rig.clusterRepo(
        cluster,
        { web: {}, worker: { dependsOn: ['web'] } },
        { web: 'config: {v: "1"}\n', worker: 'config: {v: "1"}\n' },
      ),
    );
  });

  it('converges worker only after web is ready', async () => {
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(run.timeline).toEqual([
      'helm upgrade web',
      'converged web',
      'helm upgrade worker',
      'converged worker',
    ]);
  });

  it('does not attempt worker when web fails: worker waits, its change unapplied', async () => {
    await repo.commit({
      'environments/test/values/web.yaml': 'config: {v: "2"}\nfailRender: web is broken\n',
      'environments/test/values/worker.yaml': 'config: {v: "2"}\n',
    });
    const run = await runOnce(rig.agentFor(cluster, repo), rig.env);

    expect(run.code, run.log()).toBe(1);
    expect(calls(run)).toEqual(['upgrade web']);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.action, r.state])).toEqual([
      ['web', 'upgrade', 'failed'],
      ['worker', 'blocked', 'waiting'],
    ]);
    const worker = await readRelease(rig.clients, agentNs, 'worker');
    expect(worker).toMatchObject({ state: 'waiting', helmRevision: 1 });
    expect(worker!.lastError).toContain('waiting for web');
    expect(await configData(rig.clients, `${cluster}-worker`, 'worker-config')).toEqual({ v: '1' });
  });
});

describe('broken files in Git', () => {
  const cluster = uniqueName('bad');
  const agentNs = `${cluster}-agent`;
  let repo: TestRepo;
  let keyFile: string;
  let cacheSecrets: string;

  beforeAll(async () => {
    const key = await ageKeygen();
    keyFile = await rig.writeFile(`${cluster}-age.txt`, key.keyFile);
    cacheSecrets = await sopsEncrypt('password: pa55-for-cache\nregion_unencrypted: eu-west-1\n', {
      recipients: [key.publicKey],
    });
    repo = await rig.createRepo({
      ...rig.clusterRepo(
        cluster,
        { web: {}, worker: {}, cache: {} },
        { web: 'config: {v: "1"}\n', worker: 'config: {v: "1"}\n', cache: 'config: {v: "1"}\n' },
      ),
      'environments/test/secrets/cache.sops.yaml': cacheSecrets,
    });
    const setup = await runOnce(rig.agentFor(cluster, repo, { ageKeyFile: keyFile }), rig.env);
    expect(setup.code, setup.log()).toBe(0);
  });

  it('marks only the release with bad YAML or a tampered SOPS file failed, and keeps what is deployed', async () => {
    const revision = await repo.commit({
      'environments/test/values/web.yaml': 'config: {v: "2"}\n',
      'environments/test/values/worker.yaml': 'config: {v: "2"\n  oops: [\n',
      'environments/test/values/cache.yaml': 'config: {v: "2"}\n',
      'environments/test/secrets/cache.sops.yaml': cacheSecrets.replace(
        'region_unencrypted: eu-west-1',
        'region_unencrypted: us-east-1',
      ),
    });
    const run = await runOnce(rig.agentFor(cluster, repo, { ageKeyFile: keyFile }), rig.env);

    expect(run.code, run.log()).toBe(1);
    expect(calls(run)).toEqual(['upgrade web']);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.action, r.state])).toEqual([
      ['cache', 'error', 'failed'],
      ['web', 'upgrade', 'ready'],
      ['worker', 'error', 'failed'],
    ]);

    const worker = await readRelease(rig.clients, agentNs, 'worker');
    expect(worker).toMatchObject({ state: 'failed', desiredRevision: revision, helmRevision: 1 });
    expect(worker!.lastError).toContain('environments/test/values/worker.yaml');
    const cache = await readRelease(rig.clients, agentNs, 'cache');
    expect(cache).toMatchObject({ state: 'failed', desiredRevision: revision, helmRevision: 1 });
    expect(cache!.lastError).toContain('environments/test/secrets/cache.sops.yaml');
    expect(cache!.lastError).toMatch(/MAC mismatch/);
    expect(cache!.lastError).not.toContain('pa55-for-cache');

    expect(await configData(rig.clients, `${cluster}-worker`, 'worker-config')).toEqual({ v: '1' });
    expect(await configData(rig.clients, `${cluster}-cache`, 'cache-config')).toEqual({ v: '1' });
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({ v: '2' });
    expect(await eventReasons(rig.clients, agentNs, 'worker')).toEqual([
      'Normal/Converged',
      'Warning/InvalidConfiguration',
    ]);
    expect(await eventReasons(rig.clients, agentNs, 'cache')).toEqual([
      'Normal/Converged',
      'Warning/InvalidConfiguration',
    ]);

    // The next pass over the same revision reports nothing new: no write, no Event, no helm.
    const before = await readRelease(rig.clients, agentNs, 'worker');
    const again = await runOnce(rig.agentFor(cluster, repo, { ageKeyFile: keyFile }), rig.env);
    expect(again.code, again.log()).toBe(1);
    expect(again.helm).toEqual([]);
    expect(await readRelease(rig.clients, agentNs, 'worker')).toEqual(before);
    expect(await eventReasons(rig.clients, agentNs, 'worker')).toEqual([
      'Normal/Converged',
      'Warning/InvalidConfiguration',
    ]);
  });

  it('refuses a revision whose cluster.yaml is broken as a whole, and changes nothing', async () => {
    const before = await Promise.all(
      ['web', 'worker', 'cache'].map((r) => helmRevisions(rig.clients, `${cluster}-${r}`, r)),
    );
    const revision = await repo.commit({
      [`clusters/${cluster}/cluster.yaml`]: 'environment: test\nregoin: test-1\n',
      'environments/test/values/web.yaml': 'config: {v: "3"}\n',
    });
    const run = await runOnce(rig.agentFor(cluster, repo, { ageKeyFile: keyFile }), rig.env);

    expect(run.code, run.log()).toBe(1);
    expect(run.passes[0]).toMatchObject({ outcome: 'invalid', revision });
    expect(run.passes[0]!.error).toContain(`clusters/${cluster}/cluster.yaml`);
    expect(run.passes[0]!.error).toContain('regoin');
    expect(run.helm).toEqual([]);
    const after = await Promise.all(
      ['web', 'worker', 'cache'].map((r) => helmRevisions(rig.clients, `${cluster}-${r}`, r)),
    );
    expect(after.map((revs) => revs.map((r) => `${r.revision}:${r.status}`))).toEqual(
      before.map((revs) => revs.map((r) => `${r.revision}:${r.status}`)),
    );
    expect(await configData(rig.clients, `${cluster}-web`, 'web-config')).toEqual({ v: '2' });
    expect((await readRelease(rig.clients, agentNs, 'web'))!.desiredRevision).not.toBe(revision);
    const events = await eventsIn(rig.clients, agentNs, `mooring-${cluster}`);
    expect(events.map((e) => `${e.type}/${e.reason}`)).toContain('Warning/InvalidRevision');
  });
});

describe('a wrong age key', () => {
  const cluster = uniqueName('key');
  const agentNs = `${cluster}-agent`;

  it('fails only the releases with SOPS files, naming the file, and installs the others', async () => {
    const [right, wrong] = await Promise.all([ageKeygen(), ageKeygen()]);
    const repo = await rig.createRepo({
      ...rig.clusterRepo(cluster, { web: {}, api: {} }),
      'environments/test/secrets/api.sops.yaml': await sopsEncrypt('password: for-api-only\n', {
        recipients: [right.publicKey],
      }),
    });
    const keyFile = await rig.writeFile(`${cluster}/wrong-age.txt`, wrong.keyFile);
    const run = await runOnce(rig.agentFor(cluster, repo, { ageKeyFile: keyFile }), rig.env);

    expect(run.code, run.log()).toBe(1);
    expect(calls(run)).toEqual(['upgrade web']);
    const api = await readRelease(rig.clients, agentNs, 'api');
    expect(api).toMatchObject({ state: 'failed' });
    expect(api!.lastError).toContain('environments/test/secrets/api.sops.yaml');
    expect(await helmRevisions(rig.clients, `${cluster}-api`, 'api')).toEqual([]);
    expect(await readRelease(rig.clients, agentNs, 'web')).toMatchObject({ state: 'ready', helmRevision: 1 });
  });
});
