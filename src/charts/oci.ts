// Charts in OCI registries (the distribution API as helm push writes it): tags list for
// ranges, the manifest for a tag or a pinned digest, the chart layer as a blob. A tag that is
// re-pushed with other content has a new manifest digest, and that digest is what mooring
// records, so it is a change like a new version, never a silent one. Registries that answer
// 401 with a Bearer challenge get a token from their realm first (Docker Hub, GHCR, Harbor);
// Basic challenges get the credentials of `--chart-auth-file` directly.
import { createHash } from 'node:crypto';
import { redactUrl } from '../source/credentials.js';
import type { ChartAuth, ChartCredentials } from './auth.js';
import { ChartSourceError, statusHint, statusMessage } from './errors.js';
import { networkReason, type ChartHttp, type HttpAnswer } from './http.js';
import { isExactVersion, pickVersion } from './versions.js';

export const HELM_CHART_LAYER = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';
const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

export interface OciReference {
  /** `host[:port]` */
  host: string;
  /** Repository path in the registry, e.g. `charts/redis`. */
  repository: string;
  /** Hex of a pinned manifest digest (`...@sha256:<hex>`). */
  digest?: string;
}

export interface OciResolution {
  reference: string;
  repository: string;
  name: string;
  version: string;
  /** `sha256:<hex>` of the manifest: what a pin names and what mooring records. */
  manifestDigest: string;
  /** Hex sha256 of the chart archive (the layer). */
  layerDigest: string;
}

export function parseOciReference(url: string): OciReference {
  const m = /^oci:\/\/([^/@]+)\/([a-z0-9][a-z0-9._\-/]*?)(?:@sha256:([a-f0-9]{64}))?$/.exec(url);
  if (!m) {
    throw new ChartSourceError(
      `${JSON.stringify(redactUrl(url))} is not an OCI chart reference (oci://host/path/name or oci://host/path/name@sha256:<64 hex>)`,
      'chart',
    );
  }
  return { host: m[1]!, repository: m[2]!, ...(m[3] ? { digest: m[3] } : {}) };
}

interface ManifestState {
  digest: string;
  layerDigest: string;
  version?: string;
  title?: string;
  checkedAt: number;
  generation: number;
}

interface RepositoryState {
  tags?: string[];
  tagsCheckedAt: number;
  tagsGeneration: number;
  manifests: Map<string, ManifestState>;
}

export interface OciClient {
  resolve(url: string, version: string | undefined, when: { interval: number; generation: number }): Promise<OciResolution>;
  blob(repository: string, layerDigestHex: string): Promise<Buffer>;
  due(intervalSeconds: number, generation: number): boolean;
  refresh(intervalSeconds: number, generation: number): Promise<void>;
  newRevision(): void;
  /** Moves when a tag list or a tag's manifest came back changed. */
  readonly changes: number;
}

export function createOciClient(opts: { http: ChartHttp; auth: () => ChartAuth; now: () => number }): OciClient {
  const { http, now } = opts;
  const repos = new Map<string, RepositoryState>(); // by host/repository
  const tokens = new Map<string, { value: string; until: number }>(); // by host/repository
  let changes = 0;

  const key = (ref: OciReference) => `${ref.host}/${ref.repository}`;
  const credentialsFor = (ref: OciReference): ChartCredentials => opts.auth().for(`oci://${ref.host}/${ref.repository}/`);
  const base = (ref: OciReference, creds: ChartCredentials) => `${creds.plainHTTP ? 'http' : 'https'}://${ref.host}`;

  /** GET with the registry's auth dance; throws ChartSourceError for anything but 200/304. */
  async function get(ref: OciReference, path: string, headers: Record<string, string>, maxBytes?: number): Promise<HttpAnswer> {
    const creds = credentialsFor(ref);
    const url = `${base(ref, creds)}${path}`;
    const attempt = async (authorization: string | undefined) => {
      try {
        return await http.get(url, {
          headers: { ...headers, ...(authorization ? { authorization } : {}) },
          ...(creds.ca ? { credentials: { plainHTTP: creds.plainHTTP, ca: creds.ca } } : {}),
          ...(maxBytes ? { maxBytes } : {}),
        });
      } catch (err) {
        throw new ChartSourceError(`cannot reach registry ${ref.host}: ${networkReason(err)}`, 'chart');
      }
    };
    const cached = tokens.get(key(ref));
    const token = creds.authorization?.startsWith('Bearer ') ? creds.authorization : cached && cached.until > now() ? `Bearer ${cached.value}` : undefined;
    let answer = await attempt(token);
    if (answer.status === 401) {
      const challenge = answer.headers['www-authenticate'] ?? '';
      if (/^basic/i.test(challenge) && creds.username !== undefined) {
        answer = await attempt(creds.authorization);
      } else if (/^bearer/i.test(challenge) && !creds.authorization?.startsWith('Bearer ')) {
        const fresh = await fetchToken(ref, challenge, creds);
        if (fresh) answer = await attempt(`Bearer ${fresh}`);
      }
    }
    if (answer.status !== 200 && answer.status !== 304) {
      throw new ChartSourceError(
        statusMessage(answer.status, `registry ${ref.host} (${ref.repository}${path.includes('/tags/') ? ' tags' : ''})`),
        'chart',
        statusHint(answer.status),
      );
    }
    return answer;
  }

  async function fetchToken(ref: OciReference, challenge: string, creds: ChartCredentials): Promise<string | undefined> {
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) return undefined;
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? `repository:${ref.repository}:pull`);
    let answer;
    try {
      answer = await http.get(realm.toString(), {
        ...(creds.authorization || creds.ca ? { credentials: creds } : {}),
      });
    } catch (err) {
      throw new ChartSourceError(`cannot reach the token service of ${ref.host}: ${networkReason(err)}`, 'chart');
    }
    if (answer.status !== 200) {
      throw new ChartSourceError(statusMessage(answer.status, `the token service of ${ref.host}`), 'chart', statusHint(answer.status));
    }
    const body = JSON.parse(answer.body.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
    const value = body.token ?? body.access_token;
    if (!value) return undefined;
    tokens.set(key(ref), { value, until: now() + Math.max(30, (body.expires_in ?? 60) - 10) * 1000 });
    return value;
  }

  function state(ref: OciReference): RepositoryState {
    let s = repos.get(key(ref));
    if (!s) {
      s = { tagsCheckedAt: 0, tagsGeneration: -1, manifests: new Map() };
      repos.set(key(ref), s);
    }
    return s;
  }

  async function listTags(ref: OciReference, s: RepositoryState): Promise<void> {
    const tags: string[] = [];
    let path: string | undefined = `/v2/${ref.repository}/tags/list`;
    for (let page = 0; path && page < 100; page++) {
      const answer = await get(ref, path, { accept: 'application/json' });
      const body = JSON.parse(answer.body.toString('utf8')) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      const link = /<([^>]+)>;\s*rel="next"/.exec(answer.headers.link ?? '');
      path = link ? new URL(link[1]!, 'http://x').pathname + new URL(link[1]!, 'http://x').search : undefined;
    }
    if (s.tags !== undefined && s.tags.join('\n') !== tags.join('\n')) changes++;
    s.tags = tags;
  }

  async function manifest(ref: OciReference, s: RepositoryState, reference: string): Promise<ManifestState> {
    const previous = s.manifests.get(reference);
    const answer = await get(ref, `/v2/${ref.repository}/manifests/${reference}`, {
      accept: MANIFEST_ACCEPT,
      ...(previous ? { 'if-none-match': `"${previous.digest}"` } : {}),
    }, 4 * 1024 * 1024);
    if (answer.status === 304 && previous) return previous;
    const digest = `sha256:${createHash('sha256').update(answer.body).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new ChartSourceError(`registry ${ref.host} answered ${ref.repository}@${reference} with a manifest whose digest is ${digest}`, 'chart');
    }
    const doc = JSON.parse(answer.body.toString('utf8')) as {
      layers?: Array<{ mediaType?: string; digest?: string }>;
      annotations?: Record<string, string>;
    };
    const layer = doc.layers?.find((l) => l.mediaType === HELM_CHART_LAYER);
    const layerDigest = /^sha256:([a-f0-9]{64})$/.exec(layer?.digest ?? '')?.[1];
    if (!layerDigest) {
      throw new ChartSourceError(`${ref.host}/${ref.repository}:${reference} is not a Helm chart (no ${HELM_CHART_LAYER} layer)`, 'chart');
    }
    const found: ManifestState = {
      digest,
      layerDigest,
      ...(doc.annotations?.['org.opencontainers.image.version'] ? { version: doc.annotations['org.opencontainers.image.version'] } : {}),
      ...(doc.annotations?.['org.opencontainers.image.title'] ? { title: doc.annotations['org.opencontainers.image.title'] } : {}),
      checkedAt: now(),
      generation: -1,
    };
    if (previous && previous.digest !== digest) changes++;
    s.manifests.set(reference, found);
    return found;
  }

  const isDue = (checkedAt: number, generation: number, interval: number, current: number) =>
    generation < current || now() - checkedAt >= interval * 1000;

  return {
    get changes() {
      return changes;
    },
    newRevision() {
      // Generations are passed in by the caller; nothing to do here.
    },
    async resolve(url, version, when) {
      const ref = parseOciReference(url);
      const s = state(ref);
      const name = ref.repository.split('/').pop()!;
      let reference: string;
      if (ref.digest) {
        reference = `sha256:${ref.digest}`;
      } else if (version !== undefined && isExactVersion(version)) {
        reference = version.trim().replace(/\+/g, '_');
      } else {
        if (s.tags === undefined || isDue(s.tagsCheckedAt, s.tagsGeneration, when.interval, when.generation)) {
          await listTags(ref, s);
          s.tagsCheckedAt = now();
          s.tagsGeneration = when.generation;
        }
        const pick = pickVersion((s.tags ?? []).map((t) => t.replace(/_/g, '+')), version);
        if (!pick.ok) throw new ChartSourceError(`chart ${ref.host}/${ref.repository}: ${pick.reason}`, version ? 'version' : 'chart');
        reference = pick.version.replace(/\+/g, '_');
      }
      let m = s.manifests.get(reference);
      // A digest never changes content; a tag is asked again when due.
      if (!m || (!ref.digest && isDue(m.checkedAt, m.generation, when.interval, when.generation))) {
        m = await manifest(ref, s, reference);
        m.checkedAt = now();
        m.generation = when.generation;
      }
      return {
        reference: `${ref.host}/${ref.repository}${ref.digest ? `@sha256:${ref.digest}` : `:${reference}`}`,
        repository: `${ref.host}/${ref.repository}`,
        name: m.title ?? name,
        version: m.version ?? reference.replace(/_/g, '+'),
        manifestDigest: m.digest,
        layerDigest: m.layerDigest,
      };
    },
    async blob(repository, layerDigestHex) {
      const ref = parseOciReference(`oci://${repository}`);
      const answer = await get(ref, `/v2/${ref.repository}/blobs/sha256:${layerDigestHex}`, {}, 256 * 1024 * 1024);
      return answer.body;
    },
    due(interval, generation) {
      for (const s of repos.values()) {
        if (s.tags !== undefined && isDue(s.tagsCheckedAt, s.tagsGeneration, interval, generation)) return true;
        for (const [reference, m] of s.manifests) {
          if (!reference.startsWith('sha256:') && isDue(m.checkedAt, m.generation, interval, generation)) return true;
        }
      }
      return false;
    },
    async refresh(interval, generation) {
      await Promise.all(
        [...repos].map(async ([k, s]) => {
          const slash = k.indexOf('/');
          const ref: OciReference = { host: k.slice(0, slash), repository: k.slice(slash + 1) };
          try {
            if (s.tags !== undefined && isDue(s.tagsCheckedAt, s.tagsGeneration, interval, generation)) {
              await listTags(ref, s);
              s.tagsCheckedAt = now();
              s.tagsGeneration = generation;
            }
            for (const [reference, m] of s.manifests) {
              if (reference.startsWith('sha256:') || !isDue(m.checkedAt, m.generation, interval, generation)) continue;
              const fresh = await manifest(ref, s, reference);
              fresh.checkedAt = now();
              fresh.generation = generation;
            }
          } catch {
            // Reported by resolve() when a release needs this repository.
          }
        }),
      );
    },
  };
}
