import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/observe/metrics.js';

const sample = (body: string, series: string): number | undefined => {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('agent metrics', () => {
  it('live in their own registry, so two agents in one process count apart', async () => {
    const one = createMetrics({ processMetrics: false });
    const two = createMetrics({ processMetrics: false });

    one.converged('web', 'success', 1_700_000_000_000);

    expect(sample((await one.render()).body, 'mooring_converges_total{release="web",result="success"}')).toBe(
      1,
    );
    expect((await two.render()).body).not.toContain('release="web"');
    expect(globalRegistry.getSingleMetric('mooring_converges_total')).toBeUndefined();
  });

  it('count helm processes by command, not by their arguments', async () => {
    const m = createMetrics({ processMetrics: false });

    m.helmSpawned(['upgrade', 'web', './charts/web', '--install', '--values', '-']);
    m.helmSpawned(['get', 'metadata', 'web', '--namespace', 'web']);
    m.helmSpawned(['get', 'metadata', 'cache']);

    const body = (await m.render()).body;
    expect(sample(body, 'mooring_helm_processes_total{command="upgrade"}')).toBe(1);
    expect(sample(body, 'mooring_helm_processes_total{command="get metadata"}')).toBe(2);
    expect(body).not.toContain('charts/web');
  });

  it('report releases by state, with every state present', async () => {
    const m = createMetrics({ processMetrics: false });

    m.setReleaseStates({ ready: 3, failed: 1 });

    const body = (await m.render()).body;
    expect(sample(body, 'mooring_releases{state="ready"}')).toBe(3);
    expect(sample(body, 'mooring_releases{state="failed"}')).toBe(1);
    expect(sample(body, 'mooring_releases{state="drifted"}')).toBe(0);
  });

  it('record the last converge and drift check as Unix seconds', async () => {
    const m = createMetrics({ processMetrics: false });

    m.converged('web', 'failure', 1_700_000_000_000);
    m.driftChecked({ drifted: 4, corrected: 3, failed: 1 }, 1_700_000_060_000);
    m.setPendingApprovals(2);
    m.setLeader(true);
    m.passCompleted('converged', 12);
    m.gitPolled(false);
    m.gitPolled(true);
    m.gitFetched();
    m.sourceFailed();

    const body = (await m.render()).body;
    expect(sample(body, 'mooring_last_converge_timestamp_seconds{release="web"}')).toBe(1_700_000_000);
    expect(sample(body, 'mooring_converge_failures_total{release="web"}')).toBe(1);
    expect(body).not.toContain('mooring_last_successful_converge_timestamp_seconds{release="web"}');
    expect(sample(body, 'mooring_drift_detected_total')).toBe(4);
    expect(sample(body, 'mooring_drift_corrected_total')).toBe(3);
    expect(sample(body, 'mooring_last_drift_check_timestamp_seconds')).toBe(1_700_000_060);
    expect(sample(body, 'mooring_pending_approvals')).toBe(2);
    expect(sample(body, 'mooring_leader')).toBe(1);
    expect(sample(body, 'mooring_passes_total{outcome="converged"}')).toBe(1);
    expect(sample(body, 'mooring_git_polls_total{changed="true"}')).toBe(1);
    expect(sample(body, 'mooring_git_fetches_total')).toBe(1);
    expect(sample(body, 'mooring_git_failures_total')).toBe(1);
    expect((await m.render()).contentType).toMatch(/^text\/plain/);
  });
});
