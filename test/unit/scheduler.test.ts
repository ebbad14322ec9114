import { describe, expect, it } from 'vitest';
import { runInOrder } from '../../src/converge/scheduler.js';

function deferred() {
  let resolve!: (ok: boolean) => void;
  const promise = new Promise<boolean>((r) => (resolve = r));
  return { promise, resolve };
}

describe('runInOrder', () => {
  it('starts a release only after its dependencies succeeded', async () => {
    const events: string[] = [];
    const graph = new Map([
      ['db', []],
      ['web', ['db']],
      ['worker', ['web', 'db']],
    ]);
    const result = await runInOrder({
      dependsOn: graph,
      concurrency: 4,
      succeeded: (ok: boolean) => ok,
      run: async (name) => {
        events.push(`start ${name}`);
        await new Promise((r) => setTimeout(r, 5));
        events.push(`end ${name}`);
        return true;
      },
    });
    expect(events).toEqual(['start db', 'end db', 'start web', 'end web', 'start worker', 'end worker']);
    expect([...result.done.keys()].sort()).toEqual(['db', 'web', 'worker']);
  });

  it('runs independent releases in parallel, never more than the bound', async () => {
    let running = 0;
    let peak = 0;
    const graph = new Map(Array.from({ length: 8 }, (_, i) => [`r${i}`, [] as string[]]));
    await runInOrder({
      dependsOn: graph,
      concurrency: 3,
      succeeded: () => true,
      run: async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return true;
      },
    });
    expect(peak).toBe(3);
  });

  it('does not run dependents of a failed release, and says which dependency stopped them', async () => {
    const ran: string[] = [];
    const result = await runInOrder({
      dependsOn: new Map([
        ['web', []],
        ['worker', ['web']],
        ['reports', ['worker']],
        ['cache', []],
      ]),
      concurrency: 2,
      succeeded: (ok: boolean) => ok,
      run: async (name) => {
        ran.push(name);
        return name !== 'web';
      },
    });
    expect(ran.sort()).toEqual(['cache', 'web']);
    expect(result.blocked).toEqual(
      new Map([
        ['worker', 'web'],
        ['reports', 'worker'],
      ]),
    );
  });

  it('lets a slow release not hold back an independent one', async () => {
    const slow = deferred();
    const order: string[] = [];
    const pass = runInOrder({
      dependsOn: new Map([
        ['slow', []],
        ['fast', []],
        ['after-fast', ['fast']],
      ]),
      concurrency: 2,
      succeeded: (ok: boolean) => ok,
      run: async (name) => {
        if (name === 'slow') return slow.promise.then((v) => (order.push(name), v));
        order.push(name);
        return true;
      },
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual(['fast', 'after-fast']);
    slow.resolve(true);
    await pass;
    expect(order).toEqual(['fast', 'after-fast', 'slow']);
  });

  it('stops starting new releases once the signal is aborted', async () => {
    const controller = new AbortController();
    const ran: string[] = [];
    const result = await runInOrder({
      dependsOn: new Map([
        ['a', []],
        ['b', ['a']],
      ]),
      concurrency: 1,
      signal: controller.signal,
      succeeded: () => true,
      run: async (name) => {
        ran.push(name);
        controller.abort();
        return true;
      },
    });
    expect(ran).toEqual(['a']);
    expect(result.blocked.get('b')).toBe('shutdown');
  });
});
