// The chart source: the Git source's counterpart for charts that do not live in the
// repository. It resolves a release's chart reference (repository + name + version or range,
// or an OCI reference) to one exact version and content digest, fetches that archive once
// into a cache keyed by its digest, verifies it, and hands helm the file.
//
// What it costs: a repository's index.yaml is fetched with a conditional request (ETag,
// If-Modified-Since) the first time it is needed, after `newRevision()` (a new Git revision),
// and once the chart interval has passed; otherwise resolution is answered from what was
// fetched before, and a pass with nothing new makes no request at all. `epoch` moves when an
// index came back changed, so the agent knows when a plan must be made again.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MooringError } from '../errors.js';
import type { ChartRef, PinnedChart, Release } from '../model/releases.js';
import { redactUrl } from '../source/credentials.js';
import { chartTreeFromArchive } from './archive.js';
import type { ChartTree } from './chart-tree.js';
import { ChartAuth, scrubChartSecrets } from './auth.js';
import { assembleChart, dependencyRelease, missingDependencies } from './dependencies.js';
import { ArtifactCache, DEFAULT_CACHE_BYTES } from './cache.js';
import { createChartHttp, networkReason, type ChartHttp } from './http.js';
import { ChartSourceError, statusHint, statusMessage } from './errors.js';
import { createOciClient, type OciClient } from './oci.js';
import { indexEntries, type IndexEntry } from './repo-index.js';
import { pickVersion } from './versions.js';

export interface ChartSourceOptions {
  /** Root of the cache (the agent's work dir + /charts, or the user's cache dir for the CLI). */
  dir: string;
  /** Read when credentials are needed, so a rotated Secret is picked up. */
  auth?: () => ChartAuth;
  /** Seconds between conditional requests per repository (`--chart-interval`). */
  intervalSeconds: number;
  cacheBytes?: number;
  now?: () => number;
  http?: ChartHttp;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

interface RepoState {
  url: string;
  etag?: string;
  lastModified?: string;
  /** Digest of the index text, to tell a changed index from a re-served one. */
  contentDigest?: string;
  checkedAt: number;
  generation: number;
  /** Entries already cut out of the index, by chart name. */
  entries: Map<string, IndexEntry[]>;
  /** The last failure, when the index could not be refreshed (a stale index is still used). */
  error?: string;
}

export class ChartSource {
  private readonly opts: ChartSourceOptions;
  private readonly cache: ArtifactCache;
  private readonly http: ChartHttp;
  private readonly oci: OciClient;
  private readonly now: () => number;
  private readonly repos = new Map<string, RepoState>();
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly charts = new Map<string, ChartTree>();
  /** Archives whose index listed no digest: their computed digest, by archive URL. */
  private readonly undigested = new Map<string, string>();
  private generation = 0;
  private changes = 0;
  /** Archives pinned since the last Git revision: never evicted from the cache. */
  private inUse = new Set<string>();

  constructor(opts: ChartSourceOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.cache = new ArtifactCache(join(opts.dir, 'archives'), opts.cacheBytes ?? DEFAULT_CACHE_BYTES);
    mkdirSync(join(opts.dir, 'index'), { recursive: true });
    this.http = opts.http ?? createChartHttp();
    this.oci = createOciClient({ http: this.http, auth: () => this.auth(), now: this.now });
  }

  /** Moves whenever a repository index or registry tag list came back changed. */
  get epoch(): number {
    return this.changes + this.oci.changes;
  }

  /** Chart requests made so far (indexes, archives, registry calls). */
  get requests(): number {
    return this.http.requests;
  }

  /** A new Git revision: every repository is asked again (conditionally) on next use. */
  newRevision(): void {
    this.generation++;
    this.inUse = new Set();
    this.oci.newRevision();
  }

  /** Some repository's answer is older than the chart interval, or older than the Git revision. */
  due(): boolean {
    const limit = this.opts.intervalSeconds * 1000;
    for (const r of this.repos.values()) {
      if (r.generation < this.generation || this.now() - r.checkedAt >= limit) return true;
    }
    return this.oci.due(this.opts.intervalSeconds, this.generation);
  }

  /** Asks every repository that is due (conditionally). Failures are kept for `pin` to report. */
  async refresh(): Promise<void> {
    const limit = this.opts.intervalSeconds * 1000;
    await Promise.all([
      ...[...this.repos.values()]
        .filter((r) => r.generation < this.generation || this.now() - r.checkedAt >= limit)
        .map((r) => this.checkIndex(r.url).catch(() => undefined)),
      this.oci.refresh(this.opts.intervalSeconds, this.generation),
    ]);
  }

  /** Resolves and fetches the chart of a release; errors name the release, its file and the repository. */
  async pin(release: Release): Promise<PinnedChart> {
    const chart = release.chart;
    if (chart.kind === 'local') throw new Error('pin() is for remote charts');
    try {
      return chart.kind === 'repo' ? await this.pinFromRepo(chart) : await this.pinFromRegistry(chart);
    } catch (err) {
      const field =
        err instanceof ChartSourceError && err.field ? err.field : chart.kind === 'repo' ? 'repo' : 'chart';
      const message = scrubChartSecrets((err as Error).message, this.auth());
      throw new MooringError(
        message,
        {
          file: release.declaredIn[release.declaredIn.length - 1],
          field: `releases.${release.name}.${field}`,
          release: release.name,
        },
        err instanceof ChartSourceError && err.hint ? { hint: err.hint } : {},
      );
    }
  }

  /**
   * Fetches the dependencies an in-repo chart declares and does not vendor (helm dependency
   * build); undefined when there are none. Errors name the chart's Chart.yaml and the field.
   */
  async dependencies(root: string, release: Release): Promise<PinnedChart[] | undefined> {
    const chart = release.chart;
    if (chart.kind !== 'local') return undefined;
    const missing = missingDependencies(root, chart.path);
    if (missing.length === 0) return undefined;
    return Promise.all(
      missing.map(async (dep) => {
        try {
          return await this.pin(dependencyRelease(release, chart.path, dep));
        } catch (err) {
          const field = err instanceof MooringError && err.context.field?.endsWith('.version') ? 'version' : 'repository';
          throw new MooringError(
            `dependency ${dep.name} of ./${chart.path}: ${(err as Error).message}`,
            { file: `${chart.path}/Chart.yaml`, field: `dependencies[${dep.index}].${field}`, release: release.name },
            err instanceof MooringError && err.hint ? { hint: err.hint } : {},
          );
        }
      }),
    );
  }

  /** The in-repo chart with its fetched dependencies under charts/, assembled once per content. */
  assemble(root: string, chartPath: string, contentDigest: string, dependencies: readonly PinnedChart[]): string {
    return assembleChart(root, chartPath, contentDigest, dependencies, this.opts.dir);
  }

  /** The pinned chart as helm will load it (values, subcharts, CRDs), read from the cached archive. */
  chart(pinned: PinnedChart): ChartTree {
    let tree = this.charts.get(pinned.digest);
    if (!tree) {
      tree = chartTreeFromArchive(readFileSync(pinned.archive), `${pinned.name}-${pinned.version}`);
      this.charts.set(pinned.digest, tree);
    }
    return tree;
  }

  /** Records a pinned archive as in use; a new download makes room by evicting unused ones. */
  private used(archive: string, downloaded: boolean): string {
    this.inUse.add(archive.replace(/^.*\/|\.tgz$/g, ''));
    if (downloaded) this.cache.prune(this.inUse);
    return archive;
  }

  close(): void {
    this.http.close();
  }

  private auth(): ChartAuth {
    return this.opts.auth?.() ?? new ChartAuth();
  }

  private once<T>(key: string, work: () => Promise<T>): Promise<T> {
    let p = this.inflight.get(key) as Promise<T> | undefined;
    if (!p) {
      p = work().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async pinFromRepo(chart: Extract<ChartRef, { kind: 'repo' }>): Promise<PinnedChart> {
    const url = chart.repo.replace(/\/+$/, '');
    const state = await this.index(url);
    let entries = state.entries.get(chart.name);
    if (!entries) {
      entries = indexEntries(readFileSync(this.indexFile(url), 'utf8'), [chart.name]).get(chart.name) ?? [];
      state.entries.set(chart.name, entries);
    }
    if (entries.length === 0) {
      throw new ChartSourceError(`repository ${redactUrl(url)} has no chart named ${chart.name}`, 'chart');
    }
    const pick = pickVersion(
      entries.map((e) => e.version),
      chart.version,
    );
    if (!pick.ok) throw new ChartSourceError(`chart ${chart.name} in ${redactUrl(url)}: ${pick.reason}`, 'version');
    const entry = entries.find((e) => e.version === pick.version)!;
    const archiveUrl = entry.urls[0];
    if (!archiveUrl) {
      throw new ChartSourceError(`${chart.name}-${entry.version} in ${redactUrl(url)}: the index lists no URL`);
    }
    const absolute = new URL(archiveUrl, `${url}/`).toString();
    const digest = entry.digest ?? this.undigested.get(absolute);
    const cached = digest ? this.cache.get(digest) : undefined;
    const fetched =
      cached ??
      (await this.once(`archive ${absolute}`, () => this.download(absolute, digest, `${chart.name}-${entry.version}`)));
    const archive = this.used(fetched, cached === undefined);
    const hex = archive.replace(/^.*\/|\.tgz$/g, '');
    return { name: chart.name, version: entry.version, digest: `sha256:${hex}`, archive };
  }

  private async pinFromRegistry(chart: Extract<ChartRef, { kind: 'oci' }>): Promise<PinnedChart> {
    const found = await this.oci.resolve(chart.url, chart.version, {
      interval: this.opts.intervalSeconds,
      generation: this.generation,
    });
    const cached = this.cache.get(found.layerDigest);
    const fetched =
      cached ??
      (await this.once(`blob ${found.layerDigest}`, async () => {
        const data = await this.oci.blob(found.repository, found.layerDigest);
        const put = this.cache.put(found.layerDigest, data);
        if ('mismatch' in put) {
          throw new ChartSourceError(
            `${found.reference}: the chart layer's content has digest sha256:${put.mismatch}, not the sha256:${found.layerDigest} its manifest lists`,
          );
        }
        return put.path;
      }));
    const archive = this.used(fetched, cached === undefined);
    return { name: found.name, version: found.version, digest: found.manifestDigest, archive };
  }

  private indexFile(url: string): string {
    return join(this.opts.dir, 'index', `${createHash('sha256').update(url).digest('hex').slice(0, 32)}.yaml`);
  }

  /** The repository's state, asking it (conditionally) when it is new or due. */
  private async index(url: string): Promise<RepoState> {
    const state = this.repos.get(url);
    const due =
      !state ||
      state.generation < this.generation ||
      this.now() - state.checkedAt >= this.opts.intervalSeconds * 1000;
    if (due) await this.checkIndex(url);
    const now = this.repos.get(url);
    if (!now || !existsSync(this.indexFile(url))) {
      throw new ChartSourceError(now?.error ?? `cannot read the index of ${redactUrl(url)}`, 'repo');
    }
    return now;
  }

  private checkIndex(url: string): Promise<void> {
    return this.once(`index ${url}`, async () => {
      const previous = this.repos.get(url);
      const state: RepoState = previous ?? { url, checkedAt: 0, generation: 0, entries: new Map() };
      const generation = this.generation;
      const headers: Record<string, string> = {};
      const file = this.indexFile(url);
      if (existsSync(file)) {
        if (state.etag) headers['if-none-match'] = state.etag;
        if (state.lastModified) headers['if-modified-since'] = state.lastModified;
      }
      const credentials = this.auth().for(`${url}/`);
      try {
        const answer = await this.http.get(`${url}/index.yaml`, { headers, credentials });
        if (answer.status === 304) {
          // Unchanged: the entries cut out before still hold.
        } else if (answer.status === 200) {
          const digest = createHash('sha256').update(answer.body).digest('hex');
          if (digest !== state.contentDigest) {
            const tmp = `${file}.incoming`;
            writeFileSync(tmp, answer.body);
            renameSync(tmp, file);
            state.entries = new Map();
            if (state.contentDigest !== undefined) this.changes++;
            state.contentDigest = digest;
          }
          state.etag = answer.headers.etag;
          state.lastModified = answer.headers['last-modified'];
        } else {
          throw new ChartSourceError(statusMessage(answer.status, `${redactUrl(url)}/index.yaml`), 'repo', statusHint(answer.status));
        }
        state.error = undefined;
      } catch (err) {
        const message =
          err instanceof ChartSourceError
            ? err.message
            : `cannot fetch ${redactUrl(url)}/index.yaml: ${networkReason(err)}`;
        state.error = message;
        if (!existsSync(file)) {
          this.repos.set(url, state);
          throw err instanceof ChartSourceError ? err : new ChartSourceError(message, 'repo');
        }
        this.opts.log?.warn({ repository: redactUrl(url), err: message }, 'chart repository unreachable; using its last index');
      }
      state.checkedAt = this.now();
      state.generation = generation;
      this.repos.set(url, state);
    });
  }

  private async download(url: string, digest: string | undefined, label: string): Promise<string> {
    const credentials = this.auth().for(url);
    let answer;
    try {
      answer = await this.http.get(url, { credentials, maxBytes: 256 * 1024 * 1024 });
    } catch (err) {
      throw new ChartSourceError(`cannot download ${label} from ${redactUrl(url)}: ${networkReason(err)}`);
    }
    if (answer.status !== 200) {
      throw new ChartSourceError(`${label}: ${statusMessage(answer.status, redactUrl(url))}`, undefined, statusHint(answer.status));
    }
    const actual = createHash('sha256').update(answer.body).digest('hex');
    const expected = digest ?? actual;
    const put = this.cache.put(expected, answer.body);
    if ('mismatch' in put) {
      throw new ChartSourceError(
        `${label} from ${redactUrl(url)} has digest sha256:${put.mismatch}, not the sha256:${expected} the index lists`,
        undefined,
        'the archive was changed after it was indexed; re-run helm repo index',
      );
    }
    if (!digest) this.undigested.set(url, actual);
    return put.path;
  }
}
