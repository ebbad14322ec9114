// Charts from a real OCI registry (the CNCF Distribution registry, htpasswd auth and TLS with
// a private CA, charts pushed with helm push): a range resolves through the tags list and
// picks up a new version after the chart interval and not before; a tag pushed again with
// other content is a new digest and converges as a change; a chart pinned by digest stays
// exactly that content; credentials come from --chart-auth-file and show nowhere.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { buildAgent } from '../../src/cli/run.js';
import {
  captureLogs,
  configData,
  eventsIn,
  readRelease,
  runOnce,
  startRig,
  uniqueName,
  type AgentRig,
  type TestRepo,
} from '../rig/agent.js';
import { tinyChart } from '../rig/chart-repo.js';
import { makeCertificates, type TestCertificates } from '../rig/git.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, startRegistry, type TestRegistry } from '../rig/registry.js';

let rig: AgentRig;
let registry: TestRegistry;
let certs: TestCertificates;
let authFile: string;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
  certs = await makeCertificates(await rig.tempDir('certs'));
  registry = await startRegistry(certs);
  authFile = await rig.writeFile(
    'oci-chart-auth.yaml',
    stringify([
      {
        url: `oci://${registry.host}/charts/`,
        username: REGISTRY_USER,
        password: REGISTRY_PASSWORD,
        ca: certs.caPem,
      },
    ]),
  );
});

afterAll(async () => {
  await registry?.stop();
  await rig?.stop();
});

describe('an OCI chart with a range, and a tag pushed again', () => {
  const cluster = uniqueName('coci');
  const agentNs = `${cluster}-agent`;
  let clock = Date.now();
  let built: Awaited<ReturnType<typeof buildAgent>>;
  let repo: TestRepo;
  const upgrades: string[][] = [];

  beforeAll(async () => {
    await registry.push('web', '1.0.0');
    await registry.push('pinned', '1.0.0');
    repo = await rig.createRepo(
      rig.clusterRepo(cluster, {
        web: { chart: `oci://${registry.host}/charts/web`, version: '~1.0' },
        fixed: { chart: `oci://${registry.host}/charts/pinned`, version: '1.0.0' },
      }),
    );
    built = await buildAgent(
      rig.agentFor(cluster, repo, { chartInterval: '10m', chartAuthFile: authFile }),
      rig.env,
      captureLogs().logger,
      undefined,
      (args) => {
        if (args[0] === 'upgrade') upgrades.push([...args]);
      },
      () => clock,
    );
  });

  afterAll(() => built?.charts.close());

  it('installs the newest tag inside the range from the verified chart layer', async () => {
    const pass = await built.agent.pass();

    expect(pass.outcome, JSON.stringify(pass)).toBe('converged');
    expect(await configData(rig.clients, `${cluster}-web`, 'web-chart')).toMatchObject({
      chartVersion: '1.0.0',
    });
    expect(upgrades.every((a) => /\/charts\/archives\/sha256\/[a-f0-9]{64}\.tgz$/.test(a[2]!))).toBe(true);
    const web = await readRelease(rig.clients, agentNs, 'web');
    expect(web).toMatchObject({ version: '1.0.0', state: 'ready' });
    expect(web!.chartDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
  });

  it('asks the registry nothing while the chart interval has not passed', async () => {
    await registry.push('web', '1.0.1');
    const before = registry.requests.length;

    const pass = await built.agent.pass();

    expect(pass.outcome).toBe('converged');
    expect(registry.requests.slice(before)).toEqual([]);
    expect((await readRelease(rig.clients, agentNs, 'web'))!.version).toBe('1.0.0');
  });

  it('after the interval, converges to the new version inside the range', async () => {
    clock += 10 * 60 * 1000;
    upgrades.length = 0;

    const pass = await built.agent.pass();

    expect(pass.outcome, JSON.stringify(pass)).toBe('converged');
    expect(pass.converge?.releases.map((r) => [r.name, r.action])).toEqual([
      ['fixed', 'none'],
      ['web', 'upgrade'],
    ]);
    expect(await configData(rig.clients, `${cluster}-web`, 'web-chart')).toMatchObject({
      chartVersion: '1.0.1',
    });
    expect((await readRelease(rig.clients, agentNs, 'web'))!.version).toBe('1.0.1');
  });

  it('a tag pushed again with other content is a new digest, and converges as a change', async () => {
    const fixed = (await readRelease(rig.clients, agentNs, 'fixed'))!;
    await registry.push('pinned', '1.0.0', {
      ...tinyChart('pinned', '1.0.0'),
      'values.yaml': 'image: {repository: r, tag: t}\ngreeting: repushed\n',
    });
    clock += 10 * 60 * 1000;

    const pass = await built.agent.pass();

    expect(pass.converge?.releases.map((r) => [r.name, r.action])).toEqual([
      ['fixed', 'upgrade'],
      ['web', 'none'],
    ]);
    const after = (await readRelease(rig.clients, agentNs, 'fixed'))!;
    expect(after.version).toBe('1.0.0');
    expect(after.chartDigest).not.toBe(fixed.chartDigest);
    expect(after.desiredDigest).not.toBe(fixed.desiredDigest);
    expect(await configData(rig.clients, `${cluster}-fixed`, 'fixed-chart')).toMatchObject({
      greeting: 'repushed',
    });
  });
});

describe('an OCI chart pinned by digest', () => {
  const cluster = uniqueName('cpin');
  const agentNs = `${cluster}-agent`;

  it('installs exactly the pinned content, whatever the tag points at now', async () => {
    const first = await registry.push('digested', '2.0.0', {
      ...tinyChart('digested', '2.0.0'),
      'values.yaml': 'image: {repository: r, tag: t}\ngreeting: first\n',
    });
    await registry.push('digested', '2.0.0', {
      ...tinyChart('digested', '2.0.0'),
      'values.yaml': 'image: {repository: r, tag: t}\ngreeting: second\n',
    });
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { app: { chart: `oci://${registry.host}/charts/digested@${first}` } }),
    );

    const run = await runOnce(rig.agentFor(cluster, repo, { chartAuthFile: authFile }), rig.env);

    expect(run.code, run.log()).toBe(0);
    expect(await configData(rig.clients, `${cluster}-app`, 'app-chart')).toMatchObject({
      greeting: 'first',
      chartVersion: '2.0.0',
    });
    expect(await readRelease(rig.clients, agentNs, 'app')).toMatchObject({
      chartDigest: first,
      version: '2.0.0',
    });
  });

  it('refuses a pinned digest the registry does not have, and without credentials, naming release and file', async () => {
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, {
        app: { chart: `oci://${registry.host}/charts/digested@sha256:${'0'.repeat(64)}` },
      }),
    );
    const withAuth = await runOnce(rig.agentFor(cluster, repo, { chartAuthFile: authFile }), rig.env);
    expect(withAuth.code).toBe(1);
    expect((await readRelease(rig.clients, agentNs, 'app'))!.lastError).toMatch(
      /^environments\/test\/releases\.yaml: releases\.app\.chart: registry 127\.0\.0\.1:\d+ \(charts\/digested\) answered 404/,
    );

    const noAuth = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(noAuth.code).toBe(1);
    const everything = [
      withAuth.log(),
      noAuth.log(),
      JSON.stringify(await readRelease(rig.clients, agentNs, 'app')),
      JSON.stringify(await eventsIn(rig.clients, agentNs)),
      JSON.stringify([...withAuth.helm, ...noAuth.helm].map((c) => c.args)),
    ].join('\n');
    expect(everything).not.toContain(REGISTRY_PASSWORD);
    expect(everything).not.toContain(Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64'));
  });
});
