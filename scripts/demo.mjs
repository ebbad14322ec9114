#!/usr/bin/env node
// `npm run demo`: mooring end to end on this machine. Starts the local control plane, a Git
// server over a copy of example-repo/, and the agent for cluster dev-us-east; waits until it
// converged and prints the status; then commits a values change and shows the agent pick it
// up. Everything it starts is stopped at the end (Ctrl-C stops it early, cleanly).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane, stopControlPlane, toolsBin } from './lib/controlplane.mjs';
import { startFakeKubelet } from './lib/fake-kubelet.mjs';
import { commitFiles, createRepo, startGitServer } from './lib/gitserver.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = toolsBin();
const CLUSTER = 'dev-us-east';
const NAMESPACE = 'mooring-system';

const bold = (s) => (process.stdout.isTTY ? `\u001b[1m${s}\u001b[0m` : s);
let stepNo = 0;
const step = (text) => console.log(`\n${bold(`[${++stepNo}] ${text}`)}`);
const info = (text) => console.log(`    ${text}`);

const cleanups = [];
async function cleanup() {
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch (err) {
      console.error(`    cleanup: ${err.message}`);
    }
  }
}
process.on('SIGINT', () => {
  console.log('\ninterrupted: stopping everything the demo started');
  cleanup().then(() => process.exit(130));
});

/** Runs a command and returns its stdout; never blocks the event loop (the Git server lives here). */
function run(cmd, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${err}`)),
    );
  });
}

async function releases(kubeconfig) {
  const out = await run(join(bin, 'kubectl'), ['get', 'mooringreleases', '-n', NAMESPACE, '-o', 'json'], {
    KUBECONFIG: kubeconfig,
  });
  return JSON.parse(out).items.map((i) => ({ name: i.metadata.name, ...(i.status ?? {}) }));
}

async function waitFor(what, predicate, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await predicate().catch(() => undefined);
    if (value) return value;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main() {
  const work = join(root, '.work', 'demo');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });

  step(
    'Starting the local Kubernetes control plane (etcd + kube-apiserver, built from the upstream Go modules)',
  );
  const cp = await startControlPlane({ dir: join(work, 'cluster') });
  cleanups.push(() => stopControlPlane(cp.dir));
  const kubeconfig = cp.kubeconfig;
  info(`API server at ${cp.server}; KUBECONFIG=${kubeconfig}`);

  step(
    'Starting a stand-in kubelet (this control plane has no nodes: it marks Deployments ready as a healthy rollout would)',
  );
  const kubelet = await startFakeKubelet({ kubeconfig });
  cleanups.push(async () => kubelet.stop());

  step('Starting a Git server over a copy of example-repo/ (git http-backend behind basic auth)');
  const gitRoot = mkdtempSync(join(tmpdir(), 'mooring-demo-git-'));
  cleanups.push(async () => rmSync(gitRoot, { recursive: true, force: true }));
  const first = createRepo(gitRoot, 'platform-gitops.git', join(root, 'example-repo'));
  const git = await startGitServer({ root: gitRoot, auth: { username: 'mooring', password: 'demo-token' } });
  cleanups.push(() => git.stop());
  const url = git.repoUrl('platform-gitops.git');
  const creds = join(work, 'git');
  mkdirSync(creds, { recursive: true });
  writeFileSync(join(creds, 'username'), 'mooring\n');
  writeFileSync(join(creds, 'password'), 'demo-token\n');
  info(`repository ${url}, branch main at ${first.slice(0, 7)}`);

  step(`Running the agent for cluster ${CLUSTER} (mooring run, polling Git and checking drift every 5s)`);
  const args = [
    join(root, 'bin', 'mooring.js'),
    'run',
    '--repo',
    url,
    '--branch',
    'main',
    '--cluster',
    CLUSTER,
    '--git-username-file',
    join(creds, 'username'),
    '--git-password-file',
    join(creds, 'password'),
    '--age-key-file',
    join(root, 'example-repo', 'demo-age-key.txt'),
    '--namespace',
    NAMESPACE,
    '--work-dir',
    join(work, 'agent'),
    '--interval',
    '5s',
    '--drift-interval',
    '5s',
    '--listen',
    '127.0.0.1:0',
  ];
  info(`mooring ${args.slice(2).join(' ')}`);
  const agentLog = join(work, 'agent.log');
  const logFd = openSync(agentLog, 'w');
  const agent = spawn(process.execPath, args, {
    env: { ...process.env, KUBECONFIG: kubeconfig, MOORING_HELM: join(bin, 'helm') },
    stdio: ['ignore', logFd, logFd],
  });
  cleanups.push(
    () =>
      new Promise((resolve) => {
        if (agent.exitCode !== null) return resolve();
        agent.once('exit', resolve);
        agent.kill('SIGTERM');
      }),
  );
  info(`agent logs (JSON, pino): ${agentLog}`);

  const converged = await waitFor('the first converge', async () => {
    const rs = await releases(kubeconfig);
    return rs.length >= 2 && rs.every((r) => r.state === 'ready' && r.deployedRevision === first)
      ? rs
      : undefined;
  });
  info(`converged: ${converged.map((r) => `${r.name} (helm revision ${r.helmRevision})`).join(', ')}`);
  console.log(
    await run(join(bin, 'kubectl'), ['get', 'mooringreleases', '-n', NAMESPACE], { KUBECONFIG: kubeconfig }),
  );
  console.log(
    await run(join(bin, 'kubectl'), ['get', 'deployments,services,configmaps', '-n', 'web'], {
      KUBECONFIG: kubeconfig,
    }),
  );

  step('Committing a values change: dev gets 2 web replicas and LOG_LEVEL info');
  const second = commitFiles(gitRoot, 'platform-gitops.git', {
    message: 'dev: two web replicas, quieter logs',
    files: {
      'environments/dev/values/web.yaml': [
        '# Dev: one replica is enough... until it is not.',
        'replicaCount: 2',
        'config:',
        '  LOG_LEVEL: info',
        'resources:',
        '  requests:',
        '    cpu: 50m',
        '    memory: 64Mi',
        '  limits:',
        '    memory: 128Mi',
        '',
      ].join('\n'),
    },
  });
  info(
    `pushed ${second.slice(0, 7)}; the agent finds it on its next poll (a webhook would make it immediate)`,
  );
  const upgraded = await waitFor('the agent to pick up the change', async () => {
    const rs = await releases(kubeconfig);
    const web = rs.find((r) => r.name === 'web');
    return web?.state === 'ready' && web.deployedRevision === second ? rs : undefined;
  });
  for (const r of upgraded) {
    info(
      `${r.name}: deployed ${r.deployedRevision.slice(0, 7)}, helm revision ${r.helmRevision}${r.name === 'worker' ? ' (unchanged: no helm process ran for it)' : ''}`,
    );
  }
  const replicas = await run(
    join(bin, 'kubectl'),
    ['get', 'deployment', 'web', '-n', 'web', '-o', 'jsonpath={.spec.replicas}'],
    { KUBECONFIG: kubeconfig },
  );
  info(`kubectl get deployment web -n web: spec.replicas = ${replicas}`);
  console.log(
    await run(join(bin, 'kubectl'), ['get', 'mooringreleases', '-n', NAMESPACE], { KUBECONFIG: kubeconfig }),
  );

  step(
    'Someone scales web by hand (kubectl scale --replicas=5); dev runs drift mode warn, so the agent reports it',
  );
  await run(join(bin, 'kubectl'), ['scale', 'deployment', 'web', '-n', 'web', '--replicas=5'], {
    KUBECONFIG: kubeconfig,
  });
  const drifted = await waitFor('the drift check', async () => {
    const web = (await releases(kubeconfig)).find((r) => r.name === 'web');
    return web?.state === 'drifted' ? web : undefined;
  });
  info(`web is ${drifted.state}: ${(drifted.drift?.fields ?? []).join(', ')}`);
  const events = await run(
    join(bin, 'kubectl'),
    [
      'get',
      'events',
      '-n',
      NAMESPACE,
      '--field-selector',
      'reason=DriftDetected',
      '-o',
      'jsonpath={range .items[*]}{.message}{"\\n"}{end}',
    ],
    { KUBECONFIG: kubeconfig },
  );
  info(`Event DriftDetected: ${events.trim().split('\n')[0]}`);
  info("with drift mode correct (the default, and prod's) the agent would have put replicas back to 2");

  step('Done. Stopping the agent, the Git server and the control plane');
}

main()
  .then(cleanup)
  .then(() =>
    console.log(
      '\nEverything the demo started is stopped. Try next: npm run cluster -- up, then mooring plan/explain (see README).',
    ),
  )
  .catch(async (err) => {
    console.error(`\ndemo failed: ${err.message}`);
    await cleanup();
    process.exit(1);
  });
