// The Helm adapter: a thin, typed wrapper over the `helm` v4 binary. Every call is one helm
// process with an argument list we build here; values always travel on stdin (`-f -`) so that
// decrypted secrets never touch disk or show up in `ps`. Process spawning is injected so that
// tests (and metrics) can see every helm process, and errors carry the command line, exit code
// and stderr a user needs, with known secret strings redacted.
import { createHash } from 'node:crypto';
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { execa } from 'execa';
import { stringify as toYaml } from 'yaml';
import { MooringError } from '../errors.js';
import { redactSecrets } from '../secrets/redact.js';

/** Release states as Helm records them (helm's `release.Status`). */
export type HelmReleaseStatus =
  | 'unknown'
  | 'deployed'
  | 'uninstalled'
  | 'superseded'
  | 'failed'
  | 'uninstalling'
  | 'pending-install'
  | 'pending-upgrade'
  | 'pending-rollback';

/** States a crashed helm process can leave behind; the release must be recovered before the next upgrade. */
export const PENDING_STATES: readonly HelmReleaseStatus[] = [
  'pending-install',
  'pending-upgrade',
  'pending-rollback',
];

/** What mooring needs to know about one revision of a release, without its values or manifest. */
export interface HelmRelease {
  name: string;
  namespace: string;
  /** Helm's revision number of the release (1, 2, ...). */
  revision: number;
  status: HelmReleaseStatus;
  chart: string;
  chartVersion: string;
  appVersion?: string;
  /** RFC 3339 time of the last deployment of this revision. */
  updated?: string;
  description?: string;
  /** Release labels set with `--labels` (helm's own storage labels left out); from `status` only. */
  labels?: Record<string, string>;
  /** `ssa` (server-side apply) or `csa` (client-side), as helm recorded it; from `status` only. */
  applyMethod?: string;
}

/** One entry of `helm history`. */
export interface HelmHistoryEntry {
  revision: number;
  status: HelmReleaseStatus;
  /** `<chart>-<version>` as helm prints it. */
  chart: string;
  appVersion?: string;
  updated?: string;
  description?: string;
}

/** Where a chart comes from: a local directory, an OCI reference, or a name in an HTTP repository. */
export interface ChartSource {
  /** A chart directory or archive path, `oci://...`, or a chart name when `repo` is set. */
  chart: string;
  /** Exact version or semver range; helm's `--version`. */
  version?: string;
  /** HTTP chart repository URL; helm's `--repo`. */
  repo?: string;
}

export interface RenderInput extends ChartSource {
  release: string;
  namespace: string;
  /** The merged values; serialised to YAML and written to helm's stdin. */
  values: Record<string, unknown>;
  /** Secret strings inside `values`, removed from any error text helm prints. */
  redact?: readonly string[];
  signal?: AbortSignal;
}

export interface UpgradeInstallInput extends RenderInput {
  /** Helm's `--timeout` for Kubernetes operations; the helm process gets a grace period on top. */
  timeoutSeconds: number;
  /**
   * Wait for resources to be ready (`--wait=watcher`); otherwise only hooks are waited for.
   * Helm 4 always waits when `rollbackOnFailure` is set, so that implies `wait`.
   */
  wait: boolean;
  waitForJobs?: boolean;
  /** Roll back to the last successful revision if the upgrade fails (helm 4's `--rollback-on-failure`). */
  rollbackOnFailure: boolean;
  createNamespace: boolean;
  /** Server-side apply: helm 4 defaults to `auto` (keep what the release used before). */
  serverSide?: boolean | 'auto';
  /** With server-side apply, take fields other field managers own instead of failing (`--force-conflicts`). */
  forceConflicts?: boolean;
  /** Adopt existing objects that lack Helm's ownership annotations (`--take-ownership`). */
  takeOwnership?: boolean;
  /** Labels recorded on the Helm release (not on its objects), e.g. `mooring.io/managed=true`. */
  labels?: Record<string, string>;
  /** Revisions helm keeps per release (`--history-max`, helm's default 10). */
  historyMax?: number;
  description?: string;
}

export interface TemplateInput extends RenderInput {
  /** Kubernetes version for `.Capabilities.KubeVersion` (`--kube-version`). */
  kubeVersion?: string;
  /** Extra API versions for `.Capabilities.APIVersions` (`--api-versions`). */
  apiVersions?: readonly string[];
  /** Include the chart's `crds/` in the output. Off by default, like the manifest helm records. */
  includeCrds?: boolean;
  /** Render as an upgrade (`.Release.IsUpgrade`) rather than an install. */
  isUpgrade?: boolean;
}

export interface UninstallOptions {
  wait: boolean;
  timeoutSeconds: number;
  signal?: AbortSignal;
}

export interface RollbackOptions {
  /** Target revision; helm's default is the previous one. */
  revision?: number;
  wait: boolean;
  timeoutSeconds: number;
  signal?: AbortSignal;
}

export interface ListOptions {
  /** Every namespace (`-A`); otherwise `namespace` (or the kubeconfig's default). */
  allNamespaces?: boolean;
  namespace?: string;
  /** Label selector on release labels, e.g. `mooring.io/managed=true`. */
  selector?: string;
  signal?: AbortSignal;
}

/** How one helm process is run. The default uses execa; tests pass a fake. */
export interface HelmExecOptions {
  /** Written to stdin, then stdin is closed. */
  input?: string;
  env: Record<string, string | undefined>;
  /** Kill the process after this many milliseconds. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface HelmExecResult {
  /** Undefined when the process was killed by a signal. */
  exitCode?: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Stopped through the AbortSignal (agent shutdown). */
  isCanceled: boolean;
  /** Why the process could not be started at all (e.g. `spawn helm ENOENT`). */
  spawnError?: string;
}

export type HelmExec = (
  file: string,
  args: readonly string[],
  options: HelmExecOptions,
) => Promise<HelmExecResult>;

export interface HelmOptions {
  /** Absolute path of the helm binary (see `resolveHelm`). */
  binary: string;
  /**
   * The `mooring-leash` wrapper (see `findLeash`): every helm process is started through it,
   * so that it dies with this process even when only this PID gets SIGKILL.
   */
  leash?: string;
  kubeconfig?: string;
  kubeContext?: string;
  /** Environment for helm; defaults to this process's environment. */
  env?: Record<string, string | undefined>;
  /**
   * A writable folder where helm keeps the API server's discovery and OpenAPI documents
   * between processes (client-go's `KUBECACHEDIR`), so each upgrade revalidates them with
   * small conditional requests instead of downloading them. A KUBECACHEDIR already in the
   * environment wins.
   */
  kubeCacheDir?: string;
  exec?: HelmExec;
  /** Called with the argument list of every helm process before it starts. */
  onSpawn?: (args: readonly string[]) => void;
  /** Stops every running helm process (SIGTERM, then SIGKILL), e.g. on agent shutdown. */
  signal?: AbortSignal;
  /** Seconds a helm process may run beyond its own `--timeout` before it is killed (default 60). */
  graceSeconds?: number;
  /** Limit for commands without a helm timeout: status, list, history, template (default 120). */
  commandTimeoutSeconds?: number;
}

/** What `helm upgrade --install --dry-run=server` would install: rendered against the cluster. */
export interface ServerRender {
  /** The manifest helm would apply and record (hooks excluded). Holds secrets. */
  manifest: string;
  /** The chart version helm resolved. */
  chartVersion: string;
  /** sha256 of the chart as helm loaded it (metadata, templates, values, files). */
  chartDigest: string;
}

export interface Helm {
  readonly binary: string;
  upgradeInstall(input: UpgradeInstallInput): Promise<HelmRelease>;
  template(input: TemplateInput): Promise<string>;
  /**
   * Renders a release the way `upgrade --install` will (`--dry-run=server`): `lookup` reads
   * the live cluster and `.Capabilities` are the cluster's. Nothing is changed.
   */
  renderOnServer?(input: RenderInput): Promise<ServerRender>;
  rollback(release: string, namespace: string, options: RollbackOptions): Promise<void>;
  /** Returns false when there was no such release. */
  uninstall(release: string, namespace: string, options: UninstallOptions): Promise<boolean>;
  /** Returns undefined when there is no such release. */
  status(
    release: string,
    namespace: string,
    options?: { signal?: AbortSignal },
  ): Promise<HelmRelease | undefined>;
  /** Oldest first; empty when there is no such release. */
  history(
    release: string,
    namespace: string,
    options?: { signal?: AbortSignal },
  ): Promise<HelmHistoryEntry[]>;
  /** The latest revision of every release, in every state. */
  list(options?: ListOptions): Promise<HelmRelease[]>;
  /** The manifest helm recorded for a revision (the latest by default). */
  manifest(
    release: string,
    namespace: string,
    options?: { revision?: number; signal?: AbortSignal },
  ): Promise<string | undefined>;
}

export type HelmFailure = 'failed' | 'timeout' | 'canceled' | 'not-found';

/** A helm command that failed. Never holds values: they went to helm on stdin, and secrets are redacted. */
export class HelmError extends MooringError {
  /** The command line, e.g. `helm upgrade web ./charts/web --install ...`. */
  readonly command: string;
  readonly exitCode: number | undefined;
  /** Helm's stderr, trimmed, with known secrets redacted. */
  readonly stderr: string;
  readonly failure: HelmFailure;
  readonly chart?: string;
  readonly namespace?: string;

  constructor(
    message: string,
    details: {
      command: string;
      exitCode: number | undefined;
      stderr: string;
      failure: HelmFailure;
      release?: string;
      namespace?: string;
      chart?: string;
    },
    options: { hint?: string } = {},
  ) {
    super(message, details.release === undefined ? {} : { release: details.release }, options);
    this.name = 'HelmError';
    this.command = details.command;
    this.exitCode = details.exitCode;
    this.stderr = details.stderr;
    this.failure = details.failure;
    if (details.chart !== undefined) this.chart = details.chart;
    if (details.namespace !== undefined) this.namespace = details.namespace;
  }

  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      command: this.command,
      exitCode: this.exitCode,
      failure: this.failure,
      ...(this.chart === undefined ? {} : { chart: this.chart }),
      ...(this.namespace === undefined ? {} : { namespace: this.namespace }),
      stderr: this.stderr,
    };
  }
}

/**
 * Finds helm: `MOORING_HELM` if set (it must be executable), else the first `helm` on `PATH`.
 * Relative paths are resolved against `cwd`.
 */
export function resolveHelm(
  env: Record<string, string | undefined>,
  options: { cwd?: string; isExecutable?: (path: string) => boolean } = {},
): string {
  const cwd = options.cwd ?? process.cwd();
  const isExecutable = options.isExecutable ?? defaultIsExecutable;
  const configured = env.MOORING_HELM;
  if (configured !== undefined && configured !== '') {
    const path = isAbsolute(configured) ? configured : resolve(cwd, configured);
    if (!isExecutable(path)) {
      throw new MooringError(
        `MOORING_HELM points to ${path}, which is not an executable file`,
        {},
        {
          hint: 'set MOORING_HELM to the path of a helm v4 binary, or unset it to search PATH',
        },
      );
    }
    return path;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const path = resolve(cwd, join(dir, 'helm'));
    if (isExecutable(path)) return path;
  }
  throw new MooringError(
    'helm was not found on PATH',
    {},
    {
      hint: 'install helm v4, or set MOORING_HELM to its path',
    },
  );
}

/** The wrapper that ties a helm process's life to the agent's (tools/mooring-leash). */
export const LEASH_BINARY = 'mooring-leash';

/**
 * Finds `mooring-leash` next to the helm binary (where setup and the image put it), on
 * Linux only: it relies on the parent-death signal, which only Linux has.
 */
export function findLeash(
  helmBinary: string,
  options: { platform?: NodeJS.Platform; isExecutable?: (path: string) => boolean } = {},
): string | undefined {
  if ((options.platform ?? process.platform) !== 'linux') return undefined;
  const path = join(dirname(helmBinary), LEASH_BINARY);
  return (options.isExecutable ?? defaultIsExecutable)(path) ? path : undefined;
}

function defaultIsExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The default process runner: execa, never rejecting, so the adapter decides what a failure means. */
export const execaHelmExec: HelmExec = async (file, args, options) => {
  const result = await execa(file, [...args], {
    input: options.input ?? '',
    env: options.env,
    extendEnv: false,
    timeout: options.timeoutMs,
    cancelSignal: options.signal,
    // helm handles SIGTERM by cancelling its context and recording the failure; give it time.
    forceKillAfterDelay: 10_000,
    reject: false,
    stripFinalNewline: false,
    maxBuffer: 256 * 1024 * 1024,
  });
  const notStarted = result.failed && result.exitCode === undefined && result.signal === undefined;
  return {
    exitCode: result.exitCode,
    stdout: result.stdout,
    stderr: result.stderr,
    timedOut: result.timedOut,
    isCanceled: result.isCanceled,
    ...(notStarted && !result.timedOut && !result.isCanceled ? { spawnError: result.originalMessage } : {}),
  };
};

// Helm release labels land on the storage Secret as Kubernetes labels, so they follow the label rules.
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
// Helm keeps these for its own storage labels and refuses them in --labels.
const HELM_SYSTEM_LABELS = new Set(['name', 'owner', 'status', 'version', 'createdAt', 'modifiedAt']);

export function createHelm(options: HelmOptions): Helm {
  const exec = options.exec ?? execaHelmExec;
  const graceMs = (options.graceSeconds ?? 60) * 1000;
  const commandTimeoutMs = (options.commandTimeoutSeconds ?? 120) * 1000;
  const env = { ...(options.env ?? process.env) };
  if (options.kubeCacheDir !== undefined && !env.KUBECACHEDIR) env.KUBECACHEDIR = options.kubeCacheDir;

  function clusterFlags(namespace: string | undefined): string[] {
    const flags: string[] = [];
    if (namespace !== undefined) flags.push('--namespace', namespace);
    if (options.kubeconfig !== undefined) flags.push('--kubeconfig', options.kubeconfig);
    if (options.kubeContext !== undefined) flags.push('--kube-context', options.kubeContext);
    return flags;
  }

  interface Run {
    args: string[];
    input?: string;
    timeoutMs: number;
    signal?: AbortSignal;
    redact?: readonly string[];
    what: string;
    release?: string;
    namespace?: string;
    chart?: string;
  }

  /** Runs one helm process; resolves to its stdout, or throws a HelmError. */
  async function run(r: Run): Promise<string> {
    const signals = [options.signal, r.signal].filter((s): s is AbortSignal => s !== undefined);
    const signal =
      signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    options.onSpawn?.(r.args);
    // Through the leash, the process is still helm (it execs), with the same PID: timeouts
    // and cancellation reach helm itself.
    const [file, args] =
      options.leash === undefined
        ? [options.binary, r.args]
        : [options.leash, [String(process.pid), options.binary, ...r.args]];
    const result = await exec(file, args, {
      ...(r.input === undefined ? {} : { input: r.input }),
      env,
      timeoutMs: r.timeoutMs,
      ...(signal === undefined ? {} : { signal }),
    });
    if (!result.timedOut && !result.isCanceled && result.exitCode === 0) return result.stdout;
    const stderr = cleanStderr(redactSecrets(result.stderr, r.redact ?? []));
    const failure: HelmFailure = result.timedOut
      ? 'timeout'
      : result.isCanceled
        ? 'canceled'
        : /release: not found/i.test(stderr)
          ? 'not-found'
          : 'failed';
    const subject = [
      r.release === undefined ? undefined : `release ${r.release}`,
      r.namespace === undefined ? undefined : `in namespace ${r.namespace}`,
      r.chart === undefined ? undefined : `(chart ${r.chart})`,
    ]
      .filter(Boolean)
      .join(' ');
    const what = `helm ${r.what}${subject ? ` of ${subject}` : ''}`;
    const reason =
      failure === 'timeout'
        ? `did not finish within ${Math.round(r.timeoutMs / 1000)}s and was stopped`
        : failure === 'canceled'
          ? 'was cancelled (mooring is shutting down)'
          : result.spawnError !== undefined
            ? `could not be started: ${result.spawnError}`
            : `failed${result.exitCode === undefined ? '' : ` with exit code ${result.exitCode}`}: ${firstErrorLine(stderr)}`;
    throw new HelmError(
      `${what} ${reason}`,
      {
        command: ['helm', ...r.args].join(' '),
        exitCode: result.exitCode,
        stderr,
        failure,
        ...(r.release === undefined ? {} : { release: r.release }),
        ...(r.namespace === undefined ? {} : { namespace: r.namespace }),
        ...(r.chart === undefined ? {} : { chart: r.chart }),
      },
      result.spawnError === undefined
        ? {}
        : { hint: `check that ${options.binary} is helm v4 (MOORING_HELM, PATH)` },
    );
  }

  /** Like run, but helm's "release: not found" is an answer (undefined), not an error. */
  /** One helm process that renders a release's chart, its values on stdin. */
  function runRender(input: RenderInput, args: string[], what: string, timeoutMs: number): Promise<string> {
    return run({
      args,
      input: valuesYaml(input.values),
      timeoutMs,
      ...optional('signal', input.signal),
      ...optional('redact', input.redact),
      what,
      release: input.release,
      namespace: input.namespace,
      chart: input.chart,
    });
  }

  async function runUnlessNotFound(r: Run): Promise<string | undefined> {
    try {
      return await run(r);
    } catch (err) {
      if (err instanceof HelmError && err.failure === 'not-found') return undefined;
      throw err;
    }
  }

  function chartArgs(source: ChartSource): string[] {
    const args: string[] = [source.chart];
    if (source.repo !== undefined) args.push('--repo', source.repo);
    if (source.version !== undefined) args.push('--version', source.version);
    return args;
  }

  /** What an upgrade and its server-side dry run share: the same command up to its mode. */
  function upgradeArgs(input: ChartSource & { release: string; namespace: string }): string[] {
    return [
      'upgrade',
      input.release,
      ...chartArgs(input),
      '--install',
      ...clusterFlags(input.namespace),
      // Values come only from stdin; --reset-values stops helm from reusing the last
      // release's values when ours happen to be empty.
      '--values',
      '-',
      '--reset-values',
      // CRDs are created and replaced by mooring, following the release's `crds:` option.
      '--skip-crds',
    ];
  }

  return {
    binary: options.binary,

    async upgradeInstall(input) {
      const args = [
        ...upgradeArgs(input),
        '--timeout',
        `${input.timeoutSeconds}s`,
        // Helm 4 forces the watcher when rolling back on failure; say so on the command line.
        `--wait=${input.wait || input.rollbackOnFailure ? 'watcher' : 'hookOnly'}`,
        `--server-side=${String(input.serverSide ?? 'auto')}`,
        '--output',
        'json',
      ];
      if (input.waitForJobs === true) args.push('--wait-for-jobs');
      if (input.rollbackOnFailure) args.push('--rollback-on-failure');
      if (input.createNamespace) args.push('--create-namespace');
      if (input.forceConflicts === true) args.push('--force-conflicts');
      if (input.takeOwnership === true) args.push('--take-ownership');
      if (input.historyMax !== undefined) args.push('--history-max', String(input.historyMax));
      if (input.description !== undefined) args.push('--description', input.description);
      const labels = formatLabels(input.labels ?? {}, input.release);
      if (labels !== undefined) args.push('--labels', labels);
      const out = await runRender(input, args, 'upgrade --install', input.timeoutSeconds * 1000 + graceMs);
      return parseRelease(out, input.release, input.namespace);
    },

    async template(input) {
      // No cluster flags: rendering stays client-side, so `plan` and `validate` need no cluster.
      const args = [
        'template',
        input.release,
        ...chartArgs(input),
        '--namespace',
        input.namespace,
        '--values',
        '-',
      ];
      if (input.kubeVersion !== undefined) args.push('--kube-version', input.kubeVersion);
      for (const api of input.apiVersions ?? []) args.push('--api-versions', api);
      if (input.includeCrds === true) args.push('--include-crds');
      if (input.isUpgrade === true) args.push('--is-upgrade');
      return runRender(input, args, 'template', commandTimeoutMs);
    },

    async renderOnServer(input) {
      const args = [...upgradeArgs(input), '--dry-run=server', '--output', 'json'];
      const out = await runRender(input, args, 'upgrade --install --dry-run=server', commandTimeoutMs);
      const raw = parseJson(out, 'upgrade --dry-run', input.release) as RawRelease & {
        manifest?: string;
        chart?: unknown;
      };
      return {
        manifest: raw.manifest ?? '',
        chartVersion: raw.chart?.metadata?.version ?? '',
        chartDigest: `sha256:${createHash('sha256')
          .update(JSON.stringify(sortedKeys(raw.chart ?? null)))
          .digest('hex')}`,
      };
    },

    async rollback(release, namespace, opts) {
      const args = ['rollback', release];
      if (opts.revision !== undefined) args.push(String(opts.revision));
      args.push(
        ...clusterFlags(namespace),
        '--timeout',
        `${opts.timeoutSeconds}s`,
        `--wait=${opts.wait ? 'watcher' : 'hookOnly'}`,
      );
      await run({
        args,
        timeoutMs: opts.timeoutSeconds * 1000 + graceMs,
        ...optional('signal', opts.signal),
        what: 'rollback',
        release,
        namespace,
      });
    },

    async uninstall(release, namespace, opts) {
      const args = [
        'uninstall',
        release,
        ...clusterFlags(namespace),
        '--timeout',
        `${opts.timeoutSeconds}s`,
        `--wait=${opts.wait ? 'watcher' : 'hookOnly'}`,
      ];
      const out = await runUnlessNotFound({
        args,
        timeoutMs: opts.timeoutSeconds * 1000 + graceMs,
        ...optional('signal', opts.signal),
        what: 'uninstall',
        release,
        namespace,
      });
      return out !== undefined;
    },

    async status(release, namespace, opts = {}) {
      const out = await runUnlessNotFound({
        // `helm status` in helm 4 also reads every live object of the release (Secrets
        // included); `get metadata` reads only the release record.
        args: ['get', 'metadata', release, ...clusterFlags(namespace), '--output', 'json'],
        timeoutMs: commandTimeoutMs,
        ...optional('signal', opts.signal),
        what: 'status',
        release,
        namespace,
      });
      return out === undefined ? undefined : parseMetadata(out, release, namespace);
    },

    async history(release, namespace, opts = {}) {
      const out = await runUnlessNotFound({
        args: ['history', release, ...clusterFlags(namespace), '--output', 'json'],
        timeoutMs: commandTimeoutMs,
        ...optional('signal', opts.signal),
        what: 'history',
        release,
        namespace,
      });
      return out === undefined ? [] : parseHistory(out, release);
    },

    async list(opts = {}) {
      const args = [
        'list',
        ...(opts.allNamespaces === true ? ['--all-namespaces'] : []),
        ...clusterFlags(opts.allNamespaces === true ? undefined : opts.namespace),
        // Without state flags helm lists only deployed and failed releases; pruning and
        // crash recovery need the pending and uninstalling ones too.
        '--deployed',
        '--failed',
        '--pending',
        '--uninstalling',
        '--max',
        '0',
        '--output',
        'json',
      ];
      if (opts.selector !== undefined) args.push('--selector', opts.selector);
      const out = await run({
        args,
        timeoutMs: commandTimeoutMs,
        ...optional('signal', opts.signal),
        what: 'list',
      });
      return parseList(out);
    },

    async manifest(release, namespace, opts = {}) {
      const args = ['get', 'manifest', release, ...clusterFlags(namespace)];
      if (opts.revision !== undefined) args.push('--revision', String(opts.revision));
      const out = await runUnlessNotFound({
        args,
        timeoutMs: commandTimeoutMs,
        ...optional('signal', opts.signal),
        what: 'get manifest',
        release,
        namespace,
      });
      return out;
    },
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function valuesYaml(values: Record<string, unknown>): string {
  // Plain YAML 1.2 without anchors: helm's parser must read back exactly what we merged.
  return toYaml(values, { aliasDuplicateObjects: false, lineWidth: 0 });
}

function formatLabels(labels: Record<string, string>, release: string): string | undefined {
  const entries = Object.entries(labels);
  if (entries.length === 0) return undefined;
  for (const [key, value] of entries) {
    if (!LABEL_KEY.test(key) || HELM_SYSTEM_LABELS.has(key)) {
      throw new MooringError(`invalid Helm release label key ${JSON.stringify(key)}`, { release });
    }
    // Commas and '=' would change how helm splits the flag; the label rules exclude them anyway.
    if (!LABEL_VALUE.test(value)) {
      throw new MooringError(`invalid value for Helm release label ${key}: ${JSON.stringify(value)}`, {
        release,
      });
    }
  }
  return entries.map(([k, v]) => `${k}=${v}`).join(',');
}

const STDERR_LIMIT = 8000;

function cleanStderr(stderr: string): string {
  const trimmed = stderr.trim();
  return trimmed.length > STDERR_LIMIT ? `${trimmed.slice(0, STDERR_LIMIT)}\n... (truncated)` : trimmed;
}

/** Helm prints warnings before the error; the line starting with `Error:` is the one that matters. */
function firstErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim());
  const error = lines.find((l) => l.startsWith('Error:'));
  const line = error ?? lines.filter((l) => l !== '').pop() ?? '(no output)';
  return line.replace(/^Error:\s*/, '');
}

// Helm's JSON for a release (`helm status -o json`, `helm upgrade -o json`). Only the fields
// we read are typed; `config` (the values) and `manifest` are deliberately never touched.
interface RawRelease {
  name?: string;
  namespace?: string;
  version?: number;
  info?: { status?: string; last_deployed?: string; description?: string };
  chart?: { metadata?: { name?: string; version?: string; appVersion?: string } };
}

/**
 * JSON with object keys sorted, so equal content always hashes equal. File times (helm 4
 * records each chart file's modtime) are left out: a fresh checkout of the same chart is the
 * same content.
 */
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value !== null && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(v)
        .filter((k) => k.toLowerCase().replace('_', '') !== 'modtime')
        .sort()
        .map((k) => [k, sortedKeys(v[k])]),
    );
  }
  return value;
}

function parseJson(stdout: string, what: string, release?: string): unknown {
  try {
    return JSON.parse(stdout);
  } catch {
    throw new MooringError(
      `helm ${what} printed output that is not JSON`,
      release === undefined ? {} : { release },
      {
        hint: 'check that the helm binary is helm v4',
      },
    );
  }
}

function parseRelease(stdout: string, release: string, namespace: string): HelmRelease {
  const raw = parseJson(stdout, 'status', release) as RawRelease;
  const meta = raw.chart?.metadata ?? {};
  return {
    name: raw.name ?? release,
    namespace: raw.namespace ?? namespace,
    revision: raw.version ?? 0,
    status: toStatus(raw.info?.status),
    chart: meta.name ?? '',
    chartVersion: meta.version ?? '',
    ...optional('appVersion', meta.appVersion),
    ...optional('updated', raw.info?.last_deployed),
    ...optional('description', raw.info?.description),
  };
}

// `helm get metadata -o json`.
interface RawMetadata {
  name?: string;
  namespace?: string;
  chart?: string;
  version?: string;
  appVersion?: string;
  revision?: number;
  status?: string;
  deployedAt?: string;
  applyMethod?: string;
  labels?: Record<string, string>;
}

function parseMetadata(stdout: string, release: string, namespace: string): HelmRelease {
  const raw = parseJson(stdout, 'get metadata', release) as RawMetadata;
  const labels = Object.fromEntries(
    Object.entries(raw.labels ?? {}).filter(([key]) => !HELM_SYSTEM_LABELS.has(key)),
  );
  return {
    name: raw.name ?? release,
    namespace: raw.namespace ?? namespace,
    revision: raw.revision ?? 0,
    status: toStatus(raw.status),
    chart: raw.chart ?? '',
    chartVersion: raw.version ?? '',
    ...optional('appVersion', raw.appVersion === '' ? undefined : raw.appVersion),
    ...optional('updated', raw.deployedAt),
    labels,
    ...optional('applyMethod', raw.applyMethod),
  };
}

interface RawHistory {
  revision?: number;
  updated?: string;
  status?: string;
  chart?: string;
  app_version?: string;
  description?: string;
}

function parseHistory(stdout: string, release: string): HelmHistoryEntry[] {
  const raw = parseJson(stdout, 'history', release);
  if (!Array.isArray(raw)) return [];
  return (raw as RawHistory[]).map((h) => ({
    revision: h.revision ?? 0,
    status: toStatus(h.status),
    chart: h.chart ?? '',
    ...optional('appVersion', h.app_version === '' ? undefined : h.app_version),
    ...optional('updated', h.updated),
    ...optional('description', h.description),
  }));
}

interface RawListEntry {
  name?: string;
  namespace?: string;
  revision?: string | number;
  updated?: string;
  status?: string;
  chart?: string;
  app_version?: string;
}

function parseList(stdout: string): HelmRelease[] {
  const raw = parseJson(stdout, 'list');
  if (!Array.isArray(raw)) return [];
  return (raw as RawListEntry[]).map((r) => {
    // helm list prints the chart as `<name>-<version>`; the version starts after the last
    // dash that is followed by a digit (chart names may contain dashes).
    const chart = r.chart ?? '';
    const split = /^(.*)-(\d[^-]*(?:-.*)?)$/.exec(chart);
    return {
      name: r.name ?? '',
      namespace: r.namespace ?? '',
      revision: Number(r.revision ?? 0),
      status: toStatus(r.status),
      chart: split?.[1] ?? chart,
      chartVersion: split?.[2] ?? '',
      ...optional('appVersion', r.app_version === '' ? undefined : r.app_version),
      ...optional('updated', r.updated === undefined ? undefined : goTimeToRfc3339(r.updated)),
    };
  });
}

/** `helm list` prints Go's default time format (`2025-01-02 15:04:05.123 +0000 UTC`); make it RFC 3339. */
function goTimeToRfc3339(t: string): string {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?) ([+-]\d{2})(\d{2})(?: \S+)?$/.exec(t);
  return m === null ? t : `${m[1]}T${m[2]}${m[3]}:${m[4]}`;
}

const STATUSES = new Set<string>([
  'unknown',
  'deployed',
  'uninstalled',
  'superseded',
  'failed',
  'uninstalling',
  'pending-install',
  'pending-upgrade',
  'pending-rollback',
]);

function toStatus(s: string | undefined): HelmReleaseStatus {
  return s !== undefined && STATUSES.has(s) ? (s as HelmReleaseStatus) : 'unknown';
}
