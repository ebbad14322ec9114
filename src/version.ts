// mooring's version and the commit it was built from, for `mooring version`, the agent's
// start-up log line, its MooringAgent status and the mooring_build_info metric.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  /** The Git commit of the build, or `unknown`. */
  commit: string;
}

const ROOT = new URL('../', import.meta.url);

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * The commit comes from MOORING_COMMIT (set when an image is built), else from the
 * checkout the package runs from (git rev-parse, only when it is a Git checkout).
 */
export function buildInfo(env: NodeJS.ProcessEnv = process.env): BuildInfo {
  return { version: packageVersion(), commit: env.MOORING_COMMIT || checkoutCommit() || 'unknown' };
}

function checkoutCommit(): string | undefined {
  const root = fileURLToPath(ROOT);
  if (!existsSync(`${root}.git`)) return undefined;
  try {
    const out = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const sha = out.toString('utf8').trim();
    return /^[0-9a-f]{40}$/.test(sha) ? sha : undefined;
  } catch {
    // Not a checkout git can read (or no git): the commit is unknown.
    return undefined;
  }
}
