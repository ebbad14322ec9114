// What `helm dependency build` does for an in-repo chart whose Chart.yaml declares
// dependencies that are not vendored under its charts/ folder, done by the chart source
// itself: each dependency is resolved (Chart.lock's exact version when there is one, else
// the declared version or range) and fetched like any remote chart, with the same
// credentials and cache, and the chart is assembled once per content into the cache (the
// chart's files plus the dependency archives in its charts/). helm is given that folder.
// So helm never needs repository credentials, on disk or anywhere else, and the Git
// snapshot stays untouched.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MooringError } from '../errors.js';
import { readRepoFile, resolveInRepo } from '../model/paths.js';
import type { PinnedChart, Release } from '../model/releases.js';
import { isPlainMap } from '../model/schema.js';
import { parseYaml } from '../model/yaml.js';

export interface ChartDependency {
  name: string;
  version?: string;
  repository: string;
  /** Index in Chart.yaml's dependencies, for error messages. */
  index: number;
}

/** The dependencies of `chartPath` that are neither vendored (folder or archive) nor file://. */
export function missingDependencies(root: string, chartPath: string): ChartDependency[] {
  const file = `${chartPath}/Chart.yaml`;
  const doc = parseYaml(readRepoFile(root, file), file);
  const deps = isPlainMap(doc) && Array.isArray(doc.dependencies) ? doc.dependencies : [];
  const vendored = vendoredNames(root, chartPath);
  const out: ChartDependency[] = [];
  deps.forEach((d, index) => {
    if (!isPlainMap(d) || typeof d.name !== 'string') return;
    const repository = typeof d.repository === 'string' ? d.repository : '';
    if (vendored.has(d.name)) return;
    if (repository === '' || repository.startsWith('file://')) {
      throw new MooringError(
        `dependency ${d.name} is not vendored under ${chartPath}/charts/, and ${repository === '' ? 'it names no repository' : 'file:// dependencies must be vendored'}`,
        { file, field: `dependencies[${index}].repository` },
        { hint: `run helm dependency build ${chartPath} and commit ${chartPath}/charts/` },
      );
    }
    if (!/^(https?|oci):\/\//.test(repository)) {
      throw new MooringError(
        `dependency ${d.name}: repository ${JSON.stringify(repository.replace(/\/\/[^@/]*@/, '//'))} must be an http(s):// or oci:// URL (repository names from helm repo add are not known to mooring)`,
        { file, field: `dependencies[${index}].repository` },
      );
    }
    if (/^[a-z]+:\/\/[^/]*@/.test(repository)) {
      throw new MooringError(
        `dependency ${d.name}: the repository URL must not carry credentials; give them to the agent in --chart-auth-file`,
        { file, field: `dependencies[${index}].repository` },
      );
    }
    out.push({
      name: d.name,
      repository,
      index,
      ...(typeof d.version === 'string' || typeof d.version === 'number' ? { version: String(d.version) } : {}),
    });
  });
  return out.map((d) => ({ ...d, ...lockedVersion(root, chartPath, d) }));
}

/** Names of the subcharts under charts/: folders by their Chart.yaml name, archives by file name. */
function vendoredNames(root: string, chartPath: string): Set<string> {
  const names = new Set<string>();
  const dir = resolveInRepo(root, `${chartPath}/charts`, { file: `${chartPath}/charts` });
  if (!existsSync(dir)) return names;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      const rel = `${chartPath}/charts/${entry.name}/Chart.yaml`;
      const doc = existsSync(join(dir, entry.name, 'Chart.yaml')) ? parseYaml(readRepoFile(root, rel), rel) : {};
      names.add(isPlainMap(doc) && typeof doc.name === 'string' ? doc.name : entry.name);
    } else if (entry.name.endsWith('.tgz')) {
      const m = /^(.*)-\d[^-]*(?:-.*)?\.tgz$/.exec(entry.name);
      names.add(m ? m[1]! : entry.name.slice(0, -4));
    }
  }
  return names;
}

/** Chart.lock's exact version for a dependency, as helm dependency build would use it. */
function lockedVersion(root: string, chartPath: string, dep: ChartDependency): { version?: string } {
  const file = `${chartPath}/Chart.lock`;
  if (!existsSync(resolveInRepo(root, file, { file }))) return {};
  const doc = parseYaml(readRepoFile(root, file), file);
  const locked = isPlainMap(doc) && Array.isArray(doc.dependencies) ? doc.dependencies : [];
  const entry = locked.find((l) => isPlainMap(l) && l.name === dep.name && l.repository === dep.repository);
  return isPlainMap(entry) && entry.version !== undefined ? { version: String(entry.version) } : {};
}

/** A release standing for one dependency, so the chart source resolves it like any chart. */
export function dependencyRelease(release: Release, chartPath: string, dep: ChartDependency): Release {
  const chart = dep.repository.startsWith('oci://')
    ? {
        kind: 'oci' as const,
        url: `${dep.repository.replace(/\/+$/, '')}/${dep.name}`,
        ...(dep.version ? { version: dep.version } : {}),
      }
    : {
        kind: 'repo' as const,
        repo: dep.repository,
        name: dep.name,
        ...(dep.version ? { version: dep.version } : {}),
      };
  return { ...release, chart, declaredIn: [`${chartPath}/Chart.yaml`] };
}

/**
 * The chart folder helm is given: the in-repo chart with the dependency archives added under
 * charts/, assembled once per content in `cacheDir`.
 */
export function assembleChart(
  root: string,
  chartPath: string,
  contentDigest: string,
  dependencies: readonly PinnedChart[],
  cacheDir: string,
): string {
  const key = createHash('sha256')
    .update(contentDigest)
    .update(dependencies.map((d) => `${d.name}-${d.version}@${d.digest}`).join('\n'))
    .digest('hex')
    .slice(0, 32);
  const name = chartPath.split('/').pop()!;
  const final = join(cacheDir, 'assembled', key);
  const dir = join(final, name);
  if (existsSync(dir)) return dir;
  const tmp = join(cacheDir, 'assembled', `.incoming-${randomBytes(6).toString('hex')}`);
  mkdirSync(join(tmp, name, 'charts'), { recursive: true });
  cpSync(resolveInRepo(root, chartPath), join(tmp, name), { recursive: true });
  mkdirSync(join(tmp, name, 'charts'), { recursive: true });
  for (const d of dependencies) cpSync(d.archive, join(tmp, name, 'charts', `${d.name}-${d.version}.tgz`));
  try {
    renameSync(tmp, final);
  } catch (err) {
    // Assembled meanwhile by another plan of the same content.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(dir)) throw err;
  }
  return dir;
}
