// Keeps a GitSource in sync: a sync every interval, exponential backoff with jitter while the
// server fails, and an early sync when a verified webhook says the branch moved. It never
// throws: failures go to onError with the delay until the next attempt.
import type { Backoff } from './backoff.js';
import { GitSourceError } from './errors.js';
import type { SyncResult } from './git-source.js';

export interface SourcePollerOptions {
  source: { sync(): Promise<SyncResult> };
  /** Time between syncs while all is well (`--interval`). */
  intervalMs: number;
  backoff: Backoff;
  /** Resolves after `ms`, or as soon as `wake` aborts. Injected so tests control time. */
  sleep?: (ms: number, wake: AbortSignal) => Promise<void>;
  /** Each successful sync, changed or not. Errors it throws go to onError. */
  onSync: (result: SyncResult) => void | Promise<void>;
  /** A failed sync (GitSourceError) or a failing onSync, and the delay before the next sync. */
  onError: (error: Error, retryInMs: number) => void;
}

export class SourcePoller {
  private wake: AbortController | undefined;
  private backingOff = false;
  private syncing = false;
  private again = false;

  constructor(private readonly options: SourcePollerOptions) {}

  /**
   * Syncs now instead of at the end of the interval (a webhook). A trigger while a sync runs
   * makes another sync follow it, since the push may have landed after it looked. Ignored while
   * backing off from failures: notifications must not defeat the backoff. Returns whether it
   * will cause a sync.
   */
  trigger(): boolean {
    if (this.backingOff) return false;
    if (this.syncing) {
      this.again = true;
      return true;
    }
    this.wake?.abort();
    return this.wake !== undefined;
  }

  /** Syncs until `stop` aborts. */
  async run(stop: AbortSignal): Promise<void> {
    const { source, intervalMs, backoff, onSync, onError } = this.options;
    const sleep = this.options.sleep ?? defaultSleep;
    while (!stop.aborted) {
      let delay = intervalMs;
      this.syncing = true;
      this.again = false;
      try {
        const result = await source.sync();
        backoff.succeed();
        this.backingOff = false;
        try {
          await onSync(result);
        } catch (err) {
          onError(err instanceof Error ? err : new Error(String(err)), delay);
        }
      } catch (err) {
        delay = backoff.fail();
        this.backingOff = true;
        const failure =
          err instanceof GitSourceError
            ? err
            : new GitSourceError(
                'protocol',
                `sync failed: ${err instanceof Error ? err.message : String(err)}`,
              );
        onError(failure, delay);
      } finally {
        this.syncing = false;
      }
      if (stop.aborted) break;
      if (this.again && !this.backingOff) continue;
      const wake = new AbortController();
      const onStop = () => wake.abort();
      stop.addEventListener('abort', onStop, { once: true });
      this.wake = wake;
      try {
        await sleep(delay, wake.signal);
      } finally {
        this.wake = undefined;
        stop.removeEventListener('abort', onStop);
      }
    }
  }
}

function defaultSleep(ms: number, wake: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (wake.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      wake.removeEventListener('abort', done);
      resolve();
    }
    wake.addEventListener('abort', done, { once: true });
  });
}
