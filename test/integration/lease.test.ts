// Leader election on a real Lease: two replicas, one leader, and takeover only after the
// leader releases the lease or stops renewing it for a full lease duration.
import type { RestClient } from '../../src/kube/rest.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import { createLeaderElector, type LeaderElectionOptions } from '../../src/kube/lease.js';

const ns = `lease-it-${Date.now().toString(36)}`;
let clients: KubeClients;

beforeAll(async () => {
  clients = createKubeClients(loadKubeConfig({ kubeconfig: inject('kubeconfig') }));
  await clients.core.createNamespace({ body: { metadata: { name: ns } } });
});

afterAll(async () => {
  await clients.core.deleteNamespace({ name: ns }).catch(() => undefined);
});

/** Two replicas sharing one clock that the test moves. */
function replicas(lease: string, extra: Partial<LeaderElectionOptions> = {}) {
  let now = Date.parse('2025-03-01T10:00:00Z');
  const log: string[] = [];
  const make = (identity: string) =>
    createLeaderElector({
      client: clients.rest,
      namespace: ns,
      name: lease,
      identity,
      clock: () => now,
      onStartedLeading: () => log.push(`${identity} leads`),
      onStoppedLeading: () => log.push(`${identity} stops`),
      ...extra,
    });
  return {
    a: make('mooring-a'),
    b: make('mooring-b'),
    log,
    advance: (seconds: number) => {
      now += seconds * 1000;
    },
  };
}

const readLease = (name: string) => clients.coordination.readNamespacedLease({ name, namespace: ns });

describe('leader election', () => {
  it('lets only one replica lead, and the leader keeps renewing', async () => {
    const { a, b, log, advance } = replicas('one-leader');

    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    advance(5);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    advance(5);
    expect(await b.tryAcquireOrRenew()).toBe(false);

    expect(log).toEqual(['mooring-a leads']);
    const lease = await readLease('one-leader');
    expect(lease.spec?.holderIdentity).toBe('mooring-a');
    expect(lease.spec?.leaseDurationSeconds).toBe(15);
  });

  it('takes over only after the leader has not renewed for a full lease duration', async () => {
    const { a, b, log, advance } = replicas('expiry');
    await a.tryAcquireOrRenew();
    expect(await b.tryAcquireOrRenew()).toBe(false);

    // a stops renewing (it hangs or died). b counts from when it last saw the lease change.
    advance(14);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    advance(2);
    expect(await b.tryAcquireOrRenew()).toBe(true);

    // The old leader finds out at its next attempt and steps down.
    expect(await a.tryAcquireOrRenew()).toBe(false);
    expect(a.isLeader()).toBe(false);
    expect(log).toEqual(['mooring-a leads', 'mooring-b leads', 'mooring-a stops']);
    const lease = await readLease('expiry');
    expect(lease.spec?.holderIdentity).toBe('mooring-b');
    expect(lease.spec?.leaseTransitions).toBe(1);
  });

  it('hands over at once when the leader releases the lease on shutdown', async () => {
    const { a, b, log } = replicas('release');
    await a.tryAcquireOrRenew();
    expect(await b.tryAcquireOrRenew()).toBe(false);

    await a.release();

    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(log).toEqual(['mooring-a leads', 'mooring-a stops', 'mooring-b leads']);
  });

  it('a leader that cannot reach the API server steps down once the renew deadline has passed', async () => {
    let reachable = true;
    const errors: string[] = [];
    // The real client, except that every call fails while the API server is "unreachable".
    const flaky = new Proxy(clients.rest, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) =>
          reachable
            ? (value as (...a: unknown[]) => unknown).apply(target, args)
            : Promise.reject(new Error('ECONNREFUSED'));
      },
    }) as RestClient;
    const { a, log, advance } = replicas('deadline', {
      client: flaky,
      onError: (e) => errors.push(e.message),
    });

    await a.tryAcquireOrRenew();
    reachable = false;
    advance(5);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    advance(5);
    expect(await a.tryAcquireOrRenew()).toBe(false);

    expect(log).toEqual(['mooring-a leads', 'mooring-a stops']);
    expect(errors[0]).toMatch(/leader election on lease .*\/deadline: ECONNREFUSED/);
  });

  it('a leader that could not renew in time (a stalled event loop) stops counting as leader before its lease can expire', async () => {
    const { a, b, log, advance } = replicas('stalled');
    await a.tryAcquireOrRenew();
    expect(await b.tryAcquireOrRenew()).toBe(false);

    // No attempt ran for 10 s: the renew deadline passed, 5 s before b may take the lease.
    advance(10);
    expect(a.isLeader()).toBe(false);
    expect(await b.tryAcquireOrRenew()).toBe(false);

    // Nobody took it meanwhile: a renews and leads again, and the Lease never changed hands.
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(a.isLeader()).toBe(true);
    expect(log).toEqual(['mooring-a leads', 'mooring-a stops', 'mooring-a leads']);
    const lease = await readLease('stalled');
    expect(lease.spec?.holderIdentity).toBe('mooring-a');
    expect(lease.spec?.leaseTransitions).toBe(0);
  });

  it('counts the lease from the start of a renewal, not from when its slow answer arrived', async () => {
    let now = Date.parse('2025-03-01T10:00:00Z');
    // An API server that takes 3 s (by the clock) to answer each call.
    const slow = new Proxy(clients.rest, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          try {
            return (await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)) as unknown;
          } finally {
            now += 3000;
          }
        };
      },
    }) as RestClient;
    const a = createLeaderElector({
      client: slow,
      namespace: ns,
      name: 'slow-renewal',
      identity: 'mooring-a',
      clock: () => now,
    });
    // Read (not found) and create: 6 s.
    expect(await a.tryAcquireOrRenew()).toBe(true);
    // The lease says renewTime = the start; 10 s after it a is no longer sure, whatever the answer's time.
    now += 4000;
    expect(a.isLeader()).toBe(false);
  });

  it('run() leads until its signal aborts, then releases the lease', async () => {
    const started = new AbortController();
    const shutdown = new AbortController();
    const elector = createLeaderElector({
      client: clients.rest,
      namespace: ns,
      name: 'run',
      identity: 'mooring-run',
      retryPeriodSeconds: 0.05,
      onStartedLeading: () => started.abort(),
    });

    const running = elector.run(shutdown.signal);
    await new Promise((r) => started.signal.addEventListener('abort', r, { once: true }));
    expect(elector.isLeader()).toBe(true);
    shutdown.abort();
    await running;

    expect(elector.isLeader()).toBe(false);
    expect((await readLease('run')).spec?.holderIdentity).toBeUndefined();
  });
});
