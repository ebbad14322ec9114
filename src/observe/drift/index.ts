// Drift detection and correction for every release of the cluster plan, without running
// helm. Per check: read what helm recorded (records.ts), read the live objects in bulk
// (live.ts), dry-run a server-side apply of each recorded object and compare (inspect.ts),
// correct where the mode is `correct` (correct.ts), and report through the release's status,
// Events, metrics and the log (report.ts). See docs/drift.md.
import type { RestClient } from '../../kube/rest.js';
import type { DriftChecker } from '../../agent/agent.js';
import { describeError } from '../../errors.js';
import type { DriftMode, IgnoreRule } from '../../model/releases.js';
import type { ClusterPlan } from '../../plan/cluster-plan.js';
import type { DriftSummary, ReleaseState, ReleaseStatusPatch, ReleaseStatusRecord } from '../status.js';
import type { AnyObject, DriftObjectApi } from './api.js';
import { correctObject } from './correct.js';
import { DEFAULT_IGNORE_RULES, hpaIgnoreRules, optsOut } from './ignore.js';
import { inspectObject, type Finding, type InspectContext, type ObjectCheck } from './inspect.js';
import { readLiveObjects } from './live.js';
import { asHelmApplied, describeObject, idOf, objectKey } from './objects.js';
import { mapLimit } from './pool.js';
import { readRecordedReleases, releaseKey, type RecordedRelease, type RecordsMemo } from './records.js';
import {
  correctedMessage,
  describeField,
  detectedMessage,
  driftCount,
  failureMessage,
  redact,
  sameSummary,
  summaryOf,
  type ReleaseDrift,
} from './report.js';
import { secretStringsOf } from '../../secrets/mask.js';
import type { CrdFile } from '../../charts/chart-tree.js';
import { CRD_FIELD_MANAGER, parseCrds, type ChartCrd } from '../../converge/crds.js';
import type { CrdPolicy } from '../../model/releases.js';

export type { DriftObjectApi } from './api.js';
export { OPT_OUT_ANNOTATION, OPT_OUT_VALUE, DEFAULT_IGNORE_RULES } from './ignore.js';
export { loadIgnoreFile } from './ignore-file.js';

export interface DriftLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface DriftCheckerDeps {
  /** Raw object access (`createKubeClients(...).objects`). */
  objects: DriftObjectApi;
  /** For helm's storage Secrets. */
  /** helm's storage Secrets are read through it. */
  kube: Pick<RestClient, 'request'>;
  status: {
    list(): Promise<ReleaseStatusRecord[]>;
    update(name: string, patch: ReleaseStatusPatch): Promise<unknown>;
  };
  events: { emit(release: string, type: 'Normal' | 'Warning', reason: string, message: string): void };
  metrics?: {
    driftChecked(result: { drifted: number; corrected: number; failed: number }, at: number): void;
  };
  /** The agent's mode (`--drift`); a release's `drift.mode` overrides it. */
  mode: DriftMode;
  /** Agent-wide ignore rules (`--drift-ignore-file`), added to every release's own. */
  ignore?: readonly IgnoreRule[];
  log?: DriftLog;
  now?: () => number;
  /** API requests in flight at once (default 8). */
  concurrency?: number;
  /** An unchanged drift summary is rewritten (to refresh `checkedAt`) after this long (default 1h). */
  statusRefreshSeconds?: number;
}

export interface DriftCheckResult {
  /** Releases where drift was found. */
  drifted: number;
  /** Releases whose drift was all corrected. */
  corrected: number;
  /** Releases whose check or correction failed (in part). */
  failed: number;
}

/** A release of the plan, as drift sees it. */
interface Target {
  name: string;
  namespace: string;
  mode: DriftMode;
  rules: IgnoreRule[];
  /** Decrypted values of the release, kept out of messages. */
  secrets: readonly string[];
  /** The CRDs of the chart's crds/ folders and the release's `crds:` option. */
  crds: { policy: CrdPolicy; files: readonly CrdFile[] };
}

const MODE_RANK: Record<DriftMode, number> = { off: 0, warn: 1, correct: 2 };

/** The reason of a release that is `failed` because its drift could not be checked. */
export const DRIFT_CHECK_FAILED = 'DriftCheckFailed';

export function createDriftChecker(deps: DriftCheckerDeps): DriftChecker & {
  check(input: { plan: ClusterPlan }): Promise<DriftCheckResult>;
} {
  const now = deps.now ?? Date.now;
  const concurrency = deps.concurrency ?? 8;
  const refreshMs = (deps.statusRefreshSeconds ?? 3600) * 1000;
  // What the API server refused once (lists across namespaces) is not asked again.
  const memo = {
    noClusterList: new Set<string>(),
    storage: { noClusterList: false, decoded: new Map() } as RecordsMemo,
  };

  function targetsOf(plan: ClusterPlan): Target[] {
    return plan.releases.map((planned) => {
      const release = planned.resolved?.release;
      let mode = release?.drift.mode ?? deps.mode;
      // A release whose settings could not be read this revision (bad values, broken SOPS
      // file) may have said `off`: report its drift, touch nothing.
      if (!release && MODE_RANK[mode] > MODE_RANK.warn) mode = 'warn';
      return {
        name: planned.name,
        namespace: planned.namespace,
        mode,
        rules: [...DEFAULT_IGNORE_RULES, ...(deps.ignore ?? []), ...(release?.drift.ignore ?? [])],
        secrets: planned.resolved?.secretStrings ?? [],
        crds: { policy: release?.crds ?? 'Skip', files: planned.resolved?.crds ?? [] },
      };
    });
  }

  async function check(input: { plan: ClusterPlan }): Promise<DriftCheckResult> {
    try {
      return await checkAll(input.plan);
    } catch (err) {
      // The agent logs it and counts the pass's drift check failed; the metric says so too.
      deps.metrics?.driftChecked({ drifted: 0, corrected: 0, failed: 1 }, now());
      throw err;
    }
  }

  async function checkAll(plan: ClusterPlan): Promise<DriftCheckResult> {
    const started = now();
    const targets = targetsOf(plan);
    const active = targets.filter((t) => t.mode !== 'off');
    const statuses = await readStatuses();
    // A suspended release is checked and reported, never corrected; so is every release when
    // we cannot read which ones are suspended.
    for (const target of active) {
      if (statuses === undefined || statuses.get(target.name)?.suspend) target.mode = 'warn';
    }
    await clearSwitchedOff(
      targets.filter((t) => t.mode === 'off'),
      statuses,
    );

    const records = await readRecordedReleases(deps.kube, active, memo.storage);
    const result: DriftCheckResult = { drifted: 0, corrected: 0, failed: 0 };
    const totals = { found: 0, corrected: 0 };

    // Every recorded object of every release, so API requests can be spread over all of them.
    const prepared: {
      target: Target;
      recorded: RecordedRelease;
      checks: ObjectCheck[];
      secrets: string[];
      failures: string[];
    }[] = [];
    for (const target of active) {
      const lookup = records.get(releaseKey(target.namespace, target.name));
      if (lookup === undefined || 'skipped' in lookup) {
        if (lookup) deps.log?.info({ release: target.name, reason: lookup.skipped }, 'drift not checked');
        continue;
      }
      if ('failed' in lookup) {
        result.failed++;
        await reportFailure(target, failureMessage('could not check drift', [lookup.failed]), [], statuses);
        continue;
      }
      try {
        prepared.push(await prepare(target, lookup.recorded));
      } catch (err) {
        result.failed++;
        await reportFailure(
          target,
          `could not check drift of helm revision ${lookup.recorded.revision}: ${describeError(err)}`,
          target.secrets,
          statuses,
        );
      }
    }

    const checks = prepared.flatMap((p) => p.checks);
    const live = await readLiveObjects(
      deps.objects,
      checks.map((c) => c.id),
      concurrency,
      memo,
    );
    const context = inspectContext();
    const findings = await mapLimit(checks, concurrency, (c) =>
      inspectObject(context, c, live.get(objectKey(c.id))),
    );
    const byRelease = new Map<string, Finding[]>();
    for (const finding of findings)
      byRelease.set(finding.check.release, [...(byRelease.get(finding.check.release) ?? []), finding]);

    await mapLimit(prepared, Math.max(1, Math.floor(concurrency / 2)), async (p) => {
      const outcome = await settle(p, byRelease.get(p.target.name) ?? [], statuses?.get(p.target.name));
      totals.found += outcome.found;
      totals.corrected += outcome.corrected;
      if (outcome.found > 0) result.drifted++;
      if (outcome.found > 0 && outcome.allCorrected) result.corrected++;
      if (outcome.failed) result.failed++;
    });

    deps.metrics?.driftChecked(
      { drifted: totals.found, corrected: totals.corrected, failed: result.failed },
      now(),
    );
    deps.log?.info(
      {
        releases: active.length,
        objects: checks.length,
        ...result,
        durationSeconds: (now() - started) / 1000,
      },
      'drift check finished',
    );
    return result;
  }

  // The chart's CRD files, parsed once per plan (kube-prometheus-stack's are megabytes).
  const parsedCrds = new WeakMap<readonly CrdFile[], ChartCrd[]>();
  function chartCrdsOf(files: readonly CrdFile[]): ChartCrd[] {
    let crds = parsedCrds.get(files);
    if (!crds) {
      crds = parseCrds(files);
      parsedCrds.set(files, crds);
    }
    return crds;
  }

  async function prepare(target: Target, recorded: RecordedRelease) {
    const objects = recorded.objects;
    const secrets = secretStringsOf(objects, target.secrets);
    const rules = [...target.rules, ...hpaIgnoreRules(objects, target.namespace)];
    const checks: ObjectCheck[] = [];
    const failures: string[] = [];
    for (const object of objects) {
      const namespaced = await deps.objects.isNamespaced(object.apiVersion ?? '', object.kind ?? '');
      if (namespaced === undefined) {
        failures.push(
          `${describeObject(idOf(object))}: the API server does not serve ${object.apiVersion} ${object.kind}`,
        );
        continue;
      }
      const applied = asHelmApplied(object, target, namespaced);
      if (optsOut(applied)) continue;
      checks.push({ release: target.name, id: idOf(applied), recorded: applied, rules });
    }
    const { policy, files } = target.crds;
    if (policy !== 'Skip' && files.length > 0) {
      for (const crd of chartCrdsOf(files)) {
        checks.push({
          release: target.name,
          id: idOf(crd.object),
          recorded: crd.object,
          rules,
          crd: { policy, fieldManager: CRD_FIELD_MANAGER },
        });
      }
    }
    return { target, recorded, checks, secrets, failures };
  }

  function inspectContext(): InspectContext {
    // One look at a namespace's HPAs per check, and only where replicas drifted.
    const hpas = new Map<string, Promise<IgnoreRule[]>>();
    return {
      api: deps.objects,
      liveHpaRules(namespace) {
        let rules = hpas.get(namespace);
        if (rules === undefined) {
          rules = readLiveHpaRules(namespace);
          hpas.set(namespace, rules);
        }
        return rules;
      },
    };
  }

  async function readLiveHpaRules(namespace: string): Promise<IgnoreRule[]> {
    try {
      const items: AnyObject[] = [];
      let continueToken: string | undefined;
      do {
        const page = await deps.objects.listRaw('autoscaling/v2', 'HorizontalPodAutoscaler', {
          namespace,
          ...(continueToken ? { continueToken } : {}),
        });
        items.push(...page.items.map((i) => ({ ...i, kind: 'HorizontalPodAutoscaler' })));
        continueToken = page.continueToken;
      } while (continueToken);
      return hpaIgnoreRules(items, namespace);
    } catch (err) {
      // Not knowing is no reason to fight an autoscaler: leave replicas alone here.
      deps.log?.warn(
        { namespace, err: describeError(err) },
        'cannot list HPAs; replicas are not checked in this namespace',
      );
      return [{ path: '/spec/replicas', namespace }];
    }
  }

  async function settle(
    p: Awaited<ReturnType<typeof prepare>>,
    findings: Finding[],
    previous: ReleaseStatusRecord | undefined,
  ): Promise<{ found: number; corrected: number; allCorrected: boolean; failed: boolean }> {
    const { target, recorded, secrets } = p;
    const failures = [...p.failures];
    const managers: Record<string, string[]> = {};
    const drift: ReleaseDrift = { modified: [], added: [], deleted: [], failed: failures, managers };
    const drifted = findings.filter((f) => f.state === 'drifted');
    for (const f of findings) {
      if (f.state === 'failed')
        failures.push(`${describeObject(f.check.id)}: ${redact(f.error ?? 'unknown error', secrets)}`);
    }
    for (const f of drifted) {
      if (f.deleted) drift.deleted.push(describeObject(f.check.id));
      drift.modified.push(...f.modified.map((p) => describeField(f.check.id, p)));
      drift.added.push(...f.added.map((a) => describeField(f.check.id, a.pointer)));
      for (const [pointer, who] of Object.entries(f.managers))
        managers[describeField(f.check.id, pointer)] = who;
    }
    const found = driftCount(drift);
    const mode = target.mode === 'correct' ? 'correct' : 'warn';

    if (found > 0) {
      deps.log?.info(
        {
          release: target.name,
          namespace: target.namespace,
          helmRevision: recorded.revision,
          mode,
          modified: drift.modified.slice(0, 50),
          deleted: drift.deleted.slice(0, 50),
          added: drift.added.slice(0, 50),
          managers: Object.fromEntries(Object.entries(managers).slice(0, 50)),
        },
        'drift detected',
      );
      deps.events.emit(
        target.name,
        'Warning',
        'DriftDetected',
        detectedMessage(recorded.revision, sortDrift(drift), mode),
      );
    }

    let corrected = 0;
    let uncorrectable = 0;
    const restored: Pick<ReleaseDrift, 'modified' | 'added' | 'deleted' | 'managers'> = {
      modified: [],
      added: [],
      deleted: [],
      managers,
    };
    const correctionFailures: string[] = [];
    if (mode === 'correct' && found > 0) {
      // A CRD changed under `crds: Create` (older than the chart's, or edited) is reported and
      // left: Create never changes an existing CRD. A deleted one is created again.
      const correctable = drifted.filter((f) => f.deleted || f.check.crd?.policy !== 'Create');
      uncorrectable = drifted.length - correctable.length;
      await mapLimit(correctable, concurrency, async (f) => {
        const outcome = await correctObject(deps.objects, f);
        corrected += outcome.corrected;
        if (outcome.error === undefined) {
          if (f.deleted) restored.deleted.push(describeObject(f.check.id));
          restored.modified.push(...f.modified.map((p) => describeField(f.check.id, p)));
          restored.added.push(...f.added.map((a) => describeField(f.check.id, a.pointer)));
        } else {
          correctionFailures.push(`${describeObject(f.check.id)}: ${redact(outcome.error, secrets)}`);
        }
      });
      if (driftCount(restored) > 0) {
        deps.log?.info(
          { release: target.name, helmRevision: recorded.revision, corrected },
          'drift corrected',
        );
        deps.events.emit(
          target.name,
          'Normal',
          'DriftCorrected',
          correctedMessage(recorded.revision, sortDrift(restored)),
        );
      }
      if (correctionFailures.length > 0) {
        deps.log?.warn(
          { release: target.name, failures: correctionFailures.slice(0, 20) },
          'drift correction failed',
        );
        deps.events.emit(
          target.name,
          'Warning',
          'DriftCorrectionFailed',
          failureMessage('could not correct', correctionFailures.sort()),
        );
      }
    }
    if (failures.length > 0) {
      deps.log?.warn(
        { release: target.name, failures: failures.slice(0, 20) },
        'drift check failed for some objects',
      );
      deps.events.emit(
        target.name,
        'Warning',
        'DriftCheckFailed',
        failureMessage('could not check', failures),
      );
    }

    const allCorrected =
      mode === 'correct' && found > 0 && correctionFailures.length === 0 && uncorrectable === 0;
    await writeStatus(
      target.name,
      summaryOf(sortDrift(drift), allCorrected, now(), mode),
      previous,
      failures.length > 0 ? failureMessage('drift check failed', failures) : undefined,
    );
    return { found, corrected, allCorrected, failed: failures.length > 0 || correctionFailures.length > 0 };
  }

  async function readStatuses(): Promise<Map<string, ReleaseStatusRecord> | undefined> {
    try {
      return new Map((await deps.status.list()).map((s) => [s.name, s]));
    } catch (err) {
      deps.log?.warn(
        { err: describeError(err) },
        'cannot read release statuses; drift is checked and reported, not corrected',
      );
      return undefined;
    }
  }

  /**
   * Records a check. A release that converged is `ready`, `drifted`, or `failed` (reason
   * DriftCheckFailed) when some of its objects could not be checked: unknown drift is not
   * "no drift". A release failed, waiting or pending for other reasons stays so.
   */
  async function writeStatus(
    name: string,
    summary: DriftSummary,
    previous: ReleaseStatusRecord | undefined,
    failure: string | undefined,
  ): Promise<void> {
    const patch: ReleaseStatusPatch = {};
    const fresh =
      previous?.drift?.checkedAt !== undefined && now() - Date.parse(previous.drift.checkedAt) < refreshMs;
    if (!sameSummary(previous?.drift, summary) || !fresh) patch.drift = summary;
    const failedByDrift = previous?.state === 'failed' && previous.reason === DRIFT_CHECK_FAILED;
    if (previous?.state === 'ready' || previous?.state === 'drifted' || failedByDrift) {
      if (failure !== undefined) {
        if (!failedByDrift || previous.lastError !== failure) {
          patch.state = 'failed';
          patch.reason = DRIFT_CHECK_FAILED;
          patch.lastError = failure;
        }
      } else {
        const state: ReleaseState = summary.count > 0 && !summary.corrected ? 'drifted' : 'ready';
        if (state !== previous.state) patch.state = state;
        if (failedByDrift) patch.lastError = null;
      }
    }
    if (Object.keys(patch).length === 0) return;
    try {
      await deps.status.update(name, patch);
    } catch (err) {
      deps.log?.warn({ release: name, err: describeError(err) }, 'cannot record drift in the release status');
    }
  }

  /** A release switched to `off` keeps no drift report, and is not left `drifted`. */
  async function clearSwitchedOff(
    off: Target[],
    statuses: Map<string, ReleaseStatusRecord> | undefined,
  ): Promise<void> {
    for (const target of off) {
      const previous = statuses?.get(target.name);
      if (previous?.drift === undefined && previous?.state !== 'drifted') continue;
      try {
        await deps.status.update(target.name, {
          drift: null,
          ...(previous.state === 'drifted' ? { state: 'ready' } : {}),
        });
      } catch (err) {
        deps.log?.warn({ release: target.name, err: describeError(err) }, 'cannot clear the drift status');
      }
    }
  }

  /** The whole release could not be checked (helm's storage unreadable, a bad manifest). */
  async function reportFailure(
    target: Target,
    message: string,
    secrets: readonly string[],
    statuses: Map<string, ReleaseStatusRecord> | undefined,
  ): Promise<void> {
    const text = redact(message, secrets);
    deps.log?.warn({ release: target.name, err: text }, 'drift check failed');
    deps.events.emit(target.name, 'Warning', DRIFT_CHECK_FAILED, text);
    const previous = statuses?.get(target.name);
    const summary: DriftSummary = {
      count: previous?.drift?.count ?? 0,
      fields: previous?.drift?.fields ?? [],
      deletedObjects: previous?.drift?.deletedObjects ?? [],
      corrected: false,
      mode: target.mode === 'correct' ? 'correct' : 'warn',
      failed: 1,
      failures: [text],
      checkedAt: new Date(now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
    await writeStatus(target.name, summary, previous, text);
  }

  return { check };
}

function sortDrift<T extends Pick<ReleaseDrift, 'modified' | 'added' | 'deleted'>>(drift: T): T {
  return {
    ...drift,
    modified: [...drift.modified].sort(),
    added: [...drift.added].sort(),
    deleted: [...drift.deleted].sort(),
  };
}
