// Watches a collection and calls back when an object's spec (metadata.generation) or one of
// a few annotations changed: what an operator does, not what the agent writes to status.
// Reconnects after the API server ends the watch or the connection drops.
import { Watch, type KubeConfig } from '@kubernetes/client-node';

export interface ChangeWatchOptions {
  kubeConfig: KubeConfig;
  /** The collection's API path, e.g. /apis/mooring.io/v1alpha1/namespaces/ns/mooringagents. */
  path: string;
  labelSelector?: string;
  /** Annotations whose change counts, besides metadata.generation. */
  annotations: readonly string[];
  onChange(name: string): void;
  onError?(err: unknown): void;
  /** Delay before reconnecting (default 5s). */
  retryMs?: number;
}

interface WatchedObject {
  metadata?: { name?: string; generation?: number; annotations?: Record<string, string> };
}

/** Starts watching; the returned function stops it. */
export function watchChanges(options: ChangeWatchOptions): () => void {
  const seen = new Map<string, string>();
  let stopped = false;
  let current: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;

  const fingerprint = (obj: WatchedObject): string =>
    JSON.stringify([
      obj.metadata?.generation,
      ...options.annotations.map((a) => obj.metadata?.annotations?.[a]),
    ]);

  const start = (): void => {
    if (stopped) return;
    new Watch(options.kubeConfig)
      .watch(
        options.path,
        options.labelSelector ? { labelSelector: options.labelSelector } : {},
        (phase: string, obj: WatchedObject) => {
          const name = obj.metadata?.name;
          if (name === undefined) return;
          if (phase === 'DELETED') {
            seen.delete(name);
            return;
          }
          const now = fingerprint(obj);
          const before = seen.get(name);
          seen.set(name, now);
          // The first sight of an object (the watch's initial list) is no change.
          if (before !== undefined && before !== now) options.onChange(name);
        },
        (err: unknown) => {
          current = undefined;
          if (stopped) return;
          if (err) options.onError?.(err);
          timer = setTimeout(start, options.retryMs ?? 5000);
          timer.unref();
        },
      )
      .then(
        (controller) => {
          if (stopped) controller.abort();
          else current = controller;
        },
        (err: unknown) => {
          if (stopped) return;
          options.onError?.(err);
          timer = setTimeout(start, options.retryMs ?? 5000);
          timer.unref();
        },
      );
  };
  start();
  return () => {
    stopped = true;
    clearTimeout(timer);
    current?.abort();
  };
}
