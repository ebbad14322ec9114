// `mooring approve --context CTX [--revision SHA] [--yes]`: shows the plan a manual cluster
// is waiting on (the agent's MooringPlan: actions, values and manifest diffs, digest), asks
// for confirmation, and records an Approval naming that exact revision and plan digest.
// The approver is whoever the API server says we are (SelfSubjectReview), and RBAC on
// approvals.mooring.io decides whether we may approve at all.
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { MooringError } from '../errors.js';
import { createApprovalStore, type Approval } from '../gate/approvals.js';
import { createPlanStore, planDigest, type PlanRelease, type StoredPlan } from '../gate/plans.js';
import type { Kube } from '../kube/connect.js';
import { apiErrorMessage, isForbidden } from '../kube/errors.js';
import { whoAmI, type Identity } from '../kube/objects.js';
import { openKubeClients, outputOption } from './common.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { machine, machineFormat, paint, table, type Io, type OutputFormat } from './output.js';
import { showPaged, type runPager } from './pager.js';

export interface ApproveOptions {
  context: string;
  kubeconfig?: string;
  /** The agent's namespace, where its plans and approvals live. */
  namespace: string;
  cluster?: string;
  /** A full sha, or a prefix of at least 7 characters. */
  revision?: string;
  yes?: boolean;
  comment?: string;
  output?: OutputFormat;
  /** Show the diffs of this release only (the summary still lists every release). */
  release?: string;
  /** Approve even a plan whose dry run failed against the cluster. */
  force?: boolean;
  /** false with --no-pager: never page the plan, even on a terminal. */
  pager?: boolean;
}

/** Asking the person at the terminal. */
export interface Prompt {
  /** Whether there is someone to ask (stdin is a terminal). */
  interactive: boolean;
  confirm(question: string): Promise<boolean>;
}

export function stdinPrompt(): Prompt {
  return {
    interactive: Boolean(process.stdin.isTTY),
    async confirm(question) {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return /^(y|yes)$/i.test((await rl.question(question)).trim());
      } finally {
        rl.close();
      }
    },
  };
}

export interface ApproveDeps {
  prompt?: Prompt;
  clients?: Pick<Kube, 'rest'>;
  /** Where `$PAGER` is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Runs the pager (default: the `$PAGER` command through the shell). */
  runPager?: typeof runPager;
}

export async function approve(opts: ApproveOptions, io: Io, deps: ApproveDeps = {}): Promise<ExitCode> {
  const format = machineFormat(opts.output);
  const fail = (code: ExitCode, message: string, hint?: string): ExitCode => {
    if (format) io.out(machine({ approved: false, error: { message, ...(hint ? { hint } : {}) } }, format));
    io.err(`error: ${message}${hint ? ` (${hint})` : ''}`);
    return code;
  };
  if (opts.revision !== undefined && !/^[0-9a-f]{7,40}$/.test(opts.revision)) {
    return fail(
      EXIT.usage,
      `--revision must be a commit sha (at least 7 hex characters), found ${opts.revision}`,
    );
  }
  // An unknown context or an unreadable kubeconfig: the cluster cannot be reached, as in plan.
  const clients = deps.clients ?? openKubeClients(opts);
  if (clients instanceof MooringError) return fail(EXIT.cluster, clients.message, clients.hint);
  const plans = createPlanStore({ client: clients.rest, namespace: opts.namespace });
  const where = `namespace ${opts.namespace} of context ${opts.context}`;

  let all: StoredPlan[];
  try {
    all = await plans.list(opts.cluster);
  } catch (err) {
    return fail(EXIT.cluster, describeApiFailure(err, `cannot read the plans in ${where}`));
  }
  const matching = all.filter((p) => !opts.revision || p.status.revision.startsWith(opts.revision));
  const pending = matching.filter((p) => p.status.phase === 'pending');
  if (pending.length === 0) {
    const other = matching[0];
    if (opts.revision && other) {
      return fail(
        EXIT.failed,
        `the plan of revision ${other.status.shortRevision} for cluster ${other.status.cluster} is ${other.status.phase}, not waiting for approval`,
      );
    }
    return fail(
      EXIT.failed,
      `no plan is waiting for approval in ${where}${opts.cluster ? ` for cluster ${opts.cluster}` : ''}${opts.revision ? ` at revision ${opts.revision}` : ''}`,
      'plans appear when an agent in manual mode sees a revision that changes something',
    );
  }
  const clusters = [...new Set(pending.map((p) => p.status.cluster))].sort();
  if (clusters.length > 1) {
    return fail(
      EXIT.usage,
      `plans of several clusters wait in ${where}: ${clusters.join(', ')}`,
      'choose one with --cluster',
    );
  }
  const revisions = [...new Set(pending.map((p) => p.status.revision))];
  if (revisions.length > 1 && opts.revision) {
    return fail(EXIT.usage, `--revision ${opts.revision} matches several plans: ${revisions.join(', ')}`);
  }
  // Normally one plan waits per cluster (a new revision replaces the pending one).
  const plan = pending[0]!;
  // What is shown must be what is approved: the digest covers every field shown.
  if (planDigest(plan.status) !== plan.status.digest) {
    return fail(
      EXIT.failed,
      `the plan of revision ${plan.status.shortRevision} for cluster ${plan.status.cluster} does not hash to its digest: ` +
        'its status was changed after the agent published it; nothing was approved',
      'the agent publishes it again on its next pass; review that one',
    );
  }

  if (opts.release !== undefined && !plan.status.releases.some((r) => r.name === opts.release)) {
    return fail(
      EXIT.usage,
      `--release ${opts.release}: the plan of revision ${plan.status.shortRevision} has no such release`,
      `its releases: ${plan.status.releases.map((r) => r.name).join(', ')}`,
    );
  }
  if (!format) {
    // The whole plan at once, so that a long one can be paged on a terminal.
    const shown: string[] = [];
    printPlan(plan, { ...io, out: (t) => shown.push(t) }, opts.release);
    await showPaged(shown.join('\n'), io, {
      enabled: opts.pager !== false,
      env: deps.env ?? process.env,
      ...(deps.runPager ? { run: deps.runPager } : {}),
    });
  }

  // A plan the cluster refused would fail when applied: approving it needs --force.
  const refused = plan.status.releases.filter((r) => r.dryRunError);
  if (refused.length && !opts.force) {
    return fail(
      EXIT.failed,
      `the dry run against the cluster failed for ${refused.map((r) => `${r.name} (${r.dryRunError})`).join(', ')}; nothing was approved`,
      'applying it would fail the same way; pass --force to approve it anyway',
    );
  }

  let me: Identity;
  try {
    me = await whoAmI(clients);
  } catch (err) {
    return fail(EXIT.cluster, describeApiFailure(err, 'cannot ask the API server who you are'));
  }

  if (!opts.yes) {
    const prompt = deps.prompt ?? stdinPrompt();
    if (!prompt.interactive) {
      return fail(
        EXIT.usage,
        'refusing to approve without confirmation: stdin is not a terminal',
        'review the plan, then pass --yes to approve non-interactively',
      );
    }
    const ok = await prompt.confirm(
      `\nApprove revision ${plan.status.shortRevision} for cluster ${plan.status.cluster} as ${me.username}? [y/N] `,
    );
    if (!ok) {
      io.err('not approved');
      return EXIT.failed;
    }
    // The agent may have replaced the plan while it was being read.
    const fresh = await plans.get(plan.name).catch(() => undefined);
    if (fresh?.status.digest !== plan.status.digest || fresh.status.phase !== 'pending') {
      return fail(
        EXIT.failed,
        `the plan of cluster ${plan.status.cluster} changed while you reviewed it; nothing was approved`,
        'run mooring approve again to review the current plan',
      );
    }
  }

  let approval: Approval;
  try {
    approval = await createApprovalStore({
      client: clients.rest,
      namespace: opts.namespace,
    }).create({
      cluster: plan.status.cluster,
      revision: plan.status.revision,
      planDigest: plan.status.digest,
      approvedBy: {
        username: me.username,
        ...(me.uid ? { uid: me.uid } : {}),
        groups: me.groups,
      },
      ...(opts.comment ? { comment: opts.comment } : {}),
    });
  } catch (err) {
    return fail(
      EXIT.cluster,
      describeApiFailure(err, `${me.username} may not approve in ${where}`),
      isForbidden(err)
        ? 'approving needs create on approvals.mooring.io in the agent namespace (see docs/approvals.md)'
        : undefined,
    );
  }

  if (format) {
    io.out(machine({ approved: true, approval: approvalJson(approval), plan: plan.status }, format));
  } else {
    io.out(
      `${paint(io, 'green', 'approved')}: revision ${plan.status.shortRevision} of cluster ${plan.status.cluster} ` +
        `(plan ${plan.status.digest}) by ${me.username}, as Approval ${approval.namespace}/${approval.name}`,
    );
    io.out('the agent applies it on its next pass: kubectl get mplan,approvals -n ' + opts.namespace);
  }
  return EXIT.ok;
}

function approvalJson(a: Approval): unknown {
  return { name: a.name, namespace: a.namespace, approvedAt: a.approvedAt, ...a.spec };
}

function describeApiFailure(err: unknown, what: string): string {
  return `${what}: ${err instanceof MooringError ? err.describe() : apiErrorMessage(err)}`;
}

/**
 * A pending plan for people: header, a one-screen summary (per release: action, chart
 * version change, objects added/changed/removed), then the diffs (of one release with
 * `only`).
 */
export function printPlan(plan: StoredPlan, io: Io, only?: string): void {
  const s = plan.status;
  io.out(
    `${paint(io, 'bold', `cluster ${s.cluster}`)}  revision ${s.revision.slice(0, 12)}  plan ${s.digest}`,
  );
  io.out(`${s.phase}${s.reason ? `: ${s.reason}` : ''}`);
  io.out('');
  io.out(
    table(
      ['RELEASE', 'ACTION', 'CHART', 'OBJECTS', 'DRY RUN'],
      s.releases.map((r) => {
        const objects = countObjects(r.manifestDiff ?? '');
        const chart =
          r.deployedChartVersion && r.chartVersion && r.deployedChartVersion !== r.chartVersion
            ? `${r.deployedChartVersion} -> ${r.chartVersion}`
            : (r.chartVersion ?? r.deployedChartVersion ?? '-');
        return [
          r.name,
          paint(io, ACTION_COLOUR[r.action], r.action),
          chart,
          `+${objects.added} ~${objects.changed} -${objects.removed}`,
          r.dryRunError
            ? paint(io, 'red', 'failed')
            : r.action === 'install' || r.action === 'upgrade'
              ? 'ok'
              : '-',
        ];
      }),
    ),
  );
  io.out('');
  printReleaseChanges(
    s.releases.filter((r) => only === undefined || r.name === only),
    io,
  );
  for (const r of s.releases.filter((x) => x.dryRunError && (only === undefined || x.name === only)))
    io.out(`${paint(io, 'red', 'dry run failed')}: ${r.name}: ${r.dryRunError}`);
}

/** Objects a manifest diff adds, changes and removes, from its file headers. */
export function countObjects(diff: string): { added: number; changed: number; removed: number } {
  const out = { added: 0, changed: 0, removed: 0 };
  const lines = diff.split('\n');
  for (const [i, line] of lines.entries()) {
    if (!line.startsWith('--- ')) continue;
    const next = lines[i + 1] ?? '';
    if (!next.startsWith('+++ ')) continue;
    if (line === '--- /dev/null') out.added++;
    else if (next === '+++ /dev/null') out.removed++;
    else out.changed++;
  }
  return out;
}

/** Shape shared by a MooringPlan's releases and `mooring plan --context`. */
export type ReleaseChangeView = Pick<
  PlanRelease,
  | 'name'
  | 'namespace'
  | 'action'
  | 'reason'
  | 'helmRevision'
  | 'valuesDiff'
  | 'manifestDiff'
  | 'notes'
  | 'truncated'
>;

const ACTION_COLOUR = {
  install: 'green',
  upgrade: 'yellow',
  uninstall: 'red',
  none: 'dim',
  error: 'red',
} as const;

export function printReleaseChanges(releases: ReleaseChangeView[], io: Io): void {
  io.out(
    table(
      ['RELEASE', 'NAMESPACE', 'ACTION', 'HELM REV', 'WHY'],
      releases.map((r) => [
        r.name,
        r.namespace,
        paint(io, ACTION_COLOUR[r.action], r.action),
        r.helmRevision === undefined ? '-' : String(r.helmRevision),
        r.reason ?? '',
      ]),
    ),
  );
  for (const r of releases) {
    if (r.valuesDiff) {
      io.out(
        `\n${paint(io, 'bold', `# ${r.name}: values`)} (deployed -> desired; secrets shown as <secret:hash>)`,
      );
      io.out(colourDiff(r.valuesDiff, io));
    }
    if (r.manifestDiff) {
      io.out(`\n${paint(io, 'bold', `# ${r.name}: manifests`)} (live -> desired, server-side dry run)`);
      io.out(colourDiff(r.manifestDiff, io));
    }
    for (const note of r.notes ?? []) io.out(`${paint(io, 'yellow', 'note')}: ${r.name}: ${note}`);
    if (r.truncated)
      io.out(`${paint(io, 'yellow', 'note')}: ${r.name}: diffs were shortened to fit the plan object`);
  }
}

function colourDiff(diff: string, io: Io): string {
  return diff
    .trimEnd()
    .split('\n')
    .map((line) => {
      if (line.startsWith('+++') || line.startsWith('---')) return paint(io, 'bold', line);
      if (line.startsWith('+')) return paint(io, 'green', line);
      if (line.startsWith('-')) return paint(io, 'red', line);
      if (line.startsWith('@@')) return paint(io, 'blue', line);
      return line;
    })
    .join('\n');
}

export function registerApprove(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('approve')
    .description('show the plan a manual cluster waits on, and approve it')
    .requiredOption('--context <name>', 'the kube context of the cluster')
    .option('--revision <sha>', 'approve the plan of this revision (a full sha or a prefix of 7 or more)')
    .option('--cluster <name>', 'the cluster, when plans of several wait in the namespace')
    .option('-n, --namespace <name>', "the agent's namespace", 'mooring-system')
    .option('--kubeconfig <file>', 'kubeconfig file (default: KUBECONFIG, then ~/.kube/config)')
    .option('-y, --yes', 'approve without asking for confirmation')
    .option('--comment <text>', 'a note recorded in the Approval')
    .option('--release <name>', 'show the diffs of this release only')
    .option('--force', 'approve even a plan whose dry run against the cluster failed')
    .option('--no-pager', 'never page the plan (default: $PAGER, or less -R, when stdout is a terminal)')
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
Examples:
  mooring approve --context prod-eu                        # review the pending plan, then confirm
  mooring approve --context prod-eu --release web          # the diffs of one release only
  mooring approve --context prod-eu --revision 1a2b3c4 --yes --comment "CHG-1234"

Exit codes: 0 approved, 1 nothing to approve, declined, or a dry run failed (see --force),
2 wrong usage (or no terminal to confirm on without --yes), 5 the cluster cannot be read or refused.`,
    )
    .action(async (opts: ApproveOptions) => done(await approve(opts, io)));
}
