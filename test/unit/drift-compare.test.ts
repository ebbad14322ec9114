// Comparing a live object with the dry-run result of applying the recorded one.
import { describe, expect, it } from 'vitest';
import { changedFields } from '../../src/observe/drift/compare.js';

const deployment = (
  changes: { replicas?: number; image?: string; env?: { name: string; value: string }[] } = {},
) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'web',
    namespace: 'shop',
    labels: { app: 'web' },
    resourceVersion: '41',
    generation: 3,
    managedFields: [{ manager: 'helm', operation: 'Apply' }],
  },
  spec: {
    replicas: changes.replicas ?? 2,
    template: {
      spec: {
        containers: [
          {
            name: 'web',
            image: changes.image ?? 'web:1',
            env: changes.env ?? [{ name: 'MODE', value: 'prod' }],
          },
          { name: 'proxy', image: 'envoy:1' },
        ],
      },
    },
  },
  status: { replicas: 2 },
});

describe('changedFields', () => {
  it('finds nothing when the dry run would change nothing', () => {
    expect(changedFields(deployment(), deployment())).toEqual([]);
  });

  it('names each modified field by its JSON pointer', () => {
    expect(changedFields(deployment({ replicas: 5, image: 'evil:6' }), deployment())).toEqual([
      '/spec/replicas',
      '/spec/template/spec/containers/0/image',
    ]);
  });

  it('ignores what the server changes on every write, and status', () => {
    const wouldBe = deployment();
    wouldBe.metadata.resourceVersion = '42';
    wouldBe.metadata.generation = 4;
    wouldBe.metadata.managedFields = [
      { manager: 'helm', operation: 'Apply' },
      { manager: 'x', operation: 'Update' },
    ];
    wouldBe.status = { replicas: 7 };
    expect(changedFields(deployment(), wouldBe)).toEqual([]);
  });

  it('reports a field removed by hand where the recorded object has it', () => {
    const live = deployment();
    delete (live.metadata.labels as Record<string, string>).app;
    expect(changedFields(live, deployment())).toEqual(['/metadata/labels/app']);
  });

  it('pairs named list items, so an env var removed by hand is one field', () => {
    const recorded = deployment({
      env: [
        { name: 'MODE', value: 'prod' },
        { name: 'LOG', value: 'info' },
      ],
    });
    const live = deployment({ env: [{ name: 'LOG', value: 'debug' }] });
    expect(changedFields(live, recorded)).toEqual([
      '/spec/template/spec/containers/0/env/0',
      '/spec/template/spec/containers/0/env/1/value',
    ]);
  });

  it('reports a list it cannot pair up as a whole', () => {
    const live = { spec: { args: ['--a', '--b'] } };
    expect(changedFields(live, { spec: { args: ['--a'] } })).toEqual(['/spec/args']);
  });

  it('escapes pointer segments (RFC 6901)', () => {
    const live = { metadata: { annotations: { 'example.com/mode': 'a', 'x~y': '1' } } };
    const wouldBe = { metadata: { annotations: { 'example.com/mode': 'b', 'x~y': '2' } } };
    expect(changedFields(live, wouldBe)).toEqual([
      '/metadata/annotations/example.com~1mode',
      '/metadata/annotations/x~0y',
    ]);
  });
});
