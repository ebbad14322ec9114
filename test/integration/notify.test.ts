// Notifications over real HTTP: a webhook receiver on 127.0.0.1 that fails before it
// succeeds, both payload formats, and the agent's event recorder feeding the notifier while
// it records Kubernetes Events on the test control plane.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { loadAgentConfig } from '../../src/agent/config.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runAgent } from '../../src/cli/run.js';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import { createRepo, startGitServer } from '../rig/git.js';
import { ensureCrds } from '../../src/observe/crds.js';
import { createEventRecorder } from '../../src/observe/events.js';
import { createWebhookNotifier, notifyingRecorder, urlFromFile } from '../../src/observe/notify.js';

interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  answered: number;
}

/** A webhook receiver answering the given statuses in turn, then 200. */
async function startReceiver(statuses: number[] = []) {
  const deliveries: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answered = statuses.shift() ?? 200;
      deliveries.push({
        path: req.url ?? '',
        headers: req.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
        answered,
      });
      res.writeHead(answered, { 'content-type': 'text/plain' });
      res.end(answered === 200 ? 'ok' : 'try later');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/services/T0/B0/webhook-token`,
    deliveries,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const dirs: string[] = [];
async function urlFile(url: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mooring-notify-'));
  dirs.push(dir);
  const file = join(dir, 'url');
  await writeFile(file, `${url}\n`, { mode: 0o600 });
  return file;
}

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const converged = {
  release: 'web',
  object: { kind: 'MooringRelease', name: 'web', namespace: 'mooring-system' },
  type: 'Warning' as const,
  reason: 'ConvergeFailed',
  message: 'revision 0a1b2c3: UPGRADE FAILED: context deadline exceeded',
};

describe('webhook delivery', () => {
  it('retries a receiver that fails twice, then delivers once (generic JSON)', async () => {
    const receiver = await startReceiver([503, 500]);
    try {
      const notifier = createWebhookNotifier({
        url: urlFromFile(await urlFile(receiver.url)),
        format: 'json',
        cluster: 'eu-1',
        baseDelayMs: 50,
      });
      notifier.notify(converged);
      expect(await notifier.flush()).toEqual({ pending: 0 });
      expect(receiver.deliveries.map((d) => d.answered)).toEqual([503, 500, 200]);
      const last = receiver.deliveries[2]!;
      expect(last.path).toBe('/services/T0/B0/webhook-token');
      expect(last.headers['content-type']).toBe('application/json');
      expect(last.body).toEqual({
        source: 'mooring',
        cluster: 'eu-1',
        release: 'web',
        object: { kind: 'MooringRelease', name: 'web', namespace: 'mooring-system' },
        type: 'Warning',
        reason: 'ConvergeFailed',
        message: converged.message,
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      });
      // The same body each time: a retry is the same notification, not a new one.
      expect(new Set(receiver.deliveries.map((d) => JSON.stringify(d.body))).size).toBe(1);
    } finally {
      await receiver.close();
    }
  });

  it('posts Slack-compatible text', async () => {
    const receiver = await startReceiver();
    try {
      const notifier = createWebhookNotifier({
        url: urlFromFile(await urlFile(receiver.url)),
        format: 'slack',
        cluster: 'eu-1',
      });
      notifier.notify({ ...converged, reason: 'RolledBack', message: 'rolled back to helm revision 3' });
      await notifier.flush();
      expect(receiver.deliveries.map((d) => d.body)).toEqual([
        { text: ':warning: *RolledBack* release web on cluster *eu-1*\nrolled back to helm revision 3' },
      ]);
    } finally {
      await receiver.close();
    }
  });

  it('gives up on a receiver that is down, within its attempts', async () => {
    const receiver = await startReceiver();
    const url = receiver.url;
    await receiver.close();
    const warnings: object[] = [];
    const notifier = createWebhookNotifier({
      url: () => url,
      format: 'json',
      cluster: 'eu-1',
      attempts: 3,
      baseDelayMs: 10,
      log: { warn: (obj) => warnings.push(obj) },
    });
    notifier.notify(converged);
    expect(await notifier.flush()).toEqual({ pending: 0 });
    expect(warnings).toEqual([
      { reason: 'ConvergeFailed', release: 'web', problem: 'ECONNREFUSED', attempts: 3 },
    ]);
  });
});

describe('the agent event recorder with notifications', () => {
  let clients: KubeClients;
  const ns = `notify-it-${Date.now().toString(36)}`;

  beforeAll(async () => {
    clients = createKubeClients(loadKubeConfig({ kubeconfig: inject('kubeconfig') }));
    await ensureCrds(clients);
    await clients.core.createNamespace({ body: { metadata: { name: ns } } });
  });

  afterAll(async () => {
    await clients.core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it('records the Event in Kubernetes and notifies only what matters', async () => {
    const receiver = await startReceiver();
    try {
      const notifier = createWebhookNotifier({ url: () => receiver.url, format: 'json', cluster: 'eu-1' });
      const events = notifyingRecorder(
        createEventRecorder({ client: clients.rest, namespace: ns }),
        notifier,
        ns,
      );
      events.emit('web', 'Normal', 'Converged', 'upgraded to revision 0a1b2c3 (helm revision 2)');
      events.emit('web', 'Warning', 'DriftCorrected', 'restored 2 drifted field(s)');
      await events.flush();
      await notifier.flush();

      const recorded = await clients.core.listNamespacedEvent({ namespace: ns });
      expect(recorded.items.map((e) => e.reason).sort()).toEqual(['Converged', 'DriftCorrected']);
      expect(receiver.deliveries.map((d) => d.body)).toEqual([
        expect.objectContaining({
          cluster: 'eu-1',
          release: 'web',
          object: { kind: 'MooringRelease', name: 'web', namespace: ns },
          reason: 'DriftCorrected',
          message: 'restored 2 drifted field(s)',
        }),
      ]);
    } finally {
      await receiver.close();
    }
  });
});

describe('mooring run --notify-url-file', () => {
  const suffix = Date.now().toString(36);
  const agentNs = `notify-agent-${suffix}`;
  const appNs = `notify-app-${suffix}`;
  let clients: KubeClients;

  afterAll(async () => {
    for (const name of [agentNs, appNs]) await clients?.core.deleteNamespace({ name }).catch(() => undefined);
  });

  it('posts the failure of a release the API server rejects, and nothing about the one that converged', async () => {
    const kubeconfig = inject('kubeconfig');
    clients = createKubeClients(loadKubeConfig({ kubeconfig }));
    const work = await mkdtemp(join(tmpdir(), 'mooring-notify-run-'));
    dirs.push(work);
    const configMap = (name: string) =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  a: "1"\n`;
    const files: Record<string, string> = {
      'clusters/eu-1/cluster.yaml': 'environment: dev\n',
      'environments/dev/values.yaml': '{}\n',
      'environments/common/releases.yaml': [
        'releases:',
        '  good:',
        '    chart: ./charts/good',
        `    namespace: ${appNs}`,
        '  broken:',
        '    chart: ./charts/broken',
        `    namespace: ${appNs}`,
        '    wait: false',
        '',
      ].join('\n'),
      'charts/good/Chart.yaml': 'apiVersion: v2\nname: good\nversion: 1.0.0\n',
      'charts/good/templates/cm.yaml': configMap('good'),
      'charts/broken/Chart.yaml': 'apiVersion: v2\nname: broken\nversion: 1.0.0\n',
      // Upper case is no valid object name: the API server refuses the install.
      'charts/broken/templates/cm.yaml': configMap('Not_A_Valid_Name'),
    };
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(work, 'repo', path)), { recursive: true });
      await writeFile(join(work, 'repo', path), text);
    }
    createRepo(join(work, 'served'), 'gitops.git', join(work, 'repo'));
    const git = await startGitServer({ root: join(work, 'served') });
    const receiver = await startReceiver();
    try {
      const env = { PATH: process.env.PATH, HOME: work, KUBECONFIG: kubeconfig };
      const config = loadAgentConfig(
        {
          repo: git.repoUrl('gitops.git'),
          cluster: 'eu-1',
          once: true,
          namespace: agentNs,
          workDir: join(work, 'snapshots'),
          notifyUrlFile: await urlFile(receiver.url),
          notifyFormat: 'json',
        },
        env,
      );
      const logs: string[] = [];
      const code = await runAgent(config, env, {
        logger: pino({ level: 'info' }, { write: (line: string) => logs.push(line) }),
      });
      expect(code, logs.join('')).toBe(EXIT.failed);
      const bodies = receiver.deliveries.map((d) => d.body as Record<string, unknown>);
      expect(bodies.map((b) => [b.release, b.reason])).toEqual([['broken', 'ConvergeFailed']]);
      expect(bodies[0]).toMatchObject({
        source: 'mooring',
        cluster: 'eu-1',
        object: { kind: 'MooringRelease', name: 'broken', namespace: agentNs },
        type: 'Warning',
      });
      expect(bodies[0]!.message).toMatch(/Not_A_Valid_Name/);
    } finally {
      await receiver.close();
      await git.stop();
    }
  });
});
