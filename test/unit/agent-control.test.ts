// The operator's controls as the agent reads them before each pass (src/observe/agent-object.ts).
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { createAgentControl } from '../../src/observe/agent-object.js';
import type { ReleaseStatusRecord } from '../../src/observe/status.js';

function controls(records: Partial<ReleaseStatusRecord>[]) {
  const agent = { metadata: { name: 'c1', namespace: 'mooring', generation: 1 }, spec: {} };
  const customObjects = {
    getNamespacedCustomObject: () => Promise.resolve(agent),
  } as unknown as CustomObjectsApi;
  return createAgentControl({
    customObjects,
    namespace: 'mooring',
    cluster: 'c1',
    identity: 'test',
    version: 'test',
    releases: { list: () => Promise.resolve(records as ReleaseStatusRecord[]) },
  });
}

describe('agent controls', () => {
  it('keep the same key when the agent merely records a new release', async () => {
    const before = await controls([]).read();
    const after = await controls([{ name: 'web' }, { name: 'api', suspend: false }]).read();
    expect(after.key).toBe(before.key);
    expect(after.releaseRequests).toBe(false);
  });

  it('change the key when an operator suspends a release or asks for a reconcile', async () => {
    const quiet = await controls([{ name: 'web' }]).read();
    const suspended = await controls([{ name: 'web', suspend: true }]).read();
    const requested = await controls([{ name: 'web', reconcileRequestedAt: '2026-11-29T10:00:00Z' }]).read();
    expect(suspended.key).not.toBe(quiet.key);
    expect(requested.key).not.toBe(quiet.key);
    expect(requested.releaseRequests).toBe(true);
    const handled = await controls([
      {
        name: 'web',
        reconcileRequestedAt: '2026-11-29T10:00:00Z',
        lastHandledReconcileAt: '2026-11-29T10:00:00Z',
      },
    ]).read();
    expect(handled.key).toBe(quiet.key);
  });
});
