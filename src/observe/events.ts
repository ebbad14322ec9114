// Kubernetes Events for what the agent does (converge, failure, rollback, drift, correction,
// approval, pruning), so `kubectl describe mrel <release>` and `kubectl get events` tell the
// story. Like client-go's recorder, a repeat of the same event bumps the count of the one
// already recorded instead of creating a new object. Emitting never blocks or throws: Events
// are best-effort, and failures go to `onError`. Messages must already be free of secrets.
import { apiErrorMessage, isNotFound } from '../kube/errors.js';
import { PATCH, type RestClient } from '../kube/rest.js';
import { MOORING_API_VERSION, MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from './crds.js';
import { truncate } from './status.js';

export type EventType = 'Normal' | 'Warning';

/** Reasons mooring uses; documented so alerts can match on them. */
export const EVENT_REASONS = [
  'Converged',
  'ConvergeFailed',
  'RolledBack',
  'Recovered',
  'DriftDetected',
  'DriftCorrected',
  'DriftCorrectionFailed',
  'DriftCheckFailed',
  'PlanPending',
  'Approved',
  'ApprovalRejected',
  'ApprovalSuperseded',
  'SyncModeIgnored',
  'InvalidRevision',
  'Pruned',
  'PruneFailed',
  'Orphaned',
  'InvalidConfiguration',
  'SourceFailed',
  'LeaderElected',
  'Suspended',
  'Resumed',
] as const;
export type EventReason = (typeof EVENT_REASONS)[number];

/** The object an event is about. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

export interface EventRecorderOptions {
  /** Writes the Events; also looks up MooringRelease uids, so `kubectl describe` finds the events. */
  client: Pick<RestClient, 'request'>;
  /** A MooringRelease uid known already (the status store saw it); saves the lookup. */
  releaseUid?: (release: string) => string | undefined;
  /** The agent's namespace, where MooringRelease objects (and their events) live. */
  namespace: string;
  /** Shown as the event source, e.g. the pod name. */
  instance?: string;
  now?: () => number;
  onError?: (err: Error) => void;
  /** Distinct events remembered for count bumps (default 4096). */
  cacheSize?: number;
}

export interface EventRecorder {
  /** Records an event about any object; resolves when it is written (or failed). */
  record(regarding: ObjectRef, type: EventType, reason: string, message: string): Promise<void>;
  /** Fire-and-forget event about a release's MooringRelease object. */
  emit(release: string, type: EventType, reason: string, message: string): void;
  /** A fire-and-forget emitter bound to one object (e.g. the agent's Lease or an Approval). */
  forObject(regarding: ObjectRef): { emit(type: EventType, reason: string, message: string): void };
  /** Waits for every event emitted so far to be written. */
  flush(): Promise<void>;
}

const COMPONENT = 'mooring';
const MESSAGE_LIMIT = 1024;

export function createEventRecorder(options: EventRecorderOptions): EventRecorder {
  const { client, namespace } = options;
  const now = options.now ?? Date.now;
  const cacheSize = options.cacheSize ?? 4096;
  // Event key -> the Event we created for it, for count bumps. Map order is our LRU order.
  const seen = new Map<string, { name: string; namespace: string; count: number }>();
  const uids = new Map<string, string>();
  const inFlight = new Set<Promise<void>>();
  let sequence = 0;

  const reportError = (err: unknown, what: string): void => {
    options.onError?.(new Error(`${what}: ${apiErrorMessage(err)}`));
  };

  async function releaseRef(release: string): Promise<ObjectRef> {
    const ref: ObjectRef = {
      apiVersion: MOORING_API_VERSION,
      kind: MOORING_KINDS.MooringRelease.kind,
      name: release,
      namespace,
    };
    let uid = options.releaseUid?.(release) ?? uids.get(release);
    if (uid === undefined) {
      try {
        const obj = await client.request<{ metadata?: { uid?: string } }>(
          'GET',
          `/apis/${MOORING_GROUP}/${MOORING_VERSION}/namespaces/${encodeURIComponent(namespace)}/${MOORING_KINDS.MooringRelease.plural}/${encodeURIComponent(release)}`,
        );
        uid = obj.metadata?.uid;
        if (uid !== undefined) uids.set(release, uid);
      } catch (err) {
        // A pruned release has no object any more; the event still names it.
        if (!isNotFound(err)) reportError(err, `looking up MooringRelease ${namespace}/${release}`);
      }
    }
    return uid === undefined ? ref : { ...ref, uid };
  }

  async function record(
    regarding: ObjectRef,
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    const text = truncate(message, MESSAGE_LIMIT);
    const key = [
      regarding.kind,
      regarding.namespace,
      regarding.name,
      regarding.uid ?? '',
      type,
      reason,
      text,
    ].join('\u0000');
    const at = new Date(now());
    const previous = seen.get(key);
    if (previous !== undefined) {
      seen.delete(key);
      try {
        await client.request(
          'PATCH',
          `${eventsPath(previous.namespace)}/${encodeURIComponent(previous.name)}`,
          {
            contentType: PATCH.merge,
            body: { count: previous.count + 1, lastTimestamp: rfc3339(at) },
          },
        );
        seen.set(key, { ...previous, count: previous.count + 1 });
        return;
      } catch (err) {
        // Events expire (an hour by default): start a new one.
        if (!isNotFound(err)) {
          reportError(err, `updating event ${previous.namespace}/${previous.name}`);
          return;
        }
      }
    }
    // client-go names events <object>.<unix nanos in hex>; the sequence keeps names unique within one millisecond.
    const name = `${regarding.name}.${(BigInt(at.getTime()) * 1_000_000n + BigInt(sequence++ % 1_000_000)).toString(16)}`;
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace: regarding.namespace },
      involvedObject: {
        apiVersion: regarding.apiVersion,
        kind: regarding.kind,
        name: regarding.name,
        namespace: regarding.namespace,
        ...(regarding.uid === undefined ? {} : { uid: regarding.uid }),
      },
      type,
      reason,
      message: text,
      count: 1,
      firstTimestamp: rfc3339(at),
      lastTimestamp: rfc3339(at),
      source: { component: COMPONENT, ...(options.instance === undefined ? {} : { host: options.instance }) },
      reportingComponent: COMPONENT,
      reportingInstance: options.instance ?? COMPONENT,
    };
    try {
      await client.request('POST', eventsPath(regarding.namespace), { body: event });
      seen.set(key, { name, namespace: regarding.namespace, count: 1 });
      if (seen.size > cacheSize) {
        const oldest = seen.keys().next().value;
        if (oldest !== undefined) seen.delete(oldest);
      }
    } catch (err) {
      reportError(
        err,
        `recording event ${reason} for ${regarding.kind} ${regarding.namespace}/${regarding.name}`,
      );
    }
  }

  function track(work: Promise<void>): void {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  }

  return {
    record,
    emit(release, type, reason, message) {
      track(releaseRef(release).then((ref) => record(ref, type, reason, message)));
    },
    forObject(regarding) {
      return { emit: (type, reason, message) => track(record(regarding, type, reason, message)) };
    },
    async flush() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
  };
}

const eventsPath = (namespace: string) => `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`;

/** metav1.Time: RFC 3339 to the second. */
const rfc3339 = (at: Date) => at.toISOString().replace(/\.\d{3}Z$/, 'Z');
