// The difference between what a plan wants and what is live in the cluster, per release:
// the action converging would take (the converger's own state machine decides it), the
// values diff against what helm deployed, and the manifest diff against the live objects
// (a server-side apply dry run of what helm would send). Used by `mooring plan --context`
// and by the approval gate, which publishes it as a pending plan.
//
// Nothing here talks to the cluster itself: the live side comes in through `LiveSource`
// (src/gate/live-cluster.ts implements it against the API). Deployed values and live
// objects hold secrets, so every diff is built from masked copies: secret leaves become a
// keyed hash (a change shows, the value does not), Secret data likewise, and every known
// secret string is redacted from the final text as a second line of defence.
import { createTwoFilesPatch, FILE_HEADERS_ONLY } from 'diff';
import { createHmac } from 'node:crypto';
import { stringify } from 'yaml';
import { describeError } from '../errors.js';
import { nextAction, type ConvergeRecord, type HelmObservation } from '../converge/decide.js';
import { redactSecrets } from '../secrets/redact.js';
import { parseCrds } from '../converge/crds.js';
import type { CrdFile } from '../charts/chart-tree.js';
import type { CrdPolicy } from '../model/releases.js';
import { isPlainMap } from '../model/schema.js';
import { getPath, type Values } from '../resolve/merge.js';
import type { ClusterPlan, PlannedRelease } from './cluster-plan.js';
import { hashSecrets } from '../secrets/hash.js';
import { canonicalJson, sha256 } from './digest.js';
import { parseManifestDocuments } from './manifest-yaml.js';

/** What converging a release would do. `error`: the release is broken in Git; nothing is applied to it. */
export type ReleaseAction = 'install' | 'upgrade' | 'uninstall' | 'none' | 'error';

export const CHANGING_ACTIONS: readonly ReleaseAction[] = ['install', 'upgrade', 'uninstall'];

/** mooring's record of a release (MooringRelease status), as far as planning needs it. */
export interface RecordedRelease extends ConvergeRecord {
  name: string;
  namespace?: string;
  state?: string;
  /** The Git revision of the last successful converge. */
  deployedRevision?: string;
}

/** The last revision helm deployed of a release. Holds secrets: only ever shown masked. */
export interface DeployedRelease {
  revision: number;
  /** The user values helm was given (helm's `config`). */
  values: Values;
  /** The manifest helm recorded (hooks excluded). */
  manifest: string;
  /** The chart version helm deployed. */
  chartVersion?: string;
}

/** What helm's storage shows about one release. */
export interface HelmState {
  observation?: HelmObservation;
  /** Decoded on demand: only diffs need it. */
  deployed(): Promise<DeployedRelease | undefined>;
}

/** Identifies one Kubernetes object. */
export interface ObjectKey {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

export type KubeObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string };
};

/** The live side of a diff. */
export interface LiveSource {
  helm(namespace: string, release: string): Promise<HelmState>;
  /** Whether the API server serves `kind` as a namespaced resource; undefined when it does not serve it. */
  namespaced(apiVersion: string, kind: string): Promise<boolean | undefined>;
  /** The live object, or undefined when there is none (or its namespace does not exist). */
  get(key: ObjectKey): Promise<KubeObject | undefined>;
  /**
   * The object as it would be if helm applied `object` now (server-side apply, dry run);
   * undefined when that cannot be asked yet because the object's namespace does not exist.
   */
  dryRunApply(object: KubeObject): Promise<KubeObject | undefined>;
}

/** One release's line in a live plan. */
export interface ReleaseChange {
  name: string;
  namespace: string;
  action: ReleaseAction;
  /** Why: the state machine's reason, or the error in Git. */
  reason: string;
  desiredDigest?: string;
  /** The digest mooring recorded at its last successful converge. */
  deployedDigest?: string;
  /** Helm's latest revision number and status. */
  helmRevision?: number;
  helmStatus?: string;
  /** From the server-side render (bindRenders): the chart version and content helm resolved. */
  chartVersion?: string;
  chartDigest?: string;
  /** Keyed hash of the manifest helm would apply (see manifestDigest). */
  manifestDigest?: string;
  /** Lines of the manifest that differ on every render (random values): not bound. */
  varyingLines?: number[];
  /** Why the release could not be rendered or dry-run against the cluster: one line. */
  dryRunError?: string;
}

/** What applying a plan would change. */
export interface LivePlan {
  cluster: string;
  revision: string;
  /**
   * `sha256:<hex>` over what applying would do (see bindingDigest): recomputed by the agent
   * from its own data before it applies an approved plan. The digest an approval names also
   * covers the diffs shown (src/gate/plans.ts, planDigest).
   */
  binding: string;
  releases: ReleaseChange[];
  /** Releases that would be installed, upgraded or uninstalled. */
  changes: number;
}

export interface LiveState {
  /** mooring's records for this cluster. */
  records: RecordedRelease[];
  /** Helm's state per `namespace/name`, for every planned and recorded release. */
  helm: Map<string, HelmState>;
}

export const releaseKey = (namespace: string, name: string): string => `${namespace}/${name}`;

/** Reads helm's state for every release the plan names and every release mooring recorded. */
export async function observeLive(
  plan: Pick<ClusterPlan, 'releases'>,
  records: RecordedRelease[],
  live: Pick<LiveSource, 'helm'>,
): Promise<LiveState> {
  const refs = new Map<string, { namespace: string; name: string }>();
  for (const r of plan.releases) refs.set(releaseKey(r.namespace, r.name), r);
  for (const r of records) {
    if (r.namespace) refs.set(releaseKey(r.namespace, r.name), { namespace: r.namespace, name: r.name });
  }
  const helm = new Map<string, HelmState>();
  await Promise.all(
    [...refs.entries()].map(async ([key, ref]) => helm.set(key, await live.helm(ref.namespace, ref.name))),
  );
  return { records, helm };
}

/**
 * The action for every release, decided by the converger's state machine (nextAction) from
 * the same observations converging would use, so the plan says exactly what applying does.
 * A failed release waiting out its retry delay counts as an upgrade: the plan must not
 * depend on the clock.
 */
export function planChanges(
  plan: Pick<ClusterPlan, 'releases'> & { cluster: { name: string } },
  state: LiveState,
  opts: { revision: string; prune: boolean },
): LivePlan {
  const records = new Map(state.records.map((r) => [r.name, r]));
  const wanted = new Set(plan.releases.map((r) => r.name));
  const releases: ReleaseChange[] = [];

  for (const r of plan.releases) {
    const record = records.get(r.name);
    const observation = state.helm.get(releaseKey(r.namespace, r.name))?.observation;
    const base = {
      name: r.name,
      namespace: r.namespace,
      ...(record?.deployedDigest ? { deployedDigest: record.deployedDigest } : {}),
      ...(observation ? { helmRevision: observation.revision, helmStatus: observation.status } : {}),
    };
    if (r.error || !r.digest) {
      releases.push({ ...base, action: 'error', reason: describeError(r.error ?? 'no digest') });
      continue;
    }
    const action = nextAction({
      desired: { digest: r.digest, revision: opts.revision },
      ...(observation ? { helm: observation } : {}),
      ...(record ? { record } : {}),
      prune: opts.prune,
      now: Number.POSITIVE_INFINITY,
    });
    const [kind, reason] = describeAction(action);
    releases.push({
      ...base,
      desiredDigest: r.digest,
      // The exact chart the release model pinned (src/charts), or an in-repo chart's own.
      ...(r.version ? { chartVersion: r.version } : {}),
      ...(r.chartDigest ? { chartDigest: r.chartDigest } : {}),
      action: kind,
      reason,
    });
  }

  // Releases mooring manages that left Git (or were disabled): pruned or orphaned.
  for (const record of state.records) {
    if (wanted.has(record.name) || record.state === 'pruned' || !record.namespace) continue;
    const observation = state.helm.get(releaseKey(record.namespace, record.name))?.observation;
    if (!observation) continue; // nothing installed: converging just forgets the record
    const action = nextAction({
      helm: observation,
      record,
      prune: opts.prune,
      now: Number.POSITIVE_INFINITY,
    });
    const [kind, reason] = describeAction(action);
    releases.push({
      name: record.name,
      namespace: record.namespace,
      action: kind,
      reason,
      ...(record.deployedDigest ? { deployedDigest: record.deployedDigest } : {}),
      helmRevision: observation.revision,
      helmStatus: observation.status,
    });
  }

  releases.sort((a, b) => a.name.localeCompare(b.name) || a.namespace.localeCompare(b.namespace));
  const livePlan = {
    cluster: plan.cluster.name,
    revision: opts.revision,
    releases,
    changes: releases.filter((r) => CHANGING_ACTIONS.includes(r.action)).length,
  };
  return { ...livePlan, binding: bindingDigest(livePlan) };
}

function describeAction(action: ReturnType<typeof nextAction>): [ReleaseAction, string] {
  switch (action.kind) {
    case 'install':
      return ['install', 'not installed yet'];
    case 'upgrade':
      return ['upgrade', action.reason];
    case 'unlock':
      return ['upgrade', `helm left the release ${action.from}; it is recovered, then upgraded`];
    case 'wait':
      return ['upgrade', 'the last attempt failed; retried once approved'];
    case 'wait-pending':
      return [
        'upgrade',
        `helm left the release ${action.from} and may still run; recovered after its timeout`,
      ];
    case 'owned-elsewhere':
      return ['none', `owned by mooring agent ${action.owner}; never taken over`];
    case 'record':
      return ['none', 'deployed by this agent before a restart; recorded without running helm'];
    case 'none':
      return ['none', 'up to date'];
    case 'uninstall':
      return ['uninstall', 'no longer declared in Git for this cluster'];
    case 'orphan':
      return ['none', 'no longer declared in Git; left installed because pruning is off'];
  }
}

/**
 * What a plan binds: the revision, and per release its action and the digests that decided
 * it (desired, last converged, helm's revision and status). The same revision over the same
 * live releases always gives the same digest; diffs, times and messages are left out because
 * they change without changing what applying would do.
 */
/** The fields of a release that a plan binds (a ReleaseChange, or a MooringPlan's release). */
export type BoundRelease = Pick<ReleaseChange, 'name' | 'namespace' | 'action'> &
  Partial<
    Pick<
      ReleaseChange,
      | 'desiredDigest'
      | 'deployedDigest'
      | 'helmRevision'
      | 'helmStatus'
      | 'chartVersion'
      | 'chartDigest'
      | 'manifestDigest'
      | 'varyingLines'
      | 'dryRunError'
    >
  >;

export function bindingDigest(
  plan: { cluster: string; revision: string; releases: readonly BoundRelease[] },
  opts: { renders?: boolean } = {},
): string {
  const renders = opts.renders ?? true;
  return `sha256:${sha256(
    canonicalJson({
      cluster: plan.cluster,
      revision: plan.revision,
      releases: plan.releases.map((r) => ({
        name: r.name,
        namespace: r.namespace,
        action: r.action,
        desiredDigest: r.desiredDigest ?? null,
        deployedDigest: r.deployedDigest ?? null,
        helmRevision: r.helmRevision ?? null,
        helmStatus: r.helmStatus ?? null,
        ...(renders
          ? {
              chartVersion: r.chartVersion ?? null,
              chartDigest: r.chartDigest ?? null,
              manifestDigest: r.manifestDigest ?? null,
              varyingLines: r.varyingLines ?? null,
              dryRunError: r.dryRunError ?? null,
            }
          : {}),
      })),
    }),
  )}`;
}

/** What a release renders to against the cluster (helm's server-side dry run). */
export interface ReleaseRender {
  /** Raw: holds secrets. Never stored or shown as is. */
  manifest?: string;
  chartVersion?: string;
  chartDigest?: string;
  varyingLines?: number[];
  /** Why it could not be rendered: one clean line. */
  error?: string;
}

/**
 * A keyed hash of a manifest (it holds secrets: a plain hash of a short password could be
 * guessed), with the lines that differ between renders (a random password on install)
 * replaced, so that only what is the same on every render is bound.
 */
export function manifestDigest(manifest: string, varyingLines: readonly number[], key: Buffer): string {
  const lines = manifest.split('\n');
  for (const i of varyingLines) if (i < lines.length) lines[i] = '<varies>';
  return `hmac-sha256:${createHmac('sha256', key).update(lines.join('\n')).digest('hex')}`;
}

/** The lines where two renders of the same release differ; every line when their shapes differ. */
export function varyingLinesOf(a: string, b: string): number[] {
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length !== y.length) return x.map((_, i) => i);
  return x.flatMap((line, i) => (line === y[i] ? [] : [i]));
}

/** Adds each release's render to the plan and binds it (chart, manifest, dry-run errors). */
export function bindRenders(livePlan: LivePlan, renders: Map<string, ReleaseRender>, key: Buffer): LivePlan {
  const releases = livePlan.releases.map((r): ReleaseChange => {
    const render = renders.get(r.name);
    if (!render) return r;
    return {
      ...r,
      // The pinned chart of the model wins; helm's answer fills in where the model has none.
      ...(!r.chartVersion && render.chartVersion ? { chartVersion: render.chartVersion } : {}),
      ...(!r.chartDigest && render.chartDigest ? { chartDigest: render.chartDigest } : {}),
      ...(render.manifest !== undefined
        ? { manifestDigest: manifestDigest(render.manifest, render.varyingLines ?? [], key) }
        : {}),
      ...(render.varyingLines?.length ? { varyingLines: render.varyingLines } : {}),
      ...(render.error ? { dryRunError: render.error } : {}),
    };
  });
  const bound = { ...livePlan, releases };
  return { ...bound, binding: bindingDigest(bound) };
}

/** The first line of an error that says what went wrong, without helm's prefixes. */
export function oneLine(text: string): string {
  const line =
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? '';
  const clean = line.replace(/^(Error: )+/, '');
  return clean.length > 400 ? `${clean.slice(0, 397)}...` : clean;
}

// ---------------------------------------------------------------------------------------
// Values diff

/** Where a secret value must be masked, and the strings to redact from any text. */
export interface SecretMask {
  /** Keys the hash of secret leaves (the agent's digest key), so equal secrets hash equal. */
  key: Buffer;
  paths: string[][];
  strings: readonly string[];
}

/**
 * Unified diff of the user values helm has deployed against the ones it would be given,
 * both with secret leaves replaced by a keyed hash. Empty when they are equal.
 */
export function valuesDiff(input: {
  release: string;
  deployed?: Values;
  desired?: Values;
  mask: SecretMask;
}): string {
  const { mask } = input;
  const text = (v: Values | undefined) =>
    v === undefined ? '' : toYaml(hashSecrets(v, mask.paths, mask.key));
  const before = text(input.deployed);
  const after = text(input.desired);
  if (before === after) return '';
  return redactSecrets(
    unifiedDiff(
      `deployed/${input.release}/values.yaml`,
      `desired/${input.release}/values.yaml`,
      before,
      after,
    ),
    mask.strings,
  );
}

/** Every string value found at `paths` in `values` (to redact deployed secrets from text). */
export function stringsAt(values: Values | undefined, paths: string[][]): string[] {
  if (!values) return [];
  const out = new Set<string>();
  const collect = (v: unknown): void => {
    if (isPlainMap(v)) Object.values(v).forEach(collect);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v !== null && v !== undefined && typeof v !== 'boolean') out.add(String(v));
  };
  for (const p of paths) collect(getPath(values, p));
  return [...out];
}

// ---------------------------------------------------------------------------------------
// Manifest diff

export interface ManifestDiff {
  /** Unified diffs of every object that would change, live first. Empty when nothing would. */
  diff: string;
  /** What the diff could not cover (kinds not served yet). */
  notes: string[];
  /** Objects the API server refused in a dry run, one line each: applying would fail. */
  refused?: string;
}

const HELM_MANAGED_BY = 'app.kubernetes.io/managed-by';

/**
 * Diffs the objects of a release as they are live against what helm would make of them:
 * objects in `desired` (raw rendered manifests, secrets included) are dry-run applied and
 * compared with the live object; objects helm deployed that `desired` lacks would be
 * deleted. `desired` undefined means the release is uninstalled.
 */
export async function manifestDiff(input: {
  release: string;
  namespace: string;
  desired?: string;
  deployed?: string;
  live: Pick<LiveSource, 'namespaced' | 'get' | 'dryRunApply'>;
  mask: SecretMask;
}): Promise<ManifestDiff> {
  const { live, mask } = input;
  const notes: string[] = [];
  const desired = await placeObjects(parseManifest(input.desired ?? ''), input.namespace, live, notes);
  const deployed = await placeObjects(parseManifest(input.deployed ?? ''), input.namespace, live, []);
  const wanted = new Set(desired.map((o) => keyString(keyOf(o))));
  const parts: string[] = [];
  const refused: string[] = [];

  for (const object of desired) {
    withHelmOwnership(object, input.release, input.namespace);
    const key = keyOf(object);
    const id = describeKey(key);
    let current: KubeObject | undefined;
    try {
      current = await live.get(key);
    } catch (err) {
      notes.push(`${id}: cannot read the live object: ${describeError(err)}`);
      continue;
    }
    let after: KubeObject = object;
    try {
      const dry = await live.dryRunApply(object);
      // A new object is shown as rendered, not with every default the server would add.
      if (current && dry) after = dry;
    } catch (err) {
      // No diff against what was rendered: it would show server defaults as removed, a
      // change that will not happen. The refusal is what applying would meet.
      refused.push(`${id}: the API server refused it: ${oneLine(describeError(err))}`);
      continue;
    }
    parts.push(objectDiff(id, current, after, mask));
  }
  for (const object of deployed) {
    const key = keyOf(object);
    if (wanted.has(keyString(key))) continue;
    const id = describeKey(key);
    try {
      const current = await live.get(key);
      if (current) parts.push(objectDiff(id, current, undefined, mask));
    } catch (err) {
      notes.push(`${id}: cannot read the live object: ${describeError(err)}`);
    }
  }
  return {
    diff: redactSecrets(parts.filter(Boolean).join(''), mask.strings),
    notes,
    ...(refused.length ? { refused: redactSecrets(refused.join('; '), mask.strings) } : {}),
  };
}

/** Parses a multi-document manifest into objects, leaving out empty documents and hooks. */
export function parseManifest(manifest: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const value of parseManifestDocuments(manifest)) {
    const items =
      isPlainMap(value) && Array.isArray(value.items) && /List$/.test(String(value.kind))
        ? (value.items as unknown[])
        : [value];
    for (const item of items) {
      if (!isKubeObject(item)) continue;
      const annotations = item.metadata.annotations;
      // Hooks (and tests) are not part of the release's manifest; helm runs them separately.
      if (isPlainMap(annotations) && annotations['helm.sh/hook'] !== undefined) continue;
      objects.push(item);
    }
  }
  return objects;
}

function isKubeObject(v: unknown): v is KubeObject {
  return (
    isPlainMap(v) &&
    typeof v.apiVersion === 'string' &&
    typeof v.kind === 'string' &&
    isPlainMap(v.metadata) &&
    typeof v.metadata.name === 'string'
  );
}

/** Gives namespaced objects the release namespace when the chart left it out, as helm does. */
async function placeObjects(
  objects: KubeObject[],
  namespace: string,
  live: Pick<LiveSource, 'namespaced'>,
  notes: string[],
): Promise<KubeObject[]> {
  const out: KubeObject[] = [];
  for (const object of objects) {
    const namespaced = await live.namespaced(object.apiVersion, object.kind);
    if (namespaced === undefined) {
      notes.push(
        `${describeKey(keyOf(object))}: the API server does not serve ${object.kind} (${object.apiVersion}) yet; shown as rendered`,
      );
    }
    if (namespaced === false) delete object.metadata.namespace;
    else if (!object.metadata.namespace) object.metadata.namespace = namespace;
    out.push(object);
  }
  return out;
}

/** The labels and annotations helm puts on every object it manages. */
function withHelmOwnership(object: KubeObject, release: string, namespace: string): void {
  const meta = object.metadata;
  meta.labels = { ...(isPlainMap(meta.labels) ? meta.labels : {}), [HELM_MANAGED_BY]: 'Helm' };
  meta.annotations = {
    ...(isPlainMap(meta.annotations) ? meta.annotations : {}),
    'meta.helm.sh/release-name': release,
    'meta.helm.sh/release-namespace': namespace,
  };
}

function objectDiff(
  id: string,
  before: KubeObject | undefined,
  after: KubeObject | undefined,
  mask: SecretMask,
): string {
  const a = before ? toYaml(normalizeObject(before, mask.key)) : '';
  const b = after ? toYaml(normalizeObject(after, mask.key)) : '';
  if (a === b) return '';
  return unifiedDiff(before ? `live/${id}` : '/dev/null', after ? `desired/${id}` : '/dev/null', a, b);
}

const VOLATILE_METADATA = [
  'managedFields',
  'resourceVersion',
  'uid',
  'generation',
  'creationTimestamp',
  'selfLink',
];
// kubectl's copy of the whole object: would hold Secret data in clear.
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * A copy fit to show: server bookkeeping and status removed, Secret data replaced by a
 * keyed hash of the decoded value (so data and stringData of the same value compare equal).
 */
export function normalizeObject(object: KubeObject, key: Buffer): KubeObject {
  const copy = structuredClone(object) as KubeObject;
  delete copy.status;
  for (const field of VOLATILE_METADATA) delete copy.metadata[field];
  const annotations = copy.metadata.annotations;
  if (isPlainMap(annotations)) {
    delete annotations[LAST_APPLIED];
    if (Object.keys(annotations).length === 0) delete copy.metadata.annotations;
  }
  if (copy.kind === 'Secret' && (copy.apiVersion === 'v1' || copy.apiVersion === 'core/v1')) {
    const data: Record<string, string> = {};
    const mark = (k: string, plain: string) => {
      data[k] = `<secret:${createHmac('sha256', key).update(plain).digest('hex').slice(0, 16)}>`;
    };
    if (isPlainMap(copy.data))
      for (const [k, v] of Object.entries(copy.data))
        mark(k, Buffer.from(String(v), 'base64').toString('utf8'));
    if (isPlainMap(copy.stringData)) for (const [k, v] of Object.entries(copy.stringData)) mark(k, String(v));
    delete copy.stringData;
    if (Object.keys(data).length > 0) copy.data = data;
    else delete copy.data;
  }
  return copy;
}

function keyOf(o: KubeObject): ObjectKey {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.metadata.name,
    ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}),
  };
}

function keyString(k: ObjectKey): string {
  const group = k.apiVersion.includes('/') ? k.apiVersion.split('/')[0] : '';
  return `${group}/${k.kind}/${k.namespace ?? ''}/${k.name}`;
}

function describeKey(k: ObjectKey): string {
  return `${k.kind}/${k.namespace ? `${k.namespace}/` : ''}${k.name}`;
}

// ---------------------------------------------------------------------------------------
// Text

/** YAML with keys sorted (apiVersion, kind and metadata first), so equal objects print equal. */
export function toYaml(value: unknown): string {
  return stringify(orderKeys(value), { lineWidth: 0 });
}

const FIRST = ['apiVersion', 'kind', 'metadata'];

function orderKeys(value: unknown, top = true): unknown {
  if (Array.isArray(value)) return value.map((v) => orderKeys(v, false));
  if (!isPlainMap(value)) return value;
  const keys = Object.keys(value).sort((a, b) => {
    if (top) {
      const ia = FIRST.indexOf(a);
      const ib = FIRST.indexOf(b);
      if (ia !== -1 || ib !== -1) return (ia === -1 ? 99 : ia) - (ib === -1 ? 99 : ib);
    }
    return a < b ? -1 : a > b ? 1 : 0;
  });
  return Object.fromEntries(keys.map((k) => [k, orderKeys(value[k], false)]));
}

export function unifiedDiff(from: string, to: string, before: string, after: string): string {
  return createTwoFilesPatch(from, to, before, after, undefined, undefined, {
    context: 3,
    headerOptions: FILE_HEADERS_ONLY,
  });
}

// ---------------------------------------------------------------------------------------
// Putting it together

/** A release's line in a live plan, with its diffs. */
export interface ReleaseDiff extends ReleaseChange {
  valuesDiff: string;
  manifestDiff: string;
  notes: string[];
  /** Paths of values that came from SOPS files (never their values). */
  secretPaths: string[][];
}

export interface DiffDeps {
  live: LiveSource;
  state: LiveState;
  /** The agent's digest key: secret leaves are shown as a hash keyed with it. */
  key: Buffer;
  /** Raw rendered manifests of a release (secrets included); undefined skips the manifest diff. */
  render?(release: PlannedRelease): Promise<string>;
  /** Secret paths recorded for releases when they were last planned (values moved out of SOPS files stay masked). */
  knownSecretPaths?: Map<string, string[][]>;
  /** Diff only releases that would change (the gate) or every release (`mooring plan`). */
  only?: 'changed' | 'all';
}

/** The values and manifest diffs of every release in `livePlan`. */
export async function diffReleases(
  plan: Pick<ClusterPlan, 'releases'>,
  livePlan: LivePlan,
  deps: DiffDeps,
): Promise<ReleaseDiff[]> {
  const planned = new Map(plan.releases.map((r) => [r.name, r]));
  return Promise.all(
    livePlan.releases.map(async (change): Promise<ReleaseDiff> => {
      const release = planned.get(change.name);
      const resolved = release?.resolved;
      const secretPaths = resolved?.secretPaths ?? [];
      const out: ReleaseDiff = { ...change, valuesDiff: '', manifestDiff: '', notes: [], secretPaths };
      const changing = CHANGING_ACTIONS.includes(change.action);
      if (change.action === 'error' || ((deps.only ?? 'changed') === 'changed' && !changing)) return out;

      const helm = deps.state.helm.get(releaseKey(change.namespace, change.name));
      const deployed = await helm?.deployed();
      const paths = uniquePaths([...secretPaths, ...(deps.knownSecretPaths?.get(change.name) ?? [])]);
      const mask: SecretMask = {
        key: deps.key,
        paths,
        strings: [...(resolved?.secretStrings ?? []), ...stringsAt(deployed?.values, paths)],
      };
      out.valuesDiff = valuesDiff({
        release: change.name,
        ...(deployed ? { deployed: deployed.values } : {}),
        ...(change.action !== 'uninstall' && resolved ? { desired: resolved.merge.userValues } : {}),
        mask,
      });
      if (change.action !== 'uninstall' && (!deps.render || !release)) {
        out.notes.push('manifests were not rendered; no manifest diff');
        return out;
      }
      let desired: string | undefined;
      if (change.action !== 'uninstall') {
        try {
          desired = await deps.render!(release!);
        } catch (err) {
          const why = redactSecrets(oneLine(describeError(err)), mask.strings);
          out.dryRunError ??= why;
          out.notes.push(`cannot render the chart: ${why}`);
          return out;
        }
      }
      const manifests = await manifestDiff({
        release: change.name,
        namespace: change.namespace,
        ...(desired !== undefined ? { desired } : {}),
        ...(deployed ? { deployed: deployed.manifest } : {}),
        live: deps.live,
        mask,
      });
      out.manifestDiff = manifests.diff;
      out.notes.push(...manifests.notes.map((n) => redactSecrets(n, mask.strings)));
      if (manifests.refused) out.dryRunError ??= manifests.refused;
      if (change.action !== 'uninstall' && resolved) {
        const crds = await crdDiff(resolved.release.crds, resolved.crds, deps.live, mask);
        out.manifestDiff += crds.diff;
        out.notes.push(...crds.notes);
      }
      return out;
    }),
  );
}

/**
 * What the upgrade does to the CRDs of the chart's crds/ folders (src/converge/crds.ts): a
 * missing one is created (a note; a CRD can be megabytes), one that differs from the chart's
 * is replaced under CreateReplace (its diff) or left under Create (its diff and a note saying
 * it stays older). Skip: nothing.
 */
async function crdDiff(
  policy: CrdPolicy,
  files: readonly CrdFile[],
  live: LiveSource,
  mask: SecretMask,
): Promise<{ diff: string; notes: string[] }> {
  const out = { diff: '', notes: [] as string[] };
  if (policy === 'Skip' || files.length === 0) return out;
  for (const crd of parseCrds(files)) {
    const object = crd.object as KubeObject;
    const id = `CustomResourceDefinition/${crd.name}`;
    const current = await live.get(keyOf(object));
    if (current === undefined) {
      out.notes.push(`${id}: created from ${crd.file} (crds: ${policy})`);
      continue;
    }
    const wouldBe = await live.dryRunApply(object);
    if (wouldBe === undefined) continue;
    const diff = objectDiff(id, current, wouldBe, mask);
    if (diff === '') continue;
    out.diff += diff;
    out.notes.push(
      policy === 'CreateReplace'
        ? `${id}: replaced by the chart's (crds: CreateReplace)`
        : `${id}: differs from the chart's and is left as it is (crds: Create); set crds: CreateReplace to replace it`,
    );
  }
  return out;
}

function uniquePaths(paths: string[][]): string[][] {
  const seen = new Map(paths.map((p) => [JSON.stringify(p), p]));
  return [...seen.values()];
}
