// Helm's own record of a release, read and (for recovery) edited through the Kubernetes
// API, without running helm. Helm keeps one Secret per revision, named
// `sh.helm.release.v1.<release>.v<revision>`, labelled owner=helm, name, status, version;
// its `release` field is base64(gzip(JSON of the release)).
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { HelmObservation } from './decide.js';
import type { HelmReleaseStatus } from './helm.js';

export interface StoredRevision {
  name: string;
  revision: number;
  status: HelmReleaseStatus;
  secret: V1Secret;
}

export function storageSecretName(release: string, revision: number): string {
  return `sh.helm.release.v1.${release}.v${revision}`;
}

/** Every revision helm stored for a release, oldest first. */
export async function listRevisions(
  core: CoreV1Api,
  namespace: string,
  release: string,
): Promise<StoredRevision[]> {
  const list = await core.listNamespacedSecret({ namespace, labelSelector: `owner=helm,name=${release}` });
  return list.items
    .map((secret) => ({
      name: release,
      revision: Number(secret.metadata?.labels?.version ?? 0),
      status: (secret.metadata?.labels?.status ?? 'unknown') as HelmReleaseStatus,
      secret,
    }))
    .filter((r) => r.revision > 0)
    .sort((a, b) => a.revision - b.revision);
}

/** The latest revision and the last deployed one, as `nextAction` wants them. */
export function observe(revisions: StoredRevision[]): HelmObservation | undefined {
  const latest = revisions[revisions.length - 1];
  if (!latest) return undefined;
  const deployed = [...revisions].reverse().find((r) => r.status === 'deployed' || r.status === 'superseded');
  return {
    revision: latest.revision,
    status: latest.status,
    ...(deployed ? { lastDeployedRevision: deployed.revision } : {}),
  };
}

/** The release record (JSON) held in a storage Secret. Holds values: never log it. */
export function decodeRelease(secret: V1Secret): Record<string, unknown> {
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
export async function unlockPending(core: CoreV1Api, stored: StoredRevision, reason: string): Promise<void> {
  const secret = stored.secret;
  const namespace = secret.metadata!.namespace!;
  const release = decodeRelease(secret);
  const info = (release.info ?? {}) as Record<string, unknown>;
  info.status = 'failed';
  info.description = reason;
  release.info = info;
  await core.replaceNamespacedSecret({
    name: secret.metadata!.name!,
    namespace,
    body: {
      ...secret,
      metadata: { ...secret.metadata, labels: { ...secret.metadata?.labels, status: 'failed' } },
      data: { ...secret.data, release: encodeRelease(release) },
    },
  });
}
