// The agent's log as a log pipeline (Loki, Elasticsearch, Cloud Logging) reads it: the real
// `mooring run --once` process writing JSON lines to stdout. Every line has a string level
// and a component; an error is always `err`; converges, passes and drift checks say how long
// they took; the start-up line names the version and commit, and the approval mode passes
// use (the stricter of --approval and cluster.yaml) has a line of its own.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { packageVersion } from '../../src/version.js';
import { spawnAgent, startRig, uniqueName, type AgentRig, type TestRepo } from '../rig/agent.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

const COMMIT = 'c0ffee0000000000000000000000000000000001';
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

type Line = Record<string, unknown>;

/** One `mooring run --once` as its own process: its exit code and its log lines, parsed. */
async function runOnceProcess(repo: TestRepo, cluster: string): Promise<{ code?: number; lines: Line[] }> {
  const agent = spawnAgent(
    [
      '--repo',
      repo.url,
      '--cluster',
      cluster,
      '--namespace',
      `${cluster}-agent`,
      '--identity',
      `${cluster}-replica`,
      '--work-dir',
      `${rig.dir}/${cluster}-work`,
      '--approval',
      'auto',
      '--once',
    ],
    { ...rig.env, MOORING_COMMIT: COMMIT },
  );
  const { exitCode } = await agent.waitForExit();
  const text = agent.output().trim();
  // Every line of output is one JSON object: nothing else is printed.
  const lines = text.split('\n').map((l, i) => {
    try {
      return JSON.parse(l) as Line;
    } catch {
      throw new Error(`line ${i + 1} is not JSON: ${l}\n--- whole output:\n${text}`);
    }
  });
  return { ...(exitCode === undefined ? {} : { code: exitCode }), lines };
}

function only(lines: Line[], msg: string, match: Line = {}): Line {
  const found = lines.filter((l) => l.msg === msg && Object.entries(match).every(([k, v]) => l[k] === v));
  expect(
    found,
    `one "${msg}" line ${JSON.stringify(match)} in ${JSON.stringify(lines, null, 1)}`,
  ).toHaveLength(1);
  return found[0]!;
}

describe('the agent log', () => {
  it('has string levels, a component on every line, err as the one error field, durations, and the version, commit and effective mode', async () => {
    const cluster = uniqueName('logs');
    const repo = await rig.createRepo(
      rig.clusterRepo(cluster, { good: {}, broken: {} }, { broken: 'failRender: on purpose\n' }),
    );

    const first = await runOnceProcess(repo, cluster);
    expect(first.code).toBe(1);
    for (const line of first.lines) {
      expect(LEVELS, JSON.stringify(line)).toContain(line.level);
      expect(typeof line.component, JSON.stringify(line)).toBe('string');
      expect(line, 'errors are logged as err').not.toHaveProperty('error');
    }

    const starting = only(first.lines, 'mooring agent starting');
    expect(starting).toMatchObject({
      level: 'info',
      component: 'agent',
      version: packageVersion(),
      commit: COMMIT,
      configuredApproval: 'auto',
      cluster,
    });
    expect(only(first.lines, 'effective approval mode')).toMatchObject({
      component: 'agent',
      approval: 'auto',
      configured: 'auto',
    });

    const converged = only(first.lines, 'converged', { release: 'good' });
    expect(converged).toMatchObject({ level: 'info', component: 'converge', action: 'install' });
    expect(converged.durationSeconds).toBeGreaterThan(0);
    const failed = only(first.lines, 'converge failed', { release: 'broken' });
    expect(failed).toMatchObject({ level: 'warn', component: 'converge' });
    expect(failed.err).toContain('cannot render: on purpose');
    expect(typeof failed.durationSeconds).toBe('number');

    const pass = only(first.lines, 'pass finished');
    expect(pass).toMatchObject({ level: 'info', component: 'agent', outcome: 'failed' });
    expect(pass.durationSeconds).toBeGreaterThanOrEqual(converged.durationSeconds as number);
    const drift = only(first.lines, 'drift check finished');
    expect(drift).toMatchObject({ component: 'drift' });
    expect(typeof drift.durationSeconds).toBe('number');
    // cluster.yaml makes the cluster manual: the agent still says --approval auto at start-up,
    // and the mode its passes use is manual.
    await repo.commit({
      [`clusters/${cluster}/cluster.yaml`]: 'environment: test\nsync: {mode: manual}\n',
      'environments/test/values/broken.yaml': null,
    });
    const second = await runOnceProcess(repo, cluster);
    expect(second.code).toBe(3);
    expect(only(second.lines, 'mooring agent starting')).toMatchObject({ configuredApproval: 'auto' });
    expect(only(second.lines, 'effective approval mode')).toMatchObject({
      level: 'info',
      component: 'agent',
      approval: 'manual',
      configured: 'auto',
    });
  });
});
