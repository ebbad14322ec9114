// mooring's CustomResourceDefinitions (MooringRelease, MooringPlan, Approval, MooringAgent): loaded from
// the agent chart's crds/ folder, which ships with the package, and applied server-side at
// start-up so that `mooring run` works on a bare cluster. Where the agent may not write CRDs
// (403), it is enough that they are already served.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { MooringError } from '../errors.js';
import type { Kube } from '../kube/connect.js';
import { apiErrorMessage, apiStatusCode, isForbidden } from '../kube/errors.js';
import { serverSideApply, type AnyObject } from '../kube/objects.js';

export const MOORING_GROUP = 'mooring.io';
export const MOORING_VERSION = 'v1alpha1';
export const MOORING_API_VERSION = `${MOORING_GROUP}/${MOORING_VERSION}`;

/** The kinds mooring defines, with the plural names their API paths use. */
export const MOORING_KINDS = {
  MooringRelease: { kind: 'MooringRelease', plural: 'mooringreleases' },
  MooringPlan: { kind: 'MooringPlan', plural: 'mooringplans' },
  Approval: { kind: 'Approval', plural: 'approvals' },
  MooringAgent: { kind: 'MooringAgent', plural: 'mooringagents' },
} as const;

export type CustomResourceDefinition = AnyObject & {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { group: string; names: { kind: string; plural: string }; versions: { name: string }[] };
};

/** src/observe and dist/observe are both two levels below the package root. */
export const DEFAULT_CRD_DIR = fileURLToPath(new URL('../../charts/mooring/crds/', import.meta.url));

/** Reads every CRD in `dir` (one per YAML file). */
export function loadCrds(dir: string = DEFAULT_CRD_DIR): CustomResourceDefinition[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  return files.map((file) => {
    const doc = parseYaml(readFileSync(join(dir, file), 'utf8')) as Partial<CustomResourceDefinition> | null;
    if (doc?.kind !== 'CustomResourceDefinition' || typeof doc.metadata?.name !== 'string') {
      throw new MooringError('not a CustomResourceDefinition', { file: join(dir, file) });
    }
    return doc as CustomResourceDefinition;
  });
}

export interface EnsureCrdsOptions {
  crds?: CustomResourceDefinition[];
  fieldManager?: string;
  /** How long to wait for new CRDs to be established (default 30s). */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export interface EnsureCrdsResult {
  /** CRDs applied by this call. */
  applied: string[];
  /** CRDs we may not write, but that are already served. */
  alreadyServed: string[];
}

/**
 * Applies mooring's CRDs (server-side, taking ownership of their fields) and waits until
 * the API server serves them. A 403 is fine when the CRD is already served: the cluster
 * admin installed it with the chart and gave the agent no CRD rights.
 */
export async function ensureCrds(clients: Kube, options: EnsureCrdsOptions = {}): Promise<EnsureCrdsResult> {
  const crds = options.crds ?? loadCrds();
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const result: EnsureCrdsResult = { applied: [], alreadyServed: [] };
  for (const crd of crds) {
    try {
      await serverSideApply(clients, crd, { fieldManager: options.fieldManager ?? 'mooring', force: true });
      result.applied.push(crd.metadata.name);
    } catch (err) {
      if (isForbidden(err) && (await isServed(clients, crd))) {
        result.alreadyServed.push(crd.metadata.name);
        continue;
      }
      throw new MooringError(
        `cannot install CustomResourceDefinition ${crd.metadata.name}: ${apiErrorMessage(err)}`,
        {},
        {
          hint: isForbidden(err)
            ? 'install the CRDs from charts/mooring/crds/ (kubectl apply --server-side -f), or allow the agent to apply customresourcedefinitions'
            : undefined,
          cause: err,
        },
      );
    }
  }
  const now = options.now ?? Date.now;
  const deadline = now() + (options.timeoutMs ?? 30_000);
  for (const name of result.applied) {
    while (!(await isEstablished(clients, name))) {
      if (now() > deadline) {
        throw new MooringError(
          `CustomResourceDefinition ${name} was applied but is not established`,
          {},
          {
            hint: 'check `kubectl describe crd ' + name + '`',
          },
        );
      }
      await sleep(200);
    }
  }
  // Established is not enough: for a moment after a CRD is created, its storage answers
  // 429 "storage is (re)initializing". Wait until a list of each new kind works.
  for (const crd of crds.filter((c) => result.applied.includes(c.metadata.name))) {
    while (!(await isListable(clients, crd))) {
      if (now() > deadline) {
        throw new MooringError(
          `CustomResourceDefinition ${crd.metadata.name} is established but its storage is not ready`,
          {},
        );
      }
      await sleep(200);
    }
  }
  return result;
}

async function isListable(clients: Kube, crd: CustomResourceDefinition): Promise<boolean> {
  try {
    await clients.rest.request('GET', `${groupVersionPath(crd)}/${crd.spec.names.plural}`, {
      query: { limit: 1 },
    });
    return true;
  } catch (err) {
    if (apiStatusCode(err) === 429) return false;
    // Anything else (403 for a namespaced agent) is not about readiness.
    return true;
  }
}

async function isEstablished(clients: Kube, name: string): Promise<boolean> {
  const crd = await clients.rest.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
    'GET',
    `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${encodeURIComponent(name)}`,
  );
  return (crd.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
}

const groupVersionPath = (crd: CustomResourceDefinition) =>
  `/apis/${crd.spec.group}/${crd.spec.versions[0]?.name ?? MOORING_VERSION}`;

/** Discovery is open to every authenticated user, so this works without CRD read rights. */
async function isServed(clients: Kube, crd: CustomResourceDefinition): Promise<boolean> {
  try {
    const resources = await clients.rest.request<{ resources?: { name: string }[] }>(
      'GET',
      groupVersionPath(crd),
    );
    return (resources.resources ?? []).some((r) => r.name === crd.spec.names.plural);
  } catch {
    return false;
  }
}
