// How the status store writes MooringRelease records, against an API server in memory that
// applies merge patches and checks resourceVersions as the real one does: one PATCH per
// change, no read before a write, nothing sent when nothing changed, and a conflicting
// write from someone else read again and merged, not overwritten.
import { describe, expect, it } from 'vitest';
import { applyMergePatch, type Json } from '../../src/kube/merge-patch.js';
import { createStatusStore } from '../../src/observe/status.js';

interface Stored {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; labels?: object };
  status?: Record<string, unknown>;
}

/** The part of CustomObjectsApi the store uses, with the API server's rules, every request noted. */
function fakeApi() {
  const objects = new Map<string, Stored>();
  const requests: string[] = [];
  let version = 100;
  const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });
  const api = {
    async listNamespacedCustomObject() {
      requests.push('LIST');
      return { items: [...objects.values()].map((o) => structuredClone(o)) };
    },
    async getNamespacedCustomObject({ name }: { name: string }) {
      requests.push(`GET ${name}`);
      const obj = objects.get(name);
      if (!obj) throw apiError(404);
      return structuredClone(obj);
    },
    async createNamespacedCustomObject({ body }: { body: Stored }) {
      requests.push(`CREATE ${body.metadata.name}`);
      if (objects.has(body.metadata.name)) throw apiError(409);
      const obj: Stored = {
        metadata: { ...body.metadata, uid: `uid-${body.metadata.name}`, resourceVersion: String(++version) },
      };
      objects.set(body.metadata.name, obj);
      return structuredClone(obj);
    },
    async patchNamespacedCustomObjectStatus({
      name,
      body,
    }: {
      name: string;
      body: { metadata?: { resourceVersion?: string }; status: Json };
    }) {
      requests.push(`PATCH ${name} ${JSON.stringify(body.status)}`);
      const obj = objects.get(name);
      if (!obj) throw apiError(404);
      const precondition = body.metadata?.resourceVersion;
      if (precondition !== undefined && precondition !== obj.metadata.resourceVersion) throw apiError(409);
      obj.status = applyMergePatch((obj.status ?? {}) as Json, body.status) as Record<string, unknown>;
      obj.metadata.resourceVersion = String(++version);
      return structuredClone(obj);
    },
    async replaceNamespacedCustomObjectStatus() {
      throw new Error('the store must not PUT');
    },
    async deleteNamespacedCustomObject({ name }: { name: string }) {
      requests.push(`DELETE ${name}`);
      objects.delete(name);
      return {};
    },
  };
  /** A write by someone else (another tool, a person with kubectl). */
  const touch = (name: string, status: Record<string, unknown>) => {
    const obj = objects.get(name)!;
    obj.status = { ...obj.status, ...status };
    obj.metadata.resourceVersion = String(++version);
  };
  // The REST paths the store uses, routed to the verbs above.
  const rest = {
    request(method: string, path: string, init: { body?: unknown } = {}) {
      const [, name, sub] = /\/mooringreleases(?:\/([^/]+))?(?:\/(status))?$/.exec(path) ?? [];
      if (method === 'GET' && name === undefined) return api.listNamespacedCustomObject();
      if (method === 'GET') return api.getNamespacedCustomObject({ name: name! });
      if (method === 'POST') return api.createNamespacedCustomObject({ body: init.body as Stored });
      if (method === 'PATCH' && sub === 'status')
        return api.patchNamespacedCustomObjectStatus({ name: name!, body: init.body as never });
      if (method === 'PUT') return api.replaceNamespacedCustomObjectStatus();
      if (method === 'DELETE') return api.deleteNamespacedCustomObject({ name: name! });
      throw new Error(`unexpected ${method} ${path}`);
    },
  } as never;
  return { api: rest, objects, requests, touch };
}

const store = (api: never) =>
  createStatusStore({
    client: api,
    namespace: 'mooring-system',
    cluster: 'eu-1',
    now: () => Date.parse('2026-01-01T00:00:00Z'),
  });

describe('status store writes', () => {
  it('creates a record listed as absent without reading it, then writes each change with one PATCH', async () => {
    const fake = fakeApi();
    const s = store(fake.api);
    await s.list();
    await s.update('web', { state: 'progressing', desiredDigest: 'd1' });
    await s.update('web', { state: 'ready', deployedDigest: 'd1', helmRevision: 1 });

    expect(fake.requests.map((r) => r.split(' ').slice(0, 2).join(' '))).toEqual([
      'LIST',
      'CREATE web',
      'PATCH web',
      'PATCH web',
    ]);
    expect(fake.requests[3]).toContain('"state":"ready"');
    expect(fake.requests[3]).not.toContain('desiredDigest');
    expect(fake.objects.get('web')!.status).toMatchObject({
      state: 'ready',
      desiredDigest: 'd1',
      deployedDigest: 'd1',
      helmRevision: 1,
      release: 'web',
      cluster: 'eu-1',
    });
    expect(s.uid('web')).toBe('uid-web');
  });

  it('sends nothing when a write changes nothing', async () => {
    const fake = fakeApi();
    const s = store(fake.api);
    await s.update('web', { state: 'ready', desiredDigest: 'd1', lastError: null });
    await s.list();
    fake.requests.length = 0;

    await s.update('web', { state: 'ready', desiredDigest: 'd1', lastError: null });

    expect(fake.requests).toEqual([]);
  });

  it('removes a field with null in the patch', async () => {
    const fake = fakeApi();
    const s = store(fake.api);
    await s.update('web', { state: 'failed', lastError: 'boom' });
    await s.update('web', { state: 'ready', lastError: null });

    expect(fake.requests.at(-1)).toContain('"lastError":null');
    expect(fake.objects.get('web')!.status!.lastError).toBeUndefined();
    expect(fake.objects.get('web')!.status!.conditions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'Ready', status: 'True', reason: 'Converged' }),
      ]),
    );
  });

  it('reads again and keeps the other writer’s fields when the object changed meanwhile', async () => {
    const fake = fakeApi();
    const s = store(fake.api);
    await s.update('web', { state: 'ready', desiredDigest: 'd1' });
    fake.touch('web', {
      drift: { count: 1, fields: [], deletedObjects: [], corrected: false, checkedAt: 'x' },
    });
    fake.requests.length = 0;

    await s.update('web', { state: 'progressing', desiredDigest: 'd2' });

    expect(fake.requests.map((r) => r.split(' ').slice(0, 2).join(' '))).toEqual([
      'PATCH web', // refused: the resourceVersion moved
      'GET web',
      'PATCH web',
    ]);
    expect(fake.objects.get('web')!.status).toMatchObject({
      state: 'progressing',
      desiredDigest: 'd2',
      drift: { count: 1 },
    });
  });

  it('applies concurrent writes to one record in the order they were made', async () => {
    const fake = fakeApi();
    const s = store(fake.api);
    await s.list();
    await Promise.all([
      s.update('web', { state: 'progressing' }),
      s.update('web', { state: 'ready', helmRevision: 2 }),
    ]);
    expect(fake.objects.get('web')!.status).toMatchObject({ state: 'ready', helmRevision: 2 });
    expect(fake.requests.filter((r) => r.startsWith('GET'))).toEqual([]);
  });

  it('creates the object again when it was deleted behind its back', async () => {
    const fake = fakeApi();
    const s = store(fake.api);
    await s.update('web', { state: 'ready' });
    fake.objects.delete('web');

    await s.update('web', { state: 'failed', lastError: 'boom' });

    expect(fake.objects.get('web')!.status).toMatchObject({ state: 'failed', lastError: 'boom' });
  });
});

describe('status store fed by a watch', () => {
  it('lists from the watched copy without a request, takes the later of the copy and its own write', async () => {
    const fake = fakeApi();
    const writer = store(fake.api);
    await writer.update('web', { state: 'ready', desiredDigest: 'd1' });
    await writer.update('api', { state: 'ready' });
    // What a watch would hold: the objects as the API server has them now.
    const snapshot = () => [...fake.objects.values()].map((o) => structuredClone(o)) as never[];
    let items: never[] | undefined = snapshot();
    const watched = {
      items: () => items,
      get: (name: string) =>
        items === undefined
          ? undefined
          : ((items as { metadata: { name: string } }[]).find((o) => o.metadata.name === name) ?? null),
      ready: Promise.resolve(),
      subscribe: () => () => undefined,
      start: () => undefined,
      stop: () => undefined,
    } as never;
    const s = createStatusStore({
      client: fake.api,
      namespace: 'mooring-system',
      cluster: 'eu-1',
      watched,
    });
    fake.requests.length = 0;

    expect((await s.list()).map((r) => [r.name, r.desiredDigest])).toEqual([
      ['api', undefined],
      ['web', 'd1'],
    ]);
    // A new release the copy does not hold: created at once, no read first.
    await s.update('db', { state: 'progressing' });
    // Its own write is later than the copy: the next write starts from it, no conflict.
    await s.update('web', { desiredDigest: 'd2' });
    await s.update('web', { desiredDigest: 'd3' });
    expect(fake.requests.map((r) => r.split(' ').slice(0, 2).join(' '))).toEqual([
      'CREATE db',
      'PATCH db',
      'PATCH web',
      'PATCH web',
    ]);

    // The watch is down: the store asks the API server again.
    items = undefined;
    fake.requests.length = 0;
    expect((await s.list()).map((r) => r.name)).toEqual(['api', 'db', 'web']);
    expect(fake.requests).toEqual(['LIST']);
  });
});
