// CRDs in a chart's crds/ folder under the release option `crds: Skip | Create | CreateReplace`,
// with the real kube-prometheus-stack `crds` subchart (prometheus-operator's CRDs, exactly as
// published; only their API group renamed per chart so that releases of this file and others
// never share a cluster-scoped CRD), packaged into a real chart repository. Version 1.1.0 of
// each chart adds a field to the ServiceMonitor CRD's schema, as a new prometheus-operator
// release does.
// - Skip installs no CRD; Create installs them and never changes them (the newer CRD is
//   reported: an Event and drift); CreateReplace replaces the CRD on the upgrade.
// - A CRD of a release deleted by hand is drift: recreated in drift mode correct.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildAgent } from '../../src/cli/run.js';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import {
  captureLogs,
  eventsIn,
  kubectl,
  readRelease,
  startRig,
  uniqueName,
  type AgentRig,
} from '../rig/agent.js';
import { startChartRepo, type ChartRepoServer } from '../rig/chart-repo.js';
import { realChartDir } from '../rig/real-charts.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

// The smaller CRDs of the subchart keep the test fast; the big ones are the same kind of file.
const CRD_FILES = [
  'crd-servicemonitors.yaml',
  'crd-podmonitors.yaml',
  'crd-probes.yaml',
  'crd-prometheusrules.yaml',
];
const NEW_FIELD = 'mooringAddedField';

/** The real crds subchart as chart `name` version `version`, its CRDs in API group `group`. */
async function crdsChart(name: string, version: string, group: string): Promise<Record<string, string>> {
  const dir = join(realChartDir('kube-prometheus-stack'), 'charts', 'crds');
  const files: Record<string, string> = {
    'Chart.yaml': (await readFile(join(dir, 'Chart.yaml'), 'utf8'))
      .replace(/^name: .*$/m, `name: ${name}`)
      .replace(/^version: .*$/m, `version: ${version}`),
    'values.yaml': await readFile(join(dir, 'values.yaml'), 'utf8'),
  };
  for (const entry of await readdir(join(dir, 'templates'), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    files[full.slice(dir.length + 1)] = await readFile(full, 'utf8');
  }
  for (const file of CRD_FILES) {
    let text = (await readFile(join(dir, 'crds', file), 'utf8')).replaceAll('monitoring.coreos.com', group);
    if (version !== '1.0.0' && file === 'crd-servicemonitors.yaml') {
      // A new top-level field in the ServiceMonitor schema, as a new operator release adds one.
      const properties = '\n        properties:\n';
      expect(text).toContain(properties);
      text = text.replace(properties, `${properties}          ${NEW_FIELD}:\n            type: string\n`);
    }
    files[`crds/${file}`] = text;
  }
  return files;
}

async function crd(name: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await kubectl(rig.kubeconfig, 'get', 'crd', name, '-o', 'json')) as Record<
      string,
      unknown
    >;
  } catch {
    return undefined;
  }
}

const schemaHasNewField = (object: Record<string, unknown> | undefined) =>
  JSON.stringify(object).includes(NEW_FIELD);

describe('CRDs of a chart from a repository follow the release option crds', () => {
  const cluster = uniqueName('crds');
  const agentNs = `${cluster}-agent`;
  const group = (policy: string) => `${policy.toLowerCase()}.${cluster}.mooring.test`;
  const policies = ['Skip', 'Create', 'CreateReplace'] as const;
  let charts: ChartRepoServer;
  let clock = Date.now();
  let built: Awaited<ReturnType<typeof buildAgent>>;
  const helmArgs: string[][] = [];
  let checkout: string;

  async function plan(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
    const previous = process.env.MOORING_CACHE_DIR;
    process.env.MOORING_CACHE_DIR = join(checkout, '.cache');
    try {
      const code = await main(['plan', '--repo', checkout, '--cluster', cluster, ...args], io);
      return { code, out: out.join('\n'), err: err.join('\n') };
    } finally {
      if (previous === undefined) delete process.env.MOORING_CACHE_DIR;
      else process.env.MOORING_CACHE_DIR = previous;
    }
  }

  beforeAll(async () => {
    charts = await startChartRepo();
    for (const policy of policies) {
      await charts.publish(
        `crds-${policy.toLowerCase()}`,
        '1.0.0',
        await crdsChart(`crds-${policy.toLowerCase()}`, '1.0.0', group(policy)),
      );
    }
    const releases = Object.fromEntries(
      policies.map((policy) => [
        policy.toLowerCase(),
        { repo: charts.url, chart: `crds-${policy.toLowerCase()}`, version: '^1.0.0', crds: policy },
      ]),
    );
    const files = rig.clusterRepo(cluster, releases);
    checkout = await rig.tempDir('crds-checkout');
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(dirname(join(checkout, rel)), { recursive: true });
      await writeFile(join(checkout, rel), content);
    }
    const repo = await rig.createRepo(files);
    built = await buildAgent(
      rig.agentFor(cluster, repo, { chartInterval: '10m' }),
      rig.env,
      captureLogs().logger,
      undefined,
      (args) => helmArgs.push([...args]),
      () => clock,
    );
  });

  afterAll(async () => {
    built?.charts.close();
    await charts?.stop();
    for (const policy of policies) {
      for (const plural of ['servicemonitors', 'podmonitors', 'probes', 'prometheusrules']) {
        await kubectl(
          rig.kubeconfig,
          'delete',
          'crd',
          `${plural}.${group(policy)}`,
          '--ignore-not-found',
          '--wait=false',
        );
      }
    }
  });

  it('installs the CRDs with Create and CreateReplace, none with Skip; helm never handles them', async () => {
    const pass = await built.agent.pass();

    expect(pass.outcome, JSON.stringify(pass)).toBe('converged');
    for (const a of helmArgs.filter((a) => a[0] === 'upgrade')) expect(a).toContain('--skip-crds');
    expect(await crd(`servicemonitors.${group('Skip')}`)).toBeUndefined();
    expect(await crd(`podmonitors.${group('Skip')}`)).toBeUndefined();
    for (const policy of ['Create', 'CreateReplace']) {
      for (const plural of ['servicemonitors', 'podmonitors', 'probes', 'prometheusrules']) {
        const object = await crd(`${plural}.${group(policy)}`);
        expect(object, `${plural}.${group(policy)}`).toBeDefined();
        expect(schemaHasNewField(object)).toBe(false);
      }
    }
    // A custom resource of an installed CRD is accepted at once (the CRD is established).
    await kubectl(rig.kubeconfig, 'get', `servicemonitors.${group('Create')}`, '-A');
    const events = await eventsIn(rig.clients, agentNs, 'createreplace');
    expect(events.map((e) => e.reason)).toContain('CrdsApplied');
  });

  it('plan shows the CRDs a release brings and, against the cluster, the CRD change of a new version', async () => {
    const offline = await plan('--no-render');
    expect(offline.code, offline.err).toBe(0);
    expect(offline.out).toContain('# create: CRDs (crds: Create: created if missing, never changed)');
    expect(offline.out).toContain(`servicemonitors.${group('Create')}`);
    expect(offline.out).toContain('# skip: CRDs (crds: Skip: not installed)');

    for (const policy of policies) {
      const name = `crds-${policy.toLowerCase()}`;
      await charts.publish(name, '1.1.0', await crdsChart(name, '1.1.0', group(policy)));
    }
    const context = rig.clients.kubeConfig.getCurrentContext();
    const live = await plan(
      '--context',
      context,
      '--kubeconfig',
      rig.kubeconfig,
      '--namespace',
      agentNs,
      '-o',
      'json',
    );
    expect(live.code, live.err).toBe(0);
    type Diff = { name: string; manifestDiff: string; notes: string[] };
    const releases = (JSON.parse(live.out) as { live: { releases: Diff[] } }).live.releases;
    const of = (name: string) => releases.find((r) => r.name === name)!;
    expect(of('createreplace').manifestDiff).toMatch(new RegExp(`^\\+\\s+${NEW_FIELD}:`, 'm'));
    expect(of('createreplace').notes).toContain(
      `CustomResourceDefinition/servicemonitors.${group('CreateReplace')}: replaced by the chart's (crds: CreateReplace)`,
    );
    expect(of('create').manifestDiff).toMatch(new RegExp(`^\\+\\s+${NEW_FIELD}:`, 'm'));
    expect(of('create').notes.join('\n')).toContain('is left as it is (crds: Create)');
    expect(of('skip').manifestDiff).not.toContain('CustomResourceDefinition');
  });

  it('a new chart version with a changed CRD: replaced under CreateReplace, left and reported under Create', async () => {
    clock += 11 * 60 * 1000;

    const pass = await built.agent.pass({ forceDrift: true });

    expect(pass.outcome, JSON.stringify(pass)).toBe('converged');
    for (const policy of policies) {
      expect(await readRelease(rig.clients, agentNs, policy.toLowerCase())).toMatchObject({
        version: '1.1.0',
      });
    }
    expect(schemaHasNewField(await crd(`servicemonitors.${group('CreateReplace')}`))).toBe(true);
    expect(schemaHasNewField(await crd(`servicemonitors.${group('Create')}`))).toBe(false);
    expect(await crd(`servicemonitors.${group('Skip')}`)).toBeUndefined();

    const outdated = (await eventsIn(rig.clients, agentNs, 'create')).filter(
      (e) => e.reason === 'CrdsOutdated',
    );
    expect(outdated.map((e) => e.message).join('\n')).toContain(`servicemonitors.${group('Create')}`);
    // The drift check says so too, and leaves it (Create never changes an existing CRD).
    const record = await readRelease(rig.clients, agentNs, 'create');
    expect(record?.state).toBe('drifted');
    expect(JSON.stringify(record?.drift)).toContain(
      `CustomResourceDefinition/servicemonitors.${group('Create')}`,
    );
    expect(await readRelease(rig.clients, agentNs, 'createreplace')).toMatchObject({ state: 'ready' });
  });

  it('a CRD of the release deleted by hand is drift, and is created again', async () => {
    const name = `podmonitors.${group('CreateReplace')}`;
    await kubectl(rig.kubeconfig, 'delete', 'crd', name);
    expect(await crd(name)).toBeUndefined();

    const pass = await built.agent.pass({ forceDrift: true });

    // Two releases drift: this one (corrected) and the Create one (its CRD older than the chart's, left).
    expect(pass.drift, JSON.stringify(pass)).toMatchObject({ drifted: 2, corrected: 1 });
    expect(await crd(name)).toBeDefined();
    const events = await eventsIn(rig.clients, agentNs, 'createreplace');
    expect(events.find((e) => e.reason === 'DriftDetected')?.message).toContain(
      `CustomResourceDefinition/${name}`,
    );
    expect(await readRelease(rig.clients, agentNs, 'createreplace')).toMatchObject({ state: 'ready' });
  });
});
