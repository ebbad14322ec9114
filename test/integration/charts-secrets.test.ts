// Chart repository and registry credentials never leave the agent's memory: a basic-auth
// repository (a password with characters that URLs and shells escape), a repository behind a
// bearer token, and the real CNCF Distribution registry behind htpasswd, all given in
// --chart-auth-file, with a manual cluster so that plans are made. Nothing the agent or the
// CLI shows holds a credential in any form (as written, URL-encoded, JSON-escaped, inside the
// base64 of a Basic header, as a Bearer header): the agent's logs, MooringPlan objects,
// MooringRelease status, Events, /metrics, helm's arguments, and the output of `mooring plan`
// (text, JSON, and against the cluster), `explain` and `validate`, errors included.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
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
import { makeCertificates } from '../rig/git.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, startRegistry, type TestRegistry } from '../rig/registry.js';

const PASSWORD = 'pw:/@%s3cret"quote\\back';
const TOKEN = 'tok-7d1e9b2c4a5f';

/** Every form a credential could take in text someone reads. */
function forms(): string[] {
  const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');
  return [
    PASSWORD,
    encodeURIComponent(PASSWORD),
    JSON.stringify(PASSWORD).slice(1, -1),
    basic('deploy', PASSWORD),
    TOKEN,
    Buffer.from(TOKEN).toString('base64'),
    REGISTRY_PASSWORD,
    basic(REGISTRY_USER, REGISTRY_PASSWORD),
  ];
}

function expectClean(what: string, text: string): void {
  for (const form of forms()) expect(text.includes(form), `${what} holds ${form}`).toBe(false);
}

let rig: AgentRig;
let basicRepo: ChartRepoServer;
let tokenRepo: ChartRepoServer;
let registry: TestRegistry;
let authFile: string;
const cluster = uniqueName('csec');
const agentNs = `${cluster}-agent`;
let files: Record<string, string>;
let checkout: string;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
  const certs = await makeCertificates(await rig.tempDir('certs'));
  basicRepo = await startChartRepo({ auth: { username: 'deploy', password: PASSWORD } });
  tokenRepo = await startChartRepo({ auth: { token: TOKEN } });
  registry = await startRegistry(certs);
  await basicRepo.publish('web', '1.0.0');
  await tokenRepo.publish('api', '1.0.0');
  await registry.push('worker', '1.0.0');
  authFile = await rig.writeFile(
    `${cluster}-auth.yaml`,
    stringify([
      { url: `${basicRepo.url}/`, username: 'deploy', password: PASSWORD },
      { url: `${tokenRepo.url}/`, token: TOKEN },
      {
        url: `oci://${registry.host}/charts/`,
        username: REGISTRY_USER,
        password: REGISTRY_PASSWORD,
        ca: certs.caPem,
      },
    ]),
  );
  files = rig.clusterRepo(cluster, {
    web: { repo: basicRepo.url, chart: 'web', version: '^1.0.0' },
    api: { repo: tokenRepo.url, chart: 'api' },
    worker: { chart: `oci://${registry.host}/charts/worker`, version: '1.0.0' },
    // Errors from each source, which name the repository: never its credentials.
    broken: { repo: basicRepo.url, chart: 'web', version: '^9.0.0' },
    gone: { chart: `oci://${registry.host}/charts/nosuchchart`, version: '1.0.0' },
  });
  checkout = await rig.tempDir('csec-checkout');
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(dirname(join(checkout, rel)), { recursive: true });
    await writeFile(join(checkout, rel), content);
  }
});

afterAll(async () => {
  await basicRepo?.stop();
  await tokenRepo?.stop();
  await registry?.stop();
  await rig?.stop();
});

async function cli(...args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const io: Io = { out: (t) => lines.push(t), err: (t) => lines.push(t), colour: false };
  const previous = process.env.MOORING_CACHE_DIR;
  process.env.MOORING_CACHE_DIR = join(checkout, '.cache');
  try {
    const code = await main([...args, '--chart-auth-file', authFile], io);
    return { code, text: lines.join('\n') };
  } finally {
    if (previous === undefined) delete process.env.MOORING_CACHE_DIR;
    else process.env.MOORING_CACHE_DIR = previous;
  }
}

describe('chart credentials in a manual cluster', () => {
  it('the agent plans with them, and no plan, status, Event, metric, log line or helm argument holds them', async () => {
    const repo = await rig.createRepo(files);
    const logs = captureLogs();
    const helmArgs: string[][] = [];
    const built = await buildAgent(
      rig.agentFor(cluster, repo, { approval: 'manual', chartInterval: '10m', chartAuthFile: authFile }),
      rig.env,
      logs.logger,
      undefined,
      (args) => helmArgs.push([...args]),
    );
    try {
      const pass = await built.agent.pass();
      expect(pass.outcome, JSON.stringify(pass)).toBe('pending-approval');

      const plans = await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mooringplans', '-o', 'json');
      // The plan was made with the charts: it names their resolved versions.
      expect(plans).toContain('1.0.0');
      expectClean('MooringPlan objects', plans);
      const statuses = await Promise.all(
        ['web', 'api', 'worker', 'broken', 'gone'].map((r) => readRelease(rig.clients, agentNs, r)),
      );
      const events = JSON.stringify(await eventsIn(rig.clients, agentNs));
      // The releases whose chart cannot be resolved are reported, naming the repository.
      expect(plans + events).toContain(basicRepo.url);
      expect(plans + events).toContain('nosuchchart');
      expectClean('MooringRelease status', JSON.stringify(statuses));
      expectClean('Events', events);
      expectClean('/metrics', (await built.metrics.render()).body);
      expectClean('logs', logs.lines.join('\n'));
      expectClean('helm arguments', JSON.stringify(helmArgs));
      // The credentials were used: each server saw its own.
      expect(basicRepo.requests.some((r) => r.status === 200 && r.authorization?.startsWith('Basic '))).toBe(
        true,
      );
      expect(tokenRepo.requests.some((r) => r.status === 200 && r.authorization === `Bearer ${TOKEN}`)).toBe(
        true,
      );
    } finally {
      built.charts.close();
    }
  });

  it('mooring plan (text, JSON, against the cluster), explain and validate show none of them', async () => {
    const outputs = [
      await cli('plan', '--repo', checkout, '--cluster', cluster),
      await cli('plan', '--repo', checkout, '--cluster', cluster, '-o', 'json'),
      await cli(
        'plan',
        '--repo',
        checkout,
        '--cluster',
        cluster,
        '--context',
        rig.clients.kubeConfig.getCurrentContext(),
        '--kubeconfig',
        rig.kubeconfig,
        '--namespace',
        agentNs,
      ),
      await cli('explain', '--repo', checkout, '--cluster', cluster, '--release', 'web'),
      await cli('explain', '--repo', checkout, '--cluster', cluster, '--release', 'api', '-o', 'json'),
      await cli('validate', '--repo', checkout),
    ];
    // broken and gone fail: plan and validate say so (exit 1), naming the repository;
    // explain of a release that resolves is fine.
    expect(outputs.map((o) => o.code)).toEqual([1, 1, 1, 0, 0, 1]);
    expect(outputs[0]!.text).toContain(basicRepo.url);
    expect(outputs[3]!.text).toContain('values.yaml of web-1.0.0');
    for (const [i, { text }] of outputs.entries()) expectClean(`command ${i}`, text);
  });
});
