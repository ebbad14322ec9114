// Webhook notifications: what a person on call should hear about (a failed converge, a
// rollback, corrected drift, a plan waiting for approval) posted to a chat webhook
// (Slack-compatible) or any HTTP endpoint (generic JSON). The notifier sees only what the
// agent records as Kubernetes Events, which are already free of secret values; it still
// passes every message through redactSecrets when it is given secret strings. The webhook
// URL is itself a secret (Slack's carries a token), so it is read from a file at each
// delivery (a rotated Secret is picked up) and never logged.
import { readFileSync } from 'node:fs';
import { redactSecrets } from '../secrets/redact.js';
import { MooringError } from '../errors.js';
import type { EventRecorder, EventType, ObjectRef } from './events.js';

export type NotifyFormat = 'slack' | 'json';
export const NOTIFY_FORMATS: readonly NotifyFormat[] = ['slack', 'json'];

/**
 * Event reasons that are sent. Everything else (Converged, Approved, Pruned, ...) is routine
 * and stays in Kubernetes Events and the agent's logs.
 */
export const NOTIFY_REASONS: readonly string[] = [
  'ConvergeFailed',
  'RolledBack',
  'Recovered',
  'DriftDetected',
  'DriftCorrected',
  'DriftCorrectionFailed',
  'PlanPending',
  'ApprovalRejected',
  'PruneFailed',
  'Orphaned',
  'InvalidConfiguration',
  'InvalidRevision',
  'SourceFailed',
];

/** One notification: an event the agent recorded, with where it happened. */
export interface Notification {
  cluster: string;
  /** Set when the event is about one release (its MooringRelease). */
  release?: string;
  /** The object the event is about, e.g. MooringRelease/web or Lease/mooring-eu-1. */
  object: { kind: string; name: string; namespace: string };
  type: EventType;
  reason: string;
  message: string;
  /** RFC 3339. */
  time: string;
}

/** What the notifier is told; it adds the cluster and the time. */
export type NotificationInput = Omit<Notification, 'cluster' | 'time'>;

export interface Notifier {
  /** Queues a notification (when its reason is one of `reasons`); never blocks or throws. */
  notify(input: NotificationInput): void;
  /** Waits until the queue is delivered (or given up), at most `timeoutMs`; resolves to what is left. */
  flush(timeoutMs?: number): Promise<{ pending: number }>;
}

export interface NotifierLog {
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface WebhookNotifierOptions {
  /** The webhook URL, read at each delivery (see urlFromFile). */
  url: () => string;
  format: NotifyFormat;
  cluster: string;
  /** Reasons that are sent (default NOTIFY_REASONS). */
  reasons?: readonly string[];
  /** Secret strings to remove from messages, should any have slipped into one. */
  secrets?: () => readonly string[];
  /** Attempts per notification (default 5). */
  attempts?: number;
  /** First retry delay; doubles per attempt, with jitter (default 1s). */
  baseDelayMs?: number;
  /** Longest delay between attempts, also the cap on Retry-After (default 30s). */
  maxDelayMs?: number;
  /** One request's time limit (default 10s). */
  timeoutMs?: number;
  /** The same event (release, reason, message) is not sent again within this window (default 1h). */
  repeatAfterMs?: number;
  /** Notifications waiting at most; beyond it the oldest are dropped (default 100). */
  maxQueue?: number;
  fetch?: typeof fetch;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  log?: NotifierLog;
}

/** Reads the webhook URL from a file (a mounted Secret); the error never shows its content. */
export function urlFromFile(path: string): () => string {
  return () => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch (err) {
      throw new MooringError(
        `cannot read the notification webhook URL: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        { file: path, field: '--notify-url-file' },
      );
    }
    if (!/^https?:\/\/[^\s]+$/.test(text)) {
      throw new MooringError('the notification webhook URL file must hold one http(s) URL', {
        file: path,
        field: '--notify-url-file',
      });
    }
    return text;
  };
}

/** The request body for `format`. */
export function notificationPayload(n: Notification, format: NotifyFormat): Record<string, unknown> {
  if (format === 'json') {
    return {
      source: 'mooring',
      cluster: n.cluster,
      ...(n.release === undefined ? {} : { release: n.release }),
      object: n.object,
      type: n.type,
      reason: n.reason,
      message: n.message,
      time: n.time,
    };
  }
  // Slack incoming webhooks (and the many chat tools that accept the same shape): `text`
  // with mrkdwn, in which &, < and > must be escaped.
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const icon = n.type === 'Warning' ? ':warning:' : ':information_source:';
  const subject = n.release === undefined ? `${n.object.kind} ${n.object.name}` : `release ${n.release}`;
  return {
    text: `${icon} *${esc(n.reason)}* ${esc(subject)} on cluster *${esc(n.cluster)}*\n${esc(n.message)}`,
  };
}

const RETRIABLE_STATUS = (status: number) => status === 408 || status === 429 || status >= 500;

export function createWebhookNotifier(options: WebhookNotifierOptions): Notifier {
  const reasons = new Set(options.reasons ?? NOTIFY_REASONS);
  const attempts = options.attempts ?? 5;
  const baseDelayMs = options.baseDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const repeatAfterMs = options.repeatAfterMs ?? 3_600_000;
  const maxQueue = options.maxQueue ?? 100;
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  const log = options.log;

  const queue: Notification[] = [];
  // Event key -> when it was last queued, so a release failing the same way on every retry
  // pass is announced once an hour, not once a minute.
  const lastSent = new Map<string, number>();
  let draining: Promise<void> | undefined;

  function delayFor(attempt: number, retryAfter: string | null): number {
    const seconds = retryAfter === null ? NaN : Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, maxDelayMs);
    return Math.min(baseDelayMs * 2 ** (attempt - 1), maxDelayMs) * (0.5 + random() / 2);
  }

  /** One notification, retried; resolves whether or not it was delivered. */
  async function deliver(n: Notification): Promise<void> {
    const body = JSON.stringify(notificationPayload(n, options.format));
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let retryAfter: string | null = null;
      let problem: string;
      try {
        const res = await doFetch(options.url(), {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'mooring' },
          body,
          signal: AbortSignal.timeout(timeoutMs),
          redirect: 'error',
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          log?.debug?.({ reason: n.reason, release: n.release, attempt }, 'notification sent');
          return;
        }
        problem = `HTTP ${res.status}`;
        if (!RETRIABLE_STATUS(res.status)) {
          log?.warn({ reason: n.reason, release: n.release, problem }, 'notification refused; not retried');
          return;
        }
        retryAfter = res.headers.get('retry-after');
      } catch (err) {
        if (err instanceof MooringError) {
          log?.warn({ reason: n.reason, err: err.describe() }, 'notification not sent');
          return;
        }
        // Only the error's code: a fetch error can carry the URL, which is a secret.
        problem = errorCode(err);
      }
      if (attempt === attempts) {
        log?.warn({ reason: n.reason, release: n.release, problem, attempts }, 'notification not delivered');
        return;
      }
      await sleep(delayFor(attempt, retryAfter));
    }
  }

  async function drain(): Promise<void> {
    while (queue.length > 0) await deliver(queue.shift()!);
    draining = undefined;
  }

  return {
    notify(input) {
      if (!reasons.has(input.reason)) return;
      const secrets = options.secrets?.() ?? [];
      const message = secrets.length > 0 ? redactSecrets(input.message, secrets) : input.message;
      const at = now();
      const key = [input.object.kind, input.object.name, input.reason, message].join('\u0000');
      const previous = lastSent.get(key);
      if (previous !== undefined && at - previous < repeatAfterMs) return;
      lastSent.set(key, at);
      if (lastSent.size > 4096) lastSent.delete(lastSent.keys().next().value!);
      queue.push({
        ...input,
        message,
        cluster: options.cluster,
        time: new Date(at).toISOString(),
      });
      if (queue.length > maxQueue) {
        const dropped = queue.splice(0, queue.length - maxQueue);
        log?.warn({ dropped: dropped.length }, 'notification queue full; dropped the oldest');
      }
      draining ??= drain();
    },

    async flush(timeout = 15_000) {
      if (draining !== undefined) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          draining,
          new Promise<void>((r) => {
            timer = setTimeout(r, timeout);
            timer.unref();
          }),
        ]);
        clearTimeout(timer);
      }
      return { pending: queue.length + (draining === undefined ? 0 : 1) };
    },
  };
}

function errorCode(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timeout';
    const cause = (err as Error & { cause?: { code?: unknown } }).cause;
    if (typeof cause?.code === 'string') return cause.code;
    return err.name;
  }
  return 'error';
}

/**
 * An event recorder that also notifies: every event it records (about a release, the
 * agent's Lease, a plan or an approval) is offered to the notifier. Wrapping the recorder
 * rather than each caller means every part of the agent that reports an event is covered.
 */
export function notifyingRecorder(
  recorder: EventRecorder,
  notifier: Notifier,
  namespace: string,
): EventRecorder {
  const offer = (object: ObjectRef, type: EventType, reason: string, message: string) =>
    notifier.notify({
      ...(object.kind === 'MooringRelease' ? { release: object.name } : {}),
      object: { kind: object.kind, name: object.name, namespace: object.namespace },
      type,
      reason,
      message,
    });
  return {
    record(regarding, type, reason, message) {
      offer(regarding, type, reason, message);
      return recorder.record(regarding, type, reason, message);
    },
    emit(release, type, reason, message) {
      offer({ apiVersion: '', kind: 'MooringRelease', name: release, namespace }, type, reason, message);
      recorder.emit(release, type, reason, message);
    },
    forObject(regarding) {
      const inner = recorder.forObject(regarding);
      return {
        emit(type, reason, message) {
          offer(regarding, type, reason, message);
          inner.emit(type, reason, message);
        },
      };
    },
    async flush() {
      await recorder.flush();
    },
  };
}
