// The watch-fed copy of a collection (src/kube/watch.ts), against a fake API server that
// answers a LIST and then plays watch streams the test scripts.
import { describe, expect, it } from 'vitest';
import { KubeApiError, type Query, type WatchHandlers } from '../../src/kube/rest.js';
import { watchCollection, type WatchedObject } from '../../src/kube/watch.js';

const obj = (name: string, rv: string, generation = 1): WatchedObject => ({
  metadata: { name, resourceVersion: rv, generation },
});

/** Each watch call takes the next script: events to send, then how the stream ends. */
function fakeClient(list: { items: WatchedObject[]; rv: string }[]) {
  const calls: string[] = [];
  const streams: Array<(h: WatchHandlers, signal?: AbortSignal) => Promise<void>> = [];
  const client = {
    request: <T>(method: string, path: string, init?: { query?: Query }): Promise<T> => {
      calls.push(`${method} ${path} ${JSON.stringify(init?.query ?? {})}`);
      const next = list.shift() ?? { items: [], rv: '0' };
      return Promise.resolve({ items: next.items, metadata: { resourceVersion: next.rv } } as T);
    },
    watch: (path: string, query: Query, handlers: WatchHandlers, signal?: AbortSignal): Promise<void> => {
      calls.push(`WATCH ${path} ${JSON.stringify(query)}`);
      const script = streams.shift();
      if (script) return script(handlers, signal);
      // No script: a stream that stays open until stopped.
      handlers.onOpen?.();
      return new Promise((_, reject) =>
        signal?.addEventListener('abort', () => reject(new Error('aborted'))),
      );
    },
  };
  return { client, calls, streams };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

describe('watchCollection', () => {
  it('lists once, then watches from the list resourceVersion; events update the copy and reach subscribers', async () => {
    const { client, calls, streams } = fakeClient([{ items: [obj('a', '5'), obj('b', '6')], rv: '10' }]);
    let send!: WatchHandlers;
    streams.push((h) => {
      send = h;
      h.onOpen?.();
      return new Promise(() => undefined);
    });
    const copy = watchCollection({ client, path: '/apis/x/v1/things', labelSelector: 'c=1', retryMs: 5 });
    const seen: string[] = [];
    copy.subscribe((before, after) =>
      seen.push(`${before?.metadata.resourceVersion ?? '-'}>${after?.metadata.resourceVersion ?? '-'}`),
    );
    expect(copy.items()).toBeUndefined();
    copy.start();
    await copy.ready;
    await tick();
    expect(calls).toEqual([
      'GET /apis/x/v1/things {"labelSelector":"c=1"}',
      'WATCH /apis/x/v1/things {"labelSelector":"c=1","allowWatchBookmarks":true,"resourceVersion":"10"}',
    ]);
    expect(copy.items()!.map((o) => o.metadata.name)).toEqual(['a', 'b']);
    send.onEvent('MODIFIED', obj('a', '11', 2) as never);
    send.onEvent('DELETED', obj('b', '12') as never);
    send.onEvent('BOOKMARK', { metadata: { resourceVersion: '13' } });
    expect(copy.get('a')?.metadata.generation).toBe(2);
    expect(copy.get('b')).toBeNull();
    expect(seen).toEqual(['->5', '->6', '5>11', '6>-']);
    copy.stop();
    expect(copy.items()).toBeUndefined();
  });

  it('is not current while the watch is down; resumes from the last resourceVersion, lists again after 410 Gone', async () => {
    const { client, calls, streams } = fakeClient([
      { items: [obj('a', '5')], rv: '10' },
      { items: [obj('a', '30')], rv: '31' },
    ]);
    let failed!: () => void;
    streams.push((h) => {
      h.onOpen?.();
      h.onEvent('BOOKMARK', { metadata: { resourceVersion: '20' } });
      return new Promise((_, reject) => (failed = () => reject(new Error('connection reset'))));
    });
    streams.push(() => Promise.reject(new KubeApiError(410, { code: 410 }, 'WATCH', '/x')));
    const errors: unknown[] = [];
    const copy = watchCollection({ client, path: '/x', retryMs: 20, onError: (e) => errors.push(e) });
    copy.start();
    await copy.ready;
    await tick();
    failed();
    await tick();
    expect(copy.items()).toBeUndefined();
    await new Promise((r) => setTimeout(r, 80));
    expect(
      calls.filter((c) => c.startsWith('WATCH')).map((c) => JSON.parse(c.slice(8)).resourceVersion),
    ).toEqual(['10', '20', '31']);
    expect(calls.filter((c) => c.startsWith('GET'))).toHaveLength(2);
    expect(copy.get('a')?.metadata.resourceVersion).toBe('30');
    expect(errors).toHaveLength(2);
    copy.stop();
  });
});
