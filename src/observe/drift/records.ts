// What Helm recorded for each release, read from Helm's own storage through the Kubernetes
// API, without running helm: the manifest of the latest deployed revision and how helm
// applied it (server-side or client-side). The release's values (`config`) are dropped as
// soon as the record is decoded: drift never needs them, and they may hold secrets. A record
// is decoded and parsed once per helm revision, not at every check.
//
// Cost: one list of helm's storage Secrets across all namespaces, restricted by label to
// deployed, failed and pending revisions (so history is not read), paged. An agent that may
// not list Secrets cluster-wide falls back to one list per release (and remembers that).
import {
  listRevisions,
  decodeRelease,
  type StorageSecret,
  type StoredRevision,
} from '../../converge/helm-storage.js';
import type { HelmReleaseStatus } from '../../converge/helm.js';
import { apiErrorMessage, isForbidden } from '../../kube/errors.js';
import type { RestClient } from '../../kube/rest.js';
import type { AnyObject } from './api.js';
import { parseManifest } from './objects.js';
import { mapLimit } from './pool.js';

export interface RecordedRelease {
  name: string;
  namespace: string;
  /** Helm's revision number of the deployed revision. */
  revision: number;
  /** `ssa` for server-side apply (helm 4's default), `csa` for client-side (helm 3, `--server-side=false`). */
  applyMethod: 'ssa' | 'csa';
  /** The objects of the recorded manifest, in manifest order. Shared between checks: never modify. */
  objects: readonly AnyObject[];
}

/** Kept by the checker across checks. */
export interface RecordsMemo {
  /** The agent may not list Secrets across namespaces. */
  noClusterList: boolean;
  /** Decoded records by release, with the storage Secret's uid/resourceVersion they came from. */
  decoded: Map<string, { stamp: string; recorded: RecordedRelease }>;
}

/** A release's record, or why its drift is not checked now. */
export type RecordLookup = { recorded: RecordedRelease } | { skipped: string } | { failed: string };

const PAGE = 100;
const INTERESTING = ['deployed', 'failed', 'pending-install', 'pending-upgrade', 'pending-rollback'];

export async function readRecordedReleases(
  client: Pick<RestClient, 'request'>,
  releases: readonly { name: string; namespace: string }[],
  memo: RecordsMemo = { noClusterList: false, decoded: new Map() },
): Promise<Map<string, RecordLookup>> {
  const wanted = new Set(releases.map((r) => releaseKey(r.namespace, r.name)));
  const out = new Map<string, RecordLookup>();
  if (wanted.size === 0) return out;

  const found = memo.noClusterList ? undefined : await listClusterWide(client, wanted);
  if (found === undefined) memo.noClusterList = true;

  await mapLimit(releases, 8, async (release) => {
    const key = releaseKey(release.namespace, release.name);
    try {
      const revisions = found
        ? (found.get(key) ?? []).sort((a, b) => a.revision - b.revision)
        : await listRevisions(client, release.namespace, release.name);
      out.set(key, pick(release, revisions, memo.decoded));
    } catch (err) {
      out.set(key, {
        failed: `cannot read helm's record of ${release.namespace}/${release.name}: ${apiErrorMessage(err)}`,
      });
    }
  });
  for (const key of memo.decoded.keys()) if (!wanted.has(key)) memo.decoded.delete(key);
  return out;
}

/** The interesting revisions of the wanted releases; undefined when the agent may not list them so. */
async function listClusterWide(
  client: Pick<RestClient, 'request'>,
  wanted: Set<string>,
): Promise<Map<string, StoredRevision[]> | undefined> {
  const found = new Map<string, StoredRevision[]>();
  try {
    let continueToken: string | undefined;
    do {
      const page = await client.request<{ items?: StorageSecret[]; metadata?: { continue?: string } }>(
        'GET',
        '/api/v1/secrets',
        {
          query: {
            labelSelector: `owner=helm,status in (${INTERESTING.join(',')})`,
            limit: PAGE,
            continue: continueToken,
          },
        },
      );
      for (const secret of page.items ?? []) {
        const stored = toStored(secret);
        const key = releaseKey(secret.metadata?.namespace ?? '', stored.name);
        if (!wanted.has(key) || stored.revision <= 0) continue;
        found.set(key, [...(found.get(key) ?? []), stored]);
      }
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
  } catch (err) {
    if (isForbidden(err)) return undefined;
    throw err;
  }
  return found;
}

export function releaseKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function toStored(secret: StorageSecret): StoredRevision {
  return {
    name: secret.metadata?.labels?.name ?? '',
    revision: Number(secret.metadata?.labels?.version ?? 0),
    status: (secret.metadata?.labels?.status ?? 'unknown') as HelmReleaseStatus,
    secret,
  };
}

/**
 * The latest revision decides: deployed is checked; pending or failed waits for the converger.
 * A record already decoded (same Secret, same resourceVersion) is not decoded again.
 */
function pick(
  release: { name: string; namespace: string },
  revisions: StoredRevision[],
  decoded: Map<string, { stamp: string; recorded: RecordedRelease }>,
): RecordLookup {
  const latest = revisions[revisions.length - 1];
  if (latest === undefined) return { skipped: 'not installed' };
  if (latest.status !== 'deployed') {
    return {
      skipped: `helm revision ${latest.revision} is ${latest.status}; drift is checked once a revision is deployed`,
    };
  }
  const key = releaseKey(release.namespace, release.name);
  const stamp = `${latest.secret.metadata?.uid ?? ''}/${latest.secret.metadata?.resourceVersion ?? ''}`;
  const known = decoded.get(key);
  if (known?.stamp === stamp) return { recorded: known.recorded };
  let record: Record<string, unknown>;
  let objects: AnyObject[];
  try {
    record = decodeRelease(latest.secret);
    objects = parseManifest(typeof record.manifest === 'string' ? record.manifest : '');
  } catch (err) {
    return { failed: `cannot read helm revision ${latest.revision}: ${(err as Error).message}` };
  }
  // Take only what drift needs; `config` (the values) goes out of scope here.
  const recorded: RecordedRelease = {
    name: release.name,
    namespace: release.namespace,
    revision: latest.revision,
    applyMethod: record.apply_method === 'ssa' ? 'ssa' : 'csa',
    objects,
  };
  decoded.set(key, { stamp, recorded });
  return { recorded };
}
