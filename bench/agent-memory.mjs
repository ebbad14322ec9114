#!/usr/bin/env node
// The agent's resident memory and its restart, with RELEASES (200) releases converged.
// One agent converges them once (`--once`); then each round starts a fresh agent over the
// converged cluster (a restart: helm's storage and the records are read, no helm runs),
// times its first pass, and samples its RSS from /proc every second while it idles for
// IDLE_SECONDS, polling Git every 10s. Two variants, interleaved round by round (A, B, A,
// B, ...): the agent with V8's optimizing compilers on (bench/lib/mooring-jit.mjs) and as
// shipped (bin/mooring.js sets `--optimize-for-size --no-opt --no-sparkplug`). Prints min
// and median per variant and their ratio. Goal: under 100 MiB idle with the JIT on.
// Asserts nothing. Needs the compiled agent (npm run build).
import { execaSync } from 'execa';
import {
  agentArgs,
  clusterFiles,
  machine,
  median,
  now,
  round,
  rssMiB,
  sleep,
  startAgent,
  startBenchRig,
} from './lib/agent-rig.mjs';

const RELEASES = Number(process.env.RELEASES ?? 200);
const IDLE_SECONDS = Number(process.env.IDLE_SECONDS ?? 30);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const JIT_ENTRY = new URL('./lib/mooring-jit.mjs', import.meta.url).pathname;
/** @type {Record<string, string | undefined>} the entry point of each variant (undefined: bin/mooring.js) */
const VARIANTS = {
  'JIT on (no V8 flags)': JIT_ENTRY,
  'JIT off (as shipped: --optimize-for-size --no-opt --no-sparkplug)': undefined,
};

const cluster = `bench-mem-${Date.now().toString(36)}`;
const rig = await startBenchRig({ nsPrefix: cluster });
const load = () => execaSync('uptime').stdout.replace(/.*load average:\s*/, '');

try {
  const repo = rig.createRepo('mem', clusterFiles(cluster, cluster, RELEASES));
  const args = agentArgs(repo, cluster, rig, '10s');
  console.log(`cold converge of ${RELEASES} releases, load ${load()}`);
  const cold = startAgent(args, rig.env);
  // On a loaded machine a pass can lose the lease and end early; the loop takes it back.
  await cold.waitForLog((l) => l.msg === 'pass finished' && l.outcome === 'converged', {
    timeoutMs: 3_600_000,
  });
  await cold.stop();

  /** @type {Record<string, {restart: number[], idleMedian: number[], idleMax: number[], heap: number[]}>} */
  const results = Object.fromEntries(
    Object.keys(VARIANTS).map((k) => [k, { restart: [], idleMedian: [], idleMax: [], heap: [] }]),
  );
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [name, entry] of Object.entries(VARIANTS)) {
      const started = now();
      const agent = entry ? startAgent(args, rig.env, [], entry) : startAgent(args, rig.env);
      const first = await agent.waitForLog((l) => l.msg === 'pass finished');
      const restart = now() - started;
      // On a loaded machine the first pass can lose the lease (its event loop starved past the
      // renew deadline); the agent takes it back and converges. Said, not hidden.
      const lost = agent.lines.some((l) => l.msg === 'lost leadership');
      const idle = [];
      for (let t = 0; t < IDLE_SECONDS; t++) {
        await sleep(1000);
        idle.push(rssMiB(agent.pid));
      }
      const address = agent.lines.find((l) => l.msg === 'listening').address;
      const metrics = await (await fetch(`http://${address}/metrics`)).text();
      const heap = Number(/^mooring_nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1] ?? NaN);
      await agent.stop();
      const row = results[name];
      row.restart.push(restart / 1000);
      row.idleMedian.push(median(idle));
      row.idleMax.push(Math.max(...idle));
      row.heap.push(heap / 2 ** 20);
      console.log(
        `round ${r} ${name}: first pass after start ${round(restart / 1000, 1)}s (${first.outcome}${lost ? ', lost the lease' : ''}), idle RSS median ${round(median(idle), 1)} MiB, max ${round(Math.max(...idle), 1)} MiB, load ${load()}`,
      );
    }
  }

  const summary = (/** @type {number[]} */ xs) => `${round(Math.min(...xs), 1)} / ${round(median(xs), 1)}`;
  console.log(
    `\nagent idle memory and restart, ${RELEASES} releases converged, ${ROUNDS} rounds interleaved, ${IDLE_SECONDS}s idle each; ${machine()}`,
  );
  console.table(
    Object.fromEntries(
      Object.entries(results).map(([name, r]) => [
        name,
        {
          'idle RSS MiB (min / median of rounds)': summary(r.idleMedian),
          'idle RSS max MiB (min / median)': summary(r.idleMax),
          'V8 heap used MiB (min / median)': summary(r.heap),
          'restart to first pass s (min / median)': summary(r.restart),
        },
      ]),
    ),
  );
  const [a, b] = Object.values(results);
  console.log(
    `ratio JIT on / JIT off: idle RSS ${round(median(a.idleMedian) / median(b.idleMedian))}, restart ${round(median(a.restart) / median(b.restart))} (medians)`,
  );
  console.log(`goal: idle RSS under 100 MiB with the JIT on; load at the end ${load()}`);
} finally {
  await rig.stop();
}
