// An in-repo chart whose Chart.yaml declares dependencies it does not vendor: the chart
// source fetches them (with --chart-auth-file's credentials) as helm dependency build would,
// helm renders and installs the chart with them, their defaults show in explain, and an
// unreachable dependency fails only that release, naming Chart.yaml.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import {
  appChart,
  configData,
  readRelease,
  runOnce,
  startRig,
  uniqueName,
  type AgentRig,
} from '../rig/agent.js';
import { startChartRepo, type ChartRepoServer } from '../rig/chart-repo.js';

let rig: AgentRig;
let charts: ChartRepoServer;
let authFile: string;
const password = 'deps-s3cret-5521';

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
  charts = await startChartRepo({ auth: { username: 'deploy', password } });
  await charts.publish('web', '1.0.0');
  await charts.publish('web', '1.3.0');
  authFile = await rig.writeFile(
    'deps-auth.yaml',
    stringify([{ url: charts.url, username: 'deploy', password }]),
  );
});

afterAll(async () => {
  await charts?.stop();
  await rig?.stop();
});

/** charts/app (the rig's tiny chart) declaring `web` from the test repository as a dependency. */
function withDependency(repository: string, extra: Record<string, string> = {}): Record<string, string> {
  const chart = appChart('app');
  chart['charts/app/Chart.yaml'] = stringify({
    apiVersion: 'v2',
    name: 'app',
    version: '0.1.0',
    dependencies: [{ name: 'web', version: '^1.0.0', repository }],
  });
  return { ...chart, ...extra };
}

describe('dependencies that are not vendored', () => {
  const cluster = uniqueName('cdeps');
  const agentNs = `${cluster}-agent`;

  it('are fetched with the same credentials, installed with the chart, Chart.lock honoured', async () => {
    const repo = await rig.createRepo({
      ...rig.clusterRepo(cluster, { shop: {} }),
      ...withDependency(charts.url, {
        'charts/app/Chart.lock': stringify({
          dependencies: [{ name: 'web', repository: charts.url, version: '1.0.0' }],
          digest: 'sha256:0',
        }),
      }),
      'environments/test/values/shop.yaml': 'web: {greeting: from-parent}\n',
    });

    const run = await runOnce(rig.agentFor(cluster, repo, { chartAuthFile: authFile }), rig.env);

    expect(run.code, run.log()).toBe(0);
    // The subchart's ConfigMap, rendered with the parent's values for it.
    expect(await configData(rig.clients, `${cluster}-shop`, 'shop-chart')).toMatchObject({
      chartVersion: '1.0.0',
      greeting: 'from-parent',
    });
    const upgrade = run.helm.find((c) => c.command === 'upgrade')!;
    expect(upgrade.args[2]).toMatch(/\/charts\/assembled\/[a-f0-9]{32}\/app$/);
    expect(JSON.stringify(run.helm.map((c) => c.args)) + run.log()).not.toContain(password);
    expect(await readRelease(rig.clients, agentNs, 'shop')).toMatchObject({
      state: 'ready',
      version: '0.1.0',
    });
  });

  it('an unreachable dependency fails only that release, naming Chart.yaml and the field', async () => {
    const repo = await rig.createRepo({
      ...rig.clusterRepo(cluster, { shop: {}, other: { chart: './charts/other' } }),
      ...withDependency('http://127.0.0.1:9/charts'),
      ...appChart('other'),
    });

    const run = await runOnce(rig.agentFor(cluster, repo, { chartAuthFile: authFile }), rig.env);

    expect(run.code).toBe(1);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.state])).toEqual([
      ['other', 'ready'],
      ['shop', 'failed'],
    ]);
    const shop = await readRelease(rig.clients, agentNs, 'shop');
    expect(shop?.lastError).toMatch(
      /^charts\/app\/Chart\.yaml: dependencies\[0\]\.repository: dependency web of \.\/charts\/app: cannot fetch http:\/\/127\.0\.0\.1:9\/charts\/index\.yaml: ECONNREFUSED/,
    );
    // It keeps what it ran.
    expect(shop?.helmRevision).toBe(1);
    expect(await configData(rig.clients, `${cluster}-shop`, 'shop-chart')).toMatchObject({
      chartVersion: '1.0.0',
    });
  });
});

describe('explain with a fetched dependency', () => {
  it("names the dependency's values.yaml for its defaults", async () => {
    const dir = await rig.tempDir('deps-cli');
    const files = {
      'clusters/east/cluster.yaml': 'environment: test\n',
      'environments/test/releases.yaml': stringify({ releases: { shop: { chart: './charts/app' } } }),
      ...withDependency(charts.url),
    };
    const { mkdir, writeFile } = await import('node:fs/promises');
    const { dirname, join } = await import('node:path');
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, rel)), { recursive: true });
      await writeFile(join(dir, rel), content);
    }
    const out: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: (t) => out.push(t), colour: false };
    process.env.MOORING_CACHE_DIR = join(dir, '.cache');
    const code = await main(
      [
        'explain',
        '--repo',
        dir,
        '--cluster',
        'east',
        '--release',
        'shop',
        '--chart-auth-file',
        authFile,
        'web.image.tag',
      ],
      io,
    );
    delete process.env.MOORING_CACHE_DIR;

    expect(code, out.join('\n')).toBe(0);
    expect(out.join('\n')).toMatch(
      /web\.image\.tag\s+"tag-1\.3\.0"\s+values\.yaml of web-1\.3\.0 \(charts\/app\/charts\/web-1\.3\.0\.tgz\) \(chart\)/,
    );
  });
});
