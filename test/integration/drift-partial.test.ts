// A drift check that fails for part of a release must not read as "no drift": an admission
// webhook with failurePolicy Fail and no backend refuses the dry runs of the release's
// ConfigMap. The release is then `failed` (reason DriftCheckFailed) with Stalled and an
// Unknown Drifted condition, `mooring status` shows the objects as unchecked, and
// `run --once` exits 1; once the webhook is gone the next check makes it ready again.
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { loadKubeConfig } from '../../src/kube/client.js';
import { readRelease, runOnce, startRig, uniqueName, waitFor, type AgentRig } from '../rig/agent.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

describe('a drift check refused for some objects', () => {
  const cluster = uniqueName('dpart');
  const agentNs = `${cluster}-agent`;
  const webhook = `${cluster}-refuse-configmaps`;

  it('marks the release failed (DriftCheckFailed), not ready with no drift, and recovers', async () => {
    const admission = rig.clients.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    const first = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(first.code, first.log()).toBe(0);

    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: webhook },
        webhooks: [
          {
            name: 'refuse.mooring.test',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            timeoutSeconds: 2,
            clientConfig: { service: { namespace: agentNs, name: 'nobody-home', port: 443 } },
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': `${cluster}-web` } },
            rules: [
              {
                apiGroups: [''],
                apiVersions: ['v1'],
                operations: ['CREATE', 'UPDATE'],
                resources: ['configmaps'],
              },
            ],
          },
        ],
      },
    });
    try {
      const refused = await runOnce(rig.agentFor(cluster, repo), rig.env);
      expect(refused.code, refused.log()).toBe(1);
      expect(refused.passes[0]!.drift).toMatchObject({ failed: 1 });
      const status = await readRelease(rig.clients, agentNs, 'web');
      expect(status).toMatchObject({ state: 'failed', reason: 'DriftCheckFailed' });
      expect(status!.lastError).toContain('ConfigMap');
      expect(status!.drift).toMatchObject({ failed: 1 });
      const conditions = status!.conditions as { type: string; status: string; reason: string }[];
      expect(conditions.find((c) => c.type === 'Ready')).toMatchObject({
        status: 'False',
        reason: 'DriftCheckFailed',
      });
      expect(conditions.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True' });
      expect(conditions.find((c) => c.type === 'Drifted')).toMatchObject({ status: 'Unknown' });

      const out: string[] = [];
      const io: Io = { out: (t) => out.push(t), err: () => undefined, colour: false };
      const context = loadKubeConfig({ kubeconfig: rig.kubeconfig }).getCurrentContext();
      process.env.KUBECONFIG = rig.kubeconfig;
      const code = await main(['status', '--context', context, '-n', agentNs], io);
      expect(code).toBe(1);
      expect(out.join('\n')).toMatch(/web\s+.*failed\s+1 unchecked/);
    } finally {
      await admission.deleteValidatingWebhookConfiguration({ name: webhook });
    }

    const recovered = await runOnce(rig.agentFor(cluster, repo), rig.env);
    expect(recovered.code, recovered.log()).toBe(0);
    const status = await readRelease(rig.clients, agentNs, 'web');
    expect(status).toMatchObject({ state: 'ready' });
    expect(status!.reason).toBeUndefined();
    expect(status!.lastError).toBeUndefined();
  });
});

describe('a release whose CRD was deleted', () => {
  const cluster = uniqueName('dcrd');
  const agentNs = `${cluster}-agent`;
  const group = `${cluster}.mooring.test`;
  const crdName = `widgets.${group}`;

  it('is failed (DriftCheckFailed) naming the kind the API server no longer serves, not ready', async () => {
    // The CRD comes from elsewhere (an operator's chart); the release holds a Widget of it.
    await rig.clients.apiExtensions.createCustomResourceDefinition({
      body: {
        metadata: { name: crdName },
        spec: {
          group,
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
            },
          ],
        },
      },
    });
    try {
      await waitFor('the Widget CRD to be established', async () => {
        const crd = await rig.clients.apiExtensions.readCustomResourceDefinition({ name: crdName });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      });
      const files = rig.clusterRepo(cluster, { web: {} });
      files['charts/app/templates/widget.yaml'] =
        `apiVersion: ${group}/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}-widget\nspec:\n  size: 1\n`;
      const repo = await rig.createRepo(files);
      const first = await runOnce(rig.agentFor(cluster, repo), rig.env);
      expect(first.code, first.log()).toBe(0);

      await rig.clients.apiExtensions.deleteCustomResourceDefinition({ name: crdName });
      await waitFor('the Widget CRD to be gone', async () =>
        rig.clients.apiExtensions
          .readCustomResourceDefinition({ name: crdName })
          .then(() => false)
          .catch(() => true),
      );
      const missing = await runOnce(rig.agentFor(cluster, repo), rig.env);
      expect(missing.code, missing.log()).toBe(1);
      const status = await readRelease(rig.clients, agentNs, 'web');
      expect(status).toMatchObject({ state: 'failed', reason: 'DriftCheckFailed' });
      expect(status!.lastError).toContain(`does not serve ${group}/v1 Widget`);
      expect(status!.drift).toMatchObject({ failed: 1 });
      const conditions = status!.conditions as { type: string; status: string; reason: string }[];
      expect(conditions.find((c) => c.type === 'Ready')).toMatchObject({
        status: 'False',
        reason: 'DriftCheckFailed',
      });
      expect(conditions.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True' });
      expect(conditions.find((c) => c.type === 'Drifted')).toMatchObject({ status: 'Unknown' });
    } finally {
      await rig.clients.apiExtensions
        .deleteCustomResourceDefinition({ name: crdName })
        .catch(() => undefined);
    }
  });
});
