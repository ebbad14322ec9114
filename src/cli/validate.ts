// `mooring validate --repo DIR`: resolves and renders every cluster of the repository and
// reports every error at once, for CI. Exits non-zero on any error.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { MooringError, describeError } from '../errors.js';
import {
  listClusters,
  listEnvironments,
  loadClusterSpec,
  scanLayer,
  unknownClusterError,
  type Layer,
} from '../model/repo.js';
import { readYamlFile } from '../model/repo.js';
import { parseReleasesFile } from '../model/releases.js';
import { layoutRoot, resolveInRepo } from '../model/paths.js';
import { computePlan, type PlanOptions } from './plan.js';
import { AgeKeyError } from '../resolve/age-key.js';
import { chartAuthOption, collect, loadKeys, outputOption, pathOption, type Keys } from './common.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { machine, machineFormat, paint, type Io, type OutputFormat } from './output.js';

interface ValidateOptions {
  repo: string;
  /** `--path`: the layout's folder inside repo. */
  path?: string;
  render: boolean;
  /** `--cluster`: only these clusters (repeatable), and the layers they read. */
  cluster?: string[];
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

/**
 * Problems that belong to no single cluster: broken environment layers, orphan values files.
 * With `only` (validate --cluster), only the layers those clusters read are checked; the
 * releases every layer declares still count, so a values file is an orphan with --cluster
 * exactly when it is one without.
 */
function repositoryErrors(root: string, only?: readonly string[]): MooringError[] {
  const errors: MooringError[] = [];
  if (!existsSync(resolveInRepo(root, 'clusters'))) {
    errors.push(new MooringError('the repository has no clusters/ folder', { file: 'clusters' }));
  }
  const environments = only && new Set(['common', ...only.flatMap((c) => environmentOf(root, c))]);
  const layers: { layer: Layer; checked: boolean }[] = [];
  const scan = (kind: Layer['kind'], name: string, dir: string, checked: boolean) => {
    try {
      layers.push({ layer: scanLayer(root, kind, name, dir), checked });
    } catch (err) {
      if (checked) errors.push(asError(err));
    }
  };
  for (const env of listEnvironments(root)) {
    scan(
      env === 'common' ? 'common' : 'environment',
      env,
      `environments/${env}`,
      environments?.has(env) ?? true,
    );
  }
  for (const cluster of listClusters(root)) {
    scan('cluster', cluster, `clusters/${cluster}`, only?.includes(cluster) ?? true);
  }
  // A values file for a release no layer declares is almost always a typo.
  const declared = new Set<string>();
  for (const { layer, checked } of layers) {
    if (!layer.releasesFile) continue;
    try {
      for (const name of Object.keys(
        parseReleasesFile(readYamlFile(root, layer.releasesFile), layer.releasesFile),
      ))
        declared.add(name);
    } catch (err) {
      if (checked) errors.push(asError(err));
    }
  }
  for (const { layer } of layers.filter((l) => l.checked)) {
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

/** The environment a cluster names; none when its cluster.yaml is broken (its plan says why). */
function environmentOf(root: string, cluster: string): string[] {
  try {
    return [loadClusterSpec(root, cluster).environment];
  } catch {
    return [];
  }
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
  const all = listClusters(opts.repo);
  for (const name of opts.cluster ?? []) {
    if (!all.includes(name)) throw unknownClusterError(opts.repo, name);
  }
  const clusters = opts.cluster?.length ? all.filter((c) => opts.cluster!.includes(c)) : all;
  const general = repositoryErrors(opts.repo, opts.cluster?.length ? clusters : undefined);
  const reports: ClusterReport[] = [];
  // The age keys are read once for every cluster; a key that cannot be read fails each one.
  let keys: Keys | undefined;
  let keyError: MooringError | undefined;
  try {
    keys = await loadKeys(opts);
  } catch (err) {
    keyError = asError(err);
  }
  for (const name of clusters) {
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
  const errors = dedupe([...general, ...reports.flatMap((r) => r.errors)]);
  const format = machineFormat(opts.output);
  if (format) {
    io.out(
      machine(
        {
          ok: errors.length === 0,
          clusters: reports.map((r) => ({
            name: r.name,
            releases: r.releases,
            errors: r.errors.map((e) => e.toJSON()),
            warnings: r.warnings,
          })),
          errors: errors.map((e) => e.toJSON()),
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
      errors.length
        ? `\n${errors.length} error${errors.length === 1 ? '' : 's'} in ${opts.repo}`
        : `\n${reports.length} cluster${reports.length === 1 ? '' : 's'} valid`,
    );
  }
  // An age key that cannot be loaded is local configuration, not an invalid repository.
  if (keyError instanceof AgeKeyError) return EXIT.usage;
  return errors.length ? EXIT.failed : EXIT.ok;
}

export function registerValidate(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('validate')
    .description('resolve and render every cluster of a repository; for CI')
    .requiredOption('--repo <dir>', 'a checkout of the GitOps repository')
    .addOption(pathOption())
    .option(
      '--cluster <name>',
      'only this cluster and the layers it reads (repeat for several; default: every cluster)',
      collect,
    )
    .option('--no-render', 'skip rendering manifests with helm template')
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
  mooring validate --repo .                                   # every cluster, for CI
  mooring validate --repo . --cluster prod-eu-west            # one cluster and its layers
  mooring validate --repo . --cluster a --cluster b --no-render
  mooring validate --repo . -o json | jq '.errors[]'

Exit codes: 0 valid, 1 an error (or --cluster names no cluster), 2 wrong usage or an unreadable age key.`,
    )
    .action(async (opts: ValidateOptions) => done(await validate(opts, io)));
}
