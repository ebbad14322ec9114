// The poller: syncs on an interval, backs off while syncs fail, and syncs early on a webhook.
import { describe, expect, test } from 'vitest';
import { Backoff } from '../../src/source/backoff.js';
import { GitSourceError } from '../../src/source/errors.js';
import type { SyncResult } from '../../src/source/git-source.js';
import { SourcePoller } from '../../src/source/poller.js';

const ok = (revision: string): SyncResult => ({
  snapshot: { revision, dir: `/snapshots/${revision}` },
  changed: true,
  fetched: true,
});
const down = () => new GitSourceError('server', 'git server answered HTTP 503');

/** A source answering from a script, and a clock that records every wait. */
interface Sleeping {
  ms: number;
  wake: AbortSignal;
  stop: AbortController;
  poller: SourcePoller;
}

function rig(
  script: Array<(poller: SourcePoller) => SyncResult>,
  onSleep: (s: Sleeping) => Promise<void> | void,
) {
  const stop = new AbortController();
  const waits: number[] = [];
  const events: string[] = [];
  const source = {
    sync: async (): Promise<SyncResult> => {
      const step = script.shift();
      if (!step) {
        stop.abort();
        throw new Error('script exhausted');
      }
      return step(poller);
    },
  };
  const poller: SourcePoller = new SourcePoller({
    source,
    intervalMs: 60_000,
    backoff: new Backoff({ baseMs: 1_000, capMs: 8_000, random: () => 0.5 }),
    sleep: async (ms, wake) => {
      waits.push(ms);
      await onSleep({ ms, wake, stop, poller });
    },
    onSync: (r) => void events.push(`synced ${r.snapshot.revision}`),
    onError: (e, retry) => void events.push(`${e.message} (retry in ${retry}ms)`),
  });
  return { poller, stop, waits, events };
}

describe('SourcePoller', () => {
  test('waits the interval after a success and backs off after failures', async () => {
    const { poller, stop, waits, events } = rig(
      [
        () => ok('a'),
        () => {
          throw down();
        },
        () => {
          throw down();
        },
        () => ok('b'),
      ],
      () => {},
    );

    await poller.run(stop.signal);

    expect(waits).toEqual([60_000, 500, 1_000, 60_000]);
    expect(events).toEqual([
      'synced a',
      'git server answered HTTP 503 (retry in 500ms)',
      'git server answered HTTP 503 (retry in 1000ms)',
      'synced b',
      'sync failed: script exhausted (retry in 500ms)',
    ]);
  });

  test('a trigger during the interval syncs at once', async () => {
    const woken: boolean[] = [];
    const aborted: boolean[] = [];
    const t = rig([() => ok('a'), () => ok('b')], ({ wake, poller }) => {
      woken.push(poller.trigger());
      aborted.push(wake.aborted);
    });

    await t.poller.run(t.stop.signal);

    expect(woken).toEqual([true, true]);
    expect(aborted).toEqual([true, true]);
    expect(t.events.slice(0, 2)).toEqual(['synced a', 'synced b']);
  });

  test('a trigger while backing off is ignored, so notifications cannot defeat the backoff', async () => {
    const woken: boolean[] = [];
    const aborted: boolean[] = [];
    const t = rig(
      [
        () => {
          throw down();
        },
        () => ok('a'),
      ],
      ({ wake, stop, poller }) => {
        woken.push(poller.trigger());
        aborted.push(wake.aborted);
        if (woken.length === 2) stop.abort();
      },
    );
    await t.poller.run(t.stop.signal);

    expect(t.waits).toEqual([500, 60_000]);
    expect(woken).toEqual([false, true]);
    expect(aborted).toEqual([false, true]);
  });

  test('a trigger during a sync makes another sync follow without waiting', async () => {
    const t = rig(
      [
        (poller) => {
          expect(poller.trigger()).toBe(true);
          return ok('a');
        },
        () => ok('b'),
      ],
      () => {},
    );
    await t.poller.run(t.stop.signal);

    expect(t.waits[0]).toBe(60_000);
    expect(t.events.slice(0, 2)).toEqual(['synced a', 'synced b']);
  });

  test('stopping ends the loop without another sync', async () => {
    const t = rig([() => ok('a'), () => ok('b')], ({ stop }) => stop.abort());

    await t.poller.run(t.stop.signal);

    expect(t.events).toEqual(['synced a']);
  });
});
