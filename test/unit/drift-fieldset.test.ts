// Reading managedFields: who owns what, and which fields were added by hand.
import { describe, expect, it } from 'vitest';
import {
  fieldOwners,
  fieldsAddedByHand,
  isHandManager,
  managersOf,
  ownedPaths,
  resolvePath,
} from '../../src/observe/drift/fieldset.js';

const helmApply = {
  manager: 'helm',
  operation: 'Apply',
  fieldsV1: {
    'f:metadata': { 'f:labels': { 'f:app': {} } },
    'f:spec': {
      'f:replicas': {},
      'f:template': {
        'f:spec': {
          'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:name': {}, 'f:image': {} } },
        },
      },
    },
  },
};

const object = (...entries: object[]) => ({
  kind: 'Deployment',
  metadata: { name: 'web', labels: { app: 'web', owner: 'someone' }, managedFields: [helmApply, ...entries] },
  spec: {
    replicas: 2,
    template: {
      spec: {
        containers: [
          { name: 'web', image: 'web:1', env: [{ name: 'DEBUG', value: '1' }] },
          { name: 'sidecar', image: 'debug:1' },
        ],
      },
    },
  },
});

describe('ownedPaths', () => {
  it('lists leaves and nodes marked "."', () => {
    expect(ownedPaths(helmApply.fieldsV1)).toEqual([
      [{ field: 'metadata' }, { field: 'labels' }, { field: 'app' }],
      [{ field: 'spec' }, { field: 'replicas' }],
      [
        { field: 'spec' },
        { field: 'template' },
        { field: 'spec' },
        { field: 'containers' },
        { key: { name: 'web' } },
      ],
      [
        { field: 'spec' },
        { field: 'template' },
        { field: 'spec' },
        { field: 'containers' },
        { key: { name: 'web' } },
        { field: 'name' },
      ],
      [
        { field: 'spec' },
        { field: 'template' },
        { field: 'spec' },
        { field: 'containers' },
        { key: { name: 'web' } },
        { field: 'image' },
      ],
    ]);
  });
});

describe('resolvePath', () => {
  it('finds keyed list items by their key, set items by value', () => {
    const doc = {
      spec: {
        ports: [
          { port: 80, protocol: 'TCP' },
          { port: 443, protocol: 'TCP' },
        ],
      },
      finalizers: ['a', 'b'],
    };
    expect(
      resolvePath(doc, [{ field: 'spec' }, { field: 'ports' }, { key: { port: 443, protocol: 'TCP' } }]),
    ).toEqual(['spec', 'ports', 1]);
    expect(resolvePath(doc, [{ field: 'finalizers' }, { value: 'b' }])).toEqual(['finalizers', 1]);
    expect(resolvePath(doc, [{ field: 'finalizers' }, { value: 'c' }])).toBeUndefined();
  });
});

describe('fieldsAddedByHand', () => {
  it('finds a label added with kubectl label', () => {
    const labelled = object({
      manager: 'kubectl-label',
      operation: 'Update',
      fieldsV1: { 'f:metadata': { 'f:labels': { 'f:owner': {} } } },
    });
    expect(fieldsAddedByHand(labelled, 'helm')).toEqual([
      [{ field: 'metadata' }, { field: 'labels' }, { field: 'owner' }],
    ]);
  });

  it('reports a whole env var or container added by hand once, not each of its fields', () => {
    const edited = object({
      manager: 'kubectl-edit',
      operation: 'Update',
      fieldsV1: {
        'f:spec': {
          'f:template': {
            'f:spec': {
              'f:containers': {
                'k:{"name":"web"}': {
                  'f:env': { '.': {}, 'k:{"name":"DEBUG"}': { '.': {}, 'f:name': {}, 'f:value': {} } },
                },
                'k:{"name":"sidecar"}': { '.': {}, 'f:name': {}, 'f:image': {} },
              },
            },
          },
        },
      },
    });
    const container = [{ field: 'spec' }, { field: 'template' }, { field: 'spec' }, { field: 'containers' }];
    expect(fieldsAddedByHand(edited, 'helm')).toEqual([
      [...container, { key: { name: 'web' } }, { field: 'env' }],
      [...container, { key: { name: 'sidecar' } }],
    ]);
  });

  it('never counts a field the chart sets, or a parent of one, even when kubectl also owns it', () => {
    const scaled = object({
      manager: 'kubectl',
      operation: 'Update',
      subresource: 'scale',
      fieldsV1: { 'f:spec': { 'f:replicas': {} } },
    });
    const shared = object({
      manager: 'kubectl-client-side-apply',
      operation: 'Update',
      fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } } },
    });
    expect(fieldsAddedByHand(scaled, 'helm')).toEqual([]);
    expect(fieldsAddedByHand(shared, 'helm')).toEqual([]);
  });

  it('leaves fields of controllers alone', () => {
    const controlled = object({
      manager: 'kube-controller-manager',
      operation: 'Update',
      fieldsV1: { 'f:metadata': { 'f:annotations': { 'f:deployment.kubernetes.io/revision': {} } } },
    });
    expect(fieldsAddedByHand(controlled, 'helm')).toEqual([]);
  });

  it("counts a Secret's data key as set by the chart when the chart sets it through stringData", () => {
    const secret = {
      kind: 'Secret',
      metadata: {
        managedFields: [
          { manager: 'helm', operation: 'Apply', fieldsV1: { 'f:stringData': { 'f:password': {} } } },
          {
            manager: 'kubectl-patch',
            operation: 'Update',
            fieldsV1: { 'f:data': { 'f:password': {}, 'f:extra': {} } },
          },
        ],
      },
    };
    expect(fieldsAddedByHand(secret, 'helm')).toEqual([[{ field: 'data' }, { field: 'extra' }]]);
  });
});

describe('isHandManager', () => {
  it("knows kubectl's managers and k9s", () => {
    for (const m of [
      'kubectl',
      'kubectl-edit',
      'kubectl-label',
      'kubectl-client-side-apply',
      'kubectl-set',
      'k9s',
    ]) {
      expect(isHandManager(m)).toBe(true);
    }
    for (const m of ['helm', 'kube-controller-manager', 'kubectlish', 'mooring'])
      expect(isHandManager(m)).toBe(false);
  });
});

describe('managersOf: who changed a drifted field', () => {
  const certgen = {
    manager: 'kube-webhook-certgen',
    operation: 'Update',
    fieldsV1: {
      'f:spec': {
        'f:template': {
          'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:image': {} } } },
        },
      },
    },
  };
  const scale = {
    manager: 'kubectl',
    operation: 'Update',
    subresource: 'scale',
    fieldsV1: { 'f:spec': { 'f:replicas': {} } },
  };
  const status = {
    manager: 'kube-controller-manager',
    operation: 'Update',
    subresource: 'status',
    fieldsV1: { 'f:spec': { 'f:replicas': {} } },
  };
  const owners = fieldOwners(object(certgen, scale, status));

  it("names the manager that owns the field, not helm's own, and counts the scale subresource", () => {
    expect(managersOf(owners, '/spec/template/spec/containers/0/image', 'helm')).toEqual([
      'kube-webhook-certgen',
    ]);
    expect(managersOf(owners, '/spec/replicas', 'helm')).toEqual(['kubectl']);
    expect(managersOf(owners, '/spec/replicas', 'kubectl')).toEqual(['helm']);
  });

  it('counts fields below a list that changed as a whole, and leaves out who only owns a list item', () => {
    expect(managersOf(owners, '/spec/template/spec/containers', 'helm')).toEqual(['kube-webhook-certgen']);
    // Owning the container's existence (".") is no change of its env.
    expect(managersOf(owners, '/spec/template/spec/containers/0/env', 'helm')).toEqual([]);
  });

  it('names nobody for a field nobody owns (removed by hand)', () => {
    expect(managersOf(owners, '/metadata/labels/tier', 'helm')).toEqual([]);
  });
});
