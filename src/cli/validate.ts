// `mooring validate --repo DIR`: resolves and renders every cluster of the repository and
// reports every error at once, for CI. Exits non-zero on any error.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { MooringError, describeError } from '../errors.js';
import { listClusters, listEnvironments, scanLayer, type Layer } from '../model/repo.js';
import { readYamlFile } from '../model/repo.js';
import { parseReleasesFile } from '../model/releases.js';
import { layoutRoot, resolveInRepo } from '../model/paths.js';
import { computePlan, type PlanOptions } from './plan.js';
import { AgeKeyError } from '../resolve/age-key.js';
import { chartAuthOption, loadKeys, outputOption, pathOption, type Keys } from './common.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { machine, machineFormat, paint, type Io, type OutputFormat } from './output.js';

interface ValidateOptions {
  repo: string;
  /** `--path`: the layout's folder inside repo. */
  path?: string;
  render: boolean;
  ageKeyFile?: string;
  chartAuthFile?: string;
  output?: OutputFormat;
}

interface ClusterReport {
  name: string;
  releases: string[];
  errors: MooringError[];
  /** Not errors: the exit code stays 0 for them. */
  warnings: string[];
}

const NO_RELEASES =
  'resolves to no releases: an agent with --prune refuses this revision (it would uninstall every release) unless it runs with --prune-allow-empty';

/** Problems that belong to no single cluster: broken environment layers, orphan values files. */
function repositoryErrors(root: string): MooringError[] {
  const errors: MooringError[] = [];
  if (!existsSync(resolveInRepo(root, 'clusters'))) {
    errors.push(new MooringError('the repository has no clusters/ folder', { file: 'clusters' }));
  }
  const layers: Layer[] = [];
  for (const env of listEnvironments(root)) {
    try {
      layers.push(scanLayer(root, env === 'common' ? 'common' : 'environment', env, `environments/${env}`));
    } catch (err) {
      errors.push(asError(err));
    }
  }
  for (const cluster of listClusters(root)) {
    try {
      layers.push(scanLayer(root, 'cluster', cluster, `clusters/${cluster}`));
    } catch (err) {
      errors.push(asError(err));
    }
  }
  // A values file for a release no layer declares is almost always a typo.
  const declared = new Set<string>();
  for (const layer of layers) {
    if (!layer.releasesFile) continue;
    try {
      for (const name of Object.keys(
        parseReleasesFile(readYamlFile(root, layer.releasesFile), layer.releasesFile),
      ))
        declared.add(name);
    } catch (err) {
      errors.push(asError(err));
    }
  }
  for (const layer of layers) {
    for (const [release, file] of [...layer.valuesFor, ...layer.secretsFor]) {
      if (!declared.has(release)) {
        errors.push(
          new MooringError(
            `no releases.yaml in the repository declares a release named ${release}`,
            { file },
            {
              hint: 'rename the file after an existing release, or declare the release',
            },
          ),
        );
      }
    }
  }
  return errors;
}

function asError(err: unknown): MooringError {
  return err instanceof MooringError ? err : new MooringError((err as Error).message ?? String(err));
}

function dedupe(errors: MooringError[]): MooringError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = e.describe();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export async function validate(opts: ValidateOptions, io: Io): Promise<ExitCode> {
  if (!existsSync(opts.repo)) {
    throw new MooringError(
      'no such folder',
      { file: opts.repo },
      { hint: '--repo names a checkout of the GitOps repository' },
    );
  }
  opts = { ...opts, repo: layoutRoot(opts.repo, opts.path) };
  const general = repositoryErrors(opts.repo);
  const reports: ClusterReport[] = [];
  // The age keys are read once for every cluster; a key that cannot be read fails each one.
  let keys: Keys | undefined;
  let keyError: MooringError | undefined;
  try {
    keys = await loadKeys(opts);
  } catch (err) {
    keyError = asError(err);
  }
  for (const name of listClusters(opts.repo)) {
    const report: ClusterReport = { name, releases: [], errors: [], warnings: [] };
    try {
      if (keyError) {
        const { message, context, hint } = keyError;
        throw new MooringError(message, { ...context, cluster: name }, hint ? { hint } : {});
      }
      const planOpts: PlanOptions = {
        repo: opts.repo,
        cluster: name,
        render: opts.render,
        ...(opts.ageKeyFile ? { ageKeyFile: opts.ageKeyFile } : {}),
        ...(opts.chartAuthFile ? { chartAuthFile: opts.chartAuthFile } : {}),
      };
      const plan = await computePlan(planOpts, undefined, keys);
      report.releases = plan.releases.map((r) => r.name);
      if (report.releases.length === 0) report.warnings.push(NO_RELEASES);
      for (const r of plan.releases) if (r.error) report.errors.push(r.error);
    } catch (err) {
      const e = asError(err);
      e.context.cluster ??= name;
      report.errors.push(e);
    }
    reports.push(report);
  }
  const all = dedupe([...general, ...reports.flatMap((r) => r.errors)]);
  const format = machineFormat(opts.output);
  if (format) {
    io.out(
      machine(
        {
          ok: all.length === 0,
          clusters: reports.map((r) => ({
            name: r.name,
            releases: r.releases,
            errors: r.errors.map((e) => e.toJSON()),
            warnings: r.warnings,
          })),
          errors: all.map((e) => e.toJSON()),
          warnings: reports.flatMap((r) => r.warnings.map((message) => ({ cluster: r.name, message }))),
        },
        format,
      ),
    );
  } else {
    for (const e of general) io.out(`${paint(io, 'red', 'error')} ${describeError(e)}`);
    for (const r of reports) {
      const mark = r.errors.length ? paint(io, 'red', 'FAIL') : paint(io, 'green', 'ok  ');
      io.out(
        `${mark} ${r.name}: ${r.releases.length} release${r.releases.length === 1 ? '' : 's'}${r.releases.length ? ` (${r.releases.join(', ')})` : ''}`,
      );
      for (const e of dedupe(r.errors)) io.out(`     ${paint(io, 'red', 'error')} ${describeError(e)}`);
      for (const w of r.warnings) io.out(`     ${paint(io, 'yellow', 'warning')} ${w}`);
    }
    io.out(
      all.length
        ? `\n${all.length} error${all.length === 1 ? '' : 's'} in ${opts.repo}`
        : `\n${reports.length} cluster${reports.length === 1 ? '' : 's'} valid`,
    );
  }
  // An age key that cannot be loaded is local configuration, not an invalid repository.
  if (keyError instanceof AgeKeyError) return EXIT.usage;
  return all.length ? EXIT.failed : EXIT.ok;
}

export function registerValidate(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('validate')
    .description('resolve and render every cluster of a repository; for CI')
    .requiredOption('--repo <dir>', 'a checkout of the GitOps repository')
    .addOption(pathOption())
    .option('--no-render', 'skip rendering manifests with helm template')
    .option(
      '--age-key-file <file>',
      'age identities for SOPS files (default: SOPS_AGE_KEY_FILE, SOPS_AGE_KEY)',
    )
    .addOption(chartAuthOption())
    .addOption(outputOption())
    .action(async (opts: ValidateOptions) => done(await validate(opts, io)));
}
