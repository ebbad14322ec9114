#!/usr/bin/env node
// Chaos: kill -9 of the agent's PID alone (not its process group), at a random moment of a
// converge of RELEASES releases, ROUNDS times. Each round commits a change to every release,
// lets the running agent start on it, kills it after a random delay (0 to KILL_MAX_MS), and
// starts the next agent, which must converge everything (waiting out the dead one's lease
// and, for a release it left pending, that revision's helm timeout). Throughout, every helm
// process is sampled from /proc every 100 ms.
//
// Prints, per round and in total: releases stuck (not converged to the round's commit
// within LIMIT_S), double upgrades (a release upgraded successfully twice to one commit,
// counted from mooring's marks in helm's storage), overlaps (two helm upgrades of one
// release at once), helm processes that outlived their agent, and the recovery time.
// The goal is zero stuck, zero doubles, zero overlaps. Asserts nothing. Needs the compiled
// agent and mooring-leash next to helm (node scripts/setup.mjs).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as k8s from '@kubernetes/client-node';
import {
  HELM,
  clusterFiles,
  machine,
  median,
  now,
  round,
  sleep,
  startAgent,
  startBenchRig,
} from './lib/agent-rig.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 20);
const RELEASES = Number(process.env.RELEASES ?? 20);
const KILL_MAX_MS = Number(process.env.KILL_MAX_MS ?? 8000);
const ROLLOUT_MS = Number(process.env.ROLLOUT_MS ?? 1500);
const LIMIT_S = Number(process.env.LIMIT_S ?? 180);
// A small deterministic generator, so that a run can be repeated (SEED).
let seed = Number(process.env.SEED ?? 13);
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

/** helm upgrade processes alive now, as `<namespace> <pid> <ppid>`. */
function helmUpgrades(prefix) {
  const found = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'helm') continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const ns = args[args.indexOf('--namespace') + 1] ?? '';
      if (args[1] === 'upgrade' && ns.startsWith(prefix))
        found.push({ ns, pid: Number(pid), ppid: Number(fields[1]) });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const prefix = `chaos-${Date.now().toString(36)}`;
const cluster = prefix;
const agentNs = `${cluster}-agent`;
const rig = await startBenchRig({ nsPrefix: prefix, rolloutMs: ROLLOUT_MS });
// The real helm, with mooring-leash next to it (the bench rig's counting wrapper has none).
const env = { ...rig.env, MOORING_HELM: HELM };
const kc = new k8s.KubeConfig();
kc.loadFromFile(rig.kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const custom = kc.makeApiClient(k8s.CustomObjectsApi);

const names = Array.from({ length: RELEASES }, (_, i) => `r${String(i).padStart(2, '0')}`);
const repo = rig.createRepo('chaos', clusterFiles(cluster, prefix, RELEASES, { timeout: '5s' }));
let agents = 0;
const start = () =>
  startAgent(
    [
      ...[
        '--repo',
        repo.url,
        '--cluster',
        cluster,
        '--namespace',
        agentNs,
        '--identity',
        `agent-${++agents}`,
      ],
      ...['--work-dir', join(rig.scratch, `work-${agents}`), '--interval', '1s', '--log-level', 'warn'],
    ],
    env,
  );

async function records() {
  const list = await custom
    .listNamespacedCustomObject({
      group: 'mooring.io',
      version: 'v1alpha1',
      namespace: agentNs,
      plural: 'mooringreleases',
    })
    // Before the first agent installed the CRD.
    .catch(() => ({ items: [] }));
  return new Map(list.items.map((o) => [o.metadata.name, o.status ?? {}]));
}

/**
 * Successful helm revisions of each release made for `commit`, from mooring's marks. A
 * revision counts when helm finished it: status deployed or superseded, and the description
 * mooring passed (`mooring <commit>`), which helm keeps only on success. The status alone is
 * not enough: helm's next upgrade marks a failed latest revision superseded too (helm issue
 * 2832), among them the pending revisions mooring marked failed after a kill.
 */
async function upgradesTo(commit) {
  const counts = [];
  for (const name of names) {
    const secrets = await core.listNamespacedSecret({
      namespace: `${prefix}-${name}`,
      labelSelector: `owner=helm,name=${name},mooring.io/revision=${commit}`,
    });
    counts.push(
      secrets.items.filter(
        (s) =>
          ['deployed', 'superseded'].includes(s.metadata.labels.status) &&
          decodeRelease(s).info?.description === `mooring ${commit.slice(0, 7)}`,
      ).length,
    );
  }
  return counts;
}

/** The release record a helm storage Secret holds: base64 (Kubernetes) of base64 of gzip of JSON. */
function decodeRelease(secret) {
  const raw = Buffer.from(Buffer.from(secret.data.release, 'base64').toString('utf8'), 'base64');
  return JSON.parse((raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString('utf8'));
}

// Samples every helm upgrade: two at once on one release is an overlap; one whose parent is
// not a live agent for a second or more outlived it.
const stats = { overlaps: 0, orphans: new Set(), samples: 0 };
const orphanSince = new Map();
let live = new Set();
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    const procs = helmUpgrades(prefix);
    stats.samples++;
    const perNs = new Map();
    for (const p of procs) perNs.set(p.ns, (perNs.get(p.ns) ?? 0) + 1);
    stats.overlaps += [...perNs.values()].filter((n) => n > 1).length;
    for (const p of procs) {
      if (live.has(p.ppid)) continue;
      if (!orphanSince.has(p.pid)) orphanSince.set(p.pid, now());
      else if (now() - orphanSince.get(p.pid) >= 1000) stats.orphans.add(p.pid);
    }
    await sleep(100);
  }
})();

console.log(
  `agent chaos: ${RELEASES} releases, ${ROUNDS} rounds, kill -9 of the agent PID 0-${KILL_MAX_MS} ms into each converge, rollouts ${ROLLOUT_MS} ms, helm timeout 5s`,
);
console.log(machine());
let agent = start();
live.add(agent.pid);
const first = now();
await (async () => {
  for (;;) {
    const r = await records();
    if (names.every((n) => r.get(n)?.state === 'ready')) return;
    if (now() - first > LIMIT_S * 1000)
      throw new Error(`the first converge did not finish:\n${agent.output()}`);
    await sleep(500);
  }
})();

const totals = { stuck: 0, doubles: 0, midHelm: 0 };
const recovery = [];
for (let r = 1; r <= ROUNDS; r++) {
  const changes = Object.fromEntries(
    names.map((n) => [`environments/bench/values/${n}.yaml`, `config: {release: ${n}, round: "${r}"}\n`]),
  );
  const commit = repo.commit(changes, `round ${r}`);
  const delay = Math.round(random() * KILL_MAX_MS);
  await sleep(delay);
  const helmAtKill = helmUpgrades(prefix).filter((p) => p.ppid === agent.pid).length;
  if (helmAtKill > 0) totals.midHelm++;
  process.kill(agent.pid, 'SIGKILL');
  await agent.exited;
  live.delete(agent.pid);
  const killedAt = now();
  agent = start();
  live.add(agent.pid);
  let stuck = names.length;
  for (;;) {
    const recs = await records();
    stuck = names.filter(
      (n) => !(recs.get(n)?.state === 'ready' && recs.get(n)?.deployedRevision === commit),
    ).length;
    if (stuck === 0 || now() - killedAt > LIMIT_S * 1000) break;
    await sleep(500);
  }
  const seconds = (now() - killedAt) / 1000;
  const doubles = (await upgradesTo(commit)).filter((c) => c > 1).length;
  totals.stuck += stuck;
  totals.doubles += doubles;
  if (stuck === 0) recovery.push(seconds);
  console.log(
    `round ${String(r).padStart(2)}: killed ${String(delay).padStart(4)} ms in, ${helmAtKill} helm running; ` +
      `stuck ${stuck}, double upgrades ${doubles}, converged ${round(seconds, 1)} s after the kill`,
  );
}
sampling = false;
await sampler;
await agent.stop();
await rig.stop();

console.log(
  `\n${ROUNDS} rounds (${totals.midHelm} killed with helm running): releases stuck ${totals.stuck}, ` +
    `double upgrades ${totals.doubles}, overlaps ${stats.overlaps} (${stats.samples} samples), ` +
    `helm processes that outlived their agent ${stats.orphans.size}`,
);
if (recovery.length > 0) {
  console.log(
    `kill to converged: min ${round(Math.min(...recovery), 1)} s, median ${round(median(recovery), 1)} s, max ${round(Math.max(...recovery), 1)} s`,
  );
}
console.log(machine());
