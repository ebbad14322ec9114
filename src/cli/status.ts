// `mooring status`: one table of every cluster's releases, read from what each agent
// reports (MooringRelease objects) and what waits for approval (pending MooringPlan objects).
// Clusters are asked in parallel, each with its own time limit, so one cluster that does not
// answer is shown as unreachable and hides none of the others.
import type { Command } from 'commander';
import { describeError, MooringError } from '../errors.js';
import { connect } from '../kube/connect.js';
import { apiErrorMessage, apiStatusCode } from '../kube/errors.js';
import { loadKubeTarget } from '../kube/kubeconfig.js';
import type { RestClient } from '../kube/rest.js';
import { parseDuration } from '../model/schema.js';
import { MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from '../observe/crds.js';
import { readReleaseStatuses, type ReleaseStatusRecord } from '../observe/status.js';
import { outputOption } from './common.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { machine, machineFormat, paint, table, type Io, type OutputFormat } from './output.js';

export interface StatusOptions {
  /** Kube contexts to ask; empty means the current context (unless allContexts). */
  context: string[];
  allContexts: boolean;
  /** The agents' namespace (where MooringRelease and MooringPlan objects live). */
  namespace: string;
  allNamespaces: boolean;
  /** Per cluster, e.g. `10s`. */
  timeout: string;
  output: OutputFormat;
}

/** A plan waiting for approval, as `mooring status` shows it. */
export interface PendingPlan {
  name: string;
  namespace: string;
  cluster: string;
  revision: string;
  shortRevision: string;
  digest: string;
  changes: number;
  reason?: string;
  createdAt?: string;
  /** Releases the plan would change, with their action. */
  releases: { name: string; namespace?: string; action: string }[];
}

export interface ReleaseRow {
  cluster: string;
  release: string;
  /** Namespace the release is installed in. */
  namespace?: string;
  /** Namespace of its MooringRelease (the agent's). */
  agentNamespace: string;
  chart?: string;
  version?: string;
  chartDigest?: string;
  state?: string;
  desiredRevision?: string;
  deployedRevision?: string;
  helmRevision?: number;
  helmStatus?: string;
  drift?: { count: number; corrected: boolean; failed?: number; checkedAt?: string };
  pendingApproval?: { plan: string; revision: string; action: string };
  lastError?: string;
  lastSuccessAt?: string;
}

export interface ClusterStatus {
  context: string;
  /** Cluster name(s) its agent reports; the context name until one is known. */
  cluster: string;
  /** `ok`, `unreachable` (no answer, or network error) or `error` (the API server refused). */
  reach: 'ok' | 'unreachable' | 'error';
  error?: string;
  releases: ReleaseRow[];
  pendingPlans: PendingPlan[];
}

export interface StatusDeps {
  env?: NodeJS.ProcessEnv;
  /** Builds the client for a context (tests may substitute it). */
  clientFor?: (
    context: string,
    signal: AbortSignal,
  ) => { client: Pick<RestClient, 'request'>; server: string };
}

/** The contexts to ask: the ones named, all of the kubeconfig's, or the current one. */
export function contextsToAsk(
  opts: Pick<StatusOptions, 'context' | 'allContexts'>,
  env: NodeJS.ProcessEnv,
): string[] {
  if (opts.context.length > 0 && opts.allContexts) {
    throw new MooringError('use either --context or --all-contexts, not both', { field: '--all-contexts' });
  }
  if (opts.context.length > 0) return [...new Set(opts.context)];
  const target = loadKubeTarget({ env });
  if (opts.allContexts) {
    const names = target.contexts;
    if (names.length === 0)
      throw new MooringError('the kubeconfig defines no contexts', { field: '--all-contexts' });
    return names;
  }
  return [target.context];
}

/** Reads every cluster's status; never throws for one cluster's failure. */
export async function collectStatus(opts: StatusOptions, deps: StatusDeps = {}): Promise<ClusterStatus[]> {
  const env = deps.env ?? process.env;
  const seconds = parseDuration(opts.timeout);
  if (!seconds) {
    throw new MooringError(
      `--timeout must be a duration such as 5s or 1m, found ${JSON.stringify(opts.timeout)}`,
      {
        field: '--timeout',
      },
    );
  }
  const contexts = contextsToAsk(opts, env);
  const namespace = opts.allNamespaces ? undefined : opts.namespace;
  return Promise.all(contexts.map((context) => clusterStatus(context, namespace, seconds, env, deps)));
}

async function clusterStatus(
  context: string,
  namespace: string | undefined,
  timeoutSeconds: number,
  env: NodeJS.ProcessEnv,
  deps: StatusDeps,
): Promise<ClusterStatus> {
  const signal = AbortSignal.timeout(timeoutSeconds * 1000);
  const base = { context, cluster: context, releases: [], pendingPlans: [] };
  let customObjects: Pick<RestClient, 'request'>;
  let server = '';
  try {
    const made = (deps.clientFor ?? ((c, s) => abortableClient(env, c, s)))(context, signal);
    server = made.server;
    customObjects = made.client;
  } catch (err) {
    return { ...base, reach: 'error', error: describeError(err) };
  }
  for (;;) {
    try {
      const [records, plans] = await Promise.all([
        readReleaseStatuses(customObjects, namespace),
        readPendingPlans(customObjects, namespace),
      ]);
      return { context, ...joinPlans(context, records, plans) };
    } catch (err) {
      const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
      const code = apiStatusCode(cause);
      if (signal.aborted) {
        return { ...base, reach: 'unreachable', error: `no answer within ${timeoutSeconds}s` };
      }
      // 429 is also how an API server says a resource's storage is still initializing.
      if (code === 429 || code === 503) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (code === 404) {
        return {
          ...base,
          reach: 'error',
          error: `mooring is not installed here: the API server does not serve ${MOORING_KINDS.MooringRelease.plural}.${MOORING_GROUP}`,
        };
      }
      if (code === undefined) return { ...base, reach: 'unreachable', error: networkError(server, cause) };
      return { ...base, reach: 'error', error: describeError(err) };
    }
  }
}

/** `https://host:port: connect ECONNREFUSED ...`, without the request path a fetch error carries. */
function networkError(server: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const reason = /reason: (.*)$/.exec(message)?.[1] ?? message;
  return server ? `${server}: ${reason}` : reason;
}

/** The client of one context, whose every request is cancelled when `signal` aborts. */
function abortableClient(
  env: NodeJS.ProcessEnv,
  context: string,
  signal: AbortSignal,
): { client: Pick<RestClient, 'request'>; server: string } {
  const { rest } = connect({ env, ...(context === '' ? {} : { context }) });
  return {
    server: rest.server,
    client: { request: (method, path, init = {}) => rest.request(method, path, { ...init, signal }) },
  };
}

interface RawPlan {
  metadata: { name: string; namespace?: string };
  status?: {
    cluster?: string;
    revision?: string;
    shortRevision?: string;
    digest?: string;
    phase?: string;
    reason?: string;
    changes?: number;
    createdAt?: string;
    releases?: { name: string; namespace?: string; action: string }[];
  };
}

/** MooringPlans in phase `pending`; a cluster without the MooringPlan kind has none. */
async function readPendingPlans(
  client: Pick<RestClient, 'request'>,
  namespace?: string,
): Promise<PendingPlan[]> {
  const scope = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  let list: { items?: RawPlan[] };
  try {
    list = await client.request<{ items?: RawPlan[] }>(
      'GET',
      `/apis/${MOORING_GROUP}/${MOORING_VERSION}${scope}/${MOORING_KINDS.MooringPlan.plural}`,
    );
  } catch (err) {
    if (apiStatusCode(err) === 404) return [];
    throw new MooringError(`cannot list MooringPlans: ${apiErrorMessage(err)}`, {}, { cause: err });
  }
  return (list.items ?? [])
    .filter((p) => p.status?.phase === 'pending')
    .map((p) => {
      const s = p.status!;
      return {
        name: p.metadata.name,
        namespace: p.metadata.namespace ?? '',
        cluster: s.cluster ?? '',
        revision: s.revision ?? '',
        shortRevision: s.shortRevision ?? (s.revision ?? '').slice(0, 7),
        digest: s.digest ?? '',
        changes: s.changes ?? 0,
        ...(s.reason ? { reason: s.reason } : {}),
        ...(s.createdAt ? { createdAt: s.createdAt } : {}),
        releases: (s.releases ?? [])
          .filter((r) => r.action !== 'none')
          .map((r) => ({
            name: r.name,
            ...(r.namespace ? { namespace: r.namespace } : {}),
            action: r.action,
          })),
      };
    })
    .sort((a, b) => (b.createdAt ?? '').localeCompare(a.createdAt ?? ''));
}

/** Rows for a cluster: its releases, each with the newest pending plan's action for it. */
function joinPlans(
  context: string,
  records: (ReleaseStatusRecord & { objectNamespace: string })[],
  plans: PendingPlan[],
): Omit<ClusterStatus, 'context'> {
  const names = [
    ...new Set([...records.map((r) => r.cluster), ...plans.map((p) => p.cluster)].filter(Boolean)),
  ];
  const cluster = names.length > 0 ? names.sort().join(',') : context;
  const pendingFor = (clusterName: string, release: string, agentNamespace: string) => {
    for (const plan of plans) {
      if (plan.cluster !== clusterName || plan.namespace !== agentNamespace) continue;
      const r = plan.releases.find((x) => x.name === release);
      if (r) return { plan: plan.name, revision: plan.shortRevision, action: r.action };
    }
    return undefined;
  };
  const rows: ReleaseRow[] = records.map((r) => {
    const clusterName = r.cluster ?? context;
    const pending = pendingFor(clusterName, r.name, r.objectNamespace);
    return {
      cluster: clusterName,
      release: r.name,
      ...(r.namespace ? { namespace: r.namespace } : {}),
      agentNamespace: r.objectNamespace,
      ...(r.chart ? { chart: r.chart } : {}),
      ...(r.version ? { version: r.version } : {}),
      ...(r.chartDigest ? { chartDigest: r.chartDigest } : {}),
      ...(r.state ? { state: r.state } : {}),
      ...(r.desiredRevision ? { desiredRevision: r.desiredRevision } : {}),
      ...(r.deployedRevision ? { deployedRevision: r.deployedRevision } : {}),
      ...(r.helmRevision !== undefined ? { helmRevision: r.helmRevision } : {}),
      ...(r.helmStatus ? { helmStatus: r.helmStatus } : {}),
      ...(r.drift
        ? {
            drift: {
              count: r.drift.count,
              corrected: r.drift.corrected,
              ...(r.drift.failed ? { failed: r.drift.failed } : {}),
              checkedAt: r.drift.checkedAt,
            },
          }
        : {}),
      ...(pending ? { pendingApproval: pending } : {}),
      ...(r.lastError ? { lastError: r.lastError } : {}),
      ...(r.lastSuccessAt ? { lastSuccessAt: r.lastSuccessAt } : {}),
    };
  });
  // A release a pending plan would install has no MooringRelease yet: show it too.
  for (const plan of plans) {
    for (const r of plan.releases) {
      if (rows.some((row) => row.cluster === plan.cluster && row.release === r.name)) continue;
      const first = plans.find(
        (p) => p.cluster === plan.cluster && p.releases.some((x) => x.name === r.name),
      );
      if (first !== plan) continue;
      rows.push({
        cluster: plan.cluster || context,
        release: r.name,
        ...(r.namespace ? { namespace: r.namespace } : {}),
        agentNamespace: plan.namespace,
        state: 'pending-approval',
        pendingApproval: { plan: plan.name, revision: plan.shortRevision, action: r.action },
      });
    }
  }
  rows.sort((a, b) => a.cluster.localeCompare(b.cluster) || a.release.localeCompare(b.release));
  return { cluster, reach: 'ok', releases: rows, pendingPlans: plans };
}

/** 5 when a cluster could not be read, else 1 when a release failed, else 0. */
export function statusExitCode(clusters: ClusterStatus[]): ExitCode {
  if (clusters.some((c) => c.reach !== 'ok')) return EXIT.cluster;
  if (clusters.some((c) => c.releases.some((r) => r.state === 'failed'))) return EXIT.failed;
  return EXIT.ok;
}

const STATE_COLOURS: Record<string, 'green' | 'red' | 'yellow' | 'blue'> = {
  ready: 'green',
  failed: 'red',
  drifted: 'yellow',
  'pending-approval': 'yellow',
  progressing: 'blue',
  waiting: 'blue',
  orphaned: 'yellow',
  unreachable: 'red',
  error: 'red',
};

const short = (sha?: string) => (sha ? sha.slice(0, 7) : '-');

function oneLine(text: string | undefined, max = 80): string {
  if (!text) return '-';
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}

function driftCell(drift: ReleaseRow['drift']): string {
  if (!drift) return '-';
  // Objects that could not be checked: unknown drift is not "none".
  if ((drift.failed ?? 0) > 0) return `${drift.failed} unchecked`;
  if (drift.count === 0) return 'none';
  return `${drift.count} ${drift.corrected ? 'corrected' : 'drifted'}`;
}

/** The chart's short name and exact version: `redis@18.6.1`, `web@0.1.0`. */
function chartCell(r: ReleaseRow): string {
  if (!r.chart) return '-';
  const name =
    r.chart
      .replace(/ \(.*\)$/, '')
      .replace(/@sha256:.*$/, '')
      .split('/')
      .pop() ?? r.chart;
  return r.version ? `${name}@${r.version}` : name;
}

export function printStatus(clusters: ClusterStatus[], io: Io): void {
  const rows: string[][] = [];
  const state = (s: string) => paint(io, STATE_COLOURS[s] ?? 'dim', s);
  const none = ['-', '-', '-', '-', '-', '-'];
  for (const c of clusters) {
    // The context as asked ('' is the kubeconfig's current one, named when it was read).
    const context = c.context || '-';
    if (c.reach !== 'ok') {
      rows.push([context, c.cluster, ...none, state(c.reach), '-', '-', oneLine(c.error, 100)]);
      continue;
    }
    if (c.releases.length === 0) {
      rows.push([context, c.cluster, ...none, paint(io, 'dim', 'no releases'), '-', '-', '-']);
      continue;
    }
    for (const r of c.releases) {
      rows.push([
        context,
        r.cluster,
        r.release,
        r.namespace ?? '-',
        chartCell(r),
        short(r.desiredRevision),
        short(r.deployedRevision),
        r.helmRevision === undefined ? '-' : String(r.helmRevision),
        state(r.state ?? 'unknown'),
        driftCell(r.drift),
        r.pendingApproval ? `${r.pendingApproval.revision} ${r.pendingApproval.action}` : '-',
        oneLine(r.lastError),
      ]);
    }
  }
  io.out(
    table(
      [
        'CONTEXT',
        'CLUSTER',
        'RELEASE',
        'NAMESPACE',
        'CHART',
        'DESIRED',
        'DEPLOYED',
        'HELM',
        'STATE',
        'DRIFT',
        'PENDING APPROVAL',
        'LAST ERROR',
      ],
      rows,
    ),
  );
  const plans = clusters.flatMap((c) => c.pendingPlans.map((p) => ({ context: c.context, plan: p })));
  if (plans.length > 0) {
    io.out('');
    for (const { context, plan: p } of plans) {
      io.out(
        `${paint(io, 'yellow', 'pending')} plan ${p.namespace}/${p.name}: cluster ${p.cluster}, revision ${p.shortRevision}, ${p.changes} change(s)${p.reason ? ` (${p.reason})` : ''}; approve with: mooring approve --context ${context} -n ${p.namespace} --revision ${p.revision}`,
      );
    }
  }
}

export async function status(opts: StatusOptions, io: Io, deps: StatusDeps = {}): Promise<ExitCode> {
  let clusters: ClusterStatus[];
  try {
    clusters = await collectStatus(opts, deps);
  } catch (err) {
    // Only the command line itself can fail here; a cluster's failure is part of the table.
    if (!(err instanceof MooringError) || !err.context.field?.startsWith('--')) throw err;
    io.err(`error: ${err.describe()}`);
    return EXIT.usage;
  }
  const format = machineFormat(opts.output);
  if (format) io.out(machine({ clusters }, format));
  else printStatus(clusters, io);
  return statusExitCode(clusters);
}

export function registerStatus(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('status')
    .description("one table of every cluster's releases: revisions, state, drift and pending approvals")
    // Variadic, so that both `--context a b` and `--context a --context b` ask a and b.
    .option(
      '--context <name...>',
      'kube contexts to ask: --context a b, or repeat the flag (default: the current context)',
      [] as string[],
    )
    .option('--all-contexts', 'ask every context of the kubeconfig (KUBECONFIG)', false)
    .option('-n, --namespace <name>', "the agents' namespace", 'mooring-system')
    .option('-A, --all-namespaces', 'read MooringReleases in every namespace', false)
    .option('--timeout <duration>', 'time limit per cluster', '10s')
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
Examples:
  mooring status                                   # the current context
  mooring status --context prod-eu prod-us         # several clusters in one table
  mooring status --all-contexts -o json | jq '.clusters[].releases[] | select(.state == "failed")'

Exit codes: 0 every cluster answered and no release failed, 1 a release failed, 2 wrong usage, 5 a cluster could not be read.`,
    )
    .action(async (opts: StatusOptions) => done(await status(opts, io)));
}
