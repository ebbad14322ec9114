// The operator's controls as the agent reads them before each pass (src/observe/agent-object.ts).
import { describe, expect, it } from 'vitest';
import { applyMergePatch, type Json } from '../../src/kube/merge-patch.js';
import { createAgentControl, type AgentObject, type AgentStatus } from '../../src/observe/agent-object.js';
import type { ReleaseStatusRecord } from '../../src/observe/status.js';

function controls(records: Partial<ReleaseStatusRecord>[]) {
  const agent = { metadata: { name: 'c1', namespace: 'mooring', generation: 1 }, spec: {} };
  const client = { request: () => Promise.resolve(structuredClone(agent)) } as never;
  return createAgentControl({
    client,
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

describe('the MooringAgent object, watch-fed', () => {
  /** A watched copy that is current and holds `object`; every request to the API is noted. */
  function watchedControls(object: AgentObject) {
    const requests: string[] = [];
    let stored = structuredClone(object);
    let version = Number(object.metadata.resourceVersion);
    const client = {
      request: (method: string, path: string, init?: { body?: { status?: Json } }) => {
        requests.push(`${method} ${path}`);
        if (method !== 'PATCH') throw new Error(`unexpected ${method}`);
        stored = {
          ...stored,
          status: applyMergePatch((stored.status ?? {}) as Json, init!.body!.status!) as AgentStatus,
          metadata: { ...stored.metadata, resourceVersion: String(++version) },
        };
        return Promise.resolve(structuredClone(stored));
      },
    };
    const copy = <T>(items: T[]) =>
      ({
        items: () => items,
        get: (name: string) => items.find((i) => (i as AgentObject).metadata.name === name) ?? null,
        ready: Promise.resolve(),
        subscribe: () => () => undefined,
        start: () => undefined,
        stop: () => undefined,
      }) as never;
    let clock = Date.parse('2026-11-30T00:00:00Z');
    const control = createAgentControl({
      client: client as never,
      watched: { agent: copy([object]), releases: copy([]) },
      namespace: 'mooring',
      cluster: 'c1',
      identity: 'pod-1',
      version: '1.0.0',
      releases: { list: () => Promise.resolve([]) },
      now: () => (clock += 60_000),
    });
    return { control, requests, stored: () => stored };
  }

  const agent: AgentObject = {
    apiVersion: 'mooring.io/v1alpha1',
    kind: 'MooringAgent',
    metadata: { name: 'c1', namespace: 'mooring', generation: 1, resourceVersion: '7' },
    spec: {},
  };
  const path = '/apis/mooring.io/v1alpha1/namespaces/mooring/mooringagents/c1/status';

  it('reads the controls without a request and records a pass that found the same nothing', async () => {
    const { control, requests, stored } = watchedControls(agent);
    const state = await control.read();
    expect(requests).toEqual([]);
    await control.passed(state, { outcome: 'converged', revision: 'a'.repeat(40) }, 'auto');
    expect(requests).toEqual([`PATCH ${path}`]);
    const first = stored().status!;
    expect(first).toMatchObject({
      lastPassOutcome: 'converged',
      shortRevision: 'aaaaaaa',
      identity: 'pod-1',
    });

    // The same outcome again, minutes later: nothing to say, nothing sent (lastPassAt stays).
    await control.passed(await control.read(), { outcome: 'converged', revision: 'a'.repeat(40) }, 'auto');
    expect(requests).toEqual([`PATCH ${path}`]);

    // Something changed: one patch, and lastPassAt moves with it.
    await control.passed(
      await control.read(),
      { outcome: 'failed', revision: 'a'.repeat(40), error: 'x' },
      'auto',
    );
    expect(requests).toEqual([`PATCH ${path}`, `PATCH ${path}`]);
    expect(stored().status!.lastPassOutcome).toBe('failed');
    expect(stored().status!.lastPassAt).not.toBe(first.lastPassAt);
  });
});
