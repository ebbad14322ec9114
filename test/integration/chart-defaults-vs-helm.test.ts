// Differential test: the values `plan` and `explain` show for a chart with subcharts (its
// defaults, its subcharts' defaults as `tags`, `condition` and `import-values` leave them,
// and the user's values over them) equal the `.Values` real helm renders with, on real
// public charts (bitnami redis with common behind a tag, kube-prometheus-stack with its
// subcharts behind conditions) and on a corpus chart in this repository that imports values
// both ways helm allows.
//
// One difference is left out of the comparison on purpose: helm copies the top-level
// `global` into every subchart's map (`.Values.<subchart>.global`) for the subchart's own
// templates; mooring shows `global` once, at the top, where users set it.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { chartTreeFromArchive } from '../../src/charts/archive.js';
import {
  chartCrds,
  defaultLayers,
  enabledChart,
  nullDefaultKeys,
  type ChartTree,
} from '../../src/charts/chart-tree.js';
import { isPlainMap } from '../../src/model/schema.js';
import { mergeValues, type Values } from '../../src/resolve/merge.js';
import { realChartDir, type RealChart } from '../rig/real-charts.js';

const helm = process.env.MOORING_HELM ?? join(import.meta.dirname, '../../.tools/bin/helm');
const corpus = join(import.meta.dirname, '../fixtures/charts/subcharts');
const DUMP = 'templates/0/0/0/0/0/0/0/0/0/0/0/0/values.yaml';
const work = mkdtempSync(join(tmpdir(), 'mooring-defaults-'));

/** The chart packaged with one extra template that prints `.Values`. */
function packageWithDump(source: string, name: string): string {
  const dir = join(work, name);
  cpSync(source, dir, { recursive: true });
  // Helm renders deeper paths first: this one before any template that `set`s a value.
  mkdirSync(join(dir, DUMP, '..'), { recursive: true });
  writeFileSync(join(dir, DUMP), '# values\n{{ toJson .Values }}\n');
  const out = execFileSync(helm, ['package', dir, '--destination', work], { encoding: 'utf8' });
  return /saved it to: (\S+)/.exec(out)![1]!;
}

function helmValues(archive: string, user: Values): { values: Values; crds: string[] } {
  const file = join(work, `user-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(user));
  const values = execFileSync(helm, ['template', 'r', archive, '-f', file, '--show-only', DUMP], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const json = values.slice(values.indexOf('{'));
  // The CRDs helm would install: --include-crds prints them first, each after its source.
  const all = execFileSync(helm, ['template', 'r', archive, '-f', file, '--include-crds'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const crds = [...all.matchAll(/^# Source: ([^\n]*\/crds\/[^\n]*)$/gm)].map((m) => m[1]!);
  return { values: JSON.parse(json) as Values, crds: [...new Set(crds)].sort() };
}

function mooringValues(
  tree: ChartTree,
  user: Values,
): { values: Values; crds: string[]; enabled: ChartTree } {
  const layers = [{ source: { file: 'user.yaml', layer: 'cluster' as const, secret: false }, values: user }];
  const first = mergeValues({ chartDefaults: defaultLayers(tree, { imports: false }), layers }).values;
  const enabled = enabledChart(tree, first);
  const values = mergeValues({
    chartDefaults: defaultLayers(enabled),
    layers,
    dropIfNull: nullDefaultKeys(enabled),
  }).values;
  // Helm names a CRD after the chart path, subcharts by their key: `app/charts/database/crds/x.yaml`.
  const crds: string[] = [];
  const walk = (chart: ChartTree, prefix: string) => {
    for (const crd of chart.crds) crds.push(`${prefix}/crds/${crd.file.replace(/^.*\/crds\//, '')}`);
    for (const sub of chart.subcharts) walk(sub.chart, `${prefix}/charts/${sub.key}`);
  };
  walk(enabled, tree.meta.name);
  expect(crds).toHaveLength(chartCrds(enabled).length);
  return { values, crds: crds.sort(), enabled };
}

/** Removes what helm copies into each subchart's map (`global`), at every depth. */
function withoutSubchartGlobals(values: Values, tree: ChartTree): Values {
  const out = structuredClone(values);
  const strip = (at: Values, chart: ChartTree) => {
    for (const sub of chart.subcharts) {
      const map = at[sub.key];
      if (!isPlainMap(map)) continue;
      delete map.global;
      strip(map, sub.chart);
    }
  };
  strip(out, tree);
  return out;
}

// Each case: a chart and user values that switch subcharts on or off.
const cases: { chart: RealChart | 'corpus'; name: string; user: Values }[] = [
  { chart: 'redis', name: 'redis, defaults (common enabled: no tag given)', user: {} },
  // (With bitnami-common false redis does not render at all: its templates need common.)
  {
    chart: 'redis',
    name: 'redis, tag bitnami-common true, a subchart value and a null set by the user',
    user: { tags: { 'bitnami-common': true }, common: { exampleValue: 'mine' }, master: { resources: null } },
  },
  { chart: 'kube-prometheus-stack', name: 'kube-prometheus-stack, defaults', user: {} },
  {
    chart: 'kube-prometheus-stack',
    name: 'kube-prometheus-stack, exporters and CRDs off, windows on',
    user: {
      crds: { enabled: false },
      kubeStateMetrics: { enabled: false },
      nodeExporter: { enabled: false },
      windowsMonitoring: { enabled: true },
      'kube-state-metrics': { replicas: 3 },
    },
  },
  { chart: 'corpus', name: 'corpus, defaults', user: {} },
  {
    chart: 'corpus',
    name: 'corpus, database switched on by a tag overridden by its condition',
    user: { tags: { storage: false }, database: { enabled: true }, fromLib: { settings: { retries: 9 } } },
  },
];

describe('chart defaults with subcharts match helm', () => {
  const archives = new Map<string, string>();
  const archive = (chart: RealChart | 'corpus') => {
    let path = archives.get(chart);
    if (!path) {
      path = packageWithDump(chart === 'corpus' ? join(corpus, 'app') : realChartDir(chart), chart);
      archives.set(chart, path);
    }
    return path;
  };

  it.each(cases)('$name', ({ chart, user }) => {
    const path = archive(chart);
    const tree = chartTreeFromArchive(readFileSync(path), chart);
    const ours = mooringValues(tree, user);
    const theirs = helmValues(path, user);
    expect(withoutSubchartGlobals(ours.values, ours.enabled)).toEqual(
      withoutSubchartGlobals(theirs.values, ours.enabled),
    );
    expect(ours.crds).toEqual(theirs.crds);
  });

  it('a disabled subchart contributes nothing, an enabled one its defaults (the corpus says which)', () => {
    const tree = chartTreeFromArchive(readFileSync(archive('corpus')), 'corpus');
    expect(mooringValues(tree, {}).values.database).toEqual({ enabled: false });
    expect(mooringValues(tree, { database: { enabled: true } }).values.database).toMatchObject({
      port: 5432,
    });
  });
});
