// `mooring plan --repo DIR --cluster C`: what cluster C should run, offline: releases,
// merged values (secrets masked) and rendered manifests (secrets redacted).
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { describeError } from '../errors.js';
import { planCluster, type ClusterPlan } from '../plan/cluster-plan.js';
import { helmFromEnv, loadKeys, type CommonOptions, outputOption } from './common.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { json, paint, table, type Io } from './output.js';

export interface PlanOptions extends CommonOptions {
  repo: string;
  cluster: string;
  render: boolean;
  context?: string;
}

export async function computePlan(opts: PlanOptions): Promise<ClusterPlan> {
  const keys = await loadKeys(opts);
  const helm = opts.render ? helmFromEnv() : undefined;
  return planCluster(opts.repo, opts.cluster, {
    ...keys.planDeps,
    ...(helm
      ? {
          render: (resolved, chart) =>
            helm.template({
              ...chart,
              release: resolved.release.name,
              namespace: resolved.release.namespace,
              values: resolved.merge.userValues,
              redact: resolved.secretStrings,
            }),
        }
      : {}),
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
      dependsOn: r.dependsOn,
      ...(r.digest ? { digest: r.digest } : {}),
      ...(r.values ? { values: r.values } : {}),
      ...(r.manifests !== undefined ? { manifests: r.manifests } : {}),
      ...(r.error ? { error: r.error.toJSON() } : {}),
    })),
    disabled: plan.disabled,
  };
}

export function printPlan(plan: ClusterPlan, io: Io, details = true): void {
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
        r.version ? `${r.chart}@${r.version}` : r.chart,
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
    if (r.manifests !== undefined) {
      io.out(`\n${paint(io, 'bold', `# ${r.name}: manifests`)} (secrets redacted)`);
      io.out(r.manifests.trimEnd());
    }
  }
}

export async function plan(opts: PlanOptions, io: Io): Promise<ExitCode> {
  const result = await computePlan(opts);
  if (opts.output === 'json') io.out(json(planToJson(result)));
  else printPlan(result, io);
  return result.releases.some((r) => r.error) ? EXIT.failed : EXIT.ok;
}

export function registerPlan(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('plan')
    .description('show what a cluster should run: releases, merged values, rendered manifests')
    .requiredOption('--repo <dir>', 'a checkout of the GitOps repository')
    .requiredOption('--cluster <name>', 'the cluster (a folder under clusters/)')
    .option('--context <name>', 'a kube context: also diff against what is live')
    .option('--no-render', 'skip rendering manifests with helm template')
    .option(
      '--age-key-file <file>',
      'age identities for SOPS files (default: SOPS_AGE_KEY_FILE, SOPS_AGE_KEY)',
    )
    .addOption(outputOption())
    .action(async (opts: PlanOptions) => done(await plan(opts, io)));
}
