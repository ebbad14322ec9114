// `mooring explain --repo DIR --cluster C --release R [KEY]`: every value of R with the
// file that set it; with KEY, only that key (or subtree), and every file that set it.
import type { Command } from 'commander';
import { MooringError } from '../errors.js';
import { formatPath, getPath } from '../resolve/merge.js';
import { SECRET_MASK } from '../secrets/mask.js';
import { chartAuthOption, loadKeys, type CommonOptions, outputOption, pathOption } from './common.js';
import { layoutRoot } from '../model/paths.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { machine, machineFormat, paint, table, type Io } from './output.js';
import { planCluster } from '../plan/cluster-plan.js';

interface ExplainOptions extends CommonOptions {
  repo: string;
  cluster: string;
  release: string;
}

/** Splits `a.b["c.d"]` into path segments. */
export function parseKey(key: string): string[] {
  const out: string[] = [];
  const re = /([^.[\]]+)|\["((?:[^"\\]|\\.)*)"\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(key))) out.push(m[1] ?? JSON.parse(`"${m[2]}"`));
  return out;
}

const startsWith = (path: string[], prefix: string[]) => prefix.every((k, i) => path[i] === k);

function show(value: unknown): string {
  return value === SECRET_MASK ? SECRET_MASK : JSON.stringify(value);
}

export async function explain(opts: ExplainOptions, key: string | undefined, io: Io): Promise<ExitCode> {
  const keys = await loadKeys(opts);
  // Only this release is resolved: an unknown or disabled one is an error naming the others.
  const plan = await planCluster(opts.repo, opts.cluster, keys.planDeps, { releases: [opts.release] });
  const release = plan.releases[0]!;
  if (!release.resolved) throw release.error!;
  const resolved = release.resolved;
  const prefix = key ? parseKey(key) : [];
  const masked = release.values!;
  const secret = new Set(resolved.secretPaths.map(formatPath));
  const rows = resolved.merge.leaves
    .filter((l) => startsWith(l.path, prefix))
    .map((l) => ({
      key: formatPath(l.path),
      value: getPath(masked, l.path),
      file: l.source.file,
      layer: l.source.layer,
      secret: l.source.secret,
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
  const deleted = resolved.merge.deletions
    .filter((d) => startsWith(d.path, prefix))
    .map((d) => ({ key: formatPath(d.path), file: d.source.file, layer: d.source.layer }));
  // With a key: every file that set it, lowest precedence first, overridden ones included.
  const history = key
    ? resolved.layers
        .filter((l) => getPath(l.values, prefix) !== undefined)
        .map((l) => ({
          file: l.source.file,
          layer: l.source.layer,
          value: l.source.secret || secret.has(formatPath(prefix)) ? SECRET_MASK : getPath(l.values, prefix),
        }))
    : undefined;
  if (key && rows.length === 0 && deleted.length === 0) {
    throw new MooringError(`release ${opts.release} has no value at ${key}`, {
      cluster: opts.cluster,
      release: opts.release,
    });
  }

  const format = machineFormat(opts.output);
  if (format) {
    io.out(
      machine(
        {
          cluster: opts.cluster,
          release: opts.release,
          ...(key ? { key } : {}),
          values: rows,
          deleted,
          ...(history ? { history } : {}),
        },
        format,
      ),
    );
    return EXIT.ok;
  }
  io.out(
    `${paint(io, 'bold', opts.release)} in cluster ${opts.cluster} (environment ${plan.cluster.environment})`,
  );
  io.out(
    table(
      ['KEY', 'VALUE', 'SET BY'],
      rows.map((r) => [r.key, show(r.value), `${r.file} (${r.layer}${r.secret ? ', secret' : ''})`]),
    ),
  );
  if (deleted.length) {
    io.out('');
    io.out(
      table(
        ['DELETED KEY', 'DELETED BY (null in)'],
        deleted.map((d) => [d.key, `${d.file} (${d.layer})`]),
      ),
    );
  }
  if (history && history.length) {
    io.out('');
    io.out(`${key} is set by, lowest precedence first:`);
    io.out(
      table(
        ['FILE', 'LAYER', 'VALUE'],
        history.map((h) => [h.file, h.layer, show(h.value)]),
      ),
    );
  }
  return EXIT.ok;
}

export function registerExplain(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('explain')
    .description('show every value of a release with the file that set it')
    .argument('[key]', 'only this key or subtree, e.g. image.tag')
    .requiredOption('--repo <dir>', 'a checkout of the GitOps repository')
    .addOption(pathOption())
    .requiredOption('--cluster <name>', 'the cluster (a folder under clusters/)')
    .requiredOption('--release <name>', 'the release')
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
  mooring explain --repo . --cluster prod-eu-west --release web                   # every value
  mooring explain --repo . --cluster prod-eu-west --release web image.tag         # one key, every file that set it
  mooring explain --repo . --cluster prod-eu-west --release web 'podAnnotations["prometheus.io/scrape"]'`,
    )
    .action(async (key: string | undefined, opts: ExplainOptions) =>
      done(await explain({ ...opts, repo: layoutRoot(opts.repo, opts.path) }, key, io)),
    );
}
