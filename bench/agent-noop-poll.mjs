#!/usr/bin/env node
// What the agent costs in its steady state: a poll of a branch that did not move, with 20
// releases converged. Runs `mooring run` (the loop, --interval 1s) as a child process and,
// over POLLS passes, counts the Git server's requests and bytes, the agent's CPU time (from
// /proc) and the processes it starts (a helm wrapper notes each one; the agent starts no
// other programs: Git and SOPS are in-process). Goal: 1 request and 0 processes per poll.
// Prints figures; asserts nothing. Needs the compiled agent (npm run build).
import {
  cpuMs,
  clusterFiles,
  machine,
  round,
  startAgent,
  startBenchRig,
  agentArgs,
} from './lib/agent-rig.mjs';

const POLLS = Number(process.env.POLLS ?? 30);
const RELEASES = 20;
const cluster = `bench-poll-${Date.now().toString(36)}`;
const rig = await startBenchRig({ nsPrefix: cluster });
try {
  const repo = rig.createRepo('poll', clusterFiles(cluster, cluster, RELEASES));
  const agent = startAgent(agentArgs(repo, cluster, rig, '1s'), rig.env);
  const passes = () => agent.lines.filter((l) => l.msg === 'pass finished');
  await agent.waitForLog((l) => l.msg === 'pass finished' && l.outcome === 'converged');
  // Let the first passes (converge, first drift check) settle.
  await agent.waitForLog(() => passes().length >= 3);
  const address = agent.lines.find((l) => l.msg === 'listening').address;

  const startPasses = passes().length;
  const startRequests = rig.git.requests.length;
  const startTraffic = rig.git.traffic();
  const startCpu = cpuMs(agent.pid);
  const startHelm = rig.helmStarts().length;
  await agent.waitForLog(() => passes().length >= startPasses + POLLS);
  const n = passes().length - startPasses;
  const cpu = cpuMs(agent.pid) - startCpu;
  const requests = rig.git.requests.slice(startRequests);
  const traffic = rig.git.traffic();
  const helm = rig.helmStarts().length - startHelm;
  const metrics = await (await fetch(`http://${address}/metrics`)).text();
  await agent.stop();

  console.log(
    `agent no-op poll: ${RELEASES} releases converged, ${n} polls of an unchanged branch; ${machine()}`,
  );
  console.table({
    'per poll': {
      'git requests': round(requests.length / n),
      'request kinds': [...new Set(requests.map((r) => `${r.method} ${r.command ?? r.query}`))].join(', '),
      'wire bytes in (to the server)': Math.round((traffic.bytesIn - startTraffic.bytesIn) / n),
      'wire bytes out (to the agent)': Math.round((traffic.bytesOut - startTraffic.bytesOut) / n),
      'agent CPU ms': round(cpu / n, 1),
      'processes started': round(helm / n),
    },
  });
  const polls = metrics.split('\n').filter((l) => l.startsWith('mooring_git_polls_total'));
  console.log(`agent's own counters: ${polls.join('; ')}`);
  console.log('goal: 1 request and 0 processes per poll');
} finally {
  await rig.stop();
}
