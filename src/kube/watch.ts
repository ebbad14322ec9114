// A watch-fed copy of one collection (an informer, as client-go calls it): one LIST, then a
// WATCH from the list's resourceVersion, with bookmarks so a reconnect resumes where it left
// off instead of listing again. Readers get the objects without a request; while the watch
// is down the copy says it is not current, and callers ask the API server themselves.
import { KubeApiError, type Query, type RestClient, type WatchEventType } from './rest.js';

export interface WatchedObject {
  metadata: {
    name: string;
    resourceVersion?: string;
    generation?: number;
    annotations?: Record<string, string>;
  };
}

export interface CollectionOptions {
  client: Pick<RestClient, 'request' | 'watch'>;
  /** The collection's API path, e.g. /apis/mooring.io/v1alpha1/namespaces/ns/mooringagents. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  onError?(err: unknown): void;
  /** Delay before reconnecting (default 5s). */
  retryMs?: number;
}

export interface WatchedCollection<T extends WatchedObject> {
  /** The objects, or undefined while the copy is not current (not listed yet, watch down). */
  items(): T[] | undefined;
  /** One object: `null` when the current copy has none, undefined when the copy is not current. */
  get(name: string): T | null | undefined;
  /** Resolves once the first list arrived (or the collection stopped). */
  readonly ready: Promise<void>;
  /**
   * Calls `listener` after each change of the copy (`before` is undefined for a new object,
   * `after` for a deleted one); returns a function that unsubscribes.
   */
  subscribe(listener: ChangeListener<T>): () => void;
  start(): void;
  stop(): void;
}

export type ChangeListener<T> = (before: T | undefined, after: T | undefined) => void;

/**
 * Which of two versions of an object is the later one. resourceVersions are opaque to
 * clients, but every API server backed by etcd hands out increasing integers; anything
 * else counts as newer, so the watch wins.
 */
export function isNewer(candidate: WatchedObject, than: WatchedObject | undefined): boolean {
  const a = candidate.metadata.resourceVersion;
  const b = than?.metadata.resourceVersion;
  if (a === undefined || b === undefined || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return true;
  return BigInt(a) >= BigInt(b);
}

export function watchCollection<T extends WatchedObject>(options: CollectionOptions): WatchedCollection<T> {
  const objects = new Map<string, T>();
  const listeners = new Set<ChangeListener<T>>();
  const changed = (before: T | undefined, after: T | undefined): void => {
    for (const listener of listeners) listener(before, after);
  };
  let current = false;
  let resourceVersion: string | undefined;
  let stopped = true;
  let abort: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  let wakeUp: (() => void) | undefined;
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));
  const selectors: Query = {
    ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
    ...(options.fieldSelector ? { fieldSelector: options.fieldSelector } : {}),
  };

  const put = (obj: T): void => {
    const before = objects.get(obj.metadata.name);
    objects.set(obj.metadata.name, obj);
    changed(before, obj);
  };
  const remove = (name: string): void => {
    const before = objects.get(name);
    objects.delete(name);
    if (before !== undefined) changed(before, undefined);
  };

  async function list(): Promise<void> {
    const answer = await options.client.request<{ items?: T[]; metadata?: { resourceVersion?: string } }>(
      'GET',
      options.path,
      { query: selectors },
    );
    const names = new Set<string>();
    for (const obj of answer.items ?? []) {
      names.add(obj.metadata.name);
      const before = objects.get(obj.metadata.name);
      if (before?.metadata.resourceVersion !== obj.metadata.resourceVersion) put(obj);
    }
    for (const name of [...objects.keys()]) if (!names.has(name)) remove(name);
    resourceVersion = answer.metadata?.resourceVersion;
  }

  async function run(): Promise<void> {
    while (!stopped) {
      abort = new AbortController();
      try {
        if (resourceVersion === undefined) await list();
        if (stopped) break;
        // Objects from a list are current; a resumed watch is current once the server took it.
        if (!current) {
          current = true;
          resolveReady();
        }
        await options.client.watch(
          options.path,
          { ...selectors, allowWatchBookmarks: true, ...(resourceVersion ? { resourceVersion } : {}) },
          {
            onOpen: () => {
              current = true;
            },
            onEvent: (type: WatchEventType, object) => {
              if (type === 'ERROR') {
                // 410 Gone: our resourceVersion is too old to resume from; list again.
                if ((object as { code?: number }).code === 410) resourceVersion = undefined;
                return;
              }
              const obj = object as unknown as T;
              resourceVersion = obj.metadata.resourceVersion ?? resourceVersion;
              if (type === 'BOOKMARK') return;
              if (type === 'DELETED') remove(obj.metadata.name);
              else put(obj);
            },
          },
          abort.signal,
        );
        // The server ends watches after a while: resume at once.
      } catch (err) {
        if (stopped) break;
        current = false;
        if (err instanceof KubeApiError && err.code === 410) resourceVersion = undefined;
        options.onError?.(err);
        await new Promise<void>((resolve) => {
          wakeUp = resolve;
          timer = setTimeout(resolve, options.retryMs ?? 5000);
          timer.unref();
        });
      }
    }
  }

  return {
    items: () => (current ? [...objects.values()] : undefined),
    get: (name) => (current ? (objects.get(name) ?? null) : undefined),
    ready,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    start() {
      if (!stopped) return;
      stopped = false;
      void run();
    },
    stop() {
      stopped = true;
      current = false;
      clearTimeout(timer);
      wakeUp?.();
      abort?.abort();
      resolveReady();
    },
  };
}
