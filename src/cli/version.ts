// `mooring version`: what is running and what it will run: mooring's version and the commit
// it was built from, the helm it finds (MOORING_HELM, PATH, then the one `npm run setup`
// installs) with that helm's own version, and Node.js. For bug reports and for checking an
// installation; `mooring --version` prints the bare version.
import type { Command } from 'commander';
import { execa } from 'execa';
import { describeError } from '../errors.js';
import { buildInfo } from '../version.js';
import { findHelm, outputOption } from './common.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { machine, machineFormat, table, type Io, type OutputFormat } from './output.js';

export interface VersionReport {
  version: string;
  /** The Git commit of the build, or `unknown`. */
  commit: string;
  node: string;
  /** The helm mooring would run, or why there is none. */
  helm: { path: string; version: string } | { error: string };
}

export async function versionReport(env: NodeJS.ProcessEnv = process.env): Promise<VersionReport> {
  const build = buildInfo(env);
  let helm: VersionReport['helm'];
  try {
    const path = findHelm(env);
    const result = await execa(path, ['version', '--template', '{{.Version}}'], {
      timeout: 10_000,
      reject: false,
    });
    helm =
      result.exitCode === 0 && result.stdout.trim()
        ? { path, version: result.stdout.trim() }
        : {
            error: `${path} version failed: ${(result.stderr || result.stdout || result.message || `exit code ${result.exitCode}`).trim()}`,
          };
  } catch (err) {
    helm = { error: describeError(err) };
  }
  return { version: build.version, commit: build.commit, node: process.version, helm };
}

export async function version(opts: { output?: OutputFormat }, io: Io): Promise<ExitCode> {
  const report = await versionReport();
  const format = machineFormat(opts.output);
  if (format) {
    io.out(machine(report, format));
    return EXIT.ok;
  }
  const helm =
    'error' in report.helm
      ? `not found: ${report.helm.error}`
      : `${report.helm.version} (${report.helm.path})`;
  io.out(
    table(
      ['mooring', report.version],
      [
        ['commit', report.commit],
        ['helm', helm],
        ['node', report.node],
      ],
    ),
  );
  // A missing helm is reported, not failed: this is the command that says so.
  return EXIT.ok;
}

export function registerVersion(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('version')
    .description('print the version and commit of mooring, the helm it runs, and Node.js')
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
Examples:
  mooring version
  mooring version -o json | jq -r .helm.version
  MOORING_HELM=/opt/helm/bin/helm mooring version     # check which helm a CI job will use`,
    )
    .action(async (opts: { output?: OutputFormat }) => done(await version(opts, io)));
}
