// Digests of desired state. A release whose digest equals that of its last successful
// converge is not upgraded, so the digest must cover everything helm is given: the chart
// (identity and content), version, the values and the release options.
//
// Secret values must not be recoverable from a digest shown in status: the values given
// here already carry keyed hashes in place of secrets (src/secrets/hash.ts).
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MooringError } from '../errors.js';
import { assertInside } from '../model/paths.js';
import type { ChartRef, Release } from '../model/releases.js';
import { isPlainMap } from '../model/schema.js';
import type { Values } from '../resolve/merge.js';

/** JSON with object keys sorted, so equal values always give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isPlainMap(value)) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k])]),
    );
  }
  return value;
}

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Files of a chart read at once while digesting it. */
const READ_BATCH = 64;

/**
 * Content digest of an in-repository chart: every file's path and bytes, in path order.
 * Read asynchronously, a batch of files at a time, so a chart of thousands of files does not
 * hold the event loop (lease renewal, the leader check) while it is digested.
 */
export async function chartDirDigest(root: string, chartPath: string): Promise<string> {
  const files: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(root, rel), { withFileTypes: true });
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const childRel = `${rel}/${entry.name}`;
      assertInside(root, join(root, childRel), { file: childRel }, childRel);
      if (entry.isSymbolicLink()) {
        throw new MooringError('charts may not contain symlinks', { file: childRel });
      }
      if (entry.isDirectory()) await walk(childRel);
      else files.push(childRel);
    }
  };
  await walk(chartPath);
  const h = createHash('sha256');
  for (let i = 0; i < files.length; i += READ_BATCH) {
    const batch = files.slice(i, i + READ_BATCH);
    const contents = await Promise.all(batch.map((rel) => readFile(join(root, rel))));
    batch.forEach((rel, j) => {
      h.update(`${rel.slice(chartPath.length + 1)}\0`);
      h.update(contents[j]!);
      h.update('\0');
    });
  }
  return h.digest('hex');
}

export function chartIdentity(chart: ChartRef, contentDigest?: string): Record<string, unknown> {
  switch (chart.kind) {
    case 'local':
      return {
        path: chart.path,
        content: contentDigest,
        ...(chart.dependencies?.length
          ? { dependencies: chart.dependencies.map((d) => `${d.name}-${d.version}@${d.digest}`) }
          : {}),
      };
    // A remote chart is what it resolved to: a new version inside a range, or a re-pushed
    // tag, changes the digest; rewriting the range to one that resolves the same does not.
    case 'repo':
      return {
        repo: chart.repo,
        name: chart.name,
        version: chart.pinned?.version ?? chart.version ?? null,
        content: chart.pinned?.digest ?? null,
      };
    case 'oci':
      return {
        url: chart.url,
        version: chart.pinned?.version ?? chart.version ?? null,
        content: chart.pinned?.digest ?? null,
      };
  }
}

export interface DigestInput {
  release: Release;
  chartContentDigest?: string;
  /** The user values handed to helm (step 1 of the merge), secrets hashed. */
  values: Values;
}

/** The desired-state digest of one release: `sha256:<hex>`. */
export function releaseDigest(input: DigestInput): string {
  const r = input.release;
  return `sha256:${sha256(
    canonicalJson({
      chart: chartIdentity(r.chart, input.chartContentDigest),
      namespace: r.namespace,
      // crds only when not the default, so that releases converged before it existed keep their digest.
      options: {
        createNamespace: r.createNamespace,
        timeoutSeconds: r.timeoutSeconds,
        wait: r.wait,
        ...(r.crds !== 'Create' ? { crds: r.crds } : {}),
      },
      values: input.values,
    }),
  )}`;
}
