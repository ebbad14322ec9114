// `mooring approve` and the rules around Approval objects, against the shared control plane:
// RBAC decides who may approve, the admission policy makes the recorded approver the
// requesting user, and the command refuses to approve what nobody confirmed.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { approve, type ApproveOptions, type Prompt } from '../../src/cli/approve.js';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { createApprovalStore } from '../../src/gate/approvals.js';
import { createPlanStore, planDigest, type PlanStatus } from '../../src/gate/plans.js';
import { approvalPolicyName, ensureApprovalPolicy } from '../../src/gate/policy.js';
import {
  apiErrorMessage,
  createKubeClients,
  loadKubeConfig,
  type KubeClients,
} from '../../src/kube/client.js';
import { ensureCrds } from '../../src/observe/crds.js';

const CONTROL_PLANE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '.tools',
  'bin',
  'mooring-controlplane',
);
const REVISION = '4f1c2e9a7b3d5f608192a3b4c5d6e7f809a1b2c3';
const run = Date.now().toString(36).slice(-5);
const ns = `approve-it-${run}`;
const CLUSTER = 'prod-eu';

let kubeconfig: string;
let admin: KubeClients;
let scratch: string;
/** The digest of the plan published in `ns`. */
let digest: string;

beforeAll(async () => {
  kubeconfig = inject('kubeconfig');
  admin = createKubeClients(loadKubeConfig({ kubeconfig }));
  await ensureCrds(admin);
  // The policy of this test's namespace, as the agent installs it at start.
  const policy = await ensureApprovalPolicy(admin, { namespace: ns });
  expect(policy.applied.sort()).toEqual([
    `ValidatingAdmissionPolicy/${approvalPolicyName(ns)}`,
    `ValidatingAdmissionPolicyBinding/${approvalPolicyName(ns)}`,
  ]);
  scratch = await mkdtemp(join(tmpdir(), 'mooring-approve-it-'));
  await admin.core.createNamespace({ body: { metadata: { name: ns } } });
  // Approvers may read plans and create approvals; viewers may only read plans.
  await admin.objects.applyRaw(
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'mooring-approver', namespace: ns },
      rules: [
        {
          apiGroups: ['mooring.io'],
          resources: ['mooringplans', 'approvals'],
          verbs: ['get', 'list', 'watch'],
        },
        { apiGroups: ['mooring.io'], resources: ['approvals'], verbs: ['create'] },
      ],
    },
    { fieldManager: 'test', force: true, dryRun: false },
  );
  await admin.objects.applyRaw(
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'mooring-viewer', namespace: ns },
      rules: [{ apiGroups: ['mooring.io'], resources: ['mooringplans'], verbs: ['get', 'list'] }],
    },
    { fieldManager: 'test', force: true, dryRun: false },
  );
  for (const [role, group] of [
    ['mooring-approver', 'approvers'],
    ['mooring-viewer', 'viewers'],
  ]) {
    await admin.objects.applyRaw(
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: role, namespace: ns },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role! },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: group! }],
      },
      { fieldManager: 'test', force: true, dryRun: false },
    );
  }
  digest = (await publishPlan(ns, CLUSTER)).digest;
  await policyInForce();
});

afterAll(async () => {
  await admin?.core.deleteNamespace({ name: ns }).catch(() => undefined);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** A pending plan as the agent publishes it. */
async function publishPlan(namespace: string, cluster: string, revision = REVISION): Promise<PlanStatus> {
  const status: PlanStatus = {
    cluster,
    revision,
    shortRevision: revision.slice(0, 7),
    digest: '',
    binding: 'sha256:' + 'b'.repeat(64),
    phase: 'pending',
    reason: 'waiting for approval',
    changes: 1,
    createdAt: '2025-06-01T12:00:00.000Z',
    releases: [
      {
        name: 'web',
        namespace: 'web',
        action: 'upgrade',
        reason: 'the desired state changed',
        helmRevision: 4,
        valuesDiff:
          '--- deployed/web/values.yaml\n+++ desired/web/values.yaml\n@@ -1,2 +1,2 @@\n-replicas: 2\n+replicas: 3\n password: <secret:0123456789abcdef>\n',
      },
    ],
  };
  status.digest = planDigest(status);
  const plans = createPlanStore({ client: admin.rest, namespace });
  await servedAfterCrdUpdate(() => plans.list());
  await plans.publish(`${cluster}-${revision.slice(0, 12)}`, status);
  return status;
}

async function servedAfterCrdUpdate(probe: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await probe();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** A forged approval, dry-run: the API server applies admission policies to dry runs too. */
function forged(namespace: string, username: string) {
  return {
    apiVersion: 'mooring.io/v1alpha1',
    kind: 'Approval',
    metadata: { generateName: 'forged-', namespace },
    spec: {
      cluster: CLUSTER,
      revision: REVISION,
      planDigest: 'sha256:' + 'd'.repeat(64),
      approvedBy: { username },
    },
  };
}

/** Policies take effect once the API server has loaded them: wait until a forgery is refused. */
async function policyInForce(): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await admin.customObjects.createNamespacedCustomObject({
        group: 'mooring.io',
        version: 'v1alpha1',
        plural: 'approvals',
        namespace: ns,
        body: forged(ns, 'somebody-else'),
        dryRun: 'All',
      });
    } catch (err) {
      if (apiErrorMessage(err).includes(approvalPolicyName(ns))) return;
      throw err;
    }
    if (Date.now() > deadline) throw new Error('the approval policy did not take effect');
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A kubeconfig for another user, with a client certificate minted by the control plane. */
async function mintUser(user: string, group: string): Promise<string> {
  const out = join(scratch, `${user}.kubeconfig`);
  await execa(CONTROL_PLANE, [
    'mint',
    '--dir',
    dirname(kubeconfig),
    '--user',
    user,
    '--group',
    group,
    '--out',
    out,
  ]);
  return out;
}

function capture(): Io & { text(): string; errors(): string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    colour: false,
    text: () => out.join('\n'),
    errors: () => err.join('\n'),
  };
}

/** Options for `approve` as the user of kubeconfig `user`, through its own context. */
function options(user: string, extra: Partial<ApproveOptions> = {}): ApproveOptions {
  const context = loadKubeConfig({ kubeconfig: user }).getCurrentContext();
  return { context, kubeconfig: user, namespace: ns, output: 'text', ...extra };
}

const approvals = () => createApprovalStore({ client: admin.rest, namespace: ns }).list(CLUSTER);

describe('mooring approve', () => {
  it('shows the pending plan and records who approved, as the API server knows them', async () => {
    const alice = await mintUser(`alice-${run}`, 'approvers');
    const io = capture();
    const code = await main(
      [
        'approve',
        '--context',
        options(alice).context,
        '--kubeconfig',
        alice,
        '--namespace',
        ns,
        '--yes',
        '--comment',
        'change 42',
      ],
      io,
    );
    expect(code).toBe(0);
    expect(io.text()).toContain(`cluster ${CLUSTER}  revision ${REVISION.slice(0, 12)}  plan ${digest}`);
    expect(io.text()).toMatch(/web\s+web\s+upgrade\s+4\s+the desired state changed/);
    expect(io.text()).toContain('-replicas: 2\n+replicas: 3');
    expect(io.text()).toContain(`approved: revision ${REVISION.slice(0, 7)} of cluster ${CLUSTER}`);

    const [approval] = await approvals();
    expect(approval!.spec).toEqual({
      cluster: CLUSTER,
      revision: REVISION,
      planDigest: digest,
      approvedBy: { username: `alice-${run}`, groups: ['approvers', 'system:authenticated'] },
      comment: 'change 42',
    });
    // When it was approved is the API server's time, not a value the client sent.
    expect(approval!.approvedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('answers in JSON for scripts', async () => {
    const alice = await mintUser(`alice-json-${run}`, 'approvers');
    const io = capture();
    expect(await approve(options(alice, { yes: true, output: 'json' }), io)).toBe(0);
    const out = JSON.parse(io.text()) as {
      approved: boolean;
      approval: { name: string; approvedBy: { username: string } };
    };
    expect(out.approved).toBe(true);
    expect(out.approval.approvedBy.username).toBe(`alice-json-${run}`);
    expect((await approvals()).map((a) => a.name)).toContain(out.approval.name);
  });

  it('refuses a user RBAC does not allow to approve', async () => {
    const before = (await approvals()).length;
    const carol = await mintUser(`carol-${run}`, 'viewers');
    const io = capture();
    expect(await approve(options(carol, { yes: true }), io)).toBe(5);
    expect(io.errors()).toContain(`carol-${run} may not approve in namespace ${ns}`);
    expect(io.errors()).toContain('cannot create resource "approvals"');
    expect(io.errors()).toContain('create on approvals.mooring.io');

    const bob = await mintUser(`bob-${run}`, 'nobody');
    const io2 = capture();
    expect(await approve(options(bob, { yes: true }), io2)).toBe(5);
    expect(io2.errors()).toContain('cannot read the plans');
    expect((await approvals()).length).toBe(before);
  });

  it('asks before approving, and approves nothing without a yes', async () => {
    const alice = await mintUser(`alice-ask-${run}`, 'approvers');
    const before = (await approvals()).length;
    const asked: string[] = [];
    const answer = (yes: boolean): Prompt => ({
      interactive: true,
      confirm: async (q) => {
        asked.push(q);
        return yes;
      },
    });

    const declined = capture();
    expect(await approve(options(alice), declined, { prompt: answer(false) })).toBe(1);
    expect(asked[0]).toContain(
      `Approve revision ${REVISION.slice(0, 7)} for cluster ${CLUSTER} as alice-ask-${run}? [y/N]`,
    );
    expect(declined.errors()).toContain('not approved');

    const noTerminal = capture();
    const prompt: Prompt = { interactive: false, confirm: async () => true };
    expect(await approve(options(alice), noTerminal, { prompt })).toBe(2);
    expect(noTerminal.errors()).toContain(
      'refusing to approve without confirmation: stdin is not a terminal',
    );
    expect(noTerminal.errors()).toContain('--yes');
    expect((await approvals()).length).toBe(before);

    expect(await approve(options(alice), capture(), { prompt: answer(true) })).toBe(0);
    expect((await approvals()).length).toBe(before + 1);
  });

  it('refuses a plan whose shown content does not hash to its digest', async () => {
    const patched = `approve-patched-${run}`;
    await admin.core.createNamespace({ body: { metadata: { name: patched } } });
    try {
      const status = await publishPlan(patched, CLUSTER);
      // Someone who may patch MooringPlan status hides the replica change from the diff.
      const plans = createPlanStore({ client: admin.rest, namespace: patched });
      await plans.publish(`${CLUSTER}-${REVISION.slice(0, 12)}`, {
        ...status,
        releases: [{ ...status.releases[0]!, valuesDiff: '' }],
      });
      const io = capture();
      expect(await approve(options(kubeconfig, { namespace: patched, yes: true }), io)).toBe(1);
      expect(io.errors()).toContain('does not hash to its digest');
      expect(io.errors()).toContain('nothing was approved');
      expect(await createApprovalStore({ client: admin.rest, namespace: patched }).list(CLUSTER)).toEqual([]);
    } finally {
      await admin.core.deleteNamespace({ name: patched }).catch(() => undefined);
    }
  });

  it('starts with a summary, shows one release with --release, and refuses a failed dry run unless --force', async () => {
    const refused = `approve-refused-${run}`;
    await admin.core.createNamespace({ body: { metadata: { name: refused } } });
    try {
      const status = await publishPlan(refused, CLUSTER);
      const withError = {
        ...status,
        releases: [
          {
            ...status.releases[0]!,
            chartVersion: '1.3.0',
            deployedChartVersion: '1.2.0',
            dryRunError: 'Deployment/web/web: the API server refused it: spec.replicas: Invalid value: -1',
            manifestDiff:
              '--- live/ConfigMap/web/a\n+++ desired/ConfigMap/web/a\n@@ -1 +1 @@\n-x\n+y\n' +
              '--- /dev/null\n+++ desired/ConfigMap/web/b\n@@ -0,0 +1 @@\n+z\n',
          },
          { name: 'api', namespace: 'api', action: 'none' as const, reason: 'up to date' },
        ],
      };
      withError.digest = planDigest(withError);
      const plans = createPlanStore({ client: admin.rest, namespace: refused });
      await plans.publish(`${CLUSTER}-${REVISION.slice(0, 12)}`, withError);

      const io = capture();
      expect(await approve(options(kubeconfig, { namespace: refused, yes: true, release: 'web' }), io)).toBe(
        1,
      );
      expect(io.text()).toMatch(/web\s+upgrade\s+1\.2\.0 -> 1\.3\.0\s+\+1 ~1 -0\s+failed/);
      expect(io.text()).toMatch(/api\s+none\s+-\s+\+0 ~0 -0/);
      expect(io.errors()).toContain('the dry run against the cluster failed for web');
      expect(io.errors()).toContain('--force');
      const approvalsIn = () => createApprovalStore({ client: admin.rest, namespace: refused }).list(CLUSTER);
      expect(await approvalsIn()).toEqual([]);

      const unknown = capture();
      expect(
        await approve(options(kubeconfig, { namespace: refused, yes: true, release: 'nope' }), unknown),
      ).toBe(2);

      expect(
        await approve(options(kubeconfig, { namespace: refused, yes: true, force: true }), capture()),
      ).toBe(0);
      expect((await approvalsIn()).length).toBe(1);
    } finally {
      await admin.core.deleteNamespace({ name: refused }).catch(() => undefined);
    }
  });

  it('says so when nothing waits, and asks which cluster when several do', async () => {
    const empty = `approve-empty-${run}`;
    await admin.core.createNamespace({ body: { metadata: { name: empty } } });
    try {
      const io = capture();
      expect(await approve(options(kubeconfig, { namespace: empty, yes: true }), io)).toBe(1);
      expect(io.errors()).toContain(`no plan is waiting for approval in namespace ${empty}`);

      await publishPlan(empty, 'prod-eu');
      await publishPlan(empty, 'prod-us', 'e'.repeat(40));
      const both = capture();
      expect(await approve(options(kubeconfig, { namespace: empty, yes: true }), both)).toBe(2);
      expect(both.errors()).toContain('plans of several clusters wait');
      expect(both.errors()).toContain('prod-eu, prod-us');
      const one = capture();
      expect(
        await approve(options(kubeconfig, { namespace: empty, yes: true, cluster: 'prod-us' }), one),
      ).toBe(0);
      expect(one.text()).toContain('of cluster prod-us');
    } finally {
      await admin.core.deleteNamespace({ name: empty }).catch(() => undefined);
    }
  });
});

describe('the approval admission policy', () => {
  it('rejects an approval that names someone else as approver, even from a user allowed to approve', async () => {
    const alice = createKubeClients(
      loadKubeConfig({ kubeconfig: await mintUser(`alice-forger-${run}`, 'approvers') }),
    );
    const attempt = alice.customObjects.createNamespacedCustomObject({
      group: 'mooring.io',
      version: 'v1alpha1',
      plural: 'approvals',
      namespace: ns,
      body: forged(ns, 'the-cto'),
    });
    await expect(attempt).rejects.toMatchObject({ code: 403 });
    const message = await attempt.catch((err: unknown) => apiErrorMessage(err));
    expect(message).toContain(
      `spec.approvedBy.username must be the user making the request (alice-forger-${run}), not the-cto`,
    );
  });

  it("rejects an approval that sets its own approval time: that is the API server's", async () => {
    const alice = createKubeClients(
      loadKubeConfig({ kubeconfig: await mintUser(`alice-clock-${run}`, 'approvers') }),
    );
    const body = forged(ns, `alice-clock-${run}`);
    const attempt = alice.customObjects.createNamespacedCustomObject({
      group: 'mooring.io',
      version: 'v1alpha1',
      plural: 'approvals',
      namespace: ns,
      body: { ...body, spec: { ...body.spec, approvedAt: '2020-01-01T00:00:00Z' } },
    });
    await expect(attempt).rejects.toMatchObject({ code: 422 });
    expect(await attempt.catch((err: unknown) => apiErrorMessage(err))).toContain(
      'spec.approvedAt must be left out',
    );
  });

  it('rejects changing an approval on behalf of its approver', async () => {
    const [approval] = await approvals();
    const attempt = admin.customObjects.patchNamespacedCustomObject({
      group: 'mooring.io',
      version: 'v1alpha1',
      plural: 'approvals',
      namespace: ns,
      name: approval!.name,
      body: [{ op: 'add', path: '/metadata/labels/tampered', value: 'yes' }],
    });
    await expect(attempt).rejects.toMatchObject({ code: 403 });
    expect(await attempt.catch((err: unknown) => apiErrorMessage(err))).toContain(approvalPolicyName(ns));
  });

  it('lets the agent record the use of an approval (the status subresource)', async () => {
    const store = createApprovalStore({ client: admin.rest, namespace: ns });
    const [approval] = await store.list(CLUSTER);
    const claimed = await store.claim(approval!, '2025-06-01T12:05:00.000Z');
    expect(claimed?.status).toEqual({ usedAt: '2025-06-01T12:05:00.000Z', usedForRevision: REVISION });
    // A second claim from what was read before loses: an approval is used once.
    expect(await store.claim(approval!, '2025-06-01T12:06:00.000Z')).toBeUndefined();
  });
});

describe('mooring approve on a terminal', () => {
  // The real command (bin/mooring.js), its stdout a pipe, or a pseudo-terminal made by
  // script(1); PAGER is a script that records what it was given.
  const pagerNs = `approve-pager-${run}`;
  const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mooring.js');
  const LONG = Array.from({ length: 80 }, (_, i) => `line-${i}`);
  let pager: string;
  let recorded: string;

  beforeAll(async () => {
    await admin.core.createNamespace({ body: { metadata: { name: pagerNs } } });
    const status: PlanStatus = {
      cluster: 'paged',
      revision: REVISION,
      shortRevision: REVISION.slice(0, 7),
      digest: '',
      binding: 'sha256:' + 'c'.repeat(64),
      phase: 'pending',
      reason: 'waiting for approval',
      changes: 1,
      createdAt: '2025-06-01T12:00:00.000Z',
      releases: [
        {
          name: 'web',
          namespace: 'web',
          action: 'upgrade',
          reason: 'the desired state changed',
          helmRevision: 4,
          valuesDiff: `--- deployed/web/values.yaml\n+++ desired/web/values.yaml\n@@ -1,80 +1,80 @@\n${LONG.map((l) => `-${l}: a\n+${l}: b\n`).join('')}`,
        },
      ],
    };
    status.digest = planDigest(status);
    await createPlanStore({ client: admin.rest, namespace: pagerNs }).publish(
      `paged-${REVISION.slice(0, 12)}`,
      status,
    );
    pager = join(scratch, 'record-pager.sh');
    recorded = join(scratch, 'paged.txt');
    await writeFile(pager, '#!/bin/sh\ncat > "$1"\n');
    await chmod(pager, 0o755);
  });

  afterAll(async () => {
    await admin?.core.deleteNamespace({ name: pagerNs }).catch(() => undefined);
  });

  const args = (...extra: string[]) => [
    BIN,
    'approve',
    '--context',
    loadKubeConfig({ kubeconfig }).getCurrentContext(),
    '--kubeconfig',
    kubeconfig,
    '-n',
    pagerNs,
    ...extra,
  ];
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  /** The command under script(1): its stdout (and stdin) is a pseudo-terminal. */
  const onTerminal = (...extra: string[]) =>
    execa('script', ['-qec', ['node', ...args(...extra)].map(quote).join(' '), '/dev/null'], {
      env: { PAGER: `${pager} ${recorded}`, NO_COLOR: '1' },
      stdin: 'ignore',
      reject: false,
    });

  it('never pages into a pipe: the plan is printed whole', async () => {
    await rm(recorded, { force: true });
    const piped = await execa('node', args(), {
      env: { PAGER: `${pager} ${recorded}` },
      stdin: 'ignore',
      reject: false,
    });
    // No terminal to ask on and no --yes: the plan is shown, then nothing is approved.
    expect(piped.exitCode, piped.stderr).toBe(2);
    expect(piped.stdout).toContain('-line-79: a\n+line-79: b');
    expect(existsSync(recorded)).toBe(false);
  });

  it('pages a long plan through $PAGER on a terminal, then approves', async () => {
    await rm(recorded, { force: true });
    const shown = await onTerminal('--yes');
    expect(shown.exitCode, shown.stdout).toBe(0);
    const paged = await readFile(recorded, 'utf8');
    expect(paged).toContain('cluster paged  revision');
    expect(paged).toContain('-line-0: a\n+line-0: b');
    expect(paged).toContain('-line-79: a\n+line-79: b');
    // The diff went to the pager, not to the terminal; the outcome did.
    expect(shown.stdout).not.toContain('line-40');
    expect(shown.stdout).toContain('approved: revision 4f1c2e9 of cluster paged');
  });

  it('with --no-pager, prints the plan on the terminal', async () => {
    await rm(recorded, { force: true });
    const shown = await onTerminal('--yes', '--no-pager');
    expect(shown.exitCode, shown.stdout).toBe(0);
    expect(existsSync(recorded)).toBe(false);
    expect(shown.stdout.replace(/\r\n/g, '\n')).toContain('-line-79: a\n+line-79: b');
  });
});
