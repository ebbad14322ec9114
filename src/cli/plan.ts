// `mooring plan --repo DIR --cluster C`: what cluster C should run, offline: releases,
// merged values (secrets masked) and rendered manifests (secrets redacted). With
// `--context`, also what applying it would change there: per release the action, the values
// diff against what helm deployed and the manifest diff against the live objects.
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { describeError } from '../errors.js';
import { liveDiff, type LiveDiff } from '../gate/live-cluster.js';
import { connect } from '../kube/connect.js';
import { planCluster, type ClusterPlan, type PlannedRelease } from '../plan/cluster-plan.js';
import { parseCrds } from '../converge/crds.js';
import { printReleaseChanges } from './approve.js';
import {
  chartAuthOption,
  helmFromEnv,
  loadKeys,
  type CommonOptions,
  type Keys,
  collect,
  outputOption,
  pathOption,
} from './common.js';
import { layoutRoot } from '../model/paths.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { machine, machineFormat, paint, table, type Io } from './output.js';

export interface PlanOptions extends CommonOptions {
  repo: string;
  cluster: string;
  render: boolean;
  context?: string;
  kubeconfig?: string;
  /** The agent's namespace, where its MooringRelease records are (with --context). */
  namespace?: string;
  /** `--release`: only these releases (repeatable). */
  release?: string[];
}

/** A release's unredacted render, kept in memory only for the live diff; or why it failed. */
export type RawRender = { manifest: string } | { error: unknown };

/**
 * `rawManifests` receives each release's unredacted render. Offline that is `helm template`;
 * with `--context` it is what the upgrade would render there (helm's server-side dry run, as
 * the agent's plans: `lookup` and `.Capabilities` are that cluster's), and a release the
 * cluster refuses is kept as its error for the live diff, not as an error of the plan.
 */
export async function computePlan(
  opts: PlanOptions,
  rawManifests?: Map<string, RawRender>,
  keys?: Keys,
): Promise<ClusterPlan> {
  keys ??= await loadKeys(opts);
  const onServer = opts.context !== undefined;
  const helm = opts.render
    ? helmFromEnv(
        onServer
          ? { context: opts.context!, ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}) }
          : {},
      )
    : undefined;
  return planCluster(
    opts.repo,
    opts.cluster,
    {
      ...keys.planDeps,
      ...(helm
        ? {
            render: async (resolved, chart) => {
              const input = {
                ...chart,
                release: resolved.release.name,
                namespace: resolved.release.namespace,
                values: resolved.merge.userValues,
                redact: resolved.secretStrings,
              };
              if (!onServer) {
                const raw = await helm.template(input);
                rawManifests?.set(resolved.release.name, { manifest: raw });
                return raw;
              }
              try {
                const { manifest } = await helm.renderOnServer!(input);
                rawManifests?.set(resolved.release.name, { manifest });
                return manifest;
              } catch (error) {
                rawManifests?.set(resolved.release.name, { error });
                return '';
              }
            },
          }
        : {}),
    },
    opts.release?.length ? { releases: opts.release } : {},
  );
}

/** What applying `plan` would change in the cluster of `opts.context`. */
async function diffAgainstLive(
  opts: PlanOptions,
  plan: ClusterPlan,
  rawManifests: Map<string, RawRender>,
  digestKey: Buffer,
): Promise<LiveDiff> {
  const kube = connect({
    ...(opts.context ? { context: opts.context } : {}),
    ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
  });
  return liveDiff(plan, {
    clients: kube,
    namespace: opts.namespace ?? 'mooring-system',
    digestKey,
    ...(opts.render ? { rawManifests } : {}),
    where: `context ${kube.context}`,
  });
}

export function planToJson(plan: ClusterPlan): unknown {
  return {
    cluster: plan.cluster,
    releases: plan.releases.map((r) => ({
      name: r.name,
      namespace: r.namespace,
      chart: r.chart,
      ...(r.version ? { version: r.version } : {}),
      ...(r.versionConstraint ? { versionConstraint: r.versionConstraint } : {}),
      ...(r.chartDigest ? { chartDigest: r.chartDigest } : {}),
      dependsOn: r.dependsOn,
      ...(r.digest ? { digest: r.digest } : {}),
      ...(r.values ? { values: r.values } : {}),
      ...(r.manifests !== undefined ? { manifests: r.manifests } : {}),
      ...(crdsOf(r) ? { crds: crdsOf(r) } : {}),
      ...(r.error ? { error: r.error.toJSON() } : {}),
    })),
    disabled: plan.disabled,
  };
}

/** The CRDs of the chart's crds/ folders and what the release's `crds:` option does with them. */
function crdsOf(r: PlannedRelease): { policy: string; names: string[] } | undefined {
  const resolved = r.resolved;
  if (!resolved || resolved.crds.length === 0) return undefined;
  try {
    return { policy: resolved.release.crds, names: parseCrds(resolved.crds).map((c) => c.name) };
  } catch {
    return undefined;
  }
}

const CRD_POLICY_TEXT: Record<string, string> = {
  Skip: 'not installed',
  Create: 'created if missing, never changed',
  CreateReplace: 'created if missing, replaced when they differ',
};

/** `chart@version`, with the range it was resolved from when that differs. */
function chartColumn(r: { chart: string; version?: string; versionConstraint?: string }): string {
  if (!r.version) return r.chart;
  const range = r.versionConstraint && r.versionConstraint !== r.version ? ` (${r.versionConstraint})` : '';
  return `${r.chart}@${r.version}${range}`;
}

/** `context`: the manifests were rendered against that cluster (`--context`), not offline. */
export function printPlan(plan: ClusterPlan, io: Io, details = true, context?: string): void {
  const c = plan.cluster;
  const identity = [
    `environment ${c.environment}`,
    c.region && `region ${c.region}`,
    c.cloud && `cloud ${c.cloud}`,
  ]
    .filter(Boolean)
    .join(', ');
  io.out(
    `${paint(io, 'bold', `cluster ${c.name}`)} (${identity})${c.sync ? `, sync ${c.sync.mode} (cluster.yaml)` : ''}`,
  );
  io.out('');
  io.out(
    table(
      ['RELEASE', 'NAMESPACE', 'CHART', 'DEPENDS ON', 'DIGEST', 'STATUS'],
      plan.releases.map((r) => [
        r.name,
        r.namespace,
        chartColumn(r),
        r.dependsOn.join(',') || '-',
        r.digest ? r.digest.slice(7, 19) : '-',
        r.error ? paint(io, 'red', 'error') : paint(io, 'green', 'ok'),
      ]),
    ),
  );
  if (plan.disabled.length) io.out(`\ndisabled: ${plan.disabled.join(', ')}`);
  for (const r of plan.releases.filter((x) => x.error))
    io.err(`${paint(io, 'red', 'error')}: ${r.name}: ${describeError(r.error)}`);
  if (!details) return;
  for (const r of plan.releases) {
    if (!r.values) continue;
    io.out(`\n${paint(io, 'bold', `# ${r.name}: values`)} (secrets masked)`);
    io.out(stringify(r.values).trimEnd());
    const crds = crdsOf(r);
    if (crds) {
      io.out(
        `\n${paint(io, 'bold', `# ${r.name}: CRDs`)} (crds: ${crds.policy}: ${CRD_POLICY_TEXT[crds.policy]})`,
      );
      for (const name of crds.names) io.out(name);
    }
    if (r.manifests !== undefined) {
      const how = context ? `rendered against context ${context}` : 'helm template';
      io.out(`\n${paint(io, 'bold', `# ${r.name}: manifests`)} (${how}; secrets redacted)`);
      io.out(r.manifests.trimEnd());
    }
  }
}

export async function plan(opts: PlanOptions, io: Io): Promise<ExitCode> {
  const keys = await loadKeys(opts);
  const raw = new Map<string, RawRender>();
  const result = await computePlan(opts, raw, keys);
  // A release the cluster refused has no manifests to show; the live diff says why.
  for (const r of result.releases) if (raw.get(r.name) && 'error' in raw.get(r.name)!) delete r.manifests;
  let live: LiveDiff | undefined;
  if (opts.context !== undefined) {
    try {
      live = await diffAgainstLive(opts, result, raw, keys.planDeps.digestKey);
      // Releases left out with --release would read as orphaned: show only those asked for.
      const only = opts.release;
      if (only?.length) live = { ...live, releases: live.releases.filter((r) => only.includes(r.name)) };
    } catch (err) {
      io.err(`error: ${describeError(err)}`);
      return EXIT.cluster;
    }
  }
  const format = machineFormat(opts.output);
  if (format) {
    io.out(
      machine({ ...(planToJson(result) as object), ...(live ? { live: liveToJson(live) } : {}) }, format),
    );
  } else {
    printPlan(result, io, true, opts.context);
    if (live) {
      io.out(
        `\n${paint(io, 'bold', `# against context ${opts.context}`)}: what applying this plan would change`,
      );
      printReleaseChanges(live.releases, io);
      for (const r of live.releases.filter((x) => x.dryRunError))
        io.out(`${paint(io, 'red', 'dry run failed')}: ${r.name}: ${r.dryRunError}`);
      for (const note of live.notes) io.out(`${paint(io, 'yellow', 'note')}: ${note}`);
    }
  }
  // A release the cluster would refuse cannot be applied as planned.
  const refused = live?.releases.some((r) => r.dryRunError) ?? false;
  return result.releases.some((r) => r.error) || refused ? EXIT.failed : EXIT.ok;
}

function liveToJson(live: LiveDiff): unknown {
  return {
    releases: live.releases.map((r) => ({
      name: r.name,
      namespace: r.namespace,
      action: r.action,
      reason: r.reason,
      ...(r.desiredDigest ? { desiredDigest: r.desiredDigest } : {}),
      ...(r.deployedDigest ? { deployedDigest: r.deployedDigest } : {}),
      ...(r.helmRevision !== undefined ? { helmRevision: r.helmRevision } : {}),
      valuesDiff: r.valuesDiff,
      manifestDiff: r.manifestDiff,
      ...(r.dryRunError ? { dryRunError: r.dryRunError } : {}),
      notes: r.notes,
    })),
    notes: live.notes,
  };
}

export function registerPlan(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('plan')
    .description('show what a cluster should run: releases, merged values, rendered manifests')
    .requiredOption('--repo <dir>', 'a checkout of the GitOps repository')
    .addOption(pathOption())
    .requiredOption('--cluster <name>', 'the cluster (a folder under clusters/)')
    .option(
      '--release <name>',
      'only this release (repeat for several); the others are not resolved or rendered',
      collect,
    )
    .option(
      '--context <name>',
      'a kube context: render there as the upgrade would (server-side dry run) and diff against what is live',
    )
    .option('--kubeconfig <file>', 'kubeconfig file for --context (default: KUBECONFIG, then ~/.kube/config)')
    .option(
      '-n, --namespace <name>',
      "the agent's namespace, for mooring's release records",
      'mooring-system',
    )
    .option('--no-render', 'skip rendering manifests')
    .option(
      '--age-key-file <file>',
      'age identities for SOPS files (default: SOPS_AGE_KEY_FILE, SOPS_AGE_KEY)',
    )
    .addOption(chartAuthOption())
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
Examples:
  mooring plan --repo . --cluster prod-eu-west                       # every release, offline
  mooring plan --repo . --cluster prod-eu-west --release web         # one release only
  mooring plan --repo . --cluster prod-eu-west --context prod-eu     # and what would change live
  mooring plan --repo . --cluster prod-eu-west --no-render -o json | jq '.releases[].digest'

Exit codes: 0 planned; 1 a release has an error, the cluster of --context refuses its dry run,
or --release/--cluster names none; 2 wrong usage; 5 the cluster of --context cannot be read.`,
    )
    .action(async (opts: PlanOptions) =>
      done(await plan({ ...opts, repo: layoutRoot(opts.repo, opts.path) }, io)),
    );
}
