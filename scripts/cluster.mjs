#!/usr/bin/env node
// `npm run cluster -- up|down|mint`: a long-lived local control plane for trying mooring by
// hand (kubectl, helm, `mooring run --once`). State lives in <repo>/.work/cluster.
//
//   up                   start it (or find it already running); the last line of stdout is
//                        KUBECONFIG=<absolute path>, so `eval "$(npm run -s cluster -- up | tail -1)"`
//   down                 stop it; no process is left behind
//   mint USER [GROUP...] write a kubeconfig for USER (client certificate) and print its path,
//                        for RBAC demos: that user can do nothing until a binding allows it
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  isReady,
  isRunning,
  mintKubeconfig,
  readState,
  startControlPlane,
  stopControlPlane,
} from './lib/controlplane.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, '.work', 'cluster');

const USAGE = `usage: npm run cluster -- up | down | mint USER [GROUP...]`;

/** @param {string[]} argv */
async function main(argv) {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up':
      return up();
    case 'down':
      return down();
    case 'mint':
      return mint(rest);
    default:
      console.error(USAGE);
      return 2;
  }
}

async function up() {
  if (await isReady(dir)) {
    console.error(`cluster: already running (${readState(dir)?.server})`);
  } else {
    if (isRunning(dir)) {
      // Alive but not answering: restart rather than hand out a dead kubeconfig.
      console.error('cluster: a control plane is running but not ready; restarting it');
      await stopControlPlane(dir);
    }
    mkdirSync(dir, { recursive: true });
    console.error(`cluster: starting a local control plane in ${dir}`);
    const t0 = Date.now();
    const cp = await startControlPlane({ dir });
    console.error(
      `cluster: ready at ${cp.server} in ${((Date.now() - t0) / 1000).toFixed(1)}s (pid ${cp.pid})`,
    );
    console.error(
      'cluster: no kubelet: Deployments never become ready on their own; stop with `npm run cluster -- down`',
    );
  }
  const state = readState(dir);
  if (!state) throw new Error(`cluster: ${dir}/state.json is missing although the control plane is ready`);
  console.log(`KUBECONFIG=${state.kubeconfig}`);
  return 0;
}

async function down() {
  if (!isRunning(dir)) {
    await stopControlPlane(dir); // clears a stale pid file or state.json
    console.error('cluster: not running');
    return 0;
  }
  await stopControlPlane(dir);
  console.error('cluster: stopped');
  return 0;
}

/** @param {string[]} args */
async function mint(args) {
  const [user, ...groups] = args;
  if (!user) {
    console.error(USAGE);
    return 2;
  }
  if (!(await isReady(dir))) {
    console.error('cluster: not running; start it with `npm run cluster -- up`');
    return 1;
  }
  const safe = user.replace(/[^A-Za-z0-9._-]/g, '_');
  const out = await mintKubeconfig(dir, { user, groups, out: join(dir, 'users', `${safe}.kubeconfig`) });
  console.error(`cluster: ${user}${groups.length ? ` (groups ${groups.join(', ')})` : ''}`);
  console.log(out);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
