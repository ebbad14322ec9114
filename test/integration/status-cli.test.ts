// `mooring status` across clusters: two real control planes whose agents have reported
// releases (MooringRelease) and a pending plan (MooringPlan), plus two contexts that cannot
// be read (nothing listening; a server that never answers). One table, one JSON document,
// and an unreachable cluster never hides the others.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import type { ClusterStatus } from '../../src/cli/status.js';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import { ensureCrds, MOORING_API_VERSION } from '../../src/observe/crds.js';
import { createStatusStore } from '../../src/observe/status.js';

interface ControlPlaneRig {
  startControlPlane(opts: { dir: string; exitWithPid?: number }): Promise<{ kubeconfig: string }>;
  stopControlPlane(dir: string): Promise<void>;
}
const rig = (await import(
  new URL('../../scripts/lib/controlplane.mjs', import.meta.url).href
)) as ControlPlaneRig;

const SHA_1 = '1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const SHA_2 = '2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const suffix = Date.now().toString(36);
const agentNs = `mooring-status-${suffix}`;

let work: string;
let kubeconfig: string;
let east: KubeClients;
let west: KubeClients;
let westDir: string;
let silent: Server;
const sockets: Socket[] = [];

/** A kubeconfig context named `name` for `server`, with the credentials of an admin kubeconfig. */
function contextFrom(admin: Record<string, unknown>, name: string, server?: string) {
  const cluster = (admin.clusters as { cluster: Record<string, unknown> }[])[0]!.cluster;
  const user = (admin.users as { user: Record<string, unknown> }[])[0]!.user;
  return {
    cluster: { name, cluster: { ...cluster, ...(server ? { server } : {}) } },
    user: { name, user },
    context: { name, context: { cluster: name, user: name } },
  };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mooring-status-'));
  westDir = join(work, 'west-cp');
  const westPlane = await rig.startControlPlane({ dir: westDir, exitWithPid: process.pid });

  // A server that accepts connections and never says a word (a black-holed API server).
  silent = createServer((socket) => sockets.push(socket));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as AddressInfo).port;

  const eastAdmin = parseYaml(await readFile(inject('kubeconfig'), 'utf8')) as Record<string, unknown>;
  const westAdmin = parseYaml(await readFile(westPlane.kubeconfig, 'utf8')) as Record<string, unknown>;
  const parts = [
    contextFrom(eastAdmin, 'east'),
    contextFrom(westAdmin, 'west'),
    contextFrom(eastAdmin, 'gone', `https://127.0.0.1:${await freePort()}`),
    contextFrom(eastAdmin, 'silent', `https://127.0.0.1:${silentPort}`),
  ];
  kubeconfig = join(work, 'kubeconfig');
  await writeFile(
    kubeconfig,
    toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: parts.map((p) => p.cluster),
      users: parts.map((p) => p.user),
      contexts: parts.map((p) => p.context),
      'current-context': 'east',
    }),
    { mode: 0o600 },
  );

  east = createKubeClients(loadKubeConfig({ kubeconfig, context: 'east' }));
  west = createKubeClients(loadKubeConfig({ kubeconfig, context: 'west' }));
  for (const clients of [east, west]) {
    await ensureCrds(clients);
    await clients.core.createNamespace({ body: { metadata: { name: agentNs } } });
  }

  // What the agent in east (cluster eu-1) has reported: web converged and had its drift
  // corrected, cache failed; a newer revision waits for approval.
  const eu1 = createStatusStore({ client: east.rest, namespace: agentNs, cluster: 'eu-1' });
  await eu1.update('web', {
    namespace: 'web',
    chart: './charts/web',
    version: '0.1.0',
    state: 'ready',
    desiredRevision: SHA_1,
    deployedRevision: SHA_1,
    helmRevision: 3,
    drift: { count: 2, fields: [], deletedObjects: [], corrected: true, checkedAt: '2025-05-01T12:00:00Z' },
  });
  await eu1.update('cache', {
    namespace: 'cache',
    chart: 'redis (https://charts.example.com)',
    version: '18.6.1',
    chartDigest: 'sha256:5e5e',
    state: 'failed',
    desiredRevision: SHA_1,
    helmRevision: 1,
    lastError: 'helm upgrade cache: timed out waiting for the condition',
  });
  const plan = {
    group: 'mooring.io',
    version: 'v1alpha1',
    plural: 'mooringplans',
    namespace: agentNs,
    name: `eu-1-${SHA_2.slice(0, 12)}`,
  };
  const created = await east.customObjects.createNamespacedCustomObject({
    ...plan,
    body: {
      apiVersion: MOORING_API_VERSION,
      kind: 'MooringPlan',
      metadata: { name: plan.name, namespace: agentNs, labels: { 'mooring.io/cluster': 'eu-1' } },
      spec: {},
    },
  });
  await east.customObjects.replaceNamespacedCustomObjectStatus({
    ...plan,
    body: {
      ...(created as object),
      status: {
        cluster: 'eu-1',
        revision: SHA_2,
        shortRevision: SHA_2.slice(0, 7),
        digest: 'sha256:0f0f',
        phase: 'pending',
        reason: 'approval mode is manual',
        changes: 2,
        createdAt: '2025-05-01T12:05:00Z',
        releases: [
          { name: 'web', namespace: 'web', action: 'upgrade' },
          { name: 'cache', namespace: 'cache', action: 'none' },
          { name: 'api', namespace: 'api', action: 'install' },
        ],
      },
    },
  });

  const us1 = createStatusStore({ client: west.rest, namespace: agentNs, cluster: 'us-1' });
  await us1.update('web', {
    namespace: 'web',
    state: 'ready',
    desiredRevision: SHA_1,
    deployedRevision: SHA_1,
    helmRevision: 7,
  });
});

afterAll(async () => {
  vi.unstubAllEnvs();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
  await east.core.deleteNamespace({ name: agentNs }).catch(() => undefined);
  await rig.stopControlPlane(westDir);
  await rm(work, { recursive: true, force: true });
});

async function mooringStatus(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  vi.stubEnv('KUBECONFIG', kubeconfig);
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  const code = await main(['status', '--namespace', agentNs, ...args], io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('mooring status', () => {
  it('shows every cluster in one table; unreachable clusters are marked and hide nothing', async () => {
    const { code, out } = await mooringStatus(
      ...['--context', 'east', '--context', 'gone', '--context', 'west', '--context', 'silent'],
      ...['--timeout', '3s'],
    );
    const lines = out.split('\n').map((l) => l.split(/\s{2,}/));
    expect(lines[0]).toEqual([
      'CONTEXT',
      'CLUSTER',
      'RELEASE',
      'NAMESPACE',
      'CHART',
      'DESIRED',
      'DEPLOYED',
      'HELM',
      'STATE',
      'DRIFT',
      'PENDING APPROVAL',
      'LAST ERROR',
    ]);
    expect(lines.slice(1, 7)).toEqual([
      ['east', 'eu-1', 'api', 'api', '-', '-', '-', '-', 'pending-approval', '-', '2222222 install', '-'],
      [
        'east',
        'eu-1',
        'cache',
        'cache',
        'redis@18.6.1',
        '1111111',
        '-',
        '1',
        'failed',
        '-',
        '-',
        'helm upgrade cache: timed out waiting for the condition',
      ],
      [
        'east',
        'eu-1',
        'web',
        'web',
        'web@0.1.0',
        '1111111',
        '1111111',
        '3',
        'ready',
        '2 corrected',
        '2222222 upgrade',
        '-',
      ],
      [
        'gone',
        'gone',
        '-',
        '-',
        '-',
        '-',
        '-',
        '-',
        'unreachable',
        '-',
        '-',
        expect.stringMatching(/ECONNREFUSED/),
      ],
      ['west', 'us-1', 'web', 'web', '-', '1111111', '1111111', '7', 'ready', '-', '-', '-'],
      ['silent', 'silent', '-', '-', '-', '-', '-', '-', 'unreachable', '-', '-', 'no answer within 3s'],
    ]);
    expect(out).toContain(
      `pending plan ${agentNs}/eu-1-${SHA_2.slice(0, 12)}: cluster eu-1, revision 2222222`,
    );
    // The approve command it suggests names the context the plan was read from.
    expect(out).toContain(`approve with: mooring approve --context east -n ${agentNs} --revision ${SHA_2}`);
    expect(code).toBe(5);
  });

  it('prints one JSON document for machines', async () => {
    const { code, out } = await mooringStatus('--context', 'east', '--context', 'gone', '-o', 'json');
    const { clusters } = JSON.parse(out) as { clusters: ClusterStatus[] };
    expect(clusters.map((c) => [c.context, c.cluster, c.reach])).toEqual([
      ['east', 'eu-1', 'ok'],
      ['gone', 'gone', 'unreachable'],
    ]);
    const web = clusters[0]!.releases.find((r) => r.release === 'web');
    expect(web).toEqual({
      cluster: 'eu-1',
      release: 'web',
      namespace: 'web',
      agentNamespace: agentNs,
      chart: './charts/web',
      version: '0.1.0',
      state: 'ready',
      desiredRevision: SHA_1,
      deployedRevision: SHA_1,
      helmRevision: 3,
      drift: { count: 2, corrected: true, checkedAt: '2025-05-01T12:00:00Z' },
      pendingApproval: { plan: `eu-1-${SHA_2.slice(0, 12)}`, revision: '2222222', action: 'upgrade' },
    });
    expect(clusters[0]!.pendingPlans).toEqual([
      {
        name: `eu-1-${SHA_2.slice(0, 12)}`,
        namespace: agentNs,
        cluster: 'eu-1',
        revision: SHA_2,
        shortRevision: '2222222',
        digest: 'sha256:0f0f',
        changes: 2,
        reason: 'approval mode is manual',
        createdAt: '2025-05-01T12:05:00Z',
        releases: [
          { name: 'web', namespace: 'web', action: 'upgrade' },
          { name: 'api', namespace: 'api', action: 'install' },
        ],
      },
    ]);
    expect(clusters[1]!.error).toMatch(/ECONNREFUSED/);
    expect(code).toBe(5);
  });

  it('exits 1 when every cluster answered but a release failed, 0 when all is well', async () => {
    expect((await mooringStatus('--context', 'east', '--context', 'west')).code).toBe(1);
    expect((await mooringStatus('--context', 'west')).code).toBe(0);
  });

  it('takes several contexts after one --context, as well as the flag repeated', async () => {
    const listed = await mooringStatus('--context', 'east', 'west', '-o', 'json');
    const repeated = await mooringStatus('--context', 'east', '--context', 'west', '-o', 'json');
    const contexts = (out: string) =>
      (JSON.parse(out) as { clusters: ClusterStatus[] }).clusters.map((c) => c.context);
    expect(contexts(listed.out)).toEqual(['east', 'west']);
    expect(contexts(repeated.out)).toEqual(['east', 'west']);
    expect(listed.code).toBe(repeated.code);
  });

  it('asks the current context by default, and every context with --all-contexts', async () => {
    const current = JSON.parse((await mooringStatus('-o', 'json')).out) as { clusters: ClusterStatus[] };
    expect(current.clusters.map((c) => c.context)).toEqual(['east']);
    // The table names the context it read, also when none was given.
    const text = (await mooringStatus()).out.split('\n');
    expect(text[0]).toMatch(/^CONTEXT\s+CLUSTER\s/);
    expect(
      text
        .slice(1)
        .every((line) => /^east\s+eu-1\s/.test(line) || !/\S/.test(line) || line.startsWith('pending')),
    ).toBe(true);
    const all = JSON.parse((await mooringStatus('--all-contexts', '--timeout', '2s', '-o', 'json')).out) as {
      clusters: ClusterStatus[];
    };
    expect(all.clusters.map((c) => [c.context, c.reach])).toEqual([
      ['east', 'ok'],
      ['west', 'ok'],
      ['gone', 'unreachable'],
      ['silent', 'unreachable'],
    ]);
  });

  it('says so when a namespace holds no releases, rather than printing nothing', async () => {
    const { code, out } = await mooringStatus('--context', 'west', '--namespace', 'default');
    expect(out.split('\n')[1]).toMatch(/^west\s+west\s+-.*no releases/);
    expect(code).toBe(0);
  });

  it('refuses --context together with --all-contexts, and names an unknown context', async () => {
    const both = await mooringStatus('--context', 'east', '--all-contexts');
    expect(both.code).toBe(2);
    expect(both.err).toContain('use either --context or --all-contexts');
    const unknown = await mooringStatus('--context', 'nowhere', '-o', 'json');
    const { clusters } = JSON.parse(unknown.out) as { clusters: ClusterStatus[] };
    expect(clusters[0]).toMatchObject({ context: 'nowhere', reach: 'error' });
    expect(clusters[0]!.error).toMatch(/no context named nowhere.*known contexts: east, west, gone, silent/);
  });
});
