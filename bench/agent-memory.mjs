#!/usr/bin/env node
// The agent's resident memory with 50 releases: `mooring run` (the loop, polling every
// 10s) converges 50 releases, then idles for IDLE_SECONDS while its RSS is sampled from
// /proc every 2s. Also reports the peak during the converge, and for scale, the RSS of a
// bare Node.js process that only imports @kubernetes/client-node. Measured as shipped
// (bin/mooring.js sets --optimize-for-size and --no-opt itself) and with
// NODE_OPTIONS-compatible --max-semi-space-size=1 on top (see docs/agent.md).
// Goal: under 100 MiB idle. Prints figures; asserts nothing.
// Needs the compiled agent (npm run build).
import { execa } from 'execa';
import {
  clusterFiles,
  machine,
  round,
  rssMiB,
  sleep,
  startAgent,
  startBenchRig,
  agentArgs,
} from './lib/agent-rig.mjs';

const RELEASES = Number(process.env.RELEASES ?? 50);
const IDLE_SECONDS = Number(process.env.IDLE_SECONDS ?? 60);
const VARIANTS = [[], ['--max-semi-space-size=1']];

async function measure(nodeFlags) {
  const cluster = `bench-mem-${Date.now().toString(36)}`;
  const rig = await startBenchRig({ nsPrefix: cluster });
  try {
    const repo = rig.createRepo('mem', clusterFiles(cluster, cluster, RELEASES));
    const agent = startAgent(agentArgs(repo, cluster, rig, '10s'), rig.env, nodeFlags);
    let peak = 0;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssMiB(agent.pid));
      } catch {
        // Not started yet, or gone.
      }
    }, 250);
    const first = await agent.waitForLog((l) => l.msg === 'pass finished');
    clearInterval(sampler);
    if (first.outcome !== 'converged')
      throw new Error(`first pass ended ${first.outcome}\n${agent.output().slice(-4000)}`);
    const afterConverge = rssMiB(agent.pid);
    const idle = [];
    for (let t = 0; t < IDLE_SECONDS; t += 2) {
      await sleep(2000);
      idle.push(rssMiB(agent.pid));
    }
    const passes = agent.lines.filter((l) => l.msg === 'pass finished').length;
    const address = agent.lines.find((l) => l.msg === 'listening').address;
    const metrics = await (await fetch(`http://${address}/metrics`)).text();
    const heap = Number(/^mooring_nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1] ?? NaN);
    await agent.stop();
    return {
      'peak converging': round(peak, 1),
      'after converge': round(afterConverge, 1),
      'idle min': round(Math.min(...idle), 1),
      'idle max': round(Math.max(...idle), 1),
      'idle last': round(idle.at(-1), 1),
      'V8 heap used': round(heap / 2 ** 20, 1),
      passes,
    };
  } finally {
    await rig.stop();
  }
}

const { stdout } = await execa(process.execPath, [
  '--input-type=module',
  '-e',
  "await import('@kubernetes/client-node'); await new Promise((r) => setTimeout(r, 500)); console.log(process.memoryUsage().rss)",
]);
const floor = Number(stdout) / 2 ** 20;

console.log(
  `agent resident memory (MiB), ${RELEASES} releases, ${IDLE_SECONDS}s idle polling every 10s; ${machine()}`,
);
const rows = {};
for (const flags of VARIANTS) {
  rows[flags.length > 0 ? `node ${flags.join(' ')}` : 'as shipped'] = await measure(flags);
}
console.table(rows);
console.log(`for scale: a node process that only imports @kubernetes/client-node: ${round(floor, 1)} MiB`);
console.log('goal: under 100 MiB idle');
