// The webhook notifier without a network: which events are sent, in which shape, how often,
// and how failures are retried. fetch, the clock and sleeping are injected.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EventRecorder } from '../../src/observe/events.js';
import {
  createWebhookNotifier,
  notificationPayload,
  notifyingRecorder,
  urlFromFile,
  type Notification,
  type NotificationInput,
  type WebhookNotifierOptions,
} from '../../src/observe/notify.js';

const URL_ = 'https://hooks.example.test/services/T000/B000/secret-token';

interface Call {
  url: string;
  body: Record<string, unknown>;
}

/** A fake fetch answering from a script of statuses (then 200), recording every call. */
function scriptedFetch(statuses: (number | 'network-error')[], headers: Record<string, string> = {}) {
  const calls: Call[] = [];
  const fake = (async (url: string, init: RequestInit) => {
    calls.push({ url, body: JSON.parse(init.body as string) as Record<string, unknown> });
    const next = statuses.shift() ?? 200;
    if (next === 'network-error') {
      throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
    }
    return new Response('', { status: next, headers });
  }) as unknown as typeof fetch;
  return { fake, calls };
}

function notifier(overrides: Partial<WebhookNotifierOptions> & Pick<WebhookNotifierOptions, 'fetch'>) {
  const sleeps: number[] = [];
  const warnings: { obj: object; msg: string }[] = [];
  let clock = Date.parse('2025-05-01T12:00:00Z');
  const n = createWebhookNotifier({
    url: () => URL_,
    format: 'json',
    cluster: 'eu-1',
    now: () => clock,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 1,
    log: { warn: (obj, msg) => warnings.push({ obj, msg }) },
    ...overrides,
  });
  return { n, sleeps, warnings, advance: (ms: number) => (clock += ms) };
}

const failed: NotificationInput = {
  release: 'web',
  object: { kind: 'MooringRelease', name: 'web', namespace: 'mooring-system' },
  type: 'Warning',
  reason: 'ConvergeFailed',
  message: 'revision abc1234: helm upgrade failed: timed out waiting for the condition',
};

describe('which events are sent', () => {
  it('sends failures, rollbacks, corrected drift and pending plans, and nothing routine', async () => {
    const { fake, calls } = scriptedFetch([]);
    const { n } = notifier({ fetch: fake });
    for (const reason of ['ConvergeFailed', 'RolledBack', 'DriftCorrected', 'PlanPending', 'SourceFailed']) {
      n.notify({ ...failed, reason });
    }
    for (const reason of ['Converged', 'Approved', 'Pruned', 'LeaderElected']) {
      n.notify({ ...failed, type: 'Normal', reason });
    }
    await n.flush();
    expect(calls.map((c) => c.body.reason)).toEqual([
      'ConvergeFailed',
      'RolledBack',
      'DriftCorrected',
      'PlanPending',
      'SourceFailed',
    ]);
  });

  it('announces the same failure once per hour, and a different one at once', async () => {
    const { fake, calls } = scriptedFetch([]);
    const { n, advance } = notifier({ fetch: fake });
    n.notify(failed);
    n.notify(failed);
    advance(59 * 60_000);
    n.notify(failed);
    n.notify({ ...failed, message: 'revision def5678: chart does not render' });
    advance(2 * 60_000);
    n.notify(failed);
    await n.flush();
    expect(calls.map((c) => c.body.message)).toEqual([
      failed.message,
      'revision def5678: chart does not render',
      failed.message,
    ]);
  });

  it('takes only the reasons it is given, when given a list', async () => {
    const { fake, calls } = scriptedFetch([]);
    const { n } = notifier({ fetch: fake, reasons: ['PlanPending'] });
    n.notify(failed);
    n.notify({ ...failed, type: 'Normal', reason: 'PlanPending', message: 'plan eu-1-abc waits' });
    await n.flush();
    expect(calls.map((c) => c.body.reason)).toEqual(['PlanPending']);
  });
});

describe('what is sent', () => {
  const sample: Notification = {
    cluster: 'eu-1',
    release: 'web',
    object: { kind: 'MooringRelease', name: 'web', namespace: 'mooring-system' },
    type: 'Warning',
    reason: 'RolledBack',
    message: 'rolled back to the last good state (helm revision 4) <after> a & b',
    time: '2025-05-01T12:00:00.000Z',
  };

  it('json: the event and where it happened, as fields', () => {
    expect(notificationPayload(sample, 'json')).toEqual({
      source: 'mooring',
      cluster: 'eu-1',
      release: 'web',
      object: { kind: 'MooringRelease', name: 'web', namespace: 'mooring-system' },
      type: 'Warning',
      reason: 'RolledBack',
      message: sample.message,
      time: '2025-05-01T12:00:00.000Z',
    });
  });

  it('slack: one mrkdwn text with &, < and > escaped', () => {
    expect(notificationPayload(sample, 'slack')).toEqual({
      text:
        ':warning: *RolledBack* release web on cluster *eu-1*\n' +
        'rolled back to the last good state (helm revision 4) &lt;after&gt; a &amp; b',
    });
  });

  it('slack: an event about the agent names its object instead of a release', () => {
    const { release: _release, ...rest } = sample;
    const payload = notificationPayload(
      { ...rest, object: { kind: 'Lease', name: 'mooring-eu-1', namespace: 'mooring-system' } },
      'slack',
    );
    expect(payload.text).toMatch(/^:warning: \*RolledBack\* Lease mooring-eu-1 on cluster \*eu-1\*/);
  });

  it('removes secret strings it is given from messages', async () => {
    const { fake, calls } = scriptedFetch([]);
    const { n } = notifier({ fetch: fake, secrets: () => ['hunter2-db-password'] });
    n.notify({ ...failed, message: 'Secret "db" is invalid: value hunter2-db-password rejected' });
    await n.flush();
    expect(JSON.stringify(calls[0]!.body)).not.toContain('hunter2-db-password');
    expect(calls[0]!.body.message).toBe('Secret "db" is invalid: value [redacted] rejected');
  });
});

describe('delivery', () => {
  it('retries network errors and 5xx with growing delays, then succeeds', async () => {
    const { fake, calls } = scriptedFetch(['network-error', 503, 500]);
    const { n, sleeps, warnings } = notifier({ fetch: fake, baseDelayMs: 100 });
    n.notify(failed);
    await n.flush();
    expect(calls).toHaveLength(4);
    expect(sleeps).toEqual([100, 200, 400]);
    expect(warnings).toEqual([]);
  });

  it('honours Retry-After on 429', async () => {
    const { fake, calls } = scriptedFetch([429], { 'retry-after': '7' });
    const { n, sleeps } = notifier({ fetch: fake });
    n.notify(failed);
    await n.flush();
    expect(calls).toHaveLength(2);
    expect(sleeps).toEqual([7000]);
  });

  it('gives up after the last attempt and says so without the URL', async () => {
    const { fake, calls } = scriptedFetch([502, 502, 502]);
    const { n, warnings } = notifier({ fetch: fake, attempts: 3 });
    n.notify(failed);
    await n.flush();
    expect(calls).toHaveLength(3);
    expect(warnings.map((w) => w.msg)).toEqual(['notification not delivered']);
    expect(JSON.stringify(warnings)).not.toContain('secret-token');
  });

  it('does not retry a refusal (4xx): the URL or payload is wrong, not the moment', async () => {
    const { fake, calls } = scriptedFetch([404]);
    const { n, warnings } = notifier({ fetch: fake });
    n.notify(failed);
    await n.flush();
    expect(calls).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ obj: { problem: 'HTTP 404' } });
  });

  it('delivers in order, and keeps only the newest when the queue overflows', async () => {
    const { fake, calls } = scriptedFetch([]);
    const { n, warnings } = notifier({ fetch: fake, maxQueue: 2 });
    for (const release of ['a', 'b', 'c', 'd'])
      n.notify({ ...failed, release, object: { ...failed.object, name: release } });
    await n.flush();
    // `a` was already in flight when the others were queued; `b` was dropped for `c` and `d`.
    expect(calls.map((c) => c.body.release)).toEqual(['a', 'c', 'd']);
    expect(warnings.map((w) => w.msg)).toContain('notification queue full; dropped the oldest');
  });
});

describe('the URL file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mooring-notify-'));

  it('is read at each delivery, so a rotated Secret takes effect', () => {
    const file = join(dir, 'url');
    writeFileSync(file, `${URL_}\n`);
    const read = urlFromFile(file);
    expect(read()).toBe(URL_);
    writeFileSync(file, 'https://hooks.example.test/rotated');
    expect(read()).toBe('https://hooks.example.test/rotated');
  });

  it('names the file, never its content, when it is not a URL', () => {
    const file = join(dir, 'bad');
    writeFileSync(file, 'xoxb-not-a-url-token');
    expect(() => urlFromFile(file)()).toThrow(/must hold one http\(s\) URL/);
    try {
      urlFromFile(file)();
    } catch (err) {
      expect(String(err)).not.toContain('xoxb');
      expect((err as { context: object }).context).toEqual({ file, field: '--notify-url-file' });
    }
  });

  it('a missing file is reported once per notification and nothing is sent', async () => {
    const { fake, calls } = scriptedFetch([]);
    const { n, warnings } = notifier({ fetch: fake, url: urlFromFile(join(dir, 'missing')) });
    n.notify(failed);
    await n.flush();
    expect(calls).toHaveLength(0);
    expect(warnings[0]!.msg).toBe('notification not sent');
    expect(JSON.stringify(warnings[0]!.obj)).toContain('ENOENT');
  });
});

describe('notifyingRecorder', () => {
  it('offers every event to the notifier and still records it', async () => {
    const recorded: string[] = [];
    const inner: EventRecorder = {
      record: async (ref, _type, reason) => {
        recorded.push(`${ref.kind}/${ref.name} ${reason}`);
      },
      emit: (release, _type, reason) => recorded.push(`MooringRelease/${release} ${reason}`),
      forObject: (ref) => ({ emit: (_type, reason) => recorded.push(`${ref.kind}/${ref.name} ${reason}`) }),
      flush: async () => undefined,
    };
    const offered: NotificationInput[] = [];
    const events = notifyingRecorder(
      inner,
      { notify: (i) => offered.push(i), flush: async () => ({ pending: 0 }) },
      'mooring-system',
    );
    events.emit('web', 'Warning', 'RolledBack', 'rolled back');
    events
      .forObject({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        name: 'mooring-eu-1',
        namespace: 'mooring-system',
      })
      .emit('Warning', 'SourceFailed', 'git unreachable');
    await events.record(
      {
        apiVersion: 'mooring.io/v1alpha1',
        kind: 'MooringPlan',
        name: 'eu-1-abc',
        namespace: 'mooring-system',
      },
      'Normal',
      'PlanPending',
      'waiting',
    );
    expect(recorded).toEqual([
      'MooringRelease/web RolledBack',
      'Lease/mooring-eu-1 SourceFailed',
      'MooringPlan/eu-1-abc PlanPending',
    ]);
    expect(offered).toEqual([
      {
        release: 'web',
        object: { kind: 'MooringRelease', name: 'web', namespace: 'mooring-system' },
        type: 'Warning',
        reason: 'RolledBack',
        message: 'rolled back',
      },
      {
        object: { kind: 'Lease', name: 'mooring-eu-1', namespace: 'mooring-system' },
        type: 'Warning',
        reason: 'SourceFailed',
        message: 'git unreachable',
      },
      {
        object: { kind: 'MooringPlan', name: 'eu-1-abc', namespace: 'mooring-system' },
        type: 'Normal',
        reason: 'PlanPending',
        message: 'waiting',
      },
    ]);
  });
});
