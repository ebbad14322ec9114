// One converge pass over a cluster: for every release, observe (helm's storage and
// mooring's record), pick the next action (decide.ts), carry it out, and report it. Releases
// run in dependsOn order, independent ones in parallel, bounded. A release that fails keeps
// its last good revision (helm rolls back) and does not stop the others.
import type { RestClient } from '../kube/rest.js';
import { MooringError, describeError } from '../errors.js';
import type { PlannedRelease } from '../plan/cluster-plan.js';
import { chartSource } from '../plan/cluster-plan.js';
import { nextAction, retryDelaySeconds, type Action, type ConvergeRecord } from './decide.js';
import { applyCrds, parseCrds } from './crds.js';
import type { DriftObjectApi } from '../observe/drift/api.js';
import type { ReleaseState } from '../observe/status.js';
import type { Helm, HelmRelease, HelmReleaseStatus } from './helm.js';
import {
  listRevisions,
  observe,
  readStorageIndex,
  unlockPending,
  type RevisionLabels,
  type SecretMetadataLister,
  type StorageIndex,
} from './helm-storage.js';
import { agentMark, markLabels } from './marks.js';
import { runInOrder } from './scheduler.js';

// The states a release is recorded in: the MooringRelease status defines them.
export type { ReleaseState } from '../observe/status.js';

/** What mooring records per release (the MooringRelease status). Never holds values. */
export interface ReleaseRecord extends ConvergeRecord {
  name: string;
  namespace?: string;
  chart?: string;
  version?: string;
  chartDigest?: string;
  state?: ReleaseState;
  desiredRevision?: string;
  desiredDigest?: string;
  deployedRevision?: string;
  helmStatus?: string;
  lastError?: string;
  failures?: number;
  lastAttemptAt?: string;
  lastSuccessAt?: string;
  /** An operator suspended the release (`mooring suspend --release`): nothing is changed. */
  suspend?: boolean;
  /** `mooring reconcile --release` asked for this (a timestamp): retry now, whatever the backoff. */
  reconcileRequestedAt?: string;
  /** The last reconcile request a pass handled. */
  lastHandledReconcileAt?: string;
}

/** Where records live; the agent keeps them in MooringRelease objects. */
export interface ReleaseRecords {
  list(): Promise<ReleaseRecord[]>;
  /** Merges `patch` into the record (creating it); `null` removes a field. */
  update(name: string, patch: RecordPatch): Promise<void>;
  remove(name: string): Promise<void>;
}

export type RecordPatch = { [K in keyof ReleaseRecord]?: ReleaseRecord[K] | null };

export type EventType = 'Normal' | 'Warning';
export interface EventSink {
  emit(release: string, type: EventType, reason: string, message: string): void;
}

export interface ConvergeDeps {
  helm: Helm;
  /** helm's storage, read and (recovery) edited directly. */
  kube: Pick<RestClient, 'request'>;
  /** The labels of helm's storage Secrets, read once per pass for every release. */
  listHelmSecrets: SecretMetadataLister;
  records: ReleaseRecords;
  events: EventSink;
  now: () => number;
  /** The root of the checkout the plan was made from (local charts live there). */
  root: string;
  cluster: string;
  /** The agent's namespace: with `cluster`, who made a helm revision (see marks.ts). */
  agentNamespace: string;
  /** This replica (the Lease identity), recorded on the revisions it makes. */
  replica?: string;
  /**
   * Asked right before every helm process and every write to helm's storage: undefined when
   * this replica may go on, else why not (the leader lease is no longer safely ours).
   */
  mayRunHelm?: () => string | undefined;
  /**
   * Seconds added to a pending revision's helm timeout before a new leader takes it as
   * abandoned and recovers it (default 30): helm renders, applies and records around its wait.
   */
  pendingGraceSeconds?: number;
  prune: boolean;
  /** helm processes at once (upgrades, uninstalls); reading state and writing records runs wider. */
  concurrency: number;
  /** Stops starting new work (agent shutdown); helm processes already running finish. */
  signal?: AbortSignal;
  /** Stops helm processes in flight too (the leader lease was lost: someone else converges now). */
  cancel?: AbortSignal;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** The API for the CRDs of charts' crds/ folders (crds.ts); without it, charts' CRDs are not applied. */
  crdApi?: Pick<DriftObjectApi, 'readRaw' | 'applyRaw'>;
  /** `mooring reconcile` of the whole agent: every failed release is retried now. */
  forgetBackoff?: boolean;
}

export interface ReleaseOutcome {
  name: string;
  action: Action['kind'] | 'error' | 'blocked' | 'suspended';
  state: ReleaseState;
  error?: string;
  helmRevision?: number;
  /** When this release can make progress again (a pending revision's helm may have ended). */
  retryAt?: number;
  /** How long helm took (install, upgrade, uninstall). */
  durationSeconds?: number;
}

export interface ConvergeResult {
  revision: string;
  releases: ReleaseOutcome[];
  /** Every release ready (or pruned/orphaned/suspended), none failed or waiting. */
  converged: boolean;
  /** The earliest time a waiting release can go on (ms since the epoch): the next pass is due then. */
  retryAt?: number;
}

const SHUTDOWN = 'not started: the agent is shutting down';
const PENDING_GRACE_SECONDS = 30;
/** While a release waits for a pending revision, the agent looks at helm's storage this often. */
const PENDING_RECHECK_SECONDS = 10;
/** Releases observed and recorded at once, whatever `concurrency` allows for helm. */
const BOOKKEEPING_CONCURRENCY = 16;

export async function converge(
  plan: { releases: PlannedRelease[] },
  revision: string,
  deps: ConvergeDeps,
): Promise<ConvergeResult> {
  const records = new Map((await deps.records.list()).map((r) => [r.name, r]));
  const wanted = new Map(plan.releases.map((r) => [r.name, r]));
  const outcomes: ReleaseOutcome[] = [];

  // Releases with errors in Git (bad values, broken SOPS file, bad dependsOn) change nothing.
  for (const r of plan.releases.filter((x) => x.error)) {
    const error = describeError(r.error);
    outcomes.push({ name: r.name, action: 'error', state: 'failed', error });
    // Reported once per revision: Git has to change before the answer can.
    if (alreadyReported(records.get(r.name), 'failed', revision, error)) continue;
    await deps.records.update(r.name, {
      namespace: r.namespace,
      chart: r.chart,
      state: 'failed',
      desiredRevision: revision,
      lastError: error,
      lastAttemptAt: iso(deps.now()),
    });
    deps.events.emit(r.name, 'Warning', 'InvalidConfiguration', `revision ${short(revision)}: ${error}`);
  }

  const valid = plan.releases.filter((r) => !r.error && r.digest && r.resolved);
  // What helm recorded, for every release at once: one LIST, not one per release.
  const storage = await readStorageIndex(deps.listHelmSecrets, [
    ...valid.map((r) => r.namespace),
    ...[...records.values()].flatMap((r) => (wanted.has(r.name) || !r.namespace ? [] : [r.namespace])),
  ]);
  const dependsOn = new Map(valid.map((r) => [r.name, r.dependsOn.filter((d) => wanted.has(d))]));
  // `concurrency` bounds helm processes, the costly part. Observing helm's storage and
  // recording releases that need nothing are a few API calls each and run wider, so a
  // changed release does not queue behind the bookkeeping of unchanged ones.
  const helmSlots = semaphore(deps.concurrency);
  const { done, blocked } = await runInOrder({
    dependsOn,
    concurrency: Math.max(deps.concurrency, BOOKKEEPING_CONCURRENCY),
    ...(deps.signal ? { signal: deps.signal } : {}),
    // A suspended release keeps running what it runs: its dependents may go on.
    succeeded: (o: ReleaseOutcome) => o.state === 'ready' || o.state === 'suspended',
    run: (name) => convergeRelease(wanted.get(name)!, records.get(name), revision, deps, helmSlots, storage),
  });
  outcomes.push(...done.values());
  for (const [name, dep] of blocked) {
    const error = dep === 'shutdown' ? SHUTDOWN : `waiting for ${dep}, which is not ready`;
    if (dep !== 'shutdown' && !alreadyReported(records.get(name), 'waiting', revision, error)) {
      await deps.records.update(name, { state: 'waiting', desiredRevision: revision, lastError: error });
    }
    outcomes.push({ name, action: 'blocked', state: 'waiting', error });
  }

  // Releases mooring manages that left Git (or were disabled).
  for (const record of records.values()) {
    if (wanted.has(record.name) || record.state === 'pruned') continue;
    if (deps.signal?.aborted) {
      outcomes.push({ name: record.name, action: 'blocked', state: 'waiting', error: SHUTDOWN });
      continue;
    }
    outcomes.push(await removeRelease(record, deps, storage));
  }

  outcomes.sort((a, b) => a.name.localeCompare(b.name));
  const converged = outcomes.every(
    (o) => o.state === 'ready' || o.state === 'pruned' || o.state === 'orphaned' || o.state === 'suspended',
  );
  const retryAt = Math.min(...outcomes.map((o) => o.retryAt ?? Infinity));
  return { revision, releases: outcomes, converged, ...(Number.isFinite(retryAt) ? { retryAt } : {}) };
}

async function convergeRelease(
  release: PlannedRelease,
  record: ReleaseRecord | undefined,
  revision: string,
  deps: ConvergeDeps,
  helmSlots: Semaphore,
  storage: StorageIndex,
): Promise<ReleaseOutcome> {
  const name = release.name;
  const digest = release.digest!;
  const requested = pendingRequest(record);
  const base: RecordPatch = {
    namespace: release.namespace,
    chart: release.chart,
    ...(release.version ? { version: release.version } : {}),
    ...(release.chartDigest ? { chartDigest: release.chartDigest } : {}),
    desiredRevision: revision,
    desiredDigest: digest,
    ...(requested ? { lastHandledReconcileAt: requested } : {}),
  };
  try {
    if (record?.suspend) return await suspendRelease(record, base, deps);
    if (record?.state === 'suspended') {
      deps.events.emit(name, 'Normal', 'Resumed', 'resumed: the release converges again');
    }
    const stored = storage.revisions(release.namespace, name);
    // `mooring reconcile`: try now, as if the last failure had not happened.
    const observed = record && (requested || deps.forgetBackoff) ? withoutBackoff(record) : record;
    let action = nextAction({
      desired: { digest, revision, agent: agentMark(deps.cluster, deps.agentNamespace) },
      helm: observe(stored, {
        timeoutSeconds: release.resolved!.release.timeoutSeconds,
        graceSeconds: deps.pendingGraceSeconds ?? PENDING_GRACE_SECONDS,
      }),
      ...(observed ? { record: observed } : {}),
      prune: deps.prune,
      now: deps.now(),
    });

    if (action.kind === 'wait-pending') {
      const latest = stored[stored.length - 1]!;
      const error =
        `helm revision ${latest.revision} is ${action.from}: the helm process that started it may still ` +
        `be running; waiting until ${iso(action.until)} (its start plus its timeout) before recovering it`;
      if (!alreadyReported(record, 'waiting', revision, error)) {
        await deps.records.update(name, { ...base, state: 'waiting', lastError: error });
        deps.log?.warn(
          { release: name, revision: latest.revision, from: action.from, until: iso(action.until) },
          'waiting for a pending helm revision',
        );
      }
      // Look again before the deadline too: helm may finish (and say so in its storage) earlier.
      const retryAt = Math.min(action.until, deps.now() + PENDING_RECHECK_SECONDS * 1000);
      return { name, action: 'wait-pending', state: 'waiting', error, retryAt };
    }

    if (action.kind === 'owned-elsewhere') {
      // Another agent (another namespace or cluster name) made the latest helm revision of a
      // release of the same name: upgrading, unlocking or correcting it here would fight it.
      const error =
        `helm release ${release.namespace}/${name} is owned by mooring agent ${action.owner} ` +
        `(agent namespace/cluster); this agent (${agentMark(deps.cluster, deps.agentNamespace)}) does not take it over`;
      if (!alreadyReported(record, 'failed', revision, error)) {
        await deps.records.update(name, { ...base, state: 'failed', lastError: error });
        deps.events.emit(name, 'Warning', 'OwnedElsewhere', error);
        deps.log?.warn({ release: name, owner: action.owner }, 'release owned by another mooring agent');
      }
      return { name, action: 'owned-elsewhere', state: 'failed', error };
    }

    if (action.kind === 'record') {
      // This agent made the deployed revision for this very desired state, then stopped
      // before writing it down: record it rather than upgrade a second time.
      const latest = observe(stored)!;
      await deps.records.update(name, {
        ...base,
        ...converged(revision, digest, latest, deps.now()),
      });
      deps.events.emit(
        name,
        'Normal',
        'Converged',
        `helm revision ${latest.revision}, made by this agent for revision ${short(revision)} before a restart, recorded without running helm again`,
      );
      deps.log?.info(
        { release: name, revision, helmRevision: latest.revision, action: 'record' },
        'converged',
      );
      return { name, action: 'record', state: 'ready', helmRevision: latest.revision };
    }

    if (action.kind === 'unlock') {
      const notLeader = deps.mayRunHelm?.();
      if (notLeader !== undefined) return { name, action: 'blocked', state: 'waiting', error: notLeader };
      // The release data is needed to rewrite it: read this release's Secrets in full.
      const latest = (await listRevisions(deps.kube, release.namespace, name)).at(-1);
      const indexed = stored[stored.length - 1]!;
      if (latest?.revision !== indexed.revision || latest.status !== indexed.status) {
        // helm's storage moved since the pass read its index (the helm process finished after
        // all, or another one started): decide again from what it says now, next pass.
        const error = `helm revision ${indexed.revision} changed while mooring looked at it; looking again`;
        return { name, action: 'blocked', state: 'waiting', error, retryAt: deps.now() };
      }
      await unlockPending(
        deps.kube,
        latest,
        `mooring: ${action.from} interrupted (agent restarted); marked failed to recover`,
      );
      deps.events.emit(
        name,
        'Warning',
        'Recovered',
        `helm revision ${latest.revision} was left ${action.from} by an interrupted run; marked failed and upgrading`,
      );
      deps.log?.warn(
        { release: name, revision: latest.revision, from: action.from },
        'recovered a pending release',
      );
      action = { kind: 'upgrade', reason: `recovering from ${action.from}` };
    }

    if (action.kind === 'none') {
      // A release whose desired state did not change keeps its record as it is: a commit
      // costs writes only for the releases it changes.
      const settled = record?.state === 'ready' && record.desiredDigest === digest && !record.lastError;
      if (!settled || requested) {
        await deps.records.update(name, {
          ...base,
          state: 'ready',
          deployedRevision: revision,
          lastError: null,
        });
      }
      return {
        name,
        action: 'none',
        state: 'ready',
        ...(record?.helmRevision ? { helmRevision: record.helmRevision } : {}),
      };
    }
    if (action.kind === 'wait') {
      if (record?.state !== 'failed') await deps.records.update(name, { ...base, state: 'failed' });
      return { name, action: 'wait', state: 'failed', error: record?.lastError ?? 'waiting to retry' };
    }
    if (action.kind !== 'install' && action.kind !== 'upgrade') {
      throw new Error(`unexpected action ${action.kind} for a desired release`);
    }

    // Wait for a helm slot first: a release queued behind others is not progressing yet,
    // and one still queued when the agent stops is simply not started. The slot is held
    // only while helm runs; the record and Events after it do not keep the next helm waiting.
    const freeSlot = await helmSlots.acquire();
    if (deps.signal?.aborted) {
      freeSlot();
      return { name, action: 'blocked', state: 'waiting', error: SHUTDOWN };
    }
    // The last moment before helm starts: a replica whose lease may be taken starts nothing.
    const notLeader = deps.mayRunHelm?.();
    if (notLeader !== undefined) {
      freeSlot();
      return { name, action: 'blocked', state: 'waiting', error: notLeader };
    }
    let upgraded: Upgraded;
    try {
      upgraded = await runUpgrade(release, revision, deps, base, stored);
    } finally {
      freeSlot();
    }
    return await recordUpgrade(release, record, revision, deps, base, action.kind, stored, upgraded);
  } catch (err) {
    const error = describeError(err);
    await deps.records.update(name, {
      ...base,
      state: 'failed',
      lastError: error,
      lastAttemptAt: iso(deps.now()),
    });
    deps.events.emit(name, 'Warning', 'ConvergeFailed', `revision ${short(revision)}: ${error}`);
    return { name, action: 'error', state: 'failed', error };
  }
}

/** helm's outcome, and how long it took (seconds). */
type Upgraded = ({ ok: true; result: HelmRelease } | { ok: false; error: string }) & { seconds: number };

/** helm upgrade --install of one release, while the caller holds a helm slot. */
async function runUpgrade(
  release: PlannedRelease,
  revision: string,
  deps: ConvergeDeps,
  base: RecordPatch,
  stored: readonly RevisionLabels[],
): Promise<Upgraded> {
  const name = release.name;
  const digest = release.digest!;
  const resolved = release.resolved!;
  // Written while helm starts, so the record does not delay the upgrade; awaited before
  // helm's outcome is handed on, so 'progressing' can never land after that outcome.
  // A reconcile request is handled once the outcome is known, not while helm runs.
  const { lastHandledReconcileAt: _handled, ...starting } = base;
  const progressing = deps.records
    .update(name, { ...starting, state: 'progressing', lastAttemptAt: iso(deps.now()), managed: true })
    .catch((err: unknown) => {
      deps.log?.warn({ release: name, err: describeError(err) }, 'could not record progress');
    });
  let upgraded: Upgraded;
  const started = deps.now();
  const took = () => (deps.now() - started) / 1000;
  try {
    await applyChartCrds(release, deps);
    const result = await deps.helm.upgradeInstall({
      ...chartSource(deps.root, resolved.release.chart),
      release: name,
      namespace: release.namespace,
      values: resolved.merge.userValues,
      redact: resolved.secretStrings,
      timeoutSeconds: resolved.release.timeoutSeconds,
      wait: resolved.release.wait,
      rollbackOnFailure: true,
      // Git is the authority: fields someone took over by hand (kubectl edit) go back to helm.
      forceConflicts: true,
      createNamespace: resolved.release.createNamespace,
      labels: markLabels({
        cluster: deps.cluster,
        namespace: deps.agentNamespace,
        ...(deps.replica !== undefined ? { replica: deps.replica } : {}),
        digest,
        revision,
        timeoutSeconds: resolved.release.timeoutSeconds,
        helmRevision: (stored[stored.length - 1]?.revision ?? 0) + 1,
      }),
      description: `mooring ${short(revision)}`,
      // Not deps.signal: on shutdown the upgrade in flight finishes (within the grace period
      // the helm adapter enforces); only a lost lease cancels it.
      ...(deps.cancel ? { signal: deps.cancel } : {}),
    });
    upgraded = { ok: true, result, seconds: took() };
  } catch (err) {
    upgraded = { ok: false, error: describeError(err), seconds: took() };
  }
  await progressing;
  return upgraded;
}

/** The chart's CRDs, as the release's `crds:` option says, before helm runs (helm skips them). */
async function applyChartCrds(release: PlannedRelease, deps: ConvergeDeps): Promise<void> {
  const resolved = release.resolved!;
  const policy = resolved.release.crds;
  if (!deps.crdApi || policy === 'Skip' || resolved.crds.length === 0) return;
  const crds = parseCrds(resolved.crds);
  const result = await applyCrds(deps.crdApi, crds, policy, {
    timeoutMs: Math.min(resolved.release.timeoutSeconds, 120) * 1000,
  });
  const done = [
    ...(result.created.length > 0 ? [`created ${result.created.join(', ')}`] : []),
    ...(result.replaced.length > 0 ? [`replaced ${result.replaced.join(', ')}`] : []),
  ];
  if (done.length > 0) {
    deps.log?.info({ release: release.name, ...result }, 'chart CRDs applied');
    deps.events.emit(
      release.name,
      'Normal',
      'CrdsApplied',
      `CRDs of the chart (crds: ${policy}): ${done.join('; ')}`,
    );
  }
  if (result.outdated.length > 0) {
    deps.log?.warn(
      { release: release.name, outdated: result.outdated },
      'CRDs older than the chart left as they are',
    );
    deps.events.emit(
      release.name,
      'Warning',
      'CrdsOutdated',
      `CRDs that differ from the chart's, left as they are (crds: Create): ${result.outdated.join(', ')}; set crds: CreateReplace to replace them`,
    );
  }
}

/** The record and Events of an upgrade helm finished, outside the helm bound. */
async function recordUpgrade(
  release: PlannedRelease,
  record: ReleaseRecord | undefined,
  revision: string,
  deps: ConvergeDeps,
  base: RecordPatch,
  kind: 'install' | 'upgrade',
  stored: readonly RevisionLabels[],
  upgraded: Upgraded,
): Promise<ReleaseOutcome> {
  const name = release.name;
  const digest = release.digest!;
  if (upgraded.ok) {
    const { result } = upgraded;
    await deps.records.update(name, { ...base, ...converged(revision, digest, result, deps.now()) });
    deps.events.emit(
      name,
      'Normal',
      'Converged',
      `${kind === 'install' ? 'installed' : 'upgraded'} to revision ${short(revision)} (helm revision ${result.revision})`,
    );
    deps.log?.info(
      {
        release: name,
        revision,
        helmRevision: result.revision,
        action: kind,
        durationSeconds: upgraded.seconds,
      },
      'converged',
    );
    return {
      name,
      action: kind,
      state: 'ready',
      helmRevision: result.revision,
      durationSeconds: upgraded.seconds,
    };
  }

  const { error } = upgraded;
  const failures = (record?.failedDigest === digest ? (record.failures ?? 0) : 0) + 1;
  const before = observe(stored);
  const after = observe(await listRevisions(deps.kube, release.namespace, name));
  const rolledBack = after?.status === 'deployed' && before !== undefined && after.revision > before.revision;
  await deps.records.update(name, {
    ...base,
    state: 'failed',
    managed: true,
    lastError: error,
    failedDigest: digest,
    failures,
    retryAt: deps.now() + retryDelaySeconds(failures) * 1000,
    ...(after ? { helmStatus: after.status } : {}),
    // Helm's rollback made a new revision that holds the last good state.
    ...(rolledBack ? { helmRevision: after.revision } : {}),
  });
  deps.events.emit(name, 'Warning', 'ConvergeFailed', `revision ${short(revision)}: ${error}`);
  if (rolledBack) {
    deps.events.emit(
      name,
      'Warning',
      'RolledBack',
      `rolled back to the last good state (helm revision ${after.revision})`,
    );
  }
  deps.log?.warn(
    { release: name, revision, rolledBack, err: error, durationSeconds: upgraded.seconds },
    'converge failed',
  );
  return {
    name,
    action: kind,
    state: 'failed',
    error,
    ...(rolledBack ? { helmRevision: after.revision } : {}),
    durationSeconds: upgraded.seconds,
  };
}

/** A suspended release: recorded as such (once), nothing else. */
async function suspendRelease(
  record: ReleaseRecord,
  patch: RecordPatch,
  deps: ConvergeDeps,
): Promise<ReleaseOutcome> {
  if (record.state !== 'suspended' || patch.lastHandledReconcileAt) {
    await deps.records.update(record.name, { ...patch, state: 'suspended' });
  }
  if (record.state !== 'suspended') {
    deps.events.emit(
      record.name,
      'Normal',
      'Suspended',
      'suspended: not upgraded, pruned or drift-corrected until `mooring resume`',
    );
  }
  return { name: record.name, action: 'suspended', state: 'suspended' };
}

/** The reconcile request of a release that no pass has handled yet. */
function pendingRequest(record: ReleaseRecord | undefined): string | undefined {
  const requested = record?.reconcileRequestedAt;
  return requested !== undefined && requested !== record?.lastHandledReconcileAt ? requested : undefined;
}

function withoutBackoff(record: ReleaseRecord): ReleaseRecord {
  const { failedDigest: _digest, retryAt: _retry, ...rest } = record;
  return rest;
}

async function removeRelease(
  record: ReleaseRecord,
  deps: ConvergeDeps,
  storage: StorageIndex,
): Promise<ReleaseOutcome> {
  const name = record.name;
  if (record.suspend) return suspendRelease(record, {}, deps);
  if (!record.namespace) return { name, action: 'none', state: 'orphaned' };
  try {
    const helm = observe(storage.revisions(record.namespace, name));
    const action = nextAction({ helm, record, prune: deps.prune, now: deps.now() });
    if (action.kind === 'uninstall') {
      const notLeader = deps.mayRunHelm?.();
      if (notLeader !== undefined) return { name, action: 'blocked', state: 'waiting', error: notLeader };
      const started = deps.now();
      await deps.helm.uninstall(name, record.namespace, {
        wait: true,
        timeoutSeconds: 300,
        ...(deps.cancel ? { signal: deps.cancel } : {}),
      });
      await deps.records.remove(name);
      deps.events.emit(
        name,
        'Normal',
        'Pruned',
        `uninstalled: the release is no longer declared in Git for this cluster`,
      );
      return { name, action: 'uninstall', state: 'pruned', durationSeconds: (deps.now() - started) / 1000 };
    }
    if (!helm) {
      await deps.records.remove(name);
      return { name, action: 'none', state: 'pruned' };
    }
    if (record.state !== 'orphaned') {
      await deps.records.update(name, {
        state: 'orphaned',
        lastError: 'no longer declared in Git; not uninstalled because pruning is off (--prune)',
      });
      deps.events.emit(
        name,
        'Warning',
        'Orphaned',
        'no longer declared in Git for this cluster; enable --prune to uninstall it',
      );
    }
    return { name, action: 'orphan', state: 'orphaned' };
  } catch (err) {
    const error = err instanceof MooringError ? err.describe() : describeError(err);
    deps.events.emit(name, 'Warning', 'PruneFailed', error);
    return { name, action: 'error', state: 'failed', error };
  }
}

/** The record of a release converged to `revision`/`digest` as helm revision `helm`: ready, no failure left. */
function converged(
  revision: string,
  digest: string,
  helm: { revision: number; status: HelmReleaseStatus },
  now: number,
): RecordPatch {
  return {
    state: 'ready',
    managed: true,
    deployedRevision: revision,
    deployedDigest: digest,
    helmRevision: helm.revision,
    helmStatus: helm.status,
    lastError: null,
    failedDigest: null,
    failures: 0,
    retryAt: null,
    lastSuccessAt: iso(now),
  };
}

function alreadyReported(
  record: ReleaseRecord | undefined,
  state: ReleaseState,
  revision: string,
  error: string,
): boolean {
  return record?.state === state && record.desiredRevision === revision && record.lastError === error;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function short(revision: string): string {
  return revision.slice(0, 7);
}

interface Semaphore {
  /** Resolves with a function that gives the slot back, once a slot is free. */
  acquire(): Promise<() => void>;
}

function semaphore(slots: number): Semaphore {
  let free = Math.max(1, slots);
  const queue: Array<() => void> = [];
  const release = () => {
    const next = queue.shift();
    if (next) next();
    else free++;
  };
  return {
    acquire() {
      if (free > 0) {
        free--;
        return Promise.resolve(release);
      }
      return new Promise((resolve) => queue.push(() => resolve(release)));
    },
  };
}
