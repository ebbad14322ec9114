#!/usr/bin/env node
// A cold converge: 20 independent releases that do not exist yet. Times `mooring run --once`
// (process start, Git checkout, plan, 20 installs at --concurrency 4, records and Events)
// against what a script would do: a sequential loop of `helm upgrade --install --wait` of
// the same chart and values into fresh namespaces. ROUNDS of each, alternating; compares
// medians. Goal: mooring at least 2x faster.
//
// Run twice: with Deployments ready at once (helm is then CPU-bound, and on a small machine
// parallel helm processes compete with each other and the API server for the same cores)
// and with rollouts taking ROLLOUT_MS (default 2000), as pods starting in a real cluster do.
// Prints figures; asserts nothing. Needs the compiled agent (npm run build).
import { join } from 'node:path';
import {
  chartFiles,
  clusterFiles,
  machine,
  median,
  now,
  round,
  startAgent,
  startBenchRig,
  writeTree,
} from './lib/agent-rig.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 2);
const RELEASES = Number(process.env.RELEASES ?? 20);
const CONCURRENCY = process.env.CONCURRENCY ?? '4';
const ROLLOUTS = [0, Number(process.env.ROLLOUT_MS ?? 2000)];

async function measure(rolloutMs) {
  const prefix = `bench-cold-${Date.now().toString(36)}`;
  const rig = await startBenchRig({ nsPrefix: prefix, rolloutMs });
  try {
    const chartDir = join(rig.scratch, 'chart');
    writeTree(chartDir, chartFiles('app'));
    const agentMs = [];
    const helmMs = [];
    for (let r = 0; r < ROUNDS; r++) {
      const cluster = `${prefix}-m${r}`;
      const repo = rig.createRepo(`cold-${r}`, clusterFiles(cluster, cluster, RELEASES));
      const started = now();
      const agent = startAgent(
        [
          '--once',
          '--repo',
          repo.url,
          '--cluster',
          cluster,
          '--namespace',
          `${cluster}-agent`,
          '--work-dir',
          join(rig.scratch, `work-${r}`),
          '--concurrency',
          CONCURRENCY,
        ],
        rig.env,
      );
      const exit = await agent.exited;
      agentMs.push(now() - started);
      if (exit.code !== 0)
        throw new Error(`mooring run --once exited ${exit.code}\n${agent.output().slice(-4000)}`);

      const loopStarted = now();
      for (let i = 0; i < RELEASES; i++) {
        const name = `r${String(i).padStart(2, '0')}`;
        await rig.helm(
          [
            'upgrade',
            name,
            join(chartDir, 'app'),
            '--install',
            '--namespace',
            `${prefix}-h${r}-${name}`,
            '--create-namespace',
            '--values',
            '-',
            '--wait',
            '--timeout',
            '2m',
          ],
          `config: {release: ${name}, v: "1"}\n`,
        );
      }
      helmMs.push(now() - loopStarted);
    }
    return { agentMs, helmMs };
  } finally {
    await rig.stop();
  }
}

console.log(`agent cold converge of ${RELEASES} independent releases, ${ROUNDS} rounds; ${machine()}`);
const rows = {};
for (const rolloutMs of ROLLOUTS) {
  const { agentMs, helmMs } = await measure(rolloutMs);
  const a = median(agentMs);
  const h = median(helmMs);
  rows[rolloutMs ? `rollouts take ${rolloutMs} ms` : 'rollouts ready at once'] = {
    [`mooring --once (--concurrency ${CONCURRENCY}) s`]: round(a / 1000),
    'sequential helm loop s': round(h / 1000),
    'speed-up': `${round(h / a)}x`,
    'all mooring s': agentMs.map((x) => round(x / 1000, 1)).join(' '),
    'all helm s': helmMs.map((x) => round(x / 1000, 1)).join(' '),
  };
}
console.table(rows);
console.log('goal: at least 2x faster than the sequential loop');
