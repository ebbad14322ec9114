// What several commands share: age keys for SOPS, the helm binary, the kube clients of a
// context, output options.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { loadChartAuth } from '../charts/auth.js';
import { ChartSource } from '../charts/chart-source.js';
import { fileURLToPath } from 'node:url';
import { createHelm, resolveHelm, type Helm } from '../converge/helm.js';
import type { PlanDeps } from '../plan/cluster-plan.js';
import { secretDigestKey } from '../secrets/hash.js';
import { loadAgeKeys } from '../resolve/age-key.js';
import { decryptSops } from '../resolve/sops.js';
import { MooringError } from '../errors.js';
import { connect, type Kube } from '../kube/connect.js';
import { Option } from 'commander';
import type { OutputFormat } from './output.js';

export interface CommonOptions {
  output?: OutputFormat;
  /** `--path`: the layout's folder inside --repo. */
  path?: string;
  ageKeyFile?: string;
  /** Credentials and CAs for chart repositories and registries (or MOORING_CHART_AUTH_FILE). */
  chartAuthFile?: string;
}

export interface Keys {
  planDeps: PlanDeps;
}

export async function loadKeys(opts: CommonOptions, env: NodeJS.ProcessEnv = process.env): Promise<Keys> {
  const keys = await loadAgeKeys({
    env,
    ...(opts.ageKeyFile ? { ageKeyFile: opts.ageKeyFile } : {}),
  });
  const auth = loadChartAuth(opts.chartAuthFile ?? (env.MOORING_CHART_AUTH_FILE || undefined));
  return {
    planDeps: {
      decrypt: (text, file) => decryptSops(text, file, keys),
      digestKey: secretDigestKey(keys.identities.map((i) => i.deriveKey('digest').toString('hex'))),
      // One command asks each repository once; archives stay cached between commands.
      charts: new ChartSource({ dir: chartCacheDir(env), auth: () => auth, intervalSeconds: Infinity }),
    },
  };
}

/** Where the CLI keeps chart archives: MOORING_CACHE_DIR, else the user's cache folder. */
export function chartCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.MOORING_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'mooring');
  return join(base, 'charts');
}

export function chartAuthOption(): Option {
  return new Option(
    '--chart-auth-file <file>',
    'credentials and CAs for chart repositories and registries (default: MOORING_CHART_AUTH_FILE)',
  );
}

// `npm run setup` puts helm here; used when neither MOORING_HELM nor PATH has one.
const BUNDLED_HELM = fileURLToPath(new URL('../../.tools/bin/helm', import.meta.url));

export function findHelm(env: NodeJS.ProcessEnv = process.env): string {
  try {
    return resolveHelm(env);
  } catch (err) {
    if (!env.MOORING_HELM && existsSync(BUNDLED_HELM)) return BUNDLED_HELM;
    throw err;
  }
}

export function helmFromEnv(
  opts: { kubeconfig?: string; context?: string } = {},
  env: NodeJS.ProcessEnv = process.env,
): Helm {
  return createHelm({
    binary: findHelm(env),
    ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
    ...(opts.context ? { kubeContext: opts.context } : {}),
  });
}

/**
 * The API clients of `--context` (read from `--kubeconfig`, else KUBECONFIG). A context the
 * kubeconfig does not have, or a kubeconfig that cannot be read, comes back as the error to
 * report: the cluster cannot be reached (exit 5). Anything else is a bug and is thrown.
 */
export function openKubeClients(opts: { context?: string; kubeconfig?: string }): Kube | MooringError {
  try {
    return connect({
      ...(opts.context !== undefined ? { context: opts.context } : {}),
      ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
    });
  } catch (err) {
    if (err instanceof MooringError) return err;
    throw err;
  }
}

/** `--path DIR` (`MOORING_PATH`): where the layout sits in the repository. */
export function pathOption(): Option {
  return new Option(
    '--path <dir>',
    'the folder of the repository that holds clusters/ and environments/ (default: its root)',
  ).env('MOORING_PATH');
}

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'text for people, json or yaml for machines')
    .choices(['text', 'json', 'yaml'])
    .default('text');
}

/** An option that may be repeated (`--release a --release b`): its values in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
