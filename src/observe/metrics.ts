// Prometheus metrics for one agent: its own registry (never prom-client's global one), so
// that several agents or tests in one process do not share counters. Labels carry only
// names (cluster, release, namespace, chart, version, state, outcome, command), never values
// from Git. Names follow Prometheus' conventions and pass promlint (`promtool check
// metrics`); process and Node.js metrics keep their standard unprefixed names, so stock
// dashboards find them. Every series carries the agent's `cluster`, so one Prometheus (or
// Thanos, Mimir) across clusters gives the fleet view.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ReleaseState } from './status.js';

/** Outcomes of an agent pass (src/agent/agent.ts PassOutcome). */
export const PASS_OUTCOMES = [
  'converged',
  'failed',
  'pending-approval',
  'source-error',
  'cluster-error',
  'invalid',
  'suspended',
] as const;

export const RELEASE_STATES: readonly ReleaseState[] = [
  'ready',
  'progressing',
  'failed',
  'pending-approval',
  'drifted',
  'waiting',
  'orphaned',
  'pruned',
  'suspended',
];

export interface MetricsOptions {
  /** Also export Node.js process metrics (CPU, memory, event loop); default true. */
  processMetrics?: boolean;
  /** The agent's cluster name: a `cluster` label on every series. */
  cluster?: string;
  /** mooring_build_info's labels. */
  build?: { version: string; commit: string };
  /** The agent's --interval, for alerts on an agent that stopped passing. */
  intervalSeconds?: number;
  now?: () => number;
}

/** A release as the per-release gauges show it (from its MooringRelease status). */
export interface ObservedRelease {
  name: string;
  namespace?: string;
  chart?: string;
  version?: string;
  state?: ReleaseState;
}

/** prom-client gauges named like counters (`_total`), which promlint rightly refuses. */
const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

export interface MooringMetrics {
  readonly registry: Registry;
  /** One agent pass ended (matches the agent's AgentMetrics). */
  passCompleted(outcome: string, seconds: number): void;
  /** Polling or fetching Git failed. */
  sourceFailed(): void;
  /** A poll of the branch: `changed` when the head moved (and a fetch follows). */
  gitPolled(changed: boolean): void;
  gitFetched(): void;
  /** Sets how many releases are in each state (states left out count zero). */
  setReleaseStates(counts: Partial<Record<ReleaseState, number>>): void;
  /** Every release as recorded after a pass: mooring_release_info and mooring_releases. */
  releasesObserved(releases: readonly ObservedRelease[]): void;
  /** How long one release's helm operation (install, upgrade, uninstall) took. */
  releaseReconciled(release: string, seconds: number): void;
  /** One release's converge attempt ended; `at` is milliseconds since the epoch. */
  converged(release: string, result: 'success' | 'failure', at: number): void;
  /** Plug into the Helm adapter's `onSpawn`: counts helm processes by command. */
  helmSpawned(args: readonly string[]): void;
  /** A drift check ended; `at` is milliseconds since the epoch. */
  driftChecked(result: { drifted: number; corrected: number; failed: number }, at: number): void;
  setPendingApprovals(count: number): void;
  setLeader(leading: boolean): void;
  /** A webhook delivery was refused: `too-large` (by its size) or `unverified` (signature). */
  webhookRefused(reason: 'too-large' | 'unverified'): void;
  /** The exposition text for /metrics. */
  render(): Promise<{ contentType: string; body: string }>;
}

export function createMetrics(options: MetricsOptions = {}): MooringMetrics {
  const registry = new Registry();
  const now = options.now ?? Date.now;
  if (options.cluster !== undefined) registry.setDefaultLabels({ cluster: options.cluster });
  if (options.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
  }
  const registers = [registry];

  const buildInfo = new Gauge({
    name: 'mooring_build_info',
    help: 'Always 1; the labels say which mooring runs.',
    labelNames: ['version', 'commit', 'nodejs_version'],
    registers,
  });
  const releaseInfo = new Gauge({
    name: 'mooring_release_info',
    help: 'Always 1, one series per release: its namespace, chart, version and state.',
    labelNames: ['release', 'namespace', 'chart', 'version', 'state'],
    registers,
  });
  const reconcileDuration = new Histogram({
    name: 'mooring_release_reconcile_duration_seconds',
    help: 'Duration of helm operations (install, upgrade, uninstall) per release.',
    labelNames: ['release'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800],
    registers,
  });
  const lastPass = new Gauge({
    name: 'mooring_last_pass_timestamp_seconds',
    help: 'When the last agent pass ended (the agent start time before its first pass).',
    registers,
  });
  const lastSuccessfulPass = new Gauge({
    name: 'mooring_last_successful_pass_timestamp_seconds',
    help: 'When the last pass that converged everything ended.',
    registers,
  });
  const lastOutcome = new Gauge({
    name: 'mooring_last_pass_outcome',
    help: '1 for the outcome of the last pass, 0 for the others.',
    labelNames: ['outcome'],
    registers,
  });
  const interval = new Gauge({
    name: 'mooring_pass_interval_seconds',
    help: "The agent's configured time between passes (--interval).",
    registers,
  });

  const passes = new Counter({
    name: 'mooring_passes_total',
    help: 'Agent passes (fetch, plan, gate, converge, drift check), by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  const passDuration = new Histogram({
    name: 'mooring_pass_duration_seconds',
    help: 'Duration of agent passes, by outcome.',
    labelNames: ['outcome'],
    buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800],
    registers,
  });
  const gitPolls = new Counter({
    name: 'mooring_git_polls_total',
    help: 'Polls of the tracked branch, by whether the head moved.',
    labelNames: ['changed'],
    registers,
  });
  const gitFetches = new Counter({
    name: 'mooring_git_fetches_total',
    help: 'Git fetches of a new revision.',
    registers,
  });
  const gitFailures = new Counter({
    name: 'mooring_git_failures_total',
    help: 'Failed polls or fetches of the Git repository.',
    registers,
  });
  const releases = new Gauge({
    name: 'mooring_releases',
    help: 'Releases managed by this agent, by state.',
    labelNames: ['state'],
    registers,
  });
  const converges = new Counter({
    name: 'mooring_converges_total',
    help: 'Converge attempts (helm upgrade --install or uninstall), by release and result.',
    labelNames: ['release', 'result'],
    registers,
  });
  const convergeFailures = new Counter({
    name: 'mooring_converge_failures_total',
    help: 'Failed converge attempts, by release.',
    labelNames: ['release'],
    registers,
  });
  const lastConverge = new Gauge({
    name: 'mooring_last_converge_timestamp_seconds',
    help: 'When a release last finished converging (success or failure).',
    labelNames: ['release'],
    registers,
  });
  const lastSuccess = new Gauge({
    name: 'mooring_last_successful_converge_timestamp_seconds',
    help: 'When a release last converged successfully.',
    labelNames: ['release'],
    registers,
  });
  const helmProcesses = new Counter({
    name: 'mooring_helm_processes_total',
    help: 'helm processes started, by command.',
    labelNames: ['command'],
    registers,
  });
  const driftDetected = new Counter({
    name: 'mooring_drift_detected_total',
    help: 'Drifted fields or deleted objects found by drift checks.',
    registers,
  });
  const driftCorrected = new Counter({
    name: 'mooring_drift_corrected_total',
    help: 'Drifted fields or deleted objects restored.',
    registers,
  });
  const driftFailures = new Counter({
    name: 'mooring_drift_check_failures_total',
    help: 'Drift checks or corrections that failed.',
    registers,
  });
  const lastDriftCheck = new Gauge({
    name: 'mooring_last_drift_check_timestamp_seconds',
    help: 'When the last drift check finished.',
    registers,
  });
  const pendingApprovals = new Gauge({
    name: 'mooring_pending_approvals',
    help: 'Plans waiting for approval.',
    registers,
  });
  const leader = new Gauge({
    name: 'mooring_leader',
    help: '1 while this replica holds the leader lease.',
    registers,
  });

  const webhookRefusals = new Counter({
    name: 'mooring_webhook_refused_total',
    help: 'Webhook deliveries refused, by reason (too-large, unverified).',
    labelNames: ['reason'],
    registers,
  });
  // The longest the event loop was blocked since the last scrape, so that no stall falls
  // between two scrapes: lease renewals and the leader check run on this loop.
  const loopDelay = options.processMetrics === false ? undefined : monitorEventLoopDelay({ resolution: 10 });
  loopDelay?.enable();
  new Gauge({
    name: 'mooring_event_loop_lag_seconds',
    help: 'Longest event-loop delay since the previous scrape (lease renewal and the leader check wait this long).',
    registers,
    collect() {
      if (!loopDelay) return;
      // The histogram's max is in nanoseconds; with no sample yet it reads 0.
      this.set(loopDelay.count === 0 ? 0 : loopDelay.max / 1e9);
      loopDelay.reset();
    },
  });
  for (const reason of ['too-large', 'unverified']) webhookRefusals.inc({ reason }, 0);

  for (const state of RELEASE_STATES) releases.set({ state }, 0);
  for (const outcome of PASS_OUTCOMES) {
    passes.inc({ outcome }, 0);
    lastOutcome.set({ outcome }, 0);
  }
  pendingApprovals.set(0);
  leader.set(0);
  lastPass.set(now() / 1000);
  if (options.intervalSeconds !== undefined) interval.set(options.intervalSeconds);
  if (options.build) {
    buildInfo.set(
      { version: options.build.version, commit: options.build.commit, nodejs_version: process.version },
      1,
    );
  }

  return {
    registry,
    passCompleted(outcome, seconds) {
      passes.inc({ outcome });
      passDuration.observe({ outcome }, seconds);
      const at = now() / 1000;
      lastPass.set(at);
      if (outcome === 'converged') lastSuccessfulPass.set(at);
      for (const o of PASS_OUTCOMES) lastOutcome.set({ outcome: o }, o === outcome ? 1 : 0);
    },
    sourceFailed() {
      gitFailures.inc();
    },
    gitPolled(changed) {
      gitPolls.inc({ changed: String(changed) });
    },
    gitFetched() {
      gitFetches.inc();
    },
    setReleaseStates(counts) {
      for (const state of RELEASE_STATES) releases.set({ state }, counts[state] ?? 0);
    },
    releasesObserved(observed) {
      releaseInfo.reset();
      const counts: Partial<Record<ReleaseState, number>> = {};
      for (const r of observed) {
        if (r.state === 'pruned') continue;
        const state = r.state ?? 'progressing';
        counts[state] = (counts[state] ?? 0) + 1;
        releaseInfo.set(
          {
            release: r.name,
            namespace: r.namespace ?? '',
            chart: r.chart ?? '',
            version: r.version ?? '',
            state,
          },
          1,
        );
      }
      for (const state of RELEASE_STATES) releases.set({ state }, counts[state] ?? 0);
    },
    releaseReconciled(release, seconds) {
      reconcileDuration.observe({ release }, seconds);
    },
    converged(release, result, at) {
      converges.inc({ release, result });
      lastConverge.set({ release }, at / 1000);
      if (result === 'failure') convergeFailures.inc({ release });
      else lastSuccess.set({ release }, at / 1000);
    },
    helmSpawned(args) {
      // `get metadata`, `get manifest`: the subcommand matters; other arguments are names.
      const command = args[0] === 'get' && args[1] !== undefined ? `get ${args[1]}` : (args[0] ?? 'unknown');
      helmProcesses.inc({ command });
    },
    driftChecked(result, at) {
      driftDetected.inc(result.drifted);
      driftCorrected.inc(result.corrected);
      driftFailures.inc(result.failed);
      lastDriftCheck.set(at / 1000);
    },
    setPendingApprovals(count) {
      pendingApprovals.set(count);
    },
    setLeader(leading) {
      leader.set(leading ? 1 : 0);
    },
    webhookRefused(reason) {
      webhookRefusals.inc({ reason });
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
