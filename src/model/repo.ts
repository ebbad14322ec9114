// The layout of a GitOps repository (SPEC 1): which layers a cluster has, which files each
// layer holds, and the releases a cluster runs after its layers are merged. Reads files;
// makes no network calls.
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MooringError } from '../errors.js';
import { parseClusterSpec, type ClusterSpec } from './cluster.js';
import { readRepoFile, resolveInRepo } from './paths.js';
import { mergeReleases, parseReleasesFile, type Release } from './releases.js';
import { DNS_LABEL } from './schema.js';
import { parseYaml } from './yaml.js';

export type LayerKind = 'common' | 'environment' | 'cluster';

/** One layer directory and the files it holds (all paths repository-relative). */
export interface Layer {
  kind: LayerKind;
  name: string;
  dir: string;
  releasesFile?: string;
  valuesFile?: string;
  valuesFor: Map<string, string>;
  secretsFile?: string;
  secretsFor: Map<string, string>;
}

/** What one cluster runs, before values are resolved. */
export interface ClusterModel {
  root: string;
  cluster: ClusterSpec;
  /** common, environment, cluster: lowest precedence first. */
  layers: Layer[];
  releases: Release[];
  /** Declared somewhere, switched off by a later layer. */
  disabled: string[];
}

const LAYER_FILES = new Set(['releases.yaml', 'values.yaml', 'secrets.sops.yaml']);

export function listClusters(root: string): string[] {
  return listDirs(root, 'clusters');
}

export function listEnvironments(root: string): string[] {
  return listDirs(root, 'environments');
}

function listDirs(root: string, parent: string): string[] {
  const abs = resolveInRepo(root, parent, { file: parent });
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { withFileTypes: true })
    .filter((d) => (d.isDirectory() || d.isSymbolicLink()) && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
}

/** Reads a layer directory. Unknown files are errors: a typo must not be silently ignored. */
export function scanLayer(root: string, kind: LayerKind, name: string, dir: string): Layer {
  const layer: Layer = { kind, name, dir, valuesFor: new Map(), secretsFor: new Map() };
  const abs = resolveInRepo(root, dir, { file: dir });
  if (!existsSync(abs)) return layer;
  for (const entry of readdirSync(abs).sort()) {
    const rel = `${dir}/${entry}`;
    if (entry.startsWith('.') || entry.toLowerCase().endsWith('.md')) continue;
    resolveInRepo(root, rel, { file: rel });
    const isDir = lstatSync(join(abs, entry)).isDirectory();
    if (!isDir && LAYER_FILES.has(entry)) {
      if (entry === 'releases.yaml') layer.releasesFile = rel;
      if (entry === 'values.yaml') layer.valuesFile = rel;
      if (entry === 'secrets.sops.yaml') layer.secretsFile = rel;
    } else if (isDir && (entry === 'values' || entry === 'secrets')) {
      const suffix = entry === 'values' ? '.yaml' : '.sops.yaml';
      for (const f of readdirSync(join(abs, entry)).sort()) {
        const frel = `${rel}/${f}`;
        if (f.startsWith('.') || f.toLowerCase().endsWith('.md')) continue;
        resolveInRepo(root, frel, { file: frel });
        const release = f.endsWith(suffix) ? f.slice(0, -suffix.length) : '';
        if (!DNS_LABEL.test(release) || (entry === 'values' && f.endsWith('.sops.yaml'))) {
          throw new MooringError(
            `unexpected file in ${entry}/: expected <release>${suffix} with a DNS-1123 release name`,
            { file: frel },
          );
        }
        (entry === 'values' ? layer.valuesFor : layer.secretsFor).set(release, frel);
      }
    } else if (!(kind === 'cluster' && entry === 'cluster.yaml')) {
      throw new MooringError(
        `unexpected ${isDir ? 'folder' : 'file'} in a layer; allowed: releases.yaml, values.yaml, values/<release>.yaml, secrets.sops.yaml, secrets/<release>.sops.yaml${kind === 'cluster' ? ', cluster.yaml' : ''}`,
        { file: rel },
      );
    }
  }
  return layer;
}

export function readYamlFile(root: string, rel: string): unknown {
  return parseYaml(readRepoFile(root, rel), rel);
}

/** A cluster name with no folder under clusters/, naming the clusters there are. */
export function unknownClusterError(root: string, name: string): MooringError {
  const known = listClusters(root);
  return new MooringError(
    `no cluster named ${name} in this repository`,
    { file: `clusters/${name}`, cluster: name },
    { hint: known.length ? `known clusters: ${known.join(', ')}` : 'the repository has no clusters/ folder' },
  );
}

export function loadClusterSpec(root: string, name: string): ClusterSpec {
  const file = `clusters/${name}/cluster.yaml`;
  if (!DNS_LABEL.test(name)) {
    throw new MooringError(`cluster name ${JSON.stringify(name)} is not a DNS-1123 label`, {
      file: `clusters/${name}`,
      cluster: name,
    });
  }
  if (!existsSync(resolveInRepo(root, file, { file }))) {
    if (!existsSync(resolveInRepo(root, `clusters/${name}`, { file: `clusters/${name}` }))) {
      throw unknownClusterError(root, name);
    }
    throw new MooringError('required file is missing', { file, cluster: name });
  }
  const spec = parseClusterSpec(name, readYamlFile(root, file), file);
  if (spec.environment === 'common') {
    throw new MooringError(
      '"common" is reserved for the layer every environment shares; name a real environment',
      {
        file,
        field: 'environment',
        cluster: name,
      },
    );
  }
  const envDir = `environments/${spec.environment}`;
  if (!existsSync(resolveInRepo(root, envDir, { file, field: 'environment' }))) {
    const known = listEnvironments(root).filter((e) => e !== 'common');
    throw new MooringError(
      `environment ${spec.environment} does not exist (no ${envDir}/ folder)`,
      { file, field: 'environment', cluster: name },
      {
        hint: known.length ? `known environments: ${known.join(', ')}` : 'create the environment folder',
      },
    );
  }
  return spec;
}

/** The layers of one cluster and the releases they declare. */
export function loadClusterModel(root: string, name: string): ClusterModel {
  const cluster = loadClusterSpec(root, name);
  const layers = [
    scanLayer(root, 'common', 'common', 'environments/common'),
    scanLayer(root, 'environment', cluster.environment, `environments/${cluster.environment}`),
    scanLayer(root, 'cluster', name, `clusters/${name}`),
  ];
  const declared = layers
    .filter((l) => l.releasesFile)
    .map((l) => ({
      file: l.releasesFile!,
      releases: parseReleasesFile(readYamlFile(root, l.releasesFile!), l.releasesFile!),
    }));
  let merged;
  try {
    merged = mergeReleases(declared);
  } catch (err) {
    if (err instanceof MooringError) err.context.cluster ??= name;
    throw err;
  }
  return { root, cluster, layers, releases: merged.releases, disabled: merged.disabled };
}
