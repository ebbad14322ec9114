// Charts from a real Helm HTTP repository (helm package + helm repo index, served by the rig's
// static server), through the agent and the CLI: a range resolves to one exact version that
// helm gets as an archive; a version published inside the range converges after the chart
// interval and not before; passes with nothing new make no chart request at all; credentials
// and a private CA come from --chart-auth-file and never show anywhere.
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { buildAgent } from '../../src/cli/run.js';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import {
  captureLogs,
  configData,
  eventsIn,
  kubectl,
  readRelease,
  runOnce,
  startRig,
  uniqueName,
  type AgentRig,
} from '../rig/agent.js';
import { startChartRepo, type ChartRepoServer } from '../rig/chart-repo.js';
import { makeCertificates } from '../rig/git.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

const index = (repo: ChartRepoServer) => repo.requests.filter((r) => r.path.endsWith('/index.yaml'));
const archives = (repo: ChartRepoServer) => repo.requests.filter((r) => r.path.endsWith('.tgz'));

describe('a semver range from an HTTP repository', () => {
  const cluster = uniqueName('crange');
  const agentNs = `${cluster}-agent`;
  let charts: ChartRepoServer;
  let clock = Date.now();
  let built: Awaited<ReturnType<typeof buildAgent>>;
  const helmArgs: string[][] = [];

  beforeAll(async () => {
    charts = await startChartRepo();
    await charts.publish('web', '1.0.0');
    await charts.publish('web', '2.0.0'); // outside the range
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { web: { repo: charts.url, chart: 'web', version: '^1.0.0' } }),
    );
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
  });

  it('installs the newest version inside the range, handing helm the verified archive', async () => {
    const pass = await built.agent.pass();

    expect(pass.outcome, JSON.stringify(pass)).toBe('converged');
    expect(await configData(rig.clients, `${cluster}-web`, 'web-chart')).toMatchObject({
      chartVersion: '1.0.0',
    });
    const upgrade = helmArgs.find((a) => a[0] === 'upgrade')!;
    expect(upgrade[2]).toMatch(/\/charts\/archives\/sha256\/[a-f0-9]{64}\.tgz$/);
    expect(upgrade).not.toContain('--repo');
    expect(upgrade).not.toContain('--version');
    expect(index(charts)).toHaveLength(1);
    expect(archives(charts).map((r) => r.path)).toEqual(['/charts/web-1.0.0.tgz']);

    const status = await readRelease(rig.clients, agentNs, 'web');
    expect(status).toMatchObject({ version: '1.0.0', state: 'ready', chart: `web (${charts.url})` });
    expect(status!.chartDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
    // The digest helm was given is the one the index lists.
    const indexText = await readFile(join(charts.dir, 'index.yaml'), 'utf8');
    expect(indexText).toContain(`digest: ${String(status!.chartDigest).slice(7)}`);
    expect(await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mrel', 'web')).toMatch(
      /web\s+ready\s+1\.0\.0/,
    );
  });

  it('makes no chart request and runs no helm upgrade while nothing is new', async () => {
    const before = charts.requests.length;
    const helmBefore = helmArgs.length;
    await charts.publish('web', '1.1.0'); // published, but the chart interval has not passed

    const pass = await built.agent.pass();

    expect(pass.outcome).toBe('converged');
    expect(charts.requests.slice(before)).toEqual([]);
    expect(helmArgs.slice(helmBefore).filter((a) => a[0] === 'upgrade')).toEqual([]);
    expect(await readRelease(rig.clients, agentNs, 'web')).toMatchObject({ version: '1.0.0' });
  });

  it('after the chart interval, one conditional request finds 1.1.0 and the release converges to it', async () => {
    const before = charts.requests.length;
    const digestBefore = (await readRelease(rig.clients, agentNs, 'web'))!.desiredDigest;
    clock += 10 * 60 * 1000;

    const pass = await built.agent.pass();

    expect(pass.outcome, JSON.stringify(pass)).toBe('converged');
    expect(pass.converge?.releases.map((r) => [r.name, r.action])).toEqual([['web', 'upgrade']]);
    const asked = charts.requests.slice(before);
    expect(asked.map((r) => [r.path, r.conditional, r.status])).toEqual([
      ['/charts/index.yaml', true, 200],
      ['/charts/web-1.1.0.tgz', false, 200],
    ]);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-chart')).toMatchObject({
      chartVersion: '1.1.0',
    });
    const status = await readRelease(rig.clients, agentNs, 'web');
    expect(status).toMatchObject({ version: '1.1.0', state: 'ready', helmRevision: 2 });
    expect(status!.desiredDigest).not.toBe(digestBefore);
  });

  it('an interval with nothing published costs one request answered 304, and no helm process', async () => {
    const before = charts.requests.length;
    const helmBefore = helmArgs.length;
    clock += 10 * 60 * 1000;

    const pass = await built.agent.pass();

    expect(pass.outcome).toBe('converged');
    expect(charts.requests.slice(before).map((r) => [r.path, r.status])).toEqual([
      ['/charts/index.yaml', 304],
    ]);
    expect(helmArgs.slice(helmBefore).filter((a) => a[0] === 'upgrade')).toEqual([]);
  });
});

describe('a private repository: basic auth over TLS with a private CA', () => {
  const cluster = uniqueName('cauth');
  const agentNs = `${cluster}-agent`;
  const password = 'chart-repo-s3cret-7f3a';
  let charts: ChartRepoServer;
  let authFile: string;
  let repoFiles: Record<string, string>;

  beforeAll(async () => {
    const certs = await makeCertificates(await rig.tempDir('certs'));
    charts = await startChartRepo({ auth: { username: 'deploy', password }, tls: certs });
    await charts.publish('web', '1.0.0');
    authFile = await rig.writeFile(
      `${cluster}-chart-auth.yaml`,
      stringify([
        { url: 'https://127.0.0.1/', username: 'wrong', password: 'not-this-one' },
        { url: `${charts.url}/`, username: 'deploy', password, ca: certs.caPem },
      ]),
    );
    repoFiles = rig.clusterRepo(cluster, {
      web: { repo: charts.url, chart: 'web', version: '1.0.0' },
      missing: { repo: charts.url, chart: 'nosuchchart' },
    });
  });

  afterAll(async () => {
    await charts?.stop();
  });

  it('without credentials only the releases of that repository fail, naming release, file and repository', async () => {
    const repo = await rig.createRepo(repoFiles);
    const run = await runOnce(rig.agentFor(cluster, repo, { chartInterval: '10m' }), rig.env);

    expect(run.code).toBe(1);
    const web = await readRelease(rig.clients, agentNs, 'web');
    expect(web?.state).toBe('failed');
    // TLS fails first: the private CA is not trusted without the auth file.
    expect(web?.lastError).toMatch(/^environments\/test\/releases\.yaml: releases\.web\.repo: /);
    expect(web?.lastError).toContain(charts.url);
    expect(run.helm.filter((c) => c.command === 'upgrade')).toEqual([]);
  });

  it('with --chart-auth-file it converges; the password is nowhere: logs, status, Events, helm arguments', async () => {
    const repo = await rig.createRepo(repoFiles);
    const run = await runOnce(
      rig.agentFor(cluster, repo, { chartInterval: '10m', chartAuthFile: authFile }),
      rig.env,
    );

    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.state])).toEqual([
      ['missing', 'failed'],
      ['web', 'ready'],
    ]);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-chart')).toMatchObject({
      chartVersion: '1.0.0',
    });
    // The longest matching entry was used, and only its credentials were sent.
    const sent = new Set(charts.requests.filter((r) => r.status === 200).map((r) => r.authorization));
    expect([...sent]).toEqual([`Basic ${Buffer.from(`deploy:${password}`).toString('base64')}`]);

    const missing = await readRelease(rig.clients, agentNs, 'missing');
    expect(missing?.lastError).toBe(
      `environments/test/releases.yaml: releases.missing.chart: repository ${charts.url} has no chart named nosuchchart`,
    );

    const everything = [
      run.log(),
      JSON.stringify(await readRelease(rig.clients, agentNs, 'web')),
      JSON.stringify(missing),
      JSON.stringify(await eventsIn(rig.clients, agentNs)),
      JSON.stringify(run.helm.map((c) => c.args)),
    ].join('\n');
    const basic = Buffer.from(`deploy:${password}`).toString('base64');
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(basic);
    // Nothing the agent wrote to its work dir holds it either (index and archives only).
    const work = join(rig.dir, `${cluster}-work`, 'charts');
    for (const file of await walk(work)) expect((await readFile(file)).includes(password), file).toBe(false);
  });
});

describe('mooring plan and explain with a remote chart', () => {
  let charts: ChartRepoServer;
  let dir: string;
  const cluster = 'cli-east';

  beforeAll(async () => {
    charts = await startChartRepo();
    await charts.publish('web', '1.0.0');
    await charts.publish('web', '1.2.0');
    dir = await mkdtemp(join(tmpdir(), 'mooring-charts-cli-'));
    const files: Record<string, string> = {
      [`clusters/${cluster}/cluster.yaml`]: 'environment: test\n',
      'environments/test/releases.yaml': stringify({
        releases: { web: { repo: charts.url, chart: 'web', version: '~1.0 || ~1.2' } },
      }),
      'environments/test/values/web.yaml': 'greeting: hi\n',
    };
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, rel)), { recursive: true });
      await writeFile(join(dir, rel), content);
    }
  });

  afterAll(async () => {
    await charts?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
    const cache = join(dir, '.cache');
    const previous = process.env.MOORING_CACHE_DIR;
    process.env.MOORING_CACHE_DIR = cache;
    try {
      const code = await main(args, io);
      return { code, out: out.join('\n'), err: err.join('\n') };
    } finally {
      if (previous === undefined) delete process.env.MOORING_CACHE_DIR;
      else process.env.MOORING_CACHE_DIR = previous;
    }
  }

  it('explain names the chart default of a remote chart, with its exact version', async () => {
    const { code, out, err } = await cli(
      'explain',
      '--repo',
      dir,
      '--cluster',
      cluster,
      '--release',
      'web',
      'image.tag',
    );

    expect(code, err).toBe(0);
    expect(out).toMatch(/image\.tag\s+"tag-1\.2\.0"\s+values\.yaml of web-1\.2\.0 \(chart\)/);
    const all = await cli('explain', '--repo', dir, '--cluster', cluster, '--release', 'web', '-o', 'json');
    const rows = (JSON.parse(all.out) as { values: Array<{ key: string; file: string }> }).values;
    expect(rows.find((r) => r.key === 'greeting')?.file).toBe('environments/test/values/web.yaml');
  });

  it('plan shows the resolved version, the range and the chart digest; rendering uses the archive', async () => {
    const { code, out, err } = await cli('plan', '--repo', dir, '--cluster', cluster, '-o', 'json');

    expect(code, err).toBe(0);
    const web = (JSON.parse(out) as { releases: Array<Record<string, unknown>> }).releases[0]!;
    expect(web).toMatchObject({ name: 'web', version: '1.2.0', versionConstraint: '~1.0 || ~1.2' });
    expect(web.chartDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(web.manifests).toContain('chartVersion: "1.2.0"');
    expect(web.manifests).toContain('greeting: "hi"');
    const text = await cli('plan', '--repo', dir, '--cluster', cluster, '--no-render');
    expect(text.out).toContain(`web (${charts.url})@1.2.0 (~1.0 || ~1.2)`);
  });

  it('refuses a repository URL with credentials in it, naming the file and field, without echoing them', async () => {
    const file = join(dir, 'environments/test/releases.yaml');
    const original = await readFile(file, 'utf8');
    const withUser = charts.url.replace('http://', 'http://deploy:hunter22@');
    await writeFile(file, stringify({ releases: { web: { repo: withUser, chart: 'web' } } }));
    try {
      const { code, out, err } = await cli('validate', '--repo', dir, '--no-render');
      expect(code).toBe(1);
      expect(out + err).toContain(
        'environments/test/releases.yaml: releases.web.repo: a repository URL must not carry credentials',
      );
      expect(out + err).not.toContain('hunter22');
    } finally {
      await writeFile(file, original);
    }
  });
});

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else out.push(path);
  }
  return out;
}
