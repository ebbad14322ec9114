// `mooring run`: builds the agent from its configuration and runs it, as a loop behind a
// leader lease, or `--once` for one full pass with a documented exit code.
import type { Command } from 'commander';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chartAuthLoader, loadChartAuth } from '../charts/auth.js';
import { ChartSource } from '../charts/chart-source.js';
import { pino, type Logger } from 'pino';
import { Agent, passExitCode, type PassResult, type Source } from '../agent/agent.js';
import { AGENT_SETTINGS, loadAgentConfig, type AgentConfig } from '../agent/config.js';
import { redactUrl } from '../source/credentials.js';
import type { ConvergeResult, RecordPatch } from '../converge/converger.js';
import { createGate } from '../gate/gate.js';
import { ensureApprovalPolicy } from '../gate/policy.js';
import { createHelm, findLeash, LEASH_BINARY } from '../converge/helm.js';
import { secretMetadataLister } from '../converge/helm-storage.js';
import { describeError, MooringError } from '../errors.js';
import { connect, type Kube } from '../kube/connect.js';
import { apiErrorMessage, isAlreadyExists, isNotFound } from '../kube/errors.js';
import { createLeaderElector, type LeaderElector } from '../kube/lease.js';
import { watchCollection } from '../kube/watch.js';
import {
  agentObjectRef,
  createAgentControl,
  mooringPath,
  type AgentObject,
} from '../observe/agent-object.js';
import { ensureCrds } from '../observe/crds.js';
import { createDriftChecker, loadIgnoreFile } from '../observe/drift/index.js';
import { createEventRecorder } from '../observe/events.js';
import { createWebhookNotifier, notifyingRecorder, urlFromFile } from '../observe/notify.js';
import { createMetrics, type MooringMetrics } from '../observe/metrics.js';
import { startServer, type AgentServer } from '../observe/server.js';
import { createStatusStore, releaseSelector, type MooringReleaseObject } from '../observe/status.js';
import { secretDigestKey } from '../secrets/hash.js';
import { AgeKeyError, loadAgeKeys } from '../resolve/age-key.js';
import { decryptSops } from '../resolve/sops.js';
import { GitSource } from '../source/git-source.js';
import { verifyWebhook } from '../source/webhook.js';
import { buildInfo } from '../version.js';
import { findHelm } from './common.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { Io } from './output.js';

/** Seconds in-flight helm processes get to finish after SIGTERM before they are stopped. */
const SHUTDOWN_GRACE_SECONDS = 25;

export interface RunHooks {
  /** Stops the agent (tests; the CLI wires SIGTERM/SIGINT to it). */
  signal?: AbortSignal;
  /** Called once the HTTP server listens, with its address. */
  onListening?: (address: string) => void;
  onPass?: (result: PassResult) => void;
  logger?: Logger;
  /** Called with the argument list of every helm process the agent starts (tests, benchmarks). */
  onHelmSpawn?: (args: readonly string[]) => void;
  /** The chart source's clock (tests move it past --chart-interval). */
  clock?: () => number;
}

/** Exposes the pieces of an agent, for `mooring run` and for tests that drive passes. */
export async function buildAgent(
  config: AgentConfig,
  env: NodeJS.ProcessEnv,
  log: Logger,
  helmSignal?: AbortSignal,
  onHelmSpawn?: (args: readonly string[]) => void,
  /** The chart source's clock (tests move it past --chart-interval). */
  clock?: () => number,
  mayRunHelm?: () => string | undefined,
) {
  // Local configuration first: a key that cannot load is exit 2 before any cluster is asked.
  const keys = await loadAgeKeys({
    env,
    ...(config.ageKeyFile ? { ageKeyFile: config.ageKeyFile } : {}),
  });
  // As sops does, decrypt with the keys that loaded; say which sources did not.
  for (const problem of keys.problems) log.warn({ problem }, 'an age key source could not be loaded');
  // The KUBECONFIG of `env` (not of this process).
  // Like helm below, the first file of a KUBECONFIG list is the one used.
  const kubeconfigFile = env.KUBECONFIG ? env.KUBECONFIG.split(':')[0] : undefined;
  const clients: Kube = connect({
    ...(kubeconfigFile ? { kubeconfig: kubeconfigFile } : {}),
    ...(config.context ? { context: config.context } : {}),
    env,
  });
  await ensureNamespace(clients, config.namespace, log);
  await ensureCrds(clients);

  const metrics = createMetrics({
    cluster: config.cluster,
    build: buildInfo(env),
    intervalSeconds: config.intervalSeconds,
  });
  const helmBinary = findHelm(env);
  const leash = findLeash(helmBinary);
  if (!leash && process.platform === 'linux') {
    log.warn(
      { helm: helmBinary },
      `no ${LEASH_BINARY} next to helm: a helm process may outlive the agent if only the agent is killed (kill -9); the next leader then waits for its timeout before recovering the release`,
    );
  }
  const helm = createHelm({
    binary: helmBinary,
    ...(leash ? { leash } : {}),
    ...(kubeconfigFile ? { kubeconfig: kubeconfigFile } : {}),
    ...(config.context ? { kubeContext: config.context } : {}),
    // Discovery and OpenAPI documents, kept between helm processes (see docs/agent.md).
    kubeCacheDir: join(config.workDir, 'kube-cache'),
    onSpawn: (args) => {
      metrics.helmSpawned(args);
      onHelmSpawn?.(args);
    },
    ...(helmSignal ? { signal: helmSignal } : {}),
  });
  mkdirSync(config.workDir, { recursive: true });
  const git = new GitSource({
    url: config.repo,
    branch: config.branch,
    ...(config.path ? { path: config.path } : {}),
    workDir: config.workDir,
    ...(config.gitUsernameFile ? { usernameFile: config.gitUsernameFile } : {}),
    ...(config.gitPasswordFile ? { passwordFile: config.gitPasswordFile } : {}),
    ...(config.gitCaFile ? { caFile: config.gitCaFile } : {}),
    ...(config.gitSshKeyFile ? { sshKeyFile: config.gitSshKeyFile } : {}),
    ...(config.gitKnownHostsFile ? { knownHostsFile: config.gitKnownHostsFile } : {}),
    log: log.child({ component: 'source' }),
  });
  // An approved (older) revision stays on disk while it is used; the previous one is let go.
  let held: { release(): void } | undefined;
  const source: Source = {
    sync: async () => {
      const { snapshot, changed, fetched } = await git.sync();
      metrics.gitPolled(changed);
      if (fetched) metrics.gitFetched();
      return snapshot;
    },
    checkoutRevision: async (revision) => {
      const hold = await git.checkoutRevision(revision);
      held?.release();
      held = hold;
      return { revision: hold.revision, dir: hold.dir };
    },
  };
  // Watch-fed copies of the operator's handles, started by controls.watch() in the loop.
  const onWatchError = (err: unknown) =>
    log.warn({ err: apiErrorMessage(err) }, 'watch of the mooring objects failed; retrying');
  const watched = {
    agent: watchCollection<AgentObject>({
      client: clients.rest,
      path: mooringPath(config.namespace, 'MooringAgent'),
      fieldSelector: `metadata.name=${config.cluster}`,
      onError: onWatchError,
    }),
    releases: watchCollection<MooringReleaseObject>({
      client: clients.rest,
      path: mooringPath(config.namespace, 'MooringRelease'),
      ...releaseSelector(config.cluster),
      onError: onWatchError,
    }),
  };
  const status = createStatusStore({
    watched: watched.releases,
    client: clients.rest,
    namespace: config.namespace,
    cluster: config.cluster,
  });
  const recorder = createEventRecorder({
    client: clients.rest,
    releaseUid: (release) => status.uid(release),
    namespace: config.namespace,
    instance: config.identity,
    onError: (err) => log.warn({ err: err.message }, 'could not record an event'),
  });
  // Every event recorded through `events` is also offered to the webhook notifier.
  const notifier = config.notifyUrlFile
    ? createWebhookNotifier({
        url: urlFromFile(config.notifyUrlFile),
        format: config.notifyFormat,
        cluster: config.cluster,
        log: log.child({ component: 'notify' }),
      })
    : undefined;
  const events = notifier ? notifyingRecorder(recorder, notifier, config.namespace) : recorder;
  const agentRef = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    name: leaseName(config),
    namespace: config.namespace,
  };
  const records = {
    list: () => status.list(),
    update: async (name: string, patch: RecordPatch) => {
      await status.update(name, patch);
    },
    remove: (name: string) => status.remove(name),
  };
  const digestKey = secretDigestKey(keys.identities.map((i) => i.deriveKey('digest').toString('hex')));
  const chartLog = log.child({ component: 'charts' });
  const charts = new ChartSource({
    dir: join(config.workDir, 'charts'),
    auth: chartAuthLoader(config.chartAuthFile, (err) =>
      chartLog.warn({ err: describeError(err) }, 'cannot read --chart-auth-file; keeping the last good one'),
    ),
    intervalSeconds: config.chartIntervalSeconds,
    ...(clock ? { now: clock } : {}),
    log: chartLog,
  });
  const controls = createAgentControl({
    client: clients.rest,
    watched,
    namespace: config.namespace,
    cluster: config.cluster,
    identity: config.identity,
    version: buildInfo(env).version,
    releases: status,
    events: events.forObject(agentObjectRef(config.namespace, config.cluster)),
  });

  // Approvals are only as safe as the admission policy that checks who recorded them.
  const policy = await ensureApprovalPolicy(clients, { namespace: config.namespace });
  if (policy.unverified.length) {
    log.warn(
      { objects: policy.unverified },
      'cannot read or install the approval admission policy; install it with the chart',
    );
  }
  const gate = createGate({
    clients,
    cluster: config.cluster,
    namespace: config.namespace,
    prune: config.prune,
    records,
    digestKey,
    events,
    metrics,
    log: log.child({ component: 'gate' }),
    // Plans render as the upgrade renders: against the cluster (lookup, .Capabilities).
    renderServer: (r, chart) =>
      helm.renderOnServer!({
        ...chart,
        release: r.release.name,
        namespace: r.release.namespace,
        values: r.merge.userValues,
        redact: r.secretStrings,
      }),
  });
  const agent = new Agent({
    config,
    source,
    helm,
    kube: clients.rest,
    listHelmSecrets: secretMetadataLister(clients.objects),
    crdApi: clients.objects,
    records,
    events,
    clusterEvents: events.forObject(agentRef),
    planDeps: {
      decrypt: (text, file) => decryptSops(text, file, keys),
      digestKey,
      charts,
    },
    charts,
    gate,
    controls,
    drift: createDriftChecker({
      objects: clients.objects,
      kube: clients.rest,
      status,
      events,
      metrics,
      mode: config.drift,
      ignore: config.driftIgnoreFile ? loadIgnoreFile(config.driftIgnoreFile) : [],
      log: log.child({ component: 'drift' }),
    }),
    metrics,
    ...(mayRunHelm ? { mayRunHelm } : {}),
    log,
    convergeLog: log.child({ component: 'converge' }),
  });
  return { agent, clients, metrics, status, events, notifier, git, helm, charts, controls };
}

/** The agent's own namespace: the chart creates it; a bare `mooring run` creates it too. */
async function ensureNamespace(clients: Kube, namespace: string, log: Logger): Promise<void> {
  try {
    await clients.rest.request('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}`);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await clients.rest.request('POST', '/api/v1/namespaces', {
        body: {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name: namespace, labels: { 'app.kubernetes.io/managed-by': 'mooring' } },
        },
      });
      log.info({ namespace }, 'created the agent namespace');
    } catch (createErr) {
      // Another replica, starting at the same time, created it first.
      if (!isAlreadyExists(createErr)) throw createErr;
    }
  }
}

export function leaseName(config: AgentConfig): string {
  return `mooring-${config.cluster}`;
}

function readSecretFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new MooringError(
      `cannot read the webhook secret: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      { file: path },
    );
  }
}

export async function runAgent(
  config: AgentConfig,
  env: NodeJS.ProcessEnv,
  hooks: RunHooks = {},
): Promise<ExitCode> {
  const log =
    hooks.logger ??
    pino({
      level: config.logLevel,
      // `component` on every line: children (source, drift, gate, ...) override it.
      base: { cluster: config.cluster, component: 'agent' },
      // "info", not 30: what log pipelines (Loki, Elasticsearch, Cloud Logging) expect.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    });
  const build = buildInfo(env);
  log.info(
    {
      version: build.version,
      commit: build.commit,
      repo: redactUrl(config.repo),
      branch: config.branch,
      // The mode passes use is the stricter of this and cluster.yaml's `sync.mode`, known once
      // the repository is read: the `effective approval mode` line says it.
      configuredApproval: config.approval,
      drift: config.drift,
      prune: config.prune,
      once: config.once,
    },
    'mooring agent starting',
  );

  // Two signals: `stop` stops starting new work; `kill` stops helm processes in flight.
  const stop = new AbortController();
  const kill = new AbortController();
  hooks.signal?.addEventListener('abort', () => stop.abort(), { once: true });
  stop.signal.addEventListener(
    'abort',
    () => {
      log.info({ graceSeconds: SHUTDOWN_GRACE_SECONDS }, 'stopping: finishing work in flight');
      setTimeout(() => kill.abort(), SHUTDOWN_GRACE_SECONDS * 1000).unref();
    },
    { once: true },
  );

  try {
    loadChartAuth(config.chartAuthFile);
  } catch (err) {
    log.error({ err: describeError(err) }, 'cannot start the agent');
    return EXIT.usage;
  }
  // Checked right before every helm process: only a replica whose lease is fresh starts one.
  const lease: { elector?: LeaderElector } = {};
  const mayRunHelm = (): string | undefined =>
    lease.elector && !lease.elector.isLeader()
      ? 'not started: this replica does not hold a fresh leader lease'
      : undefined;
  let built;
  try {
    built = await buildAgent(config, env, log, kill.signal, hooks.onHelmSpawn, hooks.clock, mayRunHelm);
  } catch (err) {
    log.error({ err: describeError(err) }, 'cannot start the agent');
    // An age key that cannot be loaded is local configuration, like a bad flag.
    return err instanceof AgeKeyError ? EXIT.usage : EXIT.cluster;
  }
  const { agent, clients, metrics } = built;
  const onPass = (result: PassResult): void => {
    if (result.converge) recordReleaseMetrics(metrics, result.converge, Date.now());
    hooks.onPass?.(result);
  };
  let electionError: string | undefined;
  const leaseLog = log.child({ component: 'lease' });
  const elector = config.leaderElection
    ? createLeaderElector({
        client: clients.rest,
        namespace: config.namespace,
        name: leaseName(config),
        identity: config.identity,
        onStartedLeading: () => {
          metrics.setLeader(true);
          leaseLog.info({ identity: config.identity }, 'became leader');
        },
        onStoppedLeading: () => {
          metrics.setLeader(false);
          // Giving the lease up on the way out is routine; losing it while running is not.
          if (config.once || stop.signal.aborted)
            leaseLog.info({ identity: config.identity }, 'released the lease');
          else leaseLog.warn({ identity: config.identity }, 'lost leadership');
        },
        onError: (err) => {
          electionError = err.message;
          leaseLog.warn({ err: err.message }, 'leader election');
        },
      })
    : undefined;
  lease.elector = elector;

  if (config.once) {
    if (elector && !(await waitForLease(elector, stop.signal, { acquire: true, timeoutMs: 30_000 }))) {
      log.error(
        { err: electionError },
        electionError
          ? 'cannot take the leader lease'
          : 'another agent replica holds the lease; not running a pass',
      );
      return EXIT.cluster;
    }
    // Keep renewing the lease while the pass runs (an upgrade can outlast the lease by far),
    // and stop starting work if it is lost anyway; elector.run() releases it at the end.
    const done = new AbortController();
    const electing = elector?.run(done.signal);
    const lost = new AbortController();
    const watch = elector
      ? setInterval(() => {
          if (!elector.isLeader()) lost.abort();
        }, 1000)
      : undefined;
    try {
      const result = await agent.pass({
        forceDrift: true,
        signal: AbortSignal.any([stop.signal, lost.signal]),
        cancel: lost.signal,
      });
      onPass(result);
      log.info(summary(result), 'pass finished');
      await built.events.flush();
      await built.notifier?.flush();
      return passExitCode(result) as ExitCode;
    } finally {
      clearInterval(watch);
      done.abort();
      await electing;
      built.charts.close();
    }
  }

  const apiReachable = apiProbe(clients, config.namespace);
  const webhookSecret = config.webhookSecretFile;
  const listening = config.listen
    ? startServer(config.listen, {
        health: () => agent.health(),
        // A standby replica is ready: it is healthy and waiting for the Lease. Otherwise a
        // rolling update or a drain would wait forever for a pod that cannot lead yet. Either
        // way a replica that cannot reach the API server is not ready.
        readiness: async () =>
          (elector && !elector.isLeader() ? undefined : agent.readiness()) ?? (await apiReachable()),
        onWebhookRefused: (reason) => metrics.webhookRefused(reason),
        metrics: () => metrics.render(),
        ...(webhookSecret
          ? {
              verifyWebhook: (headers, body) => {
                const verdict = verifyWebhook({ headers, body, secret: readSecretFile(webhookSecret) });
                return verdict.ok ? undefined : verdict.reason;
              },
              onWebhook: () => agent.trigger(),
            }
          : {}),
        log: log.child({ component: 'http' }),
      })
    : undefined;
  let server: AgentServer | undefined;
  try {
    server = await listening;
  } catch (err) {
    // Address in use, or not ours to bind: a configuration problem, not a crash.
    const reason = (err as NodeJS.ErrnoException).code ?? describeError(err);
    log.error(
      {
        err: `cannot listen on ${config.listen}: ${reason}`,
        hint: 'set another address with --listen (MOORING_LISTEN)',
      },
      'cannot start the agent',
    );
    await built.events.flush();
    return EXIT.usage;
  }
  if (server) {
    log.info({ address: server.address }, 'listening');
    hooks.onListening?.(server.address);
  }

  // `mooring reconcile`, `suspend` and `resume` take effect at once, not at the next interval.
  const stopWatching = built.controls.watch(() => agent.trigger());
  try {
    if (!elector) {
      await agent.loop(stop.signal, onPass);
    } else {
      // Lead, then loop; on losing the lease, stop converging and go back to waiting. The
      // lease is kept (renewed) until the loop is over, helm processes in flight included:
      // another replica must not take over while this one still runs helm.
      const electionDone = new AbortController();
      kill.signal.addEventListener('abort', () => electionDone.abort(), { once: true });
      const electing = elector.run(electionDone.signal);
      while (!stop.signal.aborted) {
        // elector.run() does the acquiring and renewing; a second caller would race it (two
        // writes of one resourceVersion: the loser's 409 reads as "held by another" and the
        // replica would drop its own lease for a moment, aborting the pass in flight).
        if (!(await waitForLease(elector, stop.signal, { acquire: false }))) break;
        const lost = new AbortController();
        const watch = setInterval(() => {
          if (!elector.isLeader()) lost.abort();
        }, 1000);
        // Losing the lease stops new work and cancels helm in flight: someone else leads now.
        const both = AbortSignal.any([stop.signal, lost.signal]);
        await agent.loop(both, onPass, lost.signal);
        clearInterval(watch);
      }
      electionDone.abort();
      await electing;
    }
  } finally {
    stopWatching();
    await server?.close();
    await built.events.flush();
    await built.notifier?.flush();
    built.charts.close();
    log.info({}, 'mooring agent stopped');
  }
  return EXIT.ok;
}

/** Seconds /readyz waits for the API server before it answers "not ready". */
const API_PROBE_TIMEOUT_MS = 3000;

/**
 * Whether the API server answers: one cheap request (the agent's namespace), shared by
 * probes that arrive together and reused for a second, so a busy kubelet costs little.
 */
function apiProbe(clients: Kube, namespace: string): () => Promise<string | undefined> {
  let last: { at: number; problem: string | undefined } | undefined;
  let inFlight: Promise<string | undefined> | undefined;
  const probe = async (): Promise<string | undefined> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`the Kubernetes API server did not answer within ${API_PROBE_TIMEOUT_MS / 1000}s`),
        API_PROBE_TIMEOUT_MS,
      );
    });
    const answer = clients.rest.request('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}`).then(
      () => undefined,
      (err: unknown) =>
        // Any HTTP answer means the server is there; only a failure to talk to it counts.
        typeof (err as { code?: unknown }).code === 'number'
          ? undefined
          : `cannot reach the Kubernetes API server: ${apiErrorMessage(err)}`,
    );
    try {
      return await Promise.race([answer, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  return () => {
    if (last && Date.now() - last.at < 1000) return Promise.resolve(last.problem);
    inFlight ??= probe().then((problem) => {
      last = { at: Date.now(), problem };
      inFlight = undefined;
      return problem;
    });
    return inFlight;
  };
}

/**
 * Waits until this replica leads. With `acquire`, tries to take the lease itself (--once);
 * otherwise only watches what elector.run() achieves.
 */
async function waitForLease(
  elector: ReturnType<typeof createLeaderElector>,
  signal: AbortSignal,
  options: { acquire: boolean; timeoutMs?: number },
): Promise<boolean> {
  const deadline = Date.now() + (options.timeoutMs ?? Infinity);
  while (!signal.aborted && Date.now() < deadline) {
    if (elector.isLeader() || (options.acquire && (await elector.tryAcquireOrRenew()))) return true;
    await sleep(options.acquire ? 1000 : 250, signal);
  }
  return false;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** Per-release metrics from a converge pass: attempts (helm ran) and how long they took. */
function recordReleaseMetrics(metrics: MooringMetrics, result: ConvergeResult, at: number): void {
  for (const r of result.releases) {
    if (r.durationSeconds !== undefined) metrics.releaseReconciled(r.name, r.durationSeconds);
    if (
      r.action === 'install' ||
      r.action === 'upgrade' ||
      r.action === 'uninstall' ||
      r.action === 'error'
    ) {
      metrics.converged(r.name, r.state === 'ready' || r.state === 'pruned' ? 'success' : 'failure', at);
    }
  }
}

function summary(result: PassResult): object {
  return {
    outcome: result.outcome,
    revision: result.revision,
    ...(result.pending ? { pending: result.pending } : {}),
    ...(result.error ? { err: result.error } : {}),
    ...(result.durationSeconds !== undefined ? { durationSeconds: result.durationSeconds } : {}),
    ...(result.drift ? { drift: result.drift } : {}),
    ...(result.converge
      ? {
          releases: result.converge.releases.map((r) => ({
            name: r.name,
            action: r.action,
            state: r.state,
            ...(r.error ? { error: r.error } : {}),
          })),
        }
      : {}),
  };
}

export function registerRun(program: Command, io: Io, done: (code: ExitCode) => void): void {
  const cmd = program
    .command('run')
    .description("run the agent: pull Git, converge this cluster's Helm releases, correct drift")
    .addHelpText(
      'after',
      `
Examples:
  mooring run --repo https://git.example.com/platform/gitops.git --cluster prod-eu-west \\
    --git-password-file /etc/mooring/git/token --approval manual
  mooring run --repo git@git.example.com:platform/gitops.git --cluster prod-eu-west \\
    --git-ssh-key-file ~/.ssh/deploy_key --git-known-hosts-file ~/.ssh/known_hosts --path deploy
  MOORING_REPO=https://git.example.com/platform/gitops.git MOORING_CLUSTER=dev mooring run --once
\nEvery flag can also be set by an environment variable:\n${AGENT_SETTINGS.map((s) => `  --${s.flag.padEnd(22)} ${s.env}`).join('\n')}\n\nExit codes with --once: 0 converged, 1 a release failed or the revision is invalid, 3 waiting for approval, 4 Git unreachable, 5 Kubernetes unreachable.`,
    );
  cmd
    .option(
      '--repo <url>',
      'Git repository: https://..., ssh://git@host/org/repo.git or git@host:org/repo.git',
    )
    .option('--branch <name>', 'branch to track (default main)')
    .option('--path <dir>', 'the folder of the repository that holds the layout (default: its root)')
    .option('--cluster <name>', 'this cluster: a folder under clusters/')
    .option('--approval <mode>', 'auto or manual (default auto); cluster.yaml can only make it stricter')
    .option('--drift <mode>', 'correct, warn or off (default correct)')
    .option('--prune', 'uninstall releases that left Git (only those mooring installed)')
    .option(
      '--prune-allow-empty',
      'let --prune uninstall every release of the cluster in one pass (refused as an invalid revision otherwise)',
    )
    .option('--interval <duration>', 'time between polls (default 1m)')
    .option('--drift-interval <duration>', 'time between drift checks (default 5m)')
    .option(
      '--chart-interval <duration>',
      'time between checks of chart repositories and registries (default 10m)',
    )
    .option('--chart-auth-file <file>', 'credentials and CAs for chart repositories and registries (YAML)')
    .option(
      '--drift-ignore-file <file>',
      'agent-wide drift ignore rules (YAML list of {path, kind, name, ...})',
    )
    .option('--once', 'one full pass, then exit with a status code')
    .option('--git-username-file <file>', 'file holding the Git username')
    .option('--git-password-file <file>', 'file holding the Git password or token')
    .option('--git-ca-file <file>', 'PEM CA bundle for the Git server')
    .option('--git-ssh-key-file <file>', 'private key for an SSH --repo (a deploy key)')
    .option('--git-known-hosts-file <file>', 'known_hosts for an SSH --repo; host keys are always checked')
    .option(
      '--age-key-file <file>',
      'age identities for SOPS files (also SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_KEY_CMD, SOPS_AGE_SSH_PRIVATE_KEY_FILE)',
    )
    .option('--namespace <ns>', "the agent's namespace (default $POD_NAMESPACE or mooring-system)")
    .option('--work-dir <dir>', 'where snapshots are checked out (default /tmp/mooring)')
    .option('--listen <addr>', 'address for /healthz, /readyz, /metrics, /hooks/git (default :8080)')
    .option('--webhook-secret-file <file>', 'shared secret for POST /hooks/git')
    .option('--concurrency <n>', 'helm processes at once (default 4)')
    .option('--no-leader-election', 'do not take the Lease (only for a single replica)')
    .option('--context <name>', 'kube context (default: in-cluster, or the current context of KUBECONFIG)')
    .option('--identity <name>', 'this replica in the Lease (default $POD_NAME)')
    .option('--log-level <level>', 'trace, debug, info, warn or error (default info)')
    .option(
      '--notify-url-file <file>',
      'file holding a webhook URL for failure, drift and approval notifications',
    )
    .option('--notify-format <format>', 'slack or json (default slack)')
    .action(async (flags: Record<string, unknown>) => {
      // commander sets leaderElection: true by default because of --no-leader-election;
      // only an explicit flag should beat MOORING_LEADER_ELECTION.
      if (cmd.getOptionValueSource('leaderElection') === 'default') delete flags.leaderElection;
      let config: AgentConfig;
      try {
        config = loadAgentConfig(flags, process.env);
      } catch (err) {
        io.err(`error: ${describeError(err)}`);
        return done(EXIT.usage);
      }
      const controller = new AbortController();
      let signals = 0;
      const onSignal = () => {
        signals++;
        controller.abort();
        if (signals > 1) process.exit(EXIT.failed);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      try {
        done(await runAgent(config, process.env, { signal: controller.signal }));
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    });
}
