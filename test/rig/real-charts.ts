// Real public charts, exactly as their authors publish them, for tests that must hold on
// charts nobody here wrote. `node scripts/setup.mjs` copies them into .tools/charts from the
// Go module proxy, pinned in its REAL_CHARTS list (bitnami redis with bitnami common in its
// charts/ folder, bitnami common, podinfo, ingress-nginx, kube-prometheus-stack).
import { cp, mkdtemp } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './agent.js';

export type RealChart = 'redis' | 'common' | 'podinfo' | 'ingress-nginx' | 'kube-prometheus-stack';

/** The folder of a real chart under .tools/charts; read it, never write it. */
export function realChartDir(name: RealChart): string {
  const dir = join(REPO_ROOT, '.tools', 'charts', name);
  if (!existsSync(join(dir, 'Chart.yaml')))
    throw new Error(`real chart ${name} is missing from ${dir}: run node scripts/setup.mjs`);
  return dir;
}

/** A private copy of a real chart, for tests that package it or commit it to a Git repo. */
export async function copyRealChart(name: RealChart): Promise<string> {
  const to = join(await mkdtemp(join(tmpdir(), `mooring-chart-${name}-`)), name);
  await cp(realChartDir(name), to, { recursive: true });
  return to;
}
