// @ts-check
// Shared set-up for the agent benchmarks (bench/agent-*.mjs): a control plane (the one in
// MOORING_BENCH_KUBECONFIG, else a private one that stops with this process), the fake
// kubelet, a git http-backend server, repositories of N releases of a tiny chart, and
// `mooring run` as a child process whose JSON log lines we follow. Not a benchmark itself:
// bench/run.mjs only runs the files directly in bench/.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { execa } from 'execa';
import { startControlPlane, stopControlPlane, toolsBin } from '../../scripts/lib/controlplane.mjs';
import { startFakeKubelet } from '../../scripts/lib/fake-kubelet.mjs';
import { commitFiles, createRepo, startGitServer } from '../../scripts/lib/gitserver.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const HELM = join(toolsBin(), 'helm');
const MOORING = join(ROOT, 'bin', 'mooring.js');

/** Milliseconds since an arbitrary start, with sub-millisecond resolution. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;
export const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
export const median = (/** @type {number[]} */ xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
export const round = (/** @type {number} */ x, digits = 2) => Number(x.toFixed(digits));

/** One line about the machine, printed by every agent benchmark. */
export function machine() {
  return `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}, node ${process.version}`;
}

/** The tiny chart of the agent tests: a ConfigMap of `.Values.config` and a Deployment whose pod template follows it. */
export function chartFiles(prefix = 'charts/app') {
  return {
    [`${prefix}/Chart.yaml`]: 'apiVersion: v2\nname: app\nversion: 0.1.0\n',
    [`${prefix}/values.yaml`]: 'image: registry.example/app:1\nconfig: {}\n',
    [`${prefix}/templates/configmap.yaml`]: [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: {{ .Release.Name }}-config',
      'data:',
      '{{- range $k, $v := .Values.config }}',
      '  {{ $k }}: {{ $v | quote }}',
      '{{- end }}',
      '',
    ].join('\n'),
    [`${prefix}/templates/deployment.yaml`]: [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: {{ .Release.Name }}',
      'spec:',
      '  replicas: 1',
      '  selector:',
      '    matchLabels: {app: {{ .Release.Name }}}',
      '  template:',
      '    metadata:',
      '      labels: {app: {{ .Release.Name }}}',
      '      annotations:',
      '        checksum/config: {{ .Values.config | toJson | sha256sum }}',
      '    spec:',
      '      containers:',
      '        - name: app',
      '          image: {{ .Values.image }}',
      '',
    ].join('\n'),
  };
}

/** Writes `files` (path -> content) under `dir`. */
export function writeTree(dir, files) {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
}

/**
 * Repository files for cluster `cluster` with releases r00..r<n-1>, each in namespace
 * `<prefix>-rNN`, each with its own values file.
 */
export function clusterFiles(cluster, nsPrefix, n, { timeout = '2m' } = {}) {
  const releases = [];
  const files = { ...chartFiles(), [`clusters/${cluster}/cluster.yaml`]: 'environment: bench\n' };
  for (let i = 0; i < n; i++) {
    const name = `r${String(i).padStart(2, '0')}`;
    releases.push(
      `  ${name}:\n    chart: ./charts/app\n    namespace: ${nsPrefix}-${name}\n    createNamespace: true\n    timeout: ${timeout}\n`,
    );
    files[`environments/bench/values/${name}.yaml`] = `config: {release: ${name}, v: "1"}\n`;
  }
  files['environments/bench/releases.yaml'] = `releases:\n${releases.join('')}`;
  return files;
}

/**
 * A kubelet stand-in for benchmarks whose rollouts take time, as pods starting in a real
 * cluster do: a Deployment in a namespace starting with `nsPrefix` is reported ready
 * `delayMs` after each new generation (scripts/lib/fake-kubelet.mjs reports it at once).
 */
async function startSlowKubelet({ kubeconfig, nsPrefix, delayMs }) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  /** @type {Map<string, NodeJS.Timeout>} */
  const timers = new Map();
  let stopped = false;
  /** @type {{ abort(): void } | undefined} */
  let request;
  const markReady = async (d) => {
    const replicas = d.spec?.replicas ?? 1;
    const now = new Date().toISOString();
    const condition = (type, reason) => ({
      type,
      status: 'True',
      reason,
      message: 'slow kubelet',
      lastUpdateTime: now,
      lastTransitionTime: now,
    });
    await apps
      .patchNamespacedDeploymentStatus(
        {
          name: d.metadata.name,
          namespace: d.metadata.namespace,
          body: {
            status: {
              observedGeneration: d.metadata.generation,
              replicas,
              updatedReplicas: replicas,
              readyReplicas: replicas,
              availableReplicas: replicas,
              conditions: [
                condition('Available', 'MinimumReplicasAvailable'),
                condition('Progressing', 'NewReplicaSetAvailable'),
              ],
            },
          },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      )
      .catch(() => undefined);
  };
  const seen = (d) => {
    const meta = d.metadata ?? {};
    if (!meta.namespace?.startsWith(nsPrefix) || meta.deletionTimestamp) return;
    if (d.status?.observedGeneration === meta.generation) return;
    const key = `${meta.namespace}/${meta.name}/${meta.generation}`;
    if (timers.has(key)) return;
    timers.set(
      key,
      setTimeout(() => void markReady(d), delayMs),
    );
  };
  const watch = new k8s.Watch(kc);
  const start = async () => {
    if (stopped) return;
    request = await watch.watch(
      '/apis/apps/v1/deployments',
      { allowWatchBookmarks: true },
      (type, obj) => {
        if (type === 'ADDED' || type === 'MODIFIED') seen(obj);
      },
      () => {
        if (!stopped) setTimeout(start, 200);
      },
    );
  };
  await start();
  return {
    stop() {
      stopped = true;
      request?.abort();
      for (const t of timers.values()) clearTimeout(t);
    },
  };
}

/**
 * Starts everything a benchmark needs. `rolloutMs` > 0: Deployments (in namespaces starting
 * with `nsPrefix`) become ready that long after each change, like real pods; 0: at once.
 * `stop()` undoes it (namespaces whose names start with `nsPrefix` are deleted).
 */
export async function startBenchRig({ nsPrefix, rolloutMs = 0 }) {
  const scratch = mkdtempSync(join(tmpdir(), 'mooring-bench-agent-'));
  let plane;
  let kubeconfig = process.env.MOORING_BENCH_KUBECONFIG;
  if (!kubeconfig) {
    plane = await startControlPlane({ dir: join(scratch, 'cp'), exitWithPid: process.pid });
    kubeconfig = plane.kubeconfig;
  }
  const kubelet =
    rolloutMs > 0
      ? await startSlowKubelet({ kubeconfig, nsPrefix, delayMs: rolloutMs })
      : await startFakeKubelet({ kubeconfig });
  const repos = join(scratch, 'repos');
  mkdirSync(repos);
  const git = await startGitServer({ root: repos });

  // A helm that notes every start: how the benchmarks count processes, whoever starts them.
  const helmLog = join(scratch, 'helm-starts.log');
  const helmWrapper = join(scratch, 'helm');
  writeFileSync(helmWrapper, `#!/bin/sh\necho "$1 $2" >> '${helmLog}'\nexec '${HELM}' "$@"\n`);
  chmodSync(helmWrapper, 0o755);
  writeFileSync(helmLog, '');

  return {
    kubeconfig,
    git,
    scratch,
    /** Helm starts noted by the wrapper so far: `["upgrade r07", ...]`. */
    helmStarts: () => readFileSync(helmLog, 'utf8').split('\n').filter(Boolean),
    env: { ...process.env, KUBECONFIG: kubeconfig, MOORING_HELM: helmWrapper },
    createRepo(name, files) {
      const content = join(scratch, `${name}-content`);
      writeTree(content, files);
      createRepo(repos, `${name}.git`, content);
      return {
        url: git.repoUrl(`${name}.git`),
        commit: (/** @type {Record<string, string>} */ changes, message = 'change') =>
          commitFiles(repos, `${name}.git`, { files: changes, message }),
      };
    },
    /** `helm ARGS` against the rig's cluster, values on stdin; resolves with milliseconds taken. */
    async helm(args, values = '') {
      const started = now();
      await execa(HELM, [...args, '--kubeconfig', kubeconfig], { input: values });
      return now() - started;
    },
    async stop() {
      kubelet.stop();
      await git.stop();
      const { stdout } = await execa(join(toolsBin(), 'kubectl'), [
        '--kubeconfig',
        kubeconfig,
        'get',
        'namespaces',
        '-o',
        'name',
      ]);
      const doomed = stdout
        .split('\n')
        .map((l) => l.replace('namespace/', ''))
        .filter((n) => n.startsWith(nsPrefix));
      if (doomed.length > 0) {
        await execa(
          join(toolsBin(), 'kubectl'),
          ['--kubeconfig', kubeconfig, 'delete', 'namespace', '--wait=false', ...doomed],
          {
            reject: false,
          },
        );
      }
      if (plane) await stopControlPlane(plane.dir);
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/**
 * The `mooring run` flags every agent benchmark uses: the repository, the cluster, its own
 * agent namespace and work dir, a poll interval and a local HTTP server; `extra` is appended.
 * @param {{ url: string }} repo
 * @param {string} cluster
 * @param {{ scratch: string }} rig
 * @param {string} interval
 * @param {string[]} [extra]
 * @returns {string[]}
 */
export function agentArgs(repo, cluster, rig, interval, extra = []) {
  return [
    '--repo',
    repo.url,
    '--cluster',
    cluster,
    '--namespace',
    `${cluster}-agent`,
    '--work-dir',
    `${rig.scratch}/work`,
    '--interval',
    interval,
    '--listen',
    '127.0.0.1:0',
    ...extra,
  ];
}

/**
 * `node [NODEFLAGS] bin/mooring.js run ARGS` as a child process. Its JSON log lines are parsed as they
 * come; `waitForLog(match)` resolves with the first line (from `from` on) that matches.
 */
export function startAgent(args, env, nodeFlags = [], entry = MOORING) {
  const child = spawn(process.execPath, [...nodeFlags, entry, 'run', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  /** @type {Array<Record<string, any> & {receivedAt: number}>} */
  const lines = [];
  /** @type {Set<() => void>} */
  const waiters = new Set();
  let buffer = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      try {
        lines.push({ ...JSON.parse(line), receivedAt: now() });
      } catch {
        stderr += `${line}\n`;
      }
      for (const w of waiters) w();
    }
  });
  child.stderr.on('data', (chunk) => (stderr += chunk.toString('utf8')));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    pid: /** @type {number} */ (child.pid),
    lines,
    exited,
    output: () => `${lines.map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`,
    /** @param {(line: Record<string, any>) => boolean} match */
    waitForLog(match, { from = 0, timeoutMs = 300_000 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.slice(from).find(match);
          if (hit) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`agent log: no match within ${timeoutMs}ms\n${this.output().slice(-4000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/** CPU time (user + system) a process has used so far, in milliseconds (from /proc). */
export function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat, in clock ticks (USER_HZ, 100 on Linux).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Resident memory of a process, in MiB (from /proc). */
export function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** POSTs a push notification signed like GitHub's to the agent at `address`. */
export async function pushWebhook(address, secret) {
  const body = JSON.stringify({ ref: 'refs/heads/main' });
  const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  const res = await fetch(`http://${address}/hooks/git`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
    body,
  });
  if (res.status !== 202) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
}

/** The value of a metric line (first match) in Prometheus exposition text, or 0. */
export function metricValue(text, line) {
  const hit = text.split('\n').find((l) => l.startsWith(`${line} `));
  return hit ? Number(hit.slice(line.length + 1)) : 0;
}
