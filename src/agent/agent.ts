// The agent loop: poll Git, work out what this cluster should run, pass it through the
// approval gate, converge it, and check for drift; then wait for the next interval or a
// webhook. A pass never throws: every failure is reported and retried with backoff.
import { existsSync } from 'node:fs';
import { describeError, MooringError } from '../errors.js';
import type { ApprovalMode, AgentConfig } from './config.js';
import {
  converge,
  type ConvergeDeps,
  type ConvergeResult,
  type EventSink,
  type ReleaseRecord,
  type ReleaseRecords,
} from '../converge/converger.js';
import { pruneRefusal } from '../converge/prune-guard.js';
import type { Helm } from '../converge/helm.js';
import type { SecretMetadataLister } from '../converge/helm-storage.js';
import type { RestClient } from '../kube/rest.js';
import { loadClusterModel } from '../model/repo.js';
import { planModel, type ClusterPlan, type PlanDeps } from '../plan/cluster-plan.js';

export interface Snapshot {
  revision: string;
  dir: string;
}

/** The Git side, as the agent uses it (src/source implements it). */
export interface Source {
  /** Polls the branch; fetches and swaps in a new snapshot when the head moved. */
  sync(): Promise<Snapshot>;
  /** Checks out an exact commit (an approved one), even if the branch moved on. */
  checkoutRevision(revision: string): Promise<Snapshot>;
}

/** The approval gate (manual mode). Decides which plan, if any, may be applied now. */
export interface Gate {
  check(input: {
    head: Snapshot;
    plan: ClusterPlan;
    mode: ApprovalMode;
    planFor: (snapshot: Snapshot) => Promise<ClusterPlan>;
    source: Source;
  }): Promise<
    | { apply: true; snapshot: Snapshot; plan: ClusterPlan; approval?: string }
    | { apply: false; reason: string }
  >;
  /** Called after an approved plan was applied, with the outcome. */
  applied?(approval: string, result: ConvergeResult): Promise<void>;
}

/** Drift checking, on its own interval (src/observe/drift implements it). */
export interface DriftChecker {
  check(input: {
    plan: ClusterPlan;
    snapshot: Snapshot;
  }): Promise<{ drifted: number; corrected: number; failed: number }>;
}

/** Remote charts, as the agent drives them (src/charts implements it). */
export interface AgentCharts {
  /** A new Git revision at the head: every chart repository is asked again on next use. */
  newRevision(): void;
  /** Some repository's answer is older than the chart interval. */
  due(): boolean;
  /** Asks the repositories that are due (conditional requests). */
  refresh(): Promise<void>;
  /** Moves when a repository answered with something new. */
  readonly epoch: number;
}

/** The operator's controls for one pass, as kept in the cluster (src/observe/agent-object.ts). */
export interface ControlState {
  /** The whole agent is suspended (`mooring suspend`): the pass changes nothing. */
  suspended: boolean;
  /** An agent-wide reconcile request (`mooring reconcile`) no pass has handled yet. */
  reconcile?: string;
  /** Some release has a reconcile request no pass has handled yet. */
  releaseRequests: boolean;
  /** Changes whenever a suspension or a request changes: the next pass converges then. */
  key: string;
  /** The MooringAgent's metadata.generation the state was read from. */
  generation: number;
}

export interface Controls {
  /** Reads the operator's controls before a pass. */
  read(): Promise<ControlState>;
  /** Records a finished pass, the requests it handled and the effective approval mode. */
  passed(state: ControlState, result: PassResult, approvalMode?: ApprovalMode): Promise<void>;
  /** Calls `wake` when an operator changes a control; returns a function that stops watching. */
  watch(wake: () => void): () => void;
}

export interface AgentMetrics {
  passCompleted?(outcome: PassOutcome, seconds: number): void;
  /** Every release as recorded after a pass (per-release gauges). */
  releasesObserved?(releases: readonly ReleaseRecord[]): void;
  sourceFailed?(): void;
}

export interface AgentDeps {
  config: AgentConfig;
  source: Source;
  helm: Helm;
  kube: Pick<RestClient, 'request'>;
  /** Lists the labels of helm's storage Secrets (one request for the whole cluster). */
  listHelmSecrets: SecretMetadataLister;
  records: ReleaseRecords;
  events: EventSink;
  /** Cluster-level events (not about one release): mode warnings, source failures. */
  clusterEvents?: { emit(type: 'Normal' | 'Warning', reason: string, message: string): void };
  planDeps: PlanDeps;
  /** The chart source behind planDeps.charts, for its refresh schedule. */
  charts?: AgentCharts;
  gate?: Gate;
  drift?: DriftChecker;
  /** The API for charts' CRDs (ConvergeDeps.crdApi). */
  crdApi?: ConvergeDeps['crdApi'];
  /** Suspension and reconcile requests (MooringAgent and MooringRelease objects). */
  controls?: Controls;
  metrics?: AgentMetrics;
  /**
   * Asked right before every helm process: undefined while this replica may run helm, else
   * why not (see ConvergeDeps.mayRunHelm). The CLI wires it to the leader lease.
   */
  mayRunHelm?: () => string | undefined;
  now?: () => number;
  random?: () => number;
  log?: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  /** The converger's log (`component: converge`); `log` when not given. */
  convergeLog?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export type PassOutcome =
  'converged' | 'failed' | 'pending-approval' | 'source-error' | 'cluster-error' | 'invalid' | 'suspended';

export interface PassResult {
  outcome: PassOutcome;
  /** How long the pass took. */
  durationSeconds?: number;
  revision?: string;
  converge?: ConvergeResult;
  pending?: string;
  drift?: { drifted: number; corrected: number; failed: number };
  error?: string;
}

/** Manual in either place wins: Git may tighten the agent's mode, never loosen it. */
export function effectiveMode(
  agent: ApprovalMode,
  cluster: ApprovalMode | undefined,
): { mode: ApprovalMode; loosenAttempt: boolean } {
  if (agent === 'manual') return { mode: 'manual', loosenAttempt: cluster === 'auto' };
  return { mode: cluster === 'manual' ? 'manual' : 'auto', loosenAttempt: false };
}

export class Agent {
  private readonly deps: AgentDeps;
  private readonly now: () => number;
  private lastRevision?: string;
  private lastConverged = false;
  private lastDriftAt = 0;
  private planCache?: { revision: string; epoch: number; plan: ClusterPlan };
  /** The plan of the last converge pass: the same plan again (and revision) needs no converge. */
  private lastPlan?: ClusterPlan;
  private lastHead?: string;
  private warnedLoosen?: string;
  /** Set by the webhook: run a pass now. */
  private wake?: () => void;
  /** A pass was asked for (webhook, operator) while one ran: run the next one at once. */
  private triggered = false;
  /** The controls the last converge ran under: a change makes the next pass converge. */
  private lastControlKey?: string;
  /** The agent-wide suspension was written to every release's status. */
  private suspensionRecorded = false;
  /** The effective approval mode of the last pass that planned. */
  private lastMode?: ApprovalMode;
  private sourceFailures = 0;
  readonly state = { lastPassAt: 0, lastSuccessAt: 0, hasSnapshot: false, lastError: '' };

  constructor(deps: AgentDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
  }

  // A plan is made again for a new revision, and when a chart repository answered with
  // something new (a version published inside a range, a re-pushed tag).
  private planFor = async (snapshot: Snapshot): Promise<ClusterPlan> => {
    const epoch = this.deps.charts?.epoch ?? 0;
    if (this.planCache?.revision === snapshot.revision && this.planCache.epoch === epoch) {
      return this.planCache.plan;
    }
    const { path } = this.deps.config;
    if (path && !existsSync(snapshot.dir)) {
      throw new MooringError(
        `--path ${path} is not a folder in revision ${snapshot.revision}`,
        { field: '--path', revision: snapshot.revision },
        { hint: '--path names the folder of the repository that holds clusters/ and environments/' },
      );
    }
    const model = loadClusterModel(snapshot.dir, this.deps.config.cluster);
    const plan = await planModel(model, this.deps.planDeps);
    this.planCache = { revision: snapshot.revision, epoch: this.deps.charts?.epoch ?? 0, plan };
    return plan;
  };

  /**
   * One full pass: fetch, plan, gate, converge, drift check. `signal` stops starting new
   * work (helm processes in flight finish); `cancel` also stops those (lease lost).
   */
  async pass(
    opts: { forceDrift?: boolean; signal?: AbortSignal; cancel?: AbortSignal } = {},
  ): Promise<PassResult> {
    const started = this.now();
    this.triggered = false;
    const { controls } = this.deps;
    let control: ControlState | undefined;
    let result: PassResult;
    try {
      control = await controls?.read();
    } catch (err) {
      // Not knowing whether the agent is suspended is no reason to act as if it were not.
      const error = describeError(err);
      this.deps.log?.error({ err: error }, 'cannot read the suspension and reconcile requests');
      result = { outcome: 'cluster-error', error };
    }
    if (controls && control === undefined) result ??= { outcome: 'cluster-error' };
    else if (control?.suspended) result = await this.suspendedPass();
    else {
      this.suspensionRecorded = false;
      result = await this.passInner(opts, control);
    }
    if (control) {
      await controls?.passed(control, result, this.lastMode).catch((err: unknown) => {
        this.deps.log?.warn({ err: describeError(err) }, 'cannot record the pass in the MooringAgent status');
      });
    }
    this.state.lastPassAt = this.now();
    if (result.outcome === 'converged') this.state.lastSuccessAt = this.state.lastPassAt;
    this.state.lastError = result.error ?? '';
    result.durationSeconds = (this.now() - started) / 1000;
    this.deps.metrics?.passCompleted?.(result.outcome, result.durationSeconds);
    if (this.deps.metrics?.releasesObserved) {
      try {
        this.deps.metrics.releasesObserved(await this.deps.records.list());
      } catch (err) {
        this.deps.log?.warn({ err: describeError(err) }, 'cannot read the releases for their metrics');
      }
    }
    return result;
  }

  /** The agent is suspended: say so on every release once, change nothing. */
  private async suspendedPass(): Promise<PassResult> {
    this.lastConverged = false;
    if (!this.suspensionRecorded) {
      try {
        for (const record of await this.deps.records.list()) {
          if (record.state !== 'suspended' && record.state !== 'pruned')
            await this.deps.records.update(record.name, { state: 'suspended' });
        }
        this.suspensionRecorded = true;
      } catch (err) {
        this.deps.log?.warn({ err: describeError(err) }, 'cannot record the suspension on the releases');
      }
    }
    return { outcome: 'suspended' };
  }

  private async passInner(
    opts: {
      forceDrift?: boolean;
      signal?: AbortSignal;
      cancel?: AbortSignal;
    },
    control?: ControlState,
  ): Promise<PassResult> {
    const { config, log } = this.deps;
    let head: Snapshot;
    try {
      head = await this.deps.source.sync();
      this.state.hasSnapshot = true;
      this.sourceFailures = 0;
    } catch (err) {
      this.sourceFailures++;
      this.deps.metrics?.sourceFailed?.();
      const error = describeError(err);
      log?.warn({ err: error, failures: this.sourceFailures }, 'git source failed');
      if (this.sourceFailures === 1) this.deps.clusterEvents?.emit('Warning', 'SourceFailed', error);
      return { outcome: 'source-error', error };
    }

    const charts = this.deps.charts;
    if (charts && head.revision !== this.lastHead) charts.newRevision();
    this.lastHead = head.revision;
    if (charts?.due()) await charts.refresh();

    let plan: ClusterPlan;
    try {
      plan = await this.planFor(head);
    } catch (err) {
      // The cluster as a whole is broken in this revision (cluster.yaml, releases.yaml):
      // nothing from it is applied; what runs keeps running.
      const error = describeError(err);
      log?.warn({ revision: head.revision, err: error }, 'revision is invalid for this cluster');
      if (this.lastRevision !== head.revision)
        this.deps.clusterEvents?.emit(
          'Warning',
          'InvalidRevision',
          `revision ${head.revision.slice(0, 7)}: ${error}`,
        );
      this.lastRevision = head.revision;
      this.lastConverged = false;
      return { outcome: 'invalid', revision: head.revision, error };
    }

    const refusal = await this.pruneGuard(head.revision, plan);
    if (refusal) return refusal;

    const { mode, loosenAttempt } = effectiveMode(config.approval, plan.cluster.sync?.mode);
    if (mode !== this.lastMode) {
      log?.info({ approval: mode, configured: config.approval }, 'effective approval mode');
    }
    this.lastMode = mode;
    const requested = control !== undefined && (control.reconcile !== undefined || control.releaseRequests);
    if (loosenAttempt && this.warnedLoosen !== head.revision) {
      this.warnedLoosen = head.revision;
      this.deps.clusterEvents?.emit(
        'Warning',
        'SyncModeIgnored',
        'cluster.yaml sets sync.mode: auto, but the agent is manual; Git can make a cluster stricter, never looser',
      );
    }

    let toApply: { snapshot: Snapshot; plan: ClusterPlan; approval?: string } = { snapshot: head, plan };
    let pending: string | undefined;
    if (mode === 'manual') {
      if (!this.deps.gate) {
        return {
          outcome: 'pending-approval',
          revision: head.revision,
          pending: 'manual mode, and no approval gate is configured',
        };
      }
      const decision = await this.deps.gate.check({
        head,
        plan,
        mode,
        planFor: this.planFor,
        source: this.deps.source,
      });
      if (!decision.apply) pending = decision.reason;
      else toApply = decision;
    }

    let convergeResult: ConvergeResult | undefined;
    if (!pending) {
      const unchanged =
        this.lastRevision === toApply.snapshot.revision &&
        this.lastPlan === toApply.plan &&
        this.lastConverged &&
        !toApply.approval &&
        !requested &&
        control?.key === this.lastControlKey;
      if (!unchanged) {
        try {
          convergeResult = await converge(toApply.plan, toApply.snapshot.revision, {
            ...this.convergeDeps(toApply.snapshot, opts.signal, opts.cancel),
            forgetBackoff: control?.reconcile !== undefined,
          });
        } catch (err) {
          const error = describeError(err);
          log?.error({ err: error }, 'converge pass failed');
          return { outcome: 'cluster-error', revision: toApply.snapshot.revision, error };
        }
        this.lastRevision = toApply.snapshot.revision;
        this.lastPlan = toApply.plan;
        this.lastConverged = convergeResult.converged;
        this.lastControlKey = control?.key;
        if (toApply.approval) await this.deps.gate?.applied?.(toApply.approval, convergeResult);
      }
    }

    let drift: PassResult['drift'];
    const driftDue =
      opts.forceDrift || requested || this.now() - this.lastDriftAt >= config.driftIntervalSeconds * 1000;
    // A manual cluster whose head waits for approval still self-heals what it runs.
    const stopping = opts.signal?.aborted === true;
    if (
      this.deps.drift &&
      config.drift !== 'off' &&
      driftDue &&
      (this.lastRevision || pending) &&
      !stopping
    ) {
      try {
        const applied =
          this.planCache && this.planCache.revision === this.lastRevision
            ? this.planCache.plan
            : toApply.plan;
        drift = await this.deps.drift.check({ plan: applied, snapshot: toApply.snapshot });
        this.lastDriftAt = this.now();
      } catch (err) {
        log?.warn({ err: describeError(err) }, 'drift check failed');
        drift = { drifted: 0, corrected: 0, failed: 1 };
      }
    }

    // Drift that could not be checked is not "no drift": the pass did not fully succeed.
    const failed =
      (convergeResult ? !convergeResult.converged : !this.lastConverged) || (drift?.failed ?? 0) > 0;
    const outcome: PassOutcome = pending ? 'pending-approval' : failed ? 'failed' : 'converged';
    return {
      outcome,
      revision: toApply.snapshot.revision,
      ...(convergeResult ? { converge: convergeResult } : {}),
      ...(pending ? { pending } : {}),
      ...(drift ? { drift } : {}),
    };
  }

  /**
   * SPEC §8: a revision that would prune every release of the cluster is invalid unless the
   * agent allows it. Checked before the gate, so no plan is published for it either.
   */
  private async pruneGuard(revision: string, plan: ClusterPlan): Promise<PassResult | undefined> {
    const { config, log } = this.deps;
    if (!config.prune || config.pruneAllowEmpty) return undefined;
    if (this.lastRevision === revision && this.lastConverged) return undefined;
    const error = pruneRefusal({
      declared: plan.releases,
      managed: await this.deps.records.list(),
      prune: config.prune,
      allowEmpty: config.pruneAllowEmpty,
    });
    if (!error) return undefined;
    log?.warn({ revision, err: error }, 'revision refused: it would prune every release');
    if (this.lastRevision !== revision) {
      this.deps.clusterEvents?.emit(
        'Warning',
        'InvalidRevision',
        `revision ${revision.slice(0, 7)}: ${error}`,
      );
    }
    this.lastRevision = revision;
    this.lastConverged = false;
    return { outcome: 'invalid', revision, error };
  }

  private convergeDeps(snapshot: Snapshot, signal?: AbortSignal, cancel?: AbortSignal): ConvergeDeps {
    const { config } = this.deps;
    return {
      helm: this.deps.helm,
      kube: this.deps.kube,
      listHelmSecrets: this.deps.listHelmSecrets,
      records: this.deps.records,
      events: this.deps.events,
      now: this.now,
      root: snapshot.dir,
      cluster: config.cluster,
      agentNamespace: config.namespace,
      replica: config.identity,
      ...(this.deps.mayRunHelm ? { mayRunHelm: this.deps.mayRunHelm } : {}),
      prune: config.prune,
      concurrency: config.concurrency,
      ...(signal ? { signal } : {}),
      ...(cancel ? { cancel } : {}),
      ...(this.deps.convergeLog || this.deps.log ? { log: this.deps.convergeLog ?? this.deps.log! } : {}),
      ...(this.deps.crdApi ? { crdApi: this.deps.crdApi } : {}),
    };
  }

  /** Schedules a pass now (webhook, operator request); during a pass, the next one follows at once. */
  trigger(): void {
    this.triggered = true;
    this.wake?.();
  }

  /**
   * Runs passes until `signal` aborts, reporting each to `onPass`; `cancel` is the pass's
   * (see pass). Source failures back off exponentially with jitter.
   */
  async loop(
    signal: AbortSignal,
    onPass?: (result: PassResult) => void,
    cancel?: AbortSignal,
  ): Promise<void> {
    const random = this.deps.random ?? Math.random;
    while (!signal.aborted) {
      const result = await this.pass({ signal, ...(cancel ? { cancel } : {}) });
      onPass?.(result);
      this.deps.log?.info(
        {
          outcome: result.outcome,
          revision: result.revision,
          pending: result.pending,
          err: result.error,
          durationSeconds: result.durationSeconds,
        },
        'pass finished',
      );
      // Stopped during the pass: an 'abort' listener added now would never fire.
      if (signal.aborted) break;
      if (this.triggered) continue;
      let delay = this.deps.config.intervalSeconds * 1000;
      // A release waits for a pending helm revision: come back as soon as it may be recovered.
      const retryAt = result.converge?.retryAt;
      if (retryAt !== undefined) delay = Math.min(delay, Math.max(0, retryAt - this.now()) + 1000);
      if (result.outcome === 'source-error') {
        const backoff = Math.min(5000 * 2 ** Math.min(this.sourceFailures - 1, 10), 300_000);
        delay = Math.min(delay, backoff) * (0.5 + random() / 2);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, delay);
        const onAbort = () => done();
        signal.addEventListener('abort', onAbort, { once: true });
        this.wake = done;
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve();
        }
      });
      this.wake = undefined;
    }
  }

  /** Liveness: the loop has completed a pass recently (three intervals plus slack). */
  health(): string | undefined {
    if (this.state.lastPassAt === 0) return undefined;
    const limit = (this.deps.config.intervalSeconds * 3 + 600) * 1000;
    return this.now() - this.state.lastPassAt > limit ? 'no pass completed recently' : undefined;
  }

  readiness(): string | undefined {
    return this.state.hasSnapshot ? undefined : 'no snapshot of the repository yet';
  }
}

export function passExitCode(result: PassResult): number {
  switch (result.outcome) {
    case 'converged':
    case 'suspended':
      return 0;
    case 'failed':
    case 'invalid':
      return 1;
    case 'pending-approval':
      return 3;
    case 'source-error':
      return 4;
    case 'cluster-error':
      return 5;
  }
}
