// Approval gates end to end, against the real rig: the shared control plane, a git
// http-backend server, the real helm, SOPS files, and the agent loop (`agent.pass()`) with the
// real GitSource, StatusStore, EventRecorder and gate. Approvals are made with the real
// `mooring approve`. Each test is one cluster with its own namespaces and repository.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { Agent, type DriftChecker, type PassResult } from '../../src/agent/agent.js';
import { defaults, type AgentConfig, type ApprovalMode } from '../../src/agent/config.js';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { createHelm } from '../../src/converge/helm.js';
import { listRevisions, secretMetadataLister } from '../../src/converge/helm-storage.js';
import { createApprovalStore } from '../../src/gate/approvals.js';
import { createGate } from '../../src/gate/gate.js';
import { createPlanStore, planDigest, planName } from '../../src/gate/plans.js';
import { liveDiff } from '../../src/gate/live-cluster.js';
import { ensureApprovalPolicy } from '../../src/gate/policy.js';
import { createKubeClients, loadKubeConfig, whoAmI, type KubeClients } from '../../src/kube/client.js';
import { ensureCrds } from '../../src/observe/crds.js';
import { createEventRecorder } from '../../src/observe/events.js';
import { createStatusStore } from '../../src/observe/status.js';
import { planCluster } from '../../src/plan/cluster-plan.js';
import { secretDigestKey } from '../../src/secrets/hash.js';
import { loadAgeIdentities } from '../../src/resolve/age-key.js';
import { decryptSops } from '../../src/resolve/sops.js';
import { GitSource } from '../../src/source/git-source.js';
import { commitFiles, createRepo, startGitServer, type GitServer } from '../rig/git.js';
import { ageKeygen, sopsEncrypt, type AgeKeyPair } from '../rig/sops.js';

const HELM = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.tools', 'bin', 'helm');
const PASSWORD = 'correct-horse-battery-staple';
const run = Date.now().toString(36).slice(-5);

let kubeconfig: string;
let context: string;
let clients: KubeClients;
let gitServer: GitServer;
let scratch: string;
let key: AgeKeyPair;
let kubelet: { stop(): void } | undefined;
const kubeletModule = (await import(new URL('../../scripts/lib/fake-kubelet.mjs', import.meta.url).href)) as {
  startFakeKubelet(opts: {
    kubeconfig: string;
    namespaces?: (namespace: string) => boolean;
  }): Promise<{ stop(): void }>;
};
const namespaces: string[] = [];

beforeAll(async () => {
  kubeconfig = inject('kubeconfig');
  clients = createKubeClients(loadKubeConfig({ kubeconfig }));
  context = clients.kubeConfig.getCurrentContext();
  await ensureCrds(clients);
  await servedAfterCrdUpdate(clients);
  scratch = await mkdtemp(join(tmpdir(), 'mooring-approval-it-'));
  gitServer = await startGitServer({ root: join(scratch, 'repos') });
  key = await ageKeygen();
  // Deployments of the bitnami-style chart become ready (only in its namespaces).
  kubelet = await kubeletModule.startFakeKubelet({
    kubeconfig,
    namespaces: (ns) => ns.startsWith(`gate-k-${run}`),
  });
});

afterAll(async () => {
  kubelet?.stop();
  await gitServer?.stop();
  await Promise.all(namespaces.map((name) => clients.core.deleteNamespace({ name }).catch(() => undefined)));
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/**
 * Right after a CRD's schema changes, its storage re-initialises and answers 429 for a moment
 * (the agent simply retries next pass); tests wait that out once.
 */
async function servedAfterCrdUpdate(c: KubeClients): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await createPlanStore({ client: c.rest, namespace: 'default' }).list();
      await createApprovalStore({ client: c.rest, namespace: 'default' }).list('none');
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** The chart of release `web`: a ConfigMap with a greeting, and a Secret with a password. */
const WEB_CHART: Record<string, string> = {
  'Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n',
  'values.yaml': 'greeting: hello\npassword: ""\n',
  'templates/configmap.yaml':
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
  'templates/secret.yaml':
    'apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-db\nstringData:\n  password: {{ .Values.password | quote }}\n',
};

async function writeTree(folder: string, files: Record<string, string>): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(folder, path)), { recursive: true });
    await writeFile(join(folder, path), content);
  }
  return folder;
}

/** A GitOps repository for one cluster: release `web` with plain values and a SOPS-encrypted password. */
async function gitopsRepo(cluster: string, opts: { sync?: ApprovalMode; greeting?: string } = {}) {
  const releaseNs = `${cluster}-web`;
  namespaces.push(releaseNs);
  const files = {
    ...Object.fromEntries(Object.entries(WEB_CHART).map(([path, text]) => [`charts/web/${path}`, text])),
    'environments/prod/values.yaml': `greeting: ${opts.greeting ?? 'hello from git'}\n`,
    [`clusters/${cluster}/cluster.yaml`]: stringify({
      environment: 'prod',
      ...(opts.sync ? { sync: { mode: opts.sync } } : {}),
    }),
    [`clusters/${cluster}/releases.yaml`]: stringify({
      releases: {
        web: { chart: './charts/web', namespace: releaseNs, createNamespace: true, timeout: '30s' },
      },
    }),
    [`clusters/${cluster}/secrets/web.sops.yaml`]: await sopsEncrypt(`password: ${PASSWORD}\n`, {
      recipients: [key.publicKey],
    }),
  };
  const root = join(scratch, 'repos');
  const name = `${cluster}.git`;
  const first = createRepo(root, name, await writeTree(await mkdtemp(join(scratch, 'tree-')), files));
  return {
    url: gitServer.repoUrl(name),
    first,
    releaseNs,
    commit: (changes: Record<string, string | null>, branch = 'main') =>
      commitFiles(root, name, { files: changes, message: `change on ${branch}`, branch }),
  };
}

interface TestAgent {
  agent: Agent;
  pass(opts?: { forceDrift?: boolean }): Promise<PassResult>;
  namespace: string;
  driftChecks: number;
}

/** An agent for `cluster` as `mooring run` builds it, with the gate wired in. */
async function startAgent(
  cluster: string,
  url: string,
  flags: Partial<AgentConfig> = {},
): Promise<TestAgent> {
  const namespace = `${cluster}-agent`;
  if (!namespaces.includes(namespace)) {
    namespaces.push(namespace);
    await clients.core.createNamespace({ body: { metadata: { name: namespace } } });
    // As `mooring run` does at start: the approval policy of its namespace.
    await ensureApprovalPolicy(clients, { namespace });
  }
  const config: AgentConfig = {
    ...defaults({}),
    repo: url,
    cluster,
    namespace,
    workDir: await mkdtemp(join(scratch, 'work-')),
    leaderElection: false,
    listen: '',
    ...flags,
  };
  const identities = await loadAgeIdentities({ env: { SOPS_AGE_KEY: key.identity } });
  const digestKey = secretDigestKey(identities.map((i) => i.deriveKey('digest').toString('hex')));
  const helm = createHelm({ binary: HELM, kubeconfig });
  const git = new GitSource({ url, branch: 'main', workDir: config.workDir });
  const status = createStatusStore({ client: clients.rest, namespace, cluster });
  const events = createEventRecorder({ client: clients.rest, namespace });
  const records = {
    list: () => status.list(),
    update: async (name: string, patch: Parameters<typeof status.update>[1]) => {
      await status.update(name, patch);
    },
    remove: (name: string) => status.remove(name),
  };
  const state = { driftChecks: 0 };
  const drift: DriftChecker = {
    check: async () => {
      state.driftChecks++;
      return { drifted: 0, corrected: 0, failed: 0 };
    },
  };
  const agent = new Agent({
    config,
    source: {
      sync: async () => (await git.sync()).snapshot,
      checkoutRevision: (revision) => git.checkoutRevision(revision),
    },
    helm,
    kube: clients.rest,
    listHelmSecrets: secretMetadataLister(clients.objects),
    records,
    events,
    clusterEvents: events.forObject({ apiVersion: 'v1', kind: 'Namespace', name: namespace, namespace }),
    planDeps: { decrypt: (text, file) => decryptSops(text, file, identities), digestKey },
    gate: createGate({
      clients,
      cluster,
      namespace,
      prune: config.prune,
      records,
      digestKey,
      renderServer: (resolved, chart) =>
        helm.renderOnServer!({
          ...chart,
          release: resolved.release.name,
          namespace: resolved.release.namespace,
          values: resolved.merge.userValues,
          redact: resolved.secretStrings,
        }),
      events,
    }),
    drift,
  });
  return {
    agent,
    namespace,
    get driftChecks() {
      return state.driftChecks;
    },
    async pass(opts = {}) {
      const result = await agent.pass(opts);
      await events.flush();
      return result;
    },
  };
}

/** `mooring approve` as the admin of the rig; resolves with its exit code and output. */
async function approveCli(namespace: string, ...extra: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  const code = await main(
    [
      'approve',
      '--context',
      context,
      '--kubeconfig',
      kubeconfig,
      '--namespace',
      namespace,
      '--yes',
      ...extra,
    ],
    io,
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function greeting(namespace: string): Promise<string | undefined> {
  try {
    return (await clients.core.readNamespacedConfigMap({ name: 'web-config', namespace })).data?.greeting;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

async function approvalsOf(namespace: string, cluster: string) {
  return createApprovalStore({ client: clients.rest, namespace }).list(cluster);
}

describe('a manual cluster', () => {
  it('applies nothing before approval, then exactly the approved revision, and nothing newer', async () => {
    const cluster = `gate-a-${run}`;
    const repo = await gitopsRepo(cluster);
    const a = await startAgent(cluster, repo.url, { approval: 'manual' });

    const waiting = await a.pass();
    expect(waiting).toMatchObject({ outcome: 'pending-approval', revision: repo.first });
    expect(waiting.pending).toContain('waiting for approval');
    expect(await listRevisions(clients.rest, repo.releaseNs, 'web')).toEqual([]);

    // The pending plan, as kubectl shows it: actions, masked diffs, a digest; no secret in clear.
    const plans = createPlanStore({ client: clients.rest, namespace: a.namespace });
    const plan = (await plans.get(planName(cluster, repo.first)))!;
    expect(plan.status).toMatchObject({
      phase: 'pending',
      revision: repo.first,
      changes: 1,
      digest: expect.stringMatching(/^sha256:/),
    });
    const web = plan.status.releases[0]!;
    expect(web).toMatchObject({ name: 'web', action: 'install', secretPaths: [['password']] });
    expect(web.valuesDiff).toContain('+greeting: hello from git');
    expect(web.valuesDiff).toMatch(/\+password: <secret:[0-9a-f]{16}>/);
    expect(web.manifestDiff).toContain('+++ desired/ConfigMap/');
    expect(web.manifestDiff).toMatch(/password: <secret:[0-9a-f]{16}>/);
    expect(JSON.stringify(plan)).not.toContain(PASSWORD);
    const record = await createStatusStore({
      client: clients.rest,
      namespace: a.namespace,
      cluster,
    }).get('web');
    expect(record?.state).toBe('pending-approval');
    const events = await clients.core.listNamespacedEvent({ namespace: a.namespace });
    expect(events.items.map((e) => `${e.involvedObject.kind}/${e.reason}`)).toContain(
      'MooringPlan/PlanPending',
    );

    // Approve the plan shown, then move the branch on before the agent looks again.
    const approved = await approveCli(a.namespace);
    expect(approved.code).toBe(0);
    expect(approved.out).toContain(`cluster ${cluster}`);
    const newer = repo.commit({ 'environments/prod/values.yaml': 'greeting: newer\n' });

    const applied = await a.pass();
    expect(applied).toMatchObject({ outcome: 'converged', revision: repo.first });
    expect(await greeting(repo.releaseNs)).toBe('hello from git');
    const [approval] = await approvalsOf(a.namespace, cluster);
    expect(approval!.status).toMatchObject({
      result: 'applied',
      usedForRevision: repo.first,
      usedAt: expect.any(String),
      // What helm recorded is the manifest the approval bound.
      manifestCheck: 'as-approved',
    });
    expect((await plans.get(planName(cluster, repo.first)))!.status).toMatchObject({
      phase: 'applied',
      approval: approval!.name,
      approvedBy: 'mooring-admin',
    });
    const approvalEvents = await clients.core.listNamespacedEvent({
      namespace: a.namespace,
      fieldSelector: `involvedObject.name=${approval!.name}`,
    });
    expect(approvalEvents.items.map((e) => e.reason)).toEqual(['Approved']);

    // The newer revision waits for its own approval; what runs stays the approved one.
    const next = await a.pass();
    expect(next).toMatchObject({ outcome: 'pending-approval', revision: newer });
    expect(await greeting(repo.releaseNs)).toBe('hello from git');
    const newerPlan = (await plans.get(planName(cluster, newer)))!;
    expect(newerPlan.status.releases[0]).toMatchObject({ action: 'upgrade' });
    expect(newerPlan.status.releases[0]!.valuesDiff).toContain('-greeting: hello from git\n+greeting: newer');
    expect(newerPlan.status.releases[0]!.manifestDiff).toContain(
      '-  greeting: hello from git\n+  greeting: newer',
    );
    // No secret changed: the Secret does not appear in the manifest diff.
    expect(newerPlan.status.releases[0]!.manifestDiff).not.toContain('Secret');
  });

  it('needs a new approval when the plan of the same revision changed, and never reuses a used one', async () => {
    const cluster = `gate-b-${run}`;
    const repo = await gitopsRepo(cluster);
    const a = await startAgent(cluster, repo.url, { approval: 'manual' });
    await a.pass();
    expect((await approveCli(a.namespace)).code).toBe(0);
    expect(await a.pass()).toMatchObject({ outcome: 'converged', revision: repo.first });

    // Someone upgrades the release by hand: helm revision 2, made outside mooring.
    const chart = await writeTree(await mkdtemp(join(scratch, 'chart-')), WEB_CHART);
    await execa(HELM, [
      '--kubeconfig',
      kubeconfig,
      'upgrade',
      'web',
      chart,
      '--reuse-values',
      '--set',
      'greeting=by-hand',
      '-n',
      repo.releaseNs,
    ]);
    // The same revision now plans an upgrade; the used approval does not cover it.
    const after = await a.pass();
    expect(after).toMatchObject({ outcome: 'pending-approval', revision: repo.first });
    expect(await greeting(repo.releaseNs)).toBe('by-hand');

    // Approve that plan; then the live state changes again before the agent applies it.
    expect((await approveCli(a.namespace)).code).toBe(0);
    await execa(HELM, ['--kubeconfig', kubeconfig, 'rollback', 'web', '1', '-n', repo.releaseNs]);
    const refused = await a.pass();
    expect(refused.outcome).toBe('pending-approval');
    expect(refused.pending).toContain('cannot be applied');
    const approvals = await approvalsOf(a.namespace, cluster);
    expect(approvals.map((x) => x.status.result)).toEqual(['rejected', 'applied']);
    expect(approvals[0]!.status.message).toContain('changed since it was published');
    const plan = (await createPlanStore({ client: clients.rest, namespace: a.namespace }).get(
      planName(cluster, repo.first),
    ))!;
    expect(plan.status.phase).toBe('pending');
    expect(plan.status.reason).toContain('cannot be applied');

    // A fresh approval of the current plan goes through.
    expect((await approveCli(a.namespace)).code).toBe(0);
    expect(await a.pass()).toMatchObject({ outcome: 'converged', revision: repo.first });
    expect(await greeting(repo.releaseNs)).toBe('hello from git');
  });

  it('keeps checking drift while a plan waits, unless drift is off', async () => {
    const cluster = `gate-c-${run}`;
    const repo = await gitopsRepo(cluster);
    const a = await startAgent(cluster, repo.url, { approval: 'manual' });
    await a.pass();
    await approveCli(a.namespace);
    await a.pass();
    repo.commit({ 'environments/prod/values.yaml': 'greeting: later\n' });

    const checksBefore = a.driftChecks;
    expect(await a.pass({ forceDrift: true })).toMatchObject({ outcome: 'pending-approval' });
    expect(a.driftChecks).toBe(checksBefore + 1);

    const off = await startAgent(cluster, repo.url, { approval: 'manual', drift: 'off' });
    await off.pass({ forceDrift: true });
    expect(off.driftChecks).toBe(0);
  });
});

describe('an approval of a commit the agent never planned', () => {
  it('is rejected with an Event, applies nothing, and discloses no digest', async () => {
    const cluster = `gate-g-${run}`;
    const repo = await gitopsRepo(cluster);
    const a = await startAgent(cluster, repo.url, { approval: 'manual' });
    expect(await a.pass()).toMatchObject({ outcome: 'pending-approval' });
    expect((await approveCli(a.namespace)).code).toBe(0);
    expect(await a.pass()).toMatchObject({ outcome: 'converged', revision: repo.first });
    expect(await greeting(repo.releaseNs)).toBe('hello from git');

    // A commit pushed to a feature branch: the Git server serves it by sha, but it was never
    // at the head of main, so the agent never planned it and nobody saw its diff.
    const feature = repo.commit(
      { 'environments/prod/values.yaml': 'greeting: from a feature branch\n' },
      'feature',
    );
    const approvals = createApprovalStore({ client: clients.rest, namespace: a.namespace });
    const me = await whoAmI(clients);
    const plans = createPlanStore({ client: clients.rest, namespace: a.namespace });
    const appliedDigest = (await plans.get(planName(cluster, repo.first)))!.status.digest;
    const forged = await approvals.create({
      cluster,
      revision: feature,
      // Whatever digest it carries: here the one the approver saw for the applied plan.
      planDigest: appliedDigest,
      approvedBy: { username: me.username, groups: me.groups },
    });

    const helmBefore = await listRevisions(clients.rest, repo.releaseNs, 'web');
    const result = await a.pass();
    expect(result.revision).toBe(repo.first);
    expect(await greeting(repo.releaseNs)).toBe('hello from git');
    expect(await listRevisions(clients.rest, repo.releaseNs, 'web')).toEqual(helmBefore);

    const [rejected] = (await approvalsOf(a.namespace, cluster)).filter((x) => x.name === forged.name);
    expect(rejected!.status).toMatchObject({
      result: 'rejected',
      message: expect.stringContaining('never planned by this agent'),
    });
    expect(rejected!.status.usedAt).toBeUndefined();
    const events = await clients.core.listNamespacedEvent({
      namespace: a.namespace,
      fieldSelector: `involvedObject.name=${forged.name}`,
    });
    expect(events.items.map((e) => [e.type, e.reason])).toEqual([['Warning', 'ApprovalRejected']]);
    expect(events.items[0]!.message).toContain(`revision ${feature.slice(0, 7)} was never planned`);
    // No digest of any plan is disclosed to the approver, in the Event or the status.
    for (const text of [events.items[0]!.message!, rejected!.status.message!]) {
      expect(text).not.toMatch(/sha256:[0-9a-f]{64}/);
    }
    // No plan was published for the feature commit either.
    expect((await plans.list(cluster)).map((p) => p.status.revision)).not.toContain(feature);
  });
});

describe('a MooringPlan changed outside the agent', () => {
  it('is never applied: the approval is rejected with an Event and the plan is published again', async () => {
    const cluster = `gate-h-${run}`;
    const repo = await gitopsRepo(cluster);
    const a = await startAgent(cluster, repo.url, { approval: 'manual' });
    expect(await a.pass()).toMatchObject({ outcome: 'pending-approval' });

    // Whoever may patch MooringPlan status empties the diff and fixes up the digest.
    const plans = createPlanStore({ client: clients.rest, namespace: a.namespace });
    const name = planName(cluster, repo.first);
    const original = (await plans.get(name))!.status;
    const patched = { ...original, releases: original.releases.map((r) => ({ ...r, valuesDiff: '' })) };
    patched.digest = planDigest(patched);
    await plans.publish(name, patched);
    const me = await whoAmI(clients);
    const approval = await createApprovalStore({
      client: clients.rest,
      namespace: a.namespace,
    }).create({
      cluster,
      revision: repo.first,
      planDigest: patched.digest,
      approvedBy: { username: me.username, groups: me.groups },
    });

    expect(await a.pass()).toMatchObject({ outcome: 'pending-approval' });
    expect(await listRevisions(clients.rest, repo.releaseNs, 'web')).toEqual([]);
    const [rejected] = await approvalsOf(a.namespace, cluster);
    expect(rejected).toMatchObject({ name: approval.name, status: { result: 'rejected' } });
    expect(rejected!.status.message).toContain('its seal does not verify');
    const events = await clients.core.listNamespacedEvent({ namespace: a.namespace });
    expect(events.items.map((e) => `${e.involvedObject.name}/${e.reason}`)).toEqual(
      expect.arrayContaining([`${approval.name}/ApprovalRejected`, `${name}/PlanTampered`]),
    );
    // The plan is the agent's again, and its digest is not the patched one.
    const republished = (await plans.get(name))!.status;
    expect(republished.digest).toBe(original.digest);
    expect(republished.releases[0]!.valuesDiff).toContain('+greeting: hello from git');
  });
});

/** The files of a chart in test/fixtures/charts/, by path inside the chart. */
async function fixtureChart(name: string): Promise<Record<string, string>> {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'charts', name);
  const files: Record<string, string> = {};
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const abs = join(entry.parentPath, entry.name);
    files[relative(root, abs)] = await readFile(abs, 'utf8');
  }
  return files;
}

describe('a bitnami-style chart (library subchart, lookup-kept password, checksum, capabilities, 0755)', () => {
  it('plans as the upgrade renders: converged, it shows no change; an approved upgrade applies just what was shown', async () => {
    const cluster = `gate-k-${run}`;
    const releaseNs = `${cluster}-keeper`;
    namespaces.push(releaseNs);
    const chart = await fixtureChart('keeper');
    const files = {
      ...Object.fromEntries(Object.entries(chart).map(([path, text]) => [`charts/keeper/${path}`, text])),
      'environments/prod/values.yaml': 'replicas: 1\n',
      [`clusters/${cluster}/cluster.yaml`]: stringify({ environment: 'prod' }),
      [`clusters/${cluster}/releases.yaml`]: stringify({
        releases: {
          keeper: { chart: './charts/keeper', namespace: releaseNs, createNamespace: true, timeout: '30s' },
        },
      }),
    };
    const root = join(scratch, 'repos');
    const first = createRepo(
      root,
      `${cluster}.git`,
      await writeTree(await mkdtemp(join(scratch, 'tree-')), files),
    );
    const a = await startAgent(cluster, gitServer.repoUrl(`${cluster}.git`), { approval: 'manual' });
    const plans = createPlanStore({ client: clients.rest, namespace: a.namespace });

    // Install: rendered against the cluster, so the PodDisruptionBudget (the cluster serves
    // policy/v1) is in the plan; the random password differs on every render and is not bound.
    expect(await a.pass()).toMatchObject({ outcome: 'pending-approval', revision: first });
    const install = (await plans.get(planName(cluster, first)))!.status.releases[0]!;
    expect(install).toMatchObject({ name: 'keeper', action: 'install', chartVersion: '1.0.0' });
    expect(install.dryRunError).toBeUndefined();
    expect(install.manifestDiff).toContain('+kind: PodDisruptionBudget');
    expect(install.varyingLines?.length).toBeGreaterThan(0);
    expect((await approveCli(a.namespace)).code).toBe(0);
    expect(await a.pass()).toMatchObject({ outcome: 'converged', revision: first });
    expect((await approvalsOf(a.namespace, cluster))[0]!.status).toMatchObject({
      result: 'applied',
      manifestCheck: 'as-approved',
    });
    const password = async () =>
      (await clients.core.readNamespacedSecret({ name: 'keeper-keeper', namespace: releaseNs })).data!
        .password;
    const kept = await password();

    // An upgrade: the plan shows the replica change, and the one change helm really makes
    // with such a chart: on install the checksum was taken over a second random password
    // (the template is rendered twice), the upgrade takes it over the kept one.
    const upgrade = commitFiles(root, `${cluster}.git`, {
      files: { 'environments/prod/values.yaml': 'replicas: 2\n' },
      message: 'two replicas',
    });
    expect(await a.pass()).toMatchObject({ outcome: 'pending-approval', revision: upgrade });
    const planned = (await plans.get(planName(cluster, upgrade)))!.status.releases[0]!;
    expect(planned).toMatchObject({
      action: 'upgrade',
      chartVersion: '1.0.0',
      deployedChartVersion: '1.0.0',
    });
    expect(planned.dryRunError).toBeUndefined();
    expect(planned.varyingLines).toBeUndefined();
    expect(planned.manifestDiff).toContain('-  replicas: 1\n+  replicas: 2');
    expect(planned.manifestDiff).toMatch(
      /-\s+checksum\/secret: [0-9a-f]{64}\n\+\s+checksum\/secret: [0-9a-f]{64}/,
    );
    for (const surprise of ['kind: Secret', 'PodDisruptionBudget', 'defaultMode', 'password'])
      expect(planned.manifestDiff).not.toContain(surprise);

    expect((await approveCli(a.namespace)).code).toBe(0);
    expect(await a.pass()).toMatchObject({ outcome: 'converged', revision: upgrade });
    const [applied] = await approvalsOf(a.namespace, cluster);
    expect(applied!.status).toMatchObject({ result: 'applied', manifestCheck: 'as-approved' });
    expect(await password()).toBe(kept);
    const deployment = (await clients.objects.readRaw({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'keeper-keeper', namespace: releaseNs },
    })) as {
      spec: { replicas: number; template: { spec: { volumes: { configMap: { defaultMode: number } }[] } } };
    };
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.spec.volumes[0]!.configMap.defaultMode).toBe(0o755);

    // Converged: rendered as the upgrade would render it, nothing would change. (An offline
    // render would show the password and its checksum rotated and the PDB deleted; YAML 1.2
    // would read defaultMode 0755 as 755 and the dry run would be refused.)
    const checkout = await mkdtemp(join(scratch, 'checkout-'));
    await execa('git', ['clone', '--quiet', join(root, `${cluster}.git`), checkout]);
    const helm = createHelm({ binary: HELM, kubeconfig });
    const identities = await loadAgeIdentities({ env: { SOPS_AGE_KEY: key.identity } });
    const digestKey = secretDigestKey(identities.map((i) => i.deriveKey('digest').toString('hex')));
    const converged = await planCluster(checkout, cluster, {
      decrypt: (text, file) => decryptSops(text, file, identities),
      digestKey,
    });
    const raw = new Map<string, { manifest: string }>();
    for (const r of converged.releases) {
      const rendered = await helm.renderOnServer!({
        chart: join(checkout, 'charts', 'keeper'),
        release: r.name,
        namespace: r.namespace,
        values: r.resolved!.merge.userValues,
      });
      raw.set(r.name, { manifest: rendered.manifest });
    }
    const live = await liveDiff(converged, {
      clients,
      namespace: a.namespace,
      digestKey,
      rawManifests: raw,
      where: 'the test cluster',
    });
    expect(live.releases.map((r) => [r.name, r.action, r.manifestDiff, r.valuesDiff, r.dryRunError])).toEqual(
      [['keeper', 'none', '', '', undefined]],
    );
  });
});

describe('the sync mode', () => {
  it('auto applies every revision with no approval', async () => {
    const cluster = `gate-d-${run}`;
    const repo = await gitopsRepo(cluster);
    const a = await startAgent(cluster, repo.url, { approval: 'auto' });
    expect(await a.pass()).toMatchObject({ outcome: 'converged', revision: repo.first });
    expect(await greeting(repo.releaseNs)).toBe('hello from git');
    const newer = repo.commit({ 'environments/prod/values.yaml': 'greeting: next\n' });
    expect(await a.pass()).toMatchObject({ outcome: 'converged', revision: newer });
    expect(await greeting(repo.releaseNs)).toBe('next');
    expect(await createPlanStore({ client: clients.rest, namespace: a.namespace }).list(cluster)).toEqual([]);
  });

  it('cluster.yaml can make an auto agent manual, but not a manual agent auto', async () => {
    const stricter = `gate-e-${run}`;
    const repoE = await gitopsRepo(stricter, { sync: 'manual' });
    const e = await startAgent(stricter, repoE.url, { approval: 'auto' });
    expect(await e.pass()).toMatchObject({ outcome: 'pending-approval' });
    expect(await listRevisions(clients.rest, repoE.releaseNs, 'web')).toEqual([]);

    const looser = `gate-f-${run}`;
    const repoF = await gitopsRepo(looser, { sync: 'auto' });
    const f = await startAgent(looser, repoF.url, { approval: 'manual' });
    expect(await f.pass()).toMatchObject({ outcome: 'pending-approval' });
    expect(await listRevisions(clients.rest, repoF.releaseNs, 'web')).toEqual([]);
    const events = await clients.core.listNamespacedEvent({ namespace: f.namespace });
    expect(events.items.map((x) => x.reason)).toContain('SyncModeIgnored');
  });
});
