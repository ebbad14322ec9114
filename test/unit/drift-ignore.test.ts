// Ignore rules, HPAs, the opt-out annotation and the agent-wide ignore file.
import { describe, expect, it } from 'vitest';
import type { AnyObject } from '../../src/kube/client.js';
import { MooringError } from '../../src/errors.js';
import { parseIgnoreRules } from '../../src/observe/drift/ignore-file.js';
import {
  hpaIgnoreRules,
  ignoredField,
  ignoresFor,
  keepIgnoredAsLive,
  optsOut,
} from '../../src/observe/drift/ignore.js';

const web = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' };

describe('ignoresFor', () => {
  it('covers the path and everything below it', () => {
    const ignores = ignoresFor([{ path: '/metadata/annotations' }], web);
    expect(ignores.ignores('/metadata/annotations')).toBe(true);
    expect(ignores.ignores('/metadata/annotations/example.com~1x')).toBe(true);
    expect(ignores.ignores('/metadata/labels/app')).toBe(false);
  });

  it('matches any one segment with *', () => {
    const ignores = ignoresFor([{ path: '/spec/template/spec/containers/*/image' }], web);
    expect(ignores.ignores('/spec/template/spec/containers/3/image')).toBe(true);
    expect(ignores.ignores('/spec/template/spec/containers/3/env')).toBe(false);
  });

  it('applies a rule only to the objects its target names', () => {
    const rules = [
      { path: '/a', group: 'apps' },
      { path: '/b', kind: 'StatefulSet' },
      { path: '/c', name: 'api' },
      { path: '/d', namespace: 'shop', kind: 'Deployment', name: 'web', group: 'apps' },
      { path: '/e', group: '' },
    ];
    const ignores = ignoresFor(rules, web);
    expect(['/a', '/b', '/c', '/d', '/e'].filter((p) => ignores.ignores(p))).toEqual(['/a', '/d']);
  });
});

describe('hpaIgnoreRules', () => {
  it("ignores the replicas of an HPA's target, in the HPA's namespace", () => {
    const hpa = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'web' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' } },
    } as AnyObject;
    const rules = hpaIgnoreRules([hpa], 'shop');
    expect(rules).toEqual([
      { path: '/spec/replicas', group: 'apps', kind: 'Deployment', name: 'web', namespace: 'shop' },
    ]);
    expect(ignoresFor(rules, web).ignores('/spec/replicas')).toBe(true);
    expect(ignoresFor(rules, { ...web, name: 'api' }).ignores('/spec/replicas')).toBe(false);
  });
});

describe('keepIgnoredAsLive', () => {
  const recorded = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', labels: { app: 'web', tier: 'front' } },
    spec: { replicas: 2, paused: false },
  } as AnyObject;

  it('applies ignored fields at their live values, so a correction leaves them as they are', () => {
    const live = {
      ...recorded,
      metadata: { name: 'web', labels: { app: 'web', tier: 'back', owner: 'x' } },
      spec: { replicas: 7 },
    } as AnyObject;
    const desired = keepIgnoredAsLive(
      recorded,
      live,
      ignoresFor([{ path: '/spec/replicas' }, { path: '/metadata/labels' }, { path: '/spec/paused' }], web),
    );
    // Labels merge key by key: no label the chart does not set is claimed. A field the live object lacks is left out.
    expect(desired).toEqual({
      ...recorded,
      metadata: { name: 'web', labels: { app: 'web', tier: 'back' } },
      spec: { replicas: 7 },
    });
    expect(recorded.spec).toEqual({ replicas: 2, paused: false });
  });

  it('leaves out the fields that ignored managers own live, so helm claims none of them', () => {
    const webhook = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: 'hook' },
      webhooks: [{ name: 'a.example.com', failurePolicy: 'Fail', sideEffects: 'None' }],
    } as AnyObject;
    const live = {
      ...webhook,
      metadata: {
        name: 'hook',
        managedFields: [
          {
            manager: 'kube-webhook-certgen',
            operation: 'Apply',
            fieldsV1: { 'f:webhooks': { 'k:{"name":"a.example.com"}': { '.': {}, 'f:failurePolicy': {} } } },
          },
        ],
      },
      webhooks: [{ name: 'a.example.com', failurePolicy: 'Ignore', sideEffects: 'None' }],
    } as AnyObject;
    const id = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      name: 'hook',
    };
    const ignores = ignoresFor([{ managedFieldsManagers: ['kube-webhook-certgen'] }], id);
    expect(ignores.ignoresManager('kube-webhook-certgen', '/webhooks/0/failurePolicy')).toBe(true);
    expect(ignores.ignoresManager('kubectl-edit', '/webhooks/0/failurePolicy')).toBe(false);
    // A manager rule is no path rule: others' changes of the same field are still drift.
    expect(ignores.ignores('/webhooks/0/failurePolicy')).toBe(false);
    expect(keepIgnoredAsLive(webhook, live, ignores)).toEqual({
      ...webhook,
      webhooks: [{ name: 'a.example.com', sideEffects: 'None' }],
    });
    // With a path, only the manager's fields under it.
    const narrow = ignoresFor([{ path: '/metadata', managedFieldsManagers: ['kube-webhook-certgen'] }], id);
    expect(narrow.ignoresManager('kube-webhook-certgen', '/webhooks/0/failurePolicy')).toBe(false);
    expect(keepIgnoredAsLive(webhook, live, narrow)).toBe(webhook);
    // A rule for another kind does not apply.
    expect(
      ignoresFor([{ managedFieldsManagers: ['kube-webhook-certgen'], kind: 'Deployment' }], id).byManager,
    ).toBe(false);
  });

  it('ignores a drifted field when every manager that changed it is ignored there', () => {
    const ignores = ignoresFor([{ managedFieldsManagers: ['hpa-controller'] }], web);
    expect(ignoredField(ignores, '/spec/replicas', ['hpa-controller'])).toBe(true);
    expect(ignoredField(ignores, '/spec/replicas', ['hpa-controller', 'kubectl-edit'])).toBe(false);
    expect(ignoredField(ignores, '/spec/replicas', [])).toBe(false);
  });

  it('keeps the recorded object as it is for a deleted object', () => {
    expect(keepIgnoredAsLive(recorded, undefined, ignoresFor([{ path: '/spec/replicas' }], web))).toEqual(
      recorded,
    );
  });
});

describe('optsOut', () => {
  it('is the annotation mooring.io/drift: ignore', () => {
    const annotated = (value: string) =>
      ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { annotations: { 'mooring.io/drift': value } },
      }) as AnyObject;
    expect(optsOut(annotated('ignore'))).toBe(true);
    expect(optsOut(annotated('yes'))).toBe(false);
    expect(optsOut(undefined)).toBe(false);
  });
});

describe('the agent-wide ignore file', () => {
  it('is a YAML list of rules, as in releases.yaml', () => {
    const text =
      '- path: /spec/replicas\n  kind: Deployment\n- path: /metadata/annotations/example.com~1stamp\n';
    expect(parseIgnoreRules(text, 'ignore.yaml')).toEqual([
      { path: '/spec/replicas', kind: 'Deployment' },
      { path: '/metadata/annotations/example.com~1stamp' },
    ]);
    expect(parseIgnoreRules('', 'ignore.yaml')).toEqual([]);
  });

  it('takes rules by field manager, alone or under a path', () => {
    const text = [
      '- managedFieldsManagers: [kube-webhook-certgen]',
      '  kind: ValidatingWebhookConfiguration',
      '- path: /spec/replicas',
      '  managedFieldsManagers: [keda-operator]',
      '',
    ].join('\n');
    expect(parseIgnoreRules(text, 'ignore.yaml')).toEqual([
      { managedFieldsManagers: ['kube-webhook-certgen'], kind: 'ValidatingWebhookConfiguration' },
      { path: '/spec/replicas', managedFieldsManagers: ['keda-operator'] },
    ]);
  });

  it('rejects a rule with neither a path nor managers, naming the file and rule', () => {
    const bad = () => parseIgnoreRules('- kind: Deployment\n- managedFieldsManagers: []\n', 'ignore.yaml');
    expect(bad).toThrow(/\[0\]: a rule needs a path, managedFieldsManagers, or both/);
    expect(bad).toThrow(/\[1\]: a rule needs a path/);
    expect(() => bad()).toThrow(
      expect.objectContaining({ context: expect.objectContaining({ file: 'ignore.yaml' }) }),
    );
  });

  it('rejects a path that is no JSON pointer and unknown fields, naming the file and field', () => {
    const bad = () =>
      parseIgnoreRules('- path: spec.replicas\n- path: /a\n  kinds: Deployment\n', 'ignore.yaml');
    expect(bad).toThrow(MooringError);
    expect(bad).toThrow(/\[0\]\.path.*JSON pointer/s);
    expect(bad).toThrow(/kinds/);
    try {
      bad();
    } catch (err) {
      expect((err as MooringError).context.file).toBe('ignore.yaml');
    }
  });
});
