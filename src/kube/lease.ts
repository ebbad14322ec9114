// Leader election on a coordination.k8s.io/v1 Lease, so that two agent replicas never
// converge at once. It follows client-go's rules: a lease is taken over only when its
// holder has not renewed it for a full lease duration *as observed by our own clock*
// (so clock skew between nodes does not matter), writes use the resourceVersion for
// optimistic concurrency, and a leader that cannot renew within the renew deadline steps
// down before its lease can expire for others. Time and sleeping are injected.
import { apiErrorMessage, isConflict, isNotFound } from './errors.js';
import type { RestClient } from './rest.js';

/** A coordination.k8s.io/v1 Lease, as much of it as election reads. */
interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  client: Pick<RestClient, 'request'>;
  namespace: string;
  /** Lease name, e.g. `mooring-<cluster>`. */
  name: string;
  /** This replica, e.g. the pod name; must differ between replicas. */
  identity: string;
  /** How long a lease stays valid without renewal (default 15). */
  leaseDurationSeconds?: number;
  /** A leader that has not renewed for this long steps down (default 10; below the lease duration). */
  renewDeadlineSeconds?: number;
  /** Time between attempts to acquire or renew (default 2). */
  retryPeriodSeconds?: number;
  /** Milliseconds since the epoch; defaults to Date.now. */
  clock?: () => number;
  /** Waits `ms` or until `signal` aborts; defaults to a timer. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  /** Called when the observed holder changes (undefined: nobody holds the lease). */
  onNewLeader?: (identity: string | undefined) => void;
  /** API errors while acquiring or renewing; election continues. */
  onError?: (err: Error) => void;
}

export interface LeaderElector {
  readonly identity: string;
  /**
   * True while we lead *and* our last successful renewal is younger than the renew deadline,
   * by the clock, not by the last attempt's answer: a replica whose event loop or API calls
   * stalled stops counting as leader before its lease can expire for the others.
   */
  isLeader(): boolean;
  /** One attempt to acquire or renew the lease; true while we lead. */
  tryAcquireOrRenew(): Promise<boolean>;
  /** Gives the lease up, if we hold it, so another replica can take over at once. */
  release(): Promise<void>;
  /** Tries every retry period until `signal` aborts, then releases the lease. */
  run(signal: AbortSignal): Promise<void>;
}

type Attempt = 'leading' | 'held-by-other' | 'error';

export function createLeaderElector(options: LeaderElectionOptions): LeaderElector {
  const leaseDurationSeconds = options.leaseDurationSeconds ?? 15;
  const renewDeadlineMs = (options.renewDeadlineSeconds ?? 10) * 1000;
  const retryPeriodMs = (options.retryPeriodSeconds ?? 2) * 1000;
  const clock = options.clock ?? Date.now;
  const sleep = options.sleep ?? sleepFor;
  const { client, namespace, name, identity } = options;
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  const leasePath = `${collection}/${encodeURIComponent(name)}`;
  if (renewDeadlineMs >= leaseDurationSeconds * 1000) {
    throw new Error('leader election: the renew deadline must be shorter than the lease duration');
  }

  let leading = false;
  let lastRenewAt = 0;
  // What we last saw of the lease and when (by our clock): the basis for deciding expiry.
  let observed: { key: string; at: number } | undefined;
  let observedHolder: string | undefined;

  function observe(lease: Lease, now: number): void {
    const holder = nonEmpty(lease.spec?.holderIdentity);
    const key = `${holder ?? ''}|${lease.metadata?.resourceVersion ?? ''}`;
    if (observed?.key !== key) observed = { key, at: now };
    if (holder !== observedHolder) {
      observedHolder = holder;
      options.onNewLeader?.(holder);
    }
  }

  function startLeading(now: number): void {
    lastRenewAt = now;
    if (!leading) {
      leading = true;
      options.onStartedLeading?.();
    }
  }

  function stopLeading(): void {
    if (leading) {
      leading = false;
      options.onStoppedLeading?.();
    }
  }

  function spec(now: number, previous: Lease['spec'], keepAcquireTime: boolean): NonNullable<Lease['spec']> {
    return {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTime:
        keepAcquireTime && previous?.acquireTime !== undefined ? micro(previous.acquireTime) : micro(now),
      renewTime: micro(now),
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (keepAcquireTime ? 0 : 1),
    };
  }

  async function attempt(): Promise<Attempt> {
    const now = clock();
    let current: Lease;
    try {
      current = await client.request<Lease>('GET', leasePath);
    } catch (err) {
      if (!isNotFound(err)) return failed(err);
      try {
        const created = await client.request<Lease>('POST', collection, {
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: { ...spec(now, undefined, false), leaseTransitions: 0 },
          },
        });
        observe(created, now);
        return 'leading';
      } catch (createErr) {
        // Another replica created it first: it leads.
        return isConflict(createErr) ? 'held-by-other' : failed(createErr);
      }
    }
    observe(current, now);
    const holder = nonEmpty(current.spec?.holderIdentity);
    const weHold = holder === identity;
    const duration = (current.spec?.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (holder !== undefined && !weHold && (observed?.at ?? now) + duration > now) return 'held-by-other';
    try {
      const updated = await client.request<Lease>('PUT', leasePath, {
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          // The resourceVersion makes this a compare-and-swap: if anyone wrote in between, we get 409.
          metadata: { ...current.metadata, name, namespace },
          spec: spec(now, current.spec, weHold),
        },
      });
      observe(updated, now);
      return 'leading';
    } catch (err) {
      return isConflict(err) ? 'held-by-other' : failed(err);
    }
  }

  function failed(err: unknown): Attempt {
    options.onError?.(new Error(`leader election on lease ${namespace}/${name}: ${apiErrorMessage(err)}`));
    return 'error';
  }

  async function tryAcquireOrRenew(): Promise<boolean> {
    // The lease we write says renewTime = the start of the attempt, and others time its
    // expiry from when they see it, never earlier: count our lease from the start too.
    const started = clock();
    const result = await attempt();
    if (result === 'leading') startLeading(started);
    else if (result === 'held-by-other') stopLeading();
    // An API error does not end leadership at once, only once the renew deadline has passed.
    return isLeader();
  }

  function isLeader(): boolean {
    if (leading && clock() - lastRenewAt >= renewDeadlineMs) stopLeading();
    return leading;
  }

  async function release(): Promise<void> {
    if (!leading) return;
    stopLeading();
    try {
      const current = await client.request<Lease>('GET', leasePath);
      if (nonEmpty(current.spec?.holderIdentity) !== identity) return;
      const now = clock();
      // Like client-go: clear the holder and shorten the lease so the next replica need not wait.
      await client.request('PUT', leasePath, {
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { ...current.metadata, name, namespace },
          spec: {
            leaseDurationSeconds: 1,
            acquireTime: micro(now),
            renewTime: micro(now),
            leaseTransitions: current.spec?.leaseTransitions ?? 0,
          },
        },
      });
    } catch (err) {
      // Not fatal: the lease simply expires after its duration.
      options.onError?.(new Error(`releasing lease ${namespace}/${name}: ${apiErrorMessage(err)}`));
    }
  }

  return {
    identity,
    isLeader,
    tryAcquireOrRenew,
    release,
    async run(signal) {
      while (!signal.aborted) {
        await tryAcquireOrRenew();
        await sleep(retryPeriodMs, signal);
      }
      await release();
    },
  };
}

function nonEmpty(s: string | undefined | null): string | undefined {
  return s === undefined || s === null || s === '' ? undefined : s;
}

/** metav1.MicroTime: RFC 3339 with microseconds, as client-go writes it. */
function micro(t: number | string): string {
  return new Date(typeof t === 'number' ? t : Date.parse(t)).toISOString().replace(/Z$/, '000Z');
}

function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
