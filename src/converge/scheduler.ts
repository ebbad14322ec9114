// Runs releases in dependsOn order with bounded parallelism: a release starts once every
// release it depends on has finished successfully; independent releases run side by side,
// at most `concurrency` at a time. A release whose dependency failed does not run.
export interface ScheduleResult<T> {
  /** The value each task returned. */
  done: Map<string, T>;
  /** Releases that did not run, with the dependency that stopped them. */
  blocked: Map<string, string>;
}

export async function runInOrder<T>(input: {
  dependsOn: ReadonlyMap<string, readonly string[]>;
  concurrency: number;
  run: (name: string) => Promise<T>;
  /** Whether a finished task lets its dependents start. */
  succeeded: (result: T) => boolean;
  signal?: AbortSignal;
}): Promise<ScheduleResult<T>> {
  const { dependsOn, run, succeeded } = input;
  const concurrency = Math.max(1, input.concurrency);
  const done = new Map<string, T>();
  const blocked = new Map<string, string>();
  const waiting = new Set(dependsOn.keys());
  const running = new Map<string, Promise<void>>();

  const ready = (name: string) =>
    (dependsOn.get(name) ?? []).every((d) => done.has(d) && succeeded(done.get(d)!));
  const failedDep = (name: string) =>
    (dependsOn.get(name) ?? []).find((d) => blocked.has(d) || (done.has(d) && !succeeded(done.get(d)!)));

  while (waiting.size > 0 || running.size > 0) {
    // Anything whose dependency failed (or was blocked) cannot run: mark it, transitively.
    let changed = true;
    while (changed) {
      changed = false;
      for (const name of [...waiting]) {
        const dep = failedDep(name);
        if (dep) {
          blocked.set(name, dep);
          waiting.delete(name);
          changed = true;
        }
      }
    }
    if (input.signal?.aborted) {
      for (const name of waiting) blocked.set(name, 'shutdown');
      waiting.clear();
    }
    for (const name of [...waiting].sort()) {
      if (running.size >= concurrency) break;
      if (!ready(name)) continue;
      waiting.delete(name);
      running.set(
        name,
        run(name).then((result) => {
          done.set(name, result);
          running.delete(name);
        }),
      );
    }
    if (running.size === 0) {
      // Nothing runs and nothing can start: only unknown dependencies are left.
      for (const name of waiting)
        blocked.set(name, (dependsOn.get(name) ?? []).find((d) => !dependsOn.has(d)) ?? 'unknown');
      waiting.clear();
      break;
    }
    await Promise.race(running.values());
  }
  return { done, blocked };
}
