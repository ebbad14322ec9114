#!/usr/bin/env node
// How much the agent adds to a one-release change: 20 releases converged, one values file
// changes. Measures the time from the commit (and the push webhook a forge would send) to
// the agent's "pass finished ... converged" log line for that revision, and compares it with
// a plain `helm upgrade --install --wait` of the same change to a twin release outside
// mooring. ROUNDS of each, alternating; compares medians. Goal: ratio at most 1.2.
//
// Run twice: with Deployments ready at once (the local control plane has no kubelet; helm is
// then pure CPU and mooring's fixed cost shows in full) and with rollouts taking ROLLOUT_MS
// (default 2000), as pods starting in a real cluster do. Prints figures; asserts nothing.
// Needs the compiled agent (npm run build).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  chartFiles,
  clusterFiles,
  machine,
  median,
  now,
  pushWebhook,
  round,
  startAgent,
  startBenchRig,
  writeTree,
  agentArgs,
} from './lib/agent-rig.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const ROLLOUTS = [0, Number(process.env.ROLLOUT_MS ?? 2000)];
const RELEASES = 20;
const CHANGED = 'r07';
const SECRET = 'bench-webhook-secret';

async function measure(rolloutMs) {
  const cluster = `bench-one-${Date.now().toString(36)}`;
  const rig = await startBenchRig({ nsPrefix: cluster, rolloutMs });
  try {
    const repo = rig.createRepo('one', clusterFiles(cluster, cluster, RELEASES));
    const secretFile = join(rig.scratch, 'webhook-secret');
    writeFileSync(secretFile, SECRET);
    const agent = startAgent(
      agentArgs(repo, cluster, rig, '1h', ['--webhook-secret-file', secretFile]),
      rig.env,
    );
    await agent.waitForLog((l) => l.msg === 'pass finished' && l.outcome === 'converged');
    const address = agent.lines.find((l) => l.msg === 'listening').address;

    // The twin: the same chart, installed by hand with helm, in a namespace of its own.
    const chartDir = join(rig.scratch, 'twin-chart');
    writeTree(chartDir, chartFiles('app'));
    const twin = [
      'upgrade',
      'twin',
      join(chartDir, 'app'),
      '--install',
      '--namespace',
      `${cluster}-twin`,
      '--create-namespace',
      '--values',
      '-',
      '--wait',
      '--timeout',
      '2m',
    ];
    await rig.helm(twin, `config: {release: twin, v: "1"}\n`);

    const agentMs = [];
    const helmMs = [];
    const helmBefore = rig.helmStarts().length;
    for (let i = 0; i < ROUNDS; i++) {
      const v = String(i + 2);
      const sha = repo.commit({
        [`environments/bench/values/${CHANGED}.yaml`]: `config: {release: ${CHANGED}, v: "${v}"}\n`,
      });
      const started = now();
      await pushWebhook(address, SECRET);
      const done = await agent.waitForLog((l) => l.msg === 'pass finished' && l.revision === sha);
      if (done.outcome !== 'converged')
        throw new Error(`pass for ${sha} ended ${done.outcome}: ${done.error}`);
      agentMs.push(done.receivedAt - started);

      helmMs.push(await rig.helm(twin, `config: {release: twin, v: "${v}"}\n`));
    }
    const agentHelm = rig.helmStarts().slice(helmBefore);
    await agent.stop();
    return { agentMs, helmMs, agentHelm };
  } finally {
    await rig.stop();
  }
}

console.log(`agent, one changed release among ${RELEASES}: ${ROUNDS} rounds; ${machine()}`);
const rows = {};
const notes = [];
for (const rolloutMs of ROLLOUTS) {
  const { agentMs, helmMs, agentHelm } = await measure(rolloutMs);
  const a = median(agentMs);
  const h = median(helmMs);
  const label = rolloutMs ? `rollouts take ${rolloutMs} ms` : 'rollouts ready at once';
  rows[label] = {
    'mooring median ms': round(a, 0),
    'helm upgrade median ms': round(h, 0),
    'mooring - helm ms': round(a - h, 0),
    'ratio mooring / helm': round(a / h),
  };
  notes.push(
    `${label}: mooring ${agentMs.map((x) => round(x, 0)).join(' ')} ms; helm ${helmMs.map((x) => round(x, 0)).join(' ')} ms; helm processes the agent started: ${agentHelm.length} (${[...new Set(agentHelm)].join(', ')})`,
  );
}
console.table(rows);
for (const n of notes) console.log(n);
console.log(
  'mooring: commit + push webhook -> "pass finished" converged; helm: helm upgrade --install --wait of the same change',
);
console.log('goal: ratio at most 1.2');
