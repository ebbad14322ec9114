// Helm's own record of a release, read and (for recovery) edited through the Kubernetes
// API, without running helm. Helm keeps one Secret per revision, named
// `sh.helm.release.v1.<release>.v<revision>`, labelled owner=helm, name, status, version;
// its `release` field is base64(gzip(JSON of the release)). A converge pass reads only those
// labels, for every release at once (`readStorageIndex`); the release data is read for the
// few releases that need it (recovery, drift, plans).
import { isForbidden } from '../kube/errors.js';
import type { ObjectApi } from '../kube/objects.js';
import type { RestClient } from '../kube/rest.js';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { HelmObservation } from './decide.js';
import { PENDING_STATES, type HelmReleaseStatus } from './helm.js';
import { pendingDeadline, readMark, type RevisionMetadata } from './marks.js';

export interface StoredRevision {
  name: string;
  revision: number;
  status: HelmReleaseStatus;
  secret: StorageSecret;
}

/** A Secret as the API server sends it (data base64-encoded). */
export interface StorageSecret {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    resourceVersion?: string;
    creationTimestamp?: string;
  };
  type?: string;
  data?: Record<string, string>;
}

/** The path of a namespace's Secrets. */
export const secretsPath = (namespace: string) =>
  `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;

/** The label helm puts on every storage Secret. */
const HELM_SELECTOR = 'owner=helm';

export function storageSecretName(release: string, revision: number): string {
  return `sh.helm.release.v1.${release}.v${revision}`;
}

/** Every revision helm stored for a release, oldest first. */
export async function listRevisions(
  client: Pick<RestClient, 'request'>,
  namespace: string,
  release: string,
): Promise<StoredRevision[]> {
  const list = await client.request<{ items?: StorageSecret[] }>('GET', secretsPath(namespace), {
    query: { labelSelector: `${HELM_SELECTOR},name=${release}` },
  });
  return (list.items ?? [])
    .map((secret) => ({
      name: release,
      revision: Number(secret.metadata?.labels?.version ?? 0),
      status: (secret.metadata?.labels?.status ?? 'unknown') as HelmReleaseStatus,
      secret,
    }))
    .filter((r) => r.revision > 0)
    .sort((a, b) => a.revision - b.revision);
}

/** One revision as helm's storage labels describe it: no release data. */
export interface RevisionLabels {
  name: string;
  namespace: string;
  revision: number;
  status: HelmReleaseStatus;
  /** All the Secret's labels: helm's, and mooring's marks (`marks.ts`). */
  labels: Record<string, string>;
  /** When the Secret was created: when helm started the revision. */
  creationTimestamp?: string;
}

/** The metadata of one object, as a metadata-only LIST returns it. */
export interface ObjectMetadata {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  creationTimestamp?: string;
}

/**
 * Lists the metadata of the Secrets matching `labelSelector`, in `namespace`, or in every
 * namespace when it is undefined (`ObjectApi.listMetadata` does it with one request per page).
 */
export type SecretMetadataLister = (
  namespace: string | undefined,
  labelSelector: string,
) => Promise<ObjectMetadata[]>;

/** The lister of a Kubernetes client: metadata-only LISTs of Secrets. */
export function secretMetadataLister(objects: Pick<ObjectApi, 'listMetadata'>): SecretMetadataLister {
  return (namespace, labelSelector) =>
    objects.listMetadata('secrets', { ...(namespace === undefined ? {} : { namespace }), labelSelector });
}

/** helm's storage labels of every release, read once for a whole converge pass. */
export interface StorageIndex {
  /** The revisions of one release, oldest first; empty when helm stored none. */
  revisions(namespace: string, release: string): RevisionLabels[];
}

/** Namespaces read at once when the cluster-wide list is forbidden. */
const NAMESPACE_READS = 8;

/**
 * Reads the labels of helm's storage Secrets for the releases in `namespaces`: one
 * label-selected LIST for the whole cluster, whatever the number of releases. An agent whose
 * RBAC covers only some namespaces (the chart's `rbac.clusterAdmin: false`) is refused that
 * list; it then lists each namespace once, still not once per release.
 */
export async function readStorageIndex(
  list: SecretMetadataLister,
  namespaces: Iterable<string>,
): Promise<StorageIndex> {
  let items: ObjectMetadata[];
  try {
    items = await list(undefined, HELM_SELECTOR);
  } catch (err) {
    if (!isForbidden(err)) throw err;
    const wanted = [...new Set(namespaces)];
    items = [];
    for (let i = 0; i < wanted.length; i += NAMESPACE_READS) {
      const pages = await Promise.all(
        wanted.slice(i, i + NAMESPACE_READS).map((ns) => list(ns, HELM_SELECTOR)),
      );
      items.push(...pages.flat());
    }
  }
  const byRelease = new Map<string, RevisionLabels[]>();
  for (const meta of items) {
    const release = meta.labels?.name;
    const revision = Number(meta.labels?.version ?? 0);
    if (!release || !meta.namespace || !(revision > 0)) continue;
    const key = `${meta.namespace}/${release}`;
    const revisions = byRelease.get(key) ?? [];
    revisions.push({
      name: release,
      namespace: meta.namespace,
      revision,
      status: (meta.labels?.status ?? 'unknown') as HelmReleaseStatus,
      labels: meta.labels ?? {},
      ...(meta.creationTimestamp ? { creationTimestamp: meta.creationTimestamp } : {}),
    });
    byRelease.set(key, revisions);
  }
  for (const revisions of byRelease.values()) revisions.sort((a, b) => a.revision - b.revision);
  return { revisions: (namespace, release) => byRelease.get(`${namespace}/${release}`) ?? [] };
}

export interface ObserveOptions {
  /** For a pending revision mooring did not mark: the helm timeout to assume (seconds). */
  timeoutSeconds: number;
  /** Added to a pending revision's timeout before it counts as abandoned (seconds). */
  graceSeconds: number;
}

/** A revision's labels and creation time, from the index or from a full read. */
function revisionMetadata(revision: RevisionLabels | StoredRevision): RevisionMetadata {
  return 'secret' in revision ? (revision.secret.metadata ?? {}) : revision;
}

/**
 * The latest revision and the last deployed one, as `nextAction` wants them, with mooring's
 * mark and, for a pending revision, until when its helm process may still run.
 */
export function observe(
  revisions: readonly (RevisionLabels | StoredRevision)[],
  options?: ObserveOptions,
): HelmObservation | undefined {
  const latest = revisions[revisions.length - 1];
  if (!latest) return undefined;
  const deployed = [...revisions].reverse().find((r) => r.status === 'deployed' || r.status === 'superseded');
  const metadata = revisionMetadata(latest);
  const mark = readMark(metadata.labels);
  const pendingUntil =
    options && PENDING_STATES.includes(latest.status)
      ? pendingDeadline(metadata, options.timeoutSeconds, options.graceSeconds)
      : undefined;
  return {
    revision: latest.revision,
    status: latest.status,
    ...(deployed ? { lastDeployedRevision: deployed.revision } : {}),
    ...(mark ? { mark } : {}),
    ...(pendingUntil !== undefined ? { pendingUntil } : {}),
  };
}

/** The release record (JSON) held in a storage Secret. Holds values: never log it. */
export function decodeRelease(secret: StorageSecret): Record<string, unknown> {
  const field = secret.data?.release;
  if (!field) throw new Error(`helm storage secret ${secret.metadata?.name} has no release field`);
  const helmEncoded = Buffer.from(field, 'base64').toString('utf8');
  let raw = Buffer.from(helmEncoded, 'base64');
  // gzip magic number: helm compresses, but older records may be plain JSON.
  if (raw[0] === 0x1f && raw[1] === 0x8b) raw = gunzipSync(raw);
  return JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
}

export function encodeRelease(release: Record<string, unknown>): string {
  const helmEncoded = gzipSync(Buffer.from(JSON.stringify(release), 'utf8')).toString('base64');
  return Buffer.from(helmEncoded, 'utf8').toString('base64');
}

/**
 * Marks a revision left pending by an interrupted helm process as failed, so the next
 * upgrade can run (helm refuses to touch a release with an operation in progress). Only
 * safe when no helm process works on the release: the agent holds the leader lease and
 * runs none. The same rule Flux applies to stale pending releases.
 */
export async function unlockPending(
  client: Pick<RestClient, 'request'>,
  stored: StoredRevision,
  reason: string,
): Promise<void> {
  const secret = stored.secret;
  const namespace = secret.metadata!.namespace!;
  const release = decodeRelease(secret);
  const info = (release.info ?? {}) as Record<string, unknown>;
  info.status = 'failed';
  info.description = reason;
  release.info = info;
  await client.request('PUT', `${secretsPath(namespace)}/${encodeURIComponent(secret.metadata!.name!)}`, {
    body: {
      ...secret,
      metadata: { ...secret.metadata, labels: { ...secret.metadata?.labels, status: 'failed' } },
      data: { ...secret.data, release: encodeRelease(release) },
    },
  });
}
