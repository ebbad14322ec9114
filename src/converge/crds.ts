// CRDs from a chart's crds/ folders (its own and its enabled subcharts'), handled by mooring
// rather than helm, following the release's `crds:` option (Flux's names):
// - `Skip`: none is created or changed.
// - `Create` (default): a missing CRD is created, on install and on every upgrade (a new
//   chart version may bring a new CRD); an existing one is never changed.
// - `CreateReplace`: a missing CRD is created and an existing one that differs from the
//   chart's is replaced, on every upgrade. Helm itself never upgrades crds/.
// helm always runs with --skip-crds, so one place decides. A CRD is applied server-side as
// its own field manager, with force (Git is the authority), and mooring waits until the API
// server serves it (Established) before helm renders custom resources of it.
import { apiErrorMessage } from '../kube/errors.js';
import type { AnyObject } from '../kube/objects.js';
import { MooringError } from '../errors.js';
import type { CrdFile } from '../charts/chart-tree.js';
import type { CrdPolicy } from '../model/releases.js';
import { isPlainMap } from '../model/schema.js';
import { parseYamlDocuments } from '../model/yaml.js';
import { changedFields } from '../observe/drift/compare.js';
import type { DriftObjectApi } from '../observe/drift/api.js';

/** The field manager of CRDs mooring applies (and checks for drift). */
export const CRD_FIELD_MANAGER = 'mooring-crds';

const CRD_YAML_LIMITS = {
  maxBytes: 16 * 1024 * 1024,
  maxExpandedSize: 64 * 1024 * 1024,
  maxNodes: 2_000_000,
};

/** One CRD of a chart, with the file it came from. */
export interface ChartCrd {
  name: string;
  file: string;
  object: AnyObject;
}

/** The CustomResourceDefinitions in a chart's crds/ files; other kinds there are left to helm's rules (ignored). */
export function parseCrds(files: readonly CrdFile[]): ChartCrd[] {
  const out: ChartCrd[] = [];
  for (const { file, text } of files) {
    for (const doc of parseYamlDocuments(text, file, { limits: CRD_YAML_LIMITS })) {
      if (!isPlainMap(doc) || doc.kind !== 'CustomResourceDefinition') continue;
      const metadata = isPlainMap(doc.metadata) ? doc.metadata : {};
      if (typeof metadata.name !== 'string' || metadata.name === '') {
        throw new MooringError('a CustomResourceDefinition without metadata.name', {
          file,
          field: 'metadata.name',
        });
      }
      out.push({ name: metadata.name, file, object: doc as AnyObject });
    }
  }
  return out;
}

export type CrdChange = 'create' | 'replace' | 'unchanged' | 'outdated';

/** What applying a chart's CRDs under `policy` does to one CRD, as seen now. */
export interface CrdCheck {
  crd: ChartCrd;
  change: CrdChange;
  /** Fields that differ (replace, outdated). */
  fields: string[];
}

/**
 * Compares each CRD with the live one: `create` (missing), `replace` (differs, and the
 * policy replaces), `outdated` (differs, and `Create` leaves it), `unchanged`.
 * A server-side apply dry run gives the CRD as the chart would leave it (server defaults included).
 */
export async function checkCrds(
  api: Pick<DriftObjectApi, 'readRaw' | 'applyRaw'>,
  crds: readonly ChartCrd[],
  policy: CrdPolicy,
): Promise<CrdCheck[]> {
  if (policy === 'Skip') return [];
  return Promise.all(
    crds.map(async (crd): Promise<CrdCheck> => {
      const live = await api.readRaw(ref(crd));
      if (live === undefined) return { crd, change: 'create', fields: [] };
      const wouldBe = await api.applyRaw(crd.object, {
        fieldManager: CRD_FIELD_MANAGER,
        force: true,
        dryRun: true,
      });
      const fields = changedFields(live, wouldBe).filter(
        (f) =>
          f.startsWith('/spec') || f.startsWith('/metadata/labels') || f.startsWith('/metadata/annotations'),
      );
      if (fields.length === 0) return { crd, change: 'unchanged', fields };
      return { crd, change: policy === 'CreateReplace' ? 'replace' : 'outdated', fields };
    }),
  );
}

export interface CrdApplyResult {
  created: string[];
  replaced: string[];
  /** Existing CRDs that differ from the chart's, left as they are (`Create`). */
  outdated: string[];
}

/** Creates (and with CreateReplace replaces) the chart's CRDs, then waits until they are served. */
export async function applyCrds(
  api: Pick<DriftObjectApi, 'readRaw' | 'applyRaw'>,
  crds: readonly ChartCrd[],
  policy: CrdPolicy,
  options: { timeoutMs: number; sleep?: (ms: number) => Promise<void>; now?: () => number },
): Promise<CrdApplyResult> {
  const result: CrdApplyResult = { created: [], replaced: [], outdated: [] };
  if (policy === 'Skip' || crds.length === 0) return result;
  const checks = await checkCrds(api, crds, policy).catch((err: unknown) => {
    throw new MooringError(`cannot read the chart's CRDs in the cluster: ${apiErrorMessage(err)}`);
  });
  for (const check of checks) {
    if (check.change === 'outdated') result.outdated.push(check.crd.name);
    if (check.change !== 'create' && check.change !== 'replace') continue;
    try {
      await api.applyRaw(check.crd.object, { fieldManager: CRD_FIELD_MANAGER, force: true, dryRun: false });
    } catch (err) {
      throw new MooringError(`cannot ${check.change} CRD ${check.crd.name}: ${apiErrorMessage(err)}`, {
        file: check.crd.file,
      });
    }
    (check.change === 'create' ? result.created : result.replaced).push(check.crd.name);
  }
  await waitEstablished(
    api,
    crds.filter((c) => result.created.includes(c.name) || result.replaced.includes(c.name)),
    options,
  );
  return result;
}

async function waitEstablished(
  api: Pick<DriftObjectApi, 'readRaw'>,
  crds: readonly ChartCrd[],
  options: { timeoutMs: number; sleep?: (ms: number) => Promise<void>; now?: () => number },
): Promise<void> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = options.now ?? Date.now;
  const deadline = now() + options.timeoutMs;
  let waiting = [...crds];
  while (waiting.length > 0) {
    const live = await Promise.all(waiting.map((c) => api.readRaw(ref(c))));
    waiting = waiting.filter((_, i) => !established(live[i]));
    if (waiting.length === 0) return;
    if (now() >= deadline) {
      throw new MooringError(
        `CRD ${waiting.map((c) => c.name).join(', ')} not established within ${Math.round(options.timeoutMs / 1000)}s`,
        { file: waiting[0]!.file },
      );
    }
    await sleep(250);
  }
}

function established(live: AnyObject | undefined): boolean {
  const status = live?.status;
  const conditions = isPlainMap(status) && Array.isArray(status.conditions) ? status.conditions : [];
  return conditions.some((c) => isPlainMap(c) && c.type === 'Established' && c.status === 'True');
}

function ref(crd: ChartCrd) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: crd.name },
  };
}
