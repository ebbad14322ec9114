// `releases.yaml`: release declarations per layer, and how layers combine into the
// releases one cluster runs. Fields merge by release name, later layer over earlier
// (common, then environment, then cluster); within one release a later layer's field
// replaces the earlier one's (lists included, as in Helm values).
import { MooringError } from '../errors.js';
import {
  bool,
  dnsLabel,
  duration,
  list,
  object,
  oneOf,
  parseDuration,
  record,
  refine,
  str,
  validate,
  type Schema,
} from './schema.js';

export type DriftMode = 'correct' | 'warn' | 'off';

/** What happens to the CRDs in a chart's crds/ folders (Flux's names; see src/converge/crds.ts). */
export type CrdPolicy = 'Skip' | 'Create' | 'CreateReplace';
export const CRD_POLICIES: readonly CrdPolicy[] = ['Skip', 'Create', 'CreateReplace'];

/**
 * Ignore drift of matching objects: a field (JSON pointer, and everything below it), or the
 * fields that the named field managers own (Argo CD's `managedFieldsManagers`), or, with
 * both, the fields under `path` that those managers own.
 */
export interface IgnoreRule {
  path?: string;
  managedFieldsManagers?: string[];
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

/** One layer's view of a release: every field optional. */
export interface ReleaseDecl {
  chart?: string;
  repo?: string;
  version?: string;
  namespace?: string;
  dependsOn?: string[];
  enabled?: boolean;
  createNamespace?: boolean;
  timeout?: string;
  wait?: boolean;
  crds?: CrdPolicy;
  drift?: { mode?: DriftMode; ignore?: IgnoreRule[] };
}

/**
 * A remote chart resolved to one exact archive by the chart source (src/charts): set on the
 * release before its values are resolved, and what helm is given.
 */
export interface PinnedChart {
  /** The chart's name. */
  name: string;
  /** The exact version the reference resolved to. */
  version: string;
  /** `sha256:<hex>`: the archive's digest (HTTP repository) or the OCI manifest digest. */
  digest: string;
  /** Absolute path of the verified archive in the chart cache. */
  archive: string;
}

export type ChartRef =
  | {
      kind: 'local';
      /** Repository-relative, e.g. charts/web. */
      path: string;
      /** Dependencies Chart.yaml declares and charts/ lacks, fetched by the chart source. */
      dependencies?: PinnedChart[];
      /** The chart with those dependencies added, assembled in the chart cache: what helm gets. */
      assembled?: string;
    }
  | { kind: 'repo'; repo: string; name: string; version?: string; pinned?: PinnedChart }
  | { kind: 'oci'; url: string; version?: string; pinned?: PinnedChart };

/** A release as one cluster runs it, after all layers. */
export interface Release {
  name: string;
  chart: ChartRef;
  namespace: string;
  dependsOn: string[];
  createNamespace: boolean;
  timeoutSeconds: number;
  wait: boolean;
  /** CRDs of the chart's crds/ folders: created if missing (`Create`), also replaced (`CreateReplace`), or left alone (`Skip`). */
  crds: CrdPolicy;
  drift: { mode?: DriftMode; ignore: IgnoreRule[] };
  /** The releases.yaml files that declared or changed it, lowest layer first. */
  declaredIn: string[];
}

export const DEFAULT_TIMEOUT = '5m';

const JSON_POINTER = /^(\/([^~/]|~[01])*)+$/;

const ignoreRule: Schema<IgnoreRule> = refine(
  object({
    path: str({ pattern: JSON_POINTER, patternHelp: 'a JSON pointer such as /spec/replicas' }),
    managedFieldsManagers: list(
      refine(str(), (v) => (v.trim() === '' ? 'a field manager name must not be empty' : undefined)),
      { unique: true },
    ),
    group: str(),
    kind: str(),
    name: str(),
    namespace: str(),
  }),
  (rule) =>
    rule.path === undefined && (rule.managedFieldsManagers ?? []).length === 0
      ? 'a rule needs a path, managedFieldsManagers, or both'
      : undefined,
) as Schema<IgnoreRule>;

export const ignoreRules = list(ignoreRule);

const releaseDecl: Schema<ReleaseDecl> = object({
  chart: refine(str(), (v) =>
    v.trim() === ''
      ? 'chart must not be empty'
      : /^oci:\/\/[^/]*@/.test(v)
        ? 'an OCI reference must not carry credentials (user:password@); give them to the agent in --chart-auth-file'
        : undefined,
  ),
  // Checked before the URL's shape, so that a message never echoes a password back.
  repo: refine(str(), (v) =>
    /^[a-z]+:\/\/[^/]*@/i.test(v)
      ? 'a repository URL must not carry credentials (user:password@); give them to the agent in --chart-auth-file'
      : /^https?:\/\/\S+$/.test(v)
        ? undefined
        : `expected an http(s) URL of a Helm repository, found ${JSON.stringify(v.replace(/\?.*$/, ''))}`,
  ),
  version: refine(str(), (v) => (v.trim() === '' ? 'version must not be empty' : undefined)),
  namespace: dnsLabel(),
  dependsOn: list(dnsLabel(), { unique: true }),
  enabled: bool(),
  createNamespace: bool(),
  timeout: duration(),
  wait: bool(),
  crds: oneOf(['Skip', 'Create', 'CreateReplace'] as const),
  drift: object({ mode: oneOf(['correct', 'warn', 'off'] as const), ignore: ignoreRules }),
}) as Schema<ReleaseDecl>;

const releasesFile = object({ releases: record(releaseDecl, dnsLabel()) });

/** Parses one layer's releases.yaml. Versions given as YAML numbers are kept as text. */
export function parseReleasesFile(doc: unknown, file: string): Record<string, ReleaseDecl> {
  return validate(releasesFile, normaliseVersions(doc), file).releases ?? {};
}

// `version: 1.2` in YAML is a number; users mean the string.
function normaliseVersions(doc: unknown): unknown {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return doc;
  const releases = (doc as { releases?: unknown }).releases;
  if (typeof releases !== 'object' || releases === null || Array.isArray(releases)) return doc;
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(releases)) {
    if (typeof v === 'object' && v !== null && typeof (v as { version?: unknown }).version === 'number') {
      copy[k] = { ...v, version: String((v as { version: number }).version) };
    } else copy[k] = v;
  }
  return { ...doc, releases: copy };
}

export interface LayerReleases {
  file: string;
  releases: Record<string, ReleaseDecl>;
}

/**
 * Merges the layers' declarations by release name and returns the enabled releases.
 * Also returns the names that some layer declared but a later one disabled.
 */
export function mergeReleases(layers: LayerReleases[]): { releases: Release[]; disabled: string[] } {
  type Entry = { decl: ReleaseDecl; files: string[]; fieldFiles: Map<string, string> };
  const merged = new Map<string, Entry>();
  for (const layer of layers) {
    for (const [name, decl] of Object.entries(layer.releases)) {
      const entry: Entry = merged.get(name) ?? { decl: {}, files: [], fieldFiles: new Map<string, string>() };
      for (const [k, v] of Object.entries(decl)) {
        if (k === 'drift') {
          const d = v as NonNullable<ReleaseDecl['drift']>;
          entry.decl.drift = { ...entry.decl.drift, ...d };
        } else {
          (entry.decl as Record<string, unknown>)[k] = v;
        }
        entry.fieldFiles.set(k, layer.file);
      }
      entry.files.push(layer.file);
      merged.set(name, entry);
    }
  }
  const releases: Release[] = [];
  const disabled: string[] = [];
  for (const [name, { decl, files, fieldFiles }] of merged) {
    if (decl.enabled === false) {
      disabled.push(name);
      continue;
    }
    const last = files[files.length - 1]!;
    if (!decl.chart) {
      throw new MooringError(`release ${name} has no chart: no layer sets releases.${name}.chart`, {
        file: last,
        field: `releases.${name}.chart`,
        release: name,
      });
    }
    releases.push({
      name,
      chart: chartRef(name, decl, fieldFiles),
      namespace: decl.namespace ?? name,
      dependsOn: decl.dependsOn ?? [],
      createNamespace: decl.createNamespace ?? true,
      timeoutSeconds: parseDuration(decl.timeout ?? DEFAULT_TIMEOUT)!,
      wait: decl.wait ?? true,
      crds: decl.crds ?? 'Create',
      drift: { ...(decl.drift?.mode ? { mode: decl.drift.mode } : {}), ignore: decl.drift?.ignore ?? [] },
      declaredIn: files,
    });
  }
  return { releases: releases.sort((a, b) => a.name.localeCompare(b.name)), disabled: disabled.sort() };
}

function chartRef(name: string, decl: ReleaseDecl, fieldFiles: Map<string, string>): ChartRef {
  const chart = decl.chart!;
  const where = (field: string) => ({
    file: fieldFiles.get(field),
    field: `releases.${name}.${field}`,
    release: name,
  });
  if (chart.startsWith('oci://')) {
    if (decl.repo) {
      throw new MooringError('an oci:// chart takes no repo', where('repo'), {
        hint: 'remove repo, or use a chart name with an https repo',
      });
    }
    return { kind: 'oci', url: chart, ...(decl.version ? { version: decl.version } : {}) };
  }
  if (decl.repo) {
    if (chart.includes('/')) {
      throw new MooringError(
        `with repo set, chart is the chart's name in that repository, found ${JSON.stringify(chart)}`,
        where('chart'),
      );
    }
    return { kind: 'repo', repo: decl.repo, name: chart, ...(decl.version ? { version: decl.version } : {}) };
  }
  if (!chart.startsWith('./')) {
    throw new MooringError(
      `chart ${JSON.stringify(chart)} is neither an in-repository path (./charts/<chart>) nor an oci:// reference`,
      where('chart'),
      { hint: 'for a chart from a Helm repository, also set repo' },
    );
  }
  if (decl.version) {
    throw new MooringError(
      'version applies only to charts from a repository; an in-repository chart has its own Chart.yaml version',
      where('version'),
    );
  }
  return { kind: 'local', path: chart.slice(2).replace(/\/+$/, '') };
}
