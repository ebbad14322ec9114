// Helm's recorded manifest as objects, and how drift names and reports them.
import { describe, expect, it } from 'vitest';
import type { AnyObject } from '../../src/kube/client.js';
import { asHelmApplied, describeObject, parseManifest } from '../../src/observe/drift/objects.js';
import {
  correctedMessage,
  detectedMessage,
  listWithin,
  redact,
  summaryOf,
} from '../../src/observe/drift/report.js';
import { secretStringsOf } from '../../src/secrets/mask.js';

describe('parseManifest', () => {
  it('reads the documents as helm does (YAML 1.1), skipping empty ones and flattening Lists', () => {
    const manifest = [
      '---',
      '# Source: web/templates/cm.yaml',
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: web',
      'data:',
      '  mode: "0777"',
      'immutable: yes',
      '---',
      '# Source: web/templates/empty.yaml',
      '---',
      'apiVersion: v1',
      'kind: List',
      'items:',
      '  - apiVersion: v1',
      '    kind: ServiceAccount',
      '    metadata: {name: web}',
      '',
    ].join('\n');
    expect(parseManifest(manifest)).toEqual([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'web' },
        data: { mode: '0777' },
        immutable: true,
      },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'web' } },
    ]);
  });

  it('keeps timestamps as strings, as go-yaml does', () => {
    const [cm] = parseManifest(
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  at: 2024-01-02\n',
    );
    expect(cm?.data).toEqual({ at: '2024-01-02' });
  });

  it('reads what YAML 1.1 would make a sexagesimal number as go-yaml does: a string', () => {
    // Read as 750 and 7200, the live "12:30" would look drifted and be "corrected" forever.
    const [cm] = parseManifest(
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  at: 12:30\n  window: 2:00:00\n',
    );
    expect(cm?.data).toEqual({ at: '12:30', window: '2:00:00' });
  });

  it('reads octal file modes as numbers, and refuses what is not YAML', () => {
    const [cm] = parseManifest('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec:\n  mode: 0755\n');
    expect(cm?.spec).toEqual({ mode: 493 });
    expect(() => parseManifest('apiVersion: v1\nkind: [\n')).toThrow(/invalid YAML/);
  });
});

describe('asHelmApplied', () => {
  const release = { name: 'web', namespace: 'shop' };

  it("adds the release namespace and helm's ownership label and annotations", () => {
    const object = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', labels: { app: 'web' } },
    } as AnyObject;
    expect(asHelmApplied(object, release, true).metadata).toEqual({
      name: 'web',
      namespace: 'shop',
      labels: { app: 'web', 'app.kubernetes.io/managed-by': 'Helm' },
      annotations: { 'meta.helm.sh/release-name': 'web', 'meta.helm.sh/release-namespace': 'shop' },
    });
    expect(object.metadata).toEqual({ name: 'web', labels: { app: 'web' } });
  });

  it('keeps a namespace the chart sets, and none on cluster-scoped objects', () => {
    const elsewhere = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'x', namespace: 'other' },
    } as AnyObject;
    const role = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'x' },
    } as AnyObject;
    expect(asHelmApplied(elsewhere, release, true).metadata?.namespace).toBe('other');
    expect(asHelmApplied(role, release, false).metadata?.namespace).toBeUndefined();
    expect(
      describeObject({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', name: 'x' }),
    ).toBe('ClusterRole/x');
  });
});

describe('drift reports', () => {
  const drift = {
    modified: ['Deployment/shop/web:/spec/replicas'],
    added: ['Deployment/shop/web:/metadata/labels/owner'],
    deleted: ['Service/shop/web'],
    failed: [],
  };

  it('name fields and objects, with counts', () => {
    expect(detectedMessage(3, drift, 'warn')).toBe(
      'live objects differ from helm revision 3: 1 modified field(s), 1 deleted object(s), 1 field(s) added by hand (drift mode warn: left as it is): modified Deployment/shop/web:/spec/replicas; deleted Service/shop/web; added by hand Deployment/shop/web:/metadata/labels/owner',
    );
    expect(correctedMessage(3, drift)).toBe(
      'restored helm revision 3 without a new revision: restored Deployment/shop/web:/spec/replicas; recreated Service/shop/web; removed Deployment/shop/web:/metadata/labels/owner',
    );
  });

  it('stay within what an Event holds', () => {
    const many = Array.from({ length: 200 }, (_, i) => `ConfigMap/shop/config-${i}:/data/key-${i}`);
    const message = detectedMessage(1, { ...drift, modified: many }, 'correct');
    expect(Buffer.byteLength(message)).toBeLessThan(1024);
    expect(message).toMatch(/and \d+ more/);
    expect(listWithin(['a', 'b', 'c'], 4)).toBe('a, b and 1 more');
    expect(listWithin(['a', 'b', 'c'], 3)).toBe('a and 2 more');
  });

  it('summarise for the release status', () => {
    expect(summaryOf(drift, true, Date.parse('2025-03-01T10:00:00.123Z'))).toEqual({
      count: 3,
      fields: ['Deployment/shop/web:/spec/replicas', 'Deployment/shop/web:/metadata/labels/owner'],
      deletedObjects: ['Service/shop/web'],
      corrected: true,
      mode: 'correct',
      checkedAt: '2025-03-01T10:00:00Z',
    });
  });

  it('summarise objects that could not be checked, so unknown drift never reads as none', () => {
    const partial = { ...drift, failed: ['ConfigMap/shop/b: refused', 'ConfigMap/shop/a: refused'] };
    expect(summaryOf(partial, false, Date.parse('2025-03-01T10:00:00Z'), 'warn')).toMatchObject({
      count: 3,
      corrected: false,
      mode: 'warn',
      failed: 2,
      failures: ['ConfigMap/shop/a: refused', 'ConfigMap/shop/b: refused'],
    });
  });

  it("keep a recorded Secret's values, raw and base64, and the release's decrypted values out of error texts", () => {
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db' },
      data: { token: Buffer.from('tok-3141592').toString('base64') },
      stringData: { password: 'pw-2718281' },
    } as AnyObject;
    const secrets = secretStringsOf([secret], ['sops-value-42']);
    const text = redact(
      `invalid value "pw-2718281", "tok-3141592", "${Buffer.from('tok-3141592').toString('base64')}" and sops-value-42`,
      secrets,
    );
    expect(text).toBe('invalid value "[redacted]", "[redacted]", "[redacted]" and [redacted]');
  });
});
