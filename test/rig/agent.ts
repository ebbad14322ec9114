// Helpers to run the mooring agent in integration tests against the real rig: the shared
// control plane (vitest `inject('kubeconfig')`), the fake kubelet, a git http-backend server
// and the real helm. An agent runs either in this process (`runOnce`, `startLoop`, through
// the CLI's own `runAgent`), so a test sees every pass, helm process and log line, or as a
// separate `node bin/mooring.js run` process group (`spawnAgent`) that a test can kill -9.
//
// Nothing here blocks the event loop: the git server and the fake kubelet live in this
// process, so repositories are written with the git CLI through execa, never *Sync calls.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, type CoreV1Event } from '@kubernetes/client-node';
import { execa, type ResultPromise } from 'execa';
import { pino, type Logger } from 'pino';
import { stringify } from 'yaml';
import type { PassResult } from '../../src/agent/agent.js';
import { loadAgentConfig, type AgentConfig } from '../../src/agent/config.js';
import { runAgent } from '../../src/cli/run.js';
import type { ExitCode } from '../../src/cli/exit-codes.js';
import { listRevisions, type StoredRevision } from '../../src/converge/helm-storage.js';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import { MOORING_GROUP, MOORING_KINDS, MOORING_VERSION } from '../../src/observe/crds.js';
import type { ReleaseStatusRecord } from '../../src/observe/status.js';
import { startGitServer, type GitServer, type GitServerOptions } from './git.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TOOLS_BIN = join(REPO_ROOT, '.tools', 'bin');
export const HELM = join(TOOLS_BIN, 'helm');
export const KUBECTL = join(TOOLS_BIN, 'kubectl');
/** The CLI entry point; it runs the compiled dist/ (`npx tsc -p tsconfig.build.json`). */
export const MOORING_BIN = join(REPO_ROOT, 'bin', 'mooring.js');

interface FakeKubelet {
  stop(): void;
  marked(): number;
}
const kubeletModule = (await import(new URL('../../scripts/lib/fake-kubelet.mjs', import.meta.url).href)) as {
  startFakeKubelet(opts: {
    kubeconfig: string;
    namespaces?: (namespace: string) => boolean;
    onError?: (err: unknown) => void;
  }): Promise<FakeKubelet>;
};

/** A DNS label unique to this run: namespaces, clusters and releases of parallel tests never meet. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Git repositories, written with the git CLI (asynchronously)

const GIT_ENV = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: tmpdir(),
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Mooring Test',
  GIT_AUTHOR_EMAIL: 'test@mooring.invalid',
  GIT_COMMITTER_NAME: 'Mooring Test',
  GIT_COMMITTER_EMAIL: 'test@mooring.invalid',
};

async function git(args: string[], env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await execa('git', args, { env: { ...GIT_ENV, ...env }, extendEnv: false });
  return stdout.trim();
}

/** A bare repository served by the rig's git server. */
export interface TestRepo {
  url: string;
  gitdir: string;
  /** Commits file changes on `main` (null deletes a file); returns the new commit's sha. */
  commit(files: Record<string, string | null>, message?: string): Promise<string>;
}

async function commitTo(
  gitdir: string,
  files: Record<string, string | null>,
  message: string,
): Promise<string> {
  const scratch = await mkdtemp(join(tmpdir(), 'mooring-agent-git-'));
  try {
    const env = { GIT_INDEX_FILE: join(scratch, 'index') };
    const parent = await git([
      `--git-dir=${gitdir}`,
      'rev-parse',
      '--verify',
      '--quiet',
      'refs/heads/main',
    ]).catch(() => undefined);
    if (parent) await git([`--git-dir=${gitdir}`, 'read-tree', parent], env);
    for (const [path, content] of Object.entries(files)) {
      if (content === null) {
        await git(
          [`--git-dir=${gitdir}`, `--work-tree=${scratch}`, 'update-index', '--force-remove', '--', path],
          env,
        );
        continue;
      }
      const blobFile = join(scratch, 'blob');
      await writeFile(blobFile, content);
      const blob = await git([`--git-dir=${gitdir}`, 'hash-object', '-w', '--', blobFile]);
      await git(
        [`--git-dir=${gitdir}`, 'update-index', '--add', '--cacheinfo', `100644,${blob},${path}`],
        env,
      );
    }
    const tree = await git([`--git-dir=${gitdir}`, 'write-tree'], env);
    const sha = await git([
      `--git-dir=${gitdir}`,
      'commit-tree',
      tree,
      ...(parent ? ['-p', parent] : []),
      '-m',
      message,
    ]);
    await git([`--git-dir=${gitdir}`, 'update-ref', 'refs/heads/main', sha]);
    return sha;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The rig: control plane clients, fake kubelet, git server

export interface AgentRig {
  kubeconfig: string;
  clients: KubeClients;
  apps: AppsV1Api;
  git: GitServer;
  /** Scratch folder of this rig (repositories, work dirs, key files); removed by stop(). */
  dir: string;
  /** Environment for an agent: KUBECONFIG and MOORING_HELM point at the rig. */
  env: NodeJS.ProcessEnv;
  /** Creates a repository holding `files` on branch main. */
  createRepo(files: Record<string, string>): Promise<TestRepo>;
  /** A fresh empty folder under the rig's scratch folder. */
  tempDir(prefix: string): Promise<string>;
  /** Writes a file (a credential, a key) under the scratch folder; returns its path. */
  writeFile(name: string, content: string): Promise<string>;
  /**
   * The files of a repository for cluster `cluster` of environment `test`: the tiny chart
   * (`appChart`) under charts/app, `clusters/<cluster>/cluster.yaml`, and
   * `environments/test/releases.yaml` declaring `releases`, each with chart ./charts/app,
   * namespace `<cluster>-<release>` (created), timeout 20s, then the fields given.
   * `values` are written to `environments/test/values/<release>.yaml`.
   */
  clusterRepo(
    cluster: string,
    releases: Record<string, Record<string, unknown>>,
    values?: Record<string, string>,
  ): Record<string, string>;
  /** The releases.yaml part of clusterRepo, for commits that change it. */
  releasesYaml(cluster: string, releases: Record<string, Record<string, unknown>>): string;
  /**
   * The configuration of an agent for `cluster` (as `mooring run` builds it from flags):
   * namespace `<cluster>-agent`, identity `<cluster>-replica`, a work dir in the scratch
   * folder, no HTTP server; `flags` (camelCase) override.
   */
  agentFor(cluster: string, repo: TestRepo, flags?: Record<string, unknown>): AgentConfig;
  /** Stops the git server and the fake kubelet, deletes the namespaces the rig named. */
  stop(): Promise<void>;
}

export async function startRig(
  kubeconfig: string,
  options: { auth?: GitServerOptions['auth'] } = {},
): Promise<AgentRig> {
  const dir = await mkdtemp(join(tmpdir(), 'mooring-agent-it-'));
  const repos = join(dir, 'repos');
  await mkdir(repos);
  const server = await startGitServer({ root: repos, ...(options.auth ? { auth: options.auth } : {}) });
  const namespaces = new Set<string>();
  // Only the namespaces this rig named: other test files on the same control plane keep
  // Deployments unready on purpose.
  const kubelet = await kubeletModule.startFakeKubelet({
    kubeconfig,
    namespaces: (ns) => namespaces.has(ns),
  });
  const clients = createKubeClients(loadKubeConfig({ kubeconfig }));
  let repoCount = 0;
  const releasesYaml = (cluster: string, releases: Record<string, Record<string, unknown>>): string => {
    const out: Record<string, unknown> = {};
    for (const [name, extra] of Object.entries(releases)) {
      namespaces.add(`${cluster}-${name}`);
      out[name] = {
        chart: './charts/app',
        namespace: `${cluster}-${name}`,
        createNamespace: true,
        timeout: '20s',
        ...extra,
      };
    }
    return stringify({ releases: out });
  };
  return {
    kubeconfig,
    clients,
    apps: clients.kubeConfig.makeApiClient(AppsV1Api),
    git: server,
    dir,
    env: { ...process.env, KUBECONFIG: kubeconfig, MOORING_HELM: HELM },
    async createRepo(files) {
      const name = `gitops-${++repoCount}.git`;
      const gitdir = join(repos, name);
      await git(['init', '--quiet', '--bare', '--initial-branch=main', gitdir]);
      await git([`--git-dir=${gitdir}`, 'config', 'http.uploadpack', 'true']);
      await commitTo(gitdir, files, 'initial commit');
      return {
        url: server.repoUrl(name),
        gitdir,
        commit: (changes, message = 'change') => commitTo(gitdir, changes, message),
      };
    },
    tempDir: (prefix) => mkdtemp(join(dir, `${prefix}-`)),
    async writeFile(name, content) {
      const path = join(dir, name);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content, { mode: 0o600 });
      return path;
    },
    releasesYaml,
    clusterRepo(cluster, releases, values = {}) {
      return {
        ...appChart('app'),
        [`clusters/${cluster}/cluster.yaml`]: 'environment: test\nregion: test-1\n',
        'environments/test/releases.yaml': releasesYaml(cluster, releases),
        ...Object.fromEntries(
          Object.entries(values).map(([release, v]) => [`environments/test/values/${release}.yaml`, v]),
        ),
      };
    },
    agentFor(cluster, repo, flags = {}) {
      namespaces.add(`${cluster}-agent`);
      return agentConfig({
        repo: repo.url,
        cluster,
        namespace: `${cluster}-agent`,
        identity: `${cluster}-replica`,
        workDir: join(dir, `${cluster}-work`),
        ...flags,
      });
    },
    async stop() {
      kubelet.stop();
      await server.stop();
      await Promise.all(
        [...namespaces].map((name) => clients.core.deleteNamespace({ name }).catch(() => undefined)),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A small chart for tests

/**
 * The files of a tiny chart, to put under `charts/<name>/` of a test repository:
 * - a ConfigMap `<release>-config` whose data is `.Values.config` (a string map),
 * - a Deployment `<release>` (image `.Values.image`), labelled `mooring.dev/never-ready`
 *   when `.Values.neverReady` is true, so the fake kubelet leaves it unready; its pod
 *   template changes with `.Values.config` and `.Values.neverReady`, so each is a rollout,
 * - a Secret `<release>-secret` holding `.Values.password` when it is set,
 * - and a render failure (`fail`) naming `.Values.failRender` when that is set.
 */
export function appChart(name: string, prefix = `charts/${name}`): Record<string, string> {
  return {
    [`${prefix}/Chart.yaml`]: `apiVersion: v2\nname: ${name}\nversion: 0.1.0\n`,
    [`${prefix}/values.yaml`]: 'image: registry.example/app:1\nconfig: {}\nneverReady: false\n',
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
      '{{- if .Values.failRender }}',
      '{{- fail (printf "cannot render: %s" .Values.failRender) }}',
      '{{- end }}',
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: {{ .Release.Name }}',
      '  labels:',
      '    app: {{ .Release.Name }}',
      '{{- if .Values.neverReady }}',
      '    mooring.dev/never-ready: "true"',
      '{{- end }}',
      'spec:',
      '  replicas: 1',
      '  selector:',
      '    matchLabels: {app: {{ .Release.Name }}}',
      '  template:',
      '    metadata:',
      '      labels: {app: {{ .Release.Name }}}',
      '      annotations:',
      // A new spec (and generation) for every config change, as a config checksum gives in real charts.
      '        checksum/config: {{ .Values.config | toJson | sha256sum }}',
      '        never-ready: {{ .Values.neverReady | quote }}',
      '    spec:',
      '      containers:',
      '        - name: app',
      '          image: {{ .Values.image }}',
      '',
    ].join('\n'),
    [`${prefix}/templates/secret.yaml`]: [
      '{{- if .Values.password }}',
      'apiVersion: v1',
      'kind: Secret',
      'metadata:',
      '  name: {{ .Release.Name }}-secret',
      'stringData:',
      '  password: {{ .Values.password | quote }}',
      '{{- end }}',
      '',
    ].join('\n'),
  };
}

// ---------------------------------------------------------------------------------------------
// Running an agent in this process

/** An agent configuration as `mooring run` would build it from these flags (camelCase keys). */
export function agentConfig(flags: Record<string, unknown>): AgentConfig {
  const { listen, ...rest } = flags;
  // No HTTP server unless a test asks for one (and then on 127.0.0.1 only).
  return {
    ...loadAgentConfig({ logLevel: 'debug', ...rest }, {}),
    listen: (listen as string | undefined) ?? '',
  };
}

export interface LogCapture {
  logger: Logger;
  /** Every JSON line pino wrote, as written. */
  lines: string[];
  entries(): Array<Record<string, unknown>>;
}

/** A pino logger that keeps its output in memory (level trace, so nothing escapes the checks). */
export function captureLogs(onLine?: (entry: Record<string, unknown>) => void): LogCapture {
  const lines: string[] = [];
  const logger = pino(
    { level: 'trace' },
    {
      write: (line: string) => {
        lines.push(line);
        onLine?.(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return {
    logger,
    lines,
    entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** One helm process: its command (`upgrade`, `uninstall`, `get`...) and the release it names. */
export interface HelmCall {
  command: string;
  release: string | undefined;
  args: readonly string[];
}

function helmCall(args: readonly string[]): HelmCall {
  const command = args[0] ?? '';
  return { command, release: command === 'get' ? args[2] : args[1], args };
}

export interface AgentRun {
  code: ExitCode;
  passes: PassResult[];
  helm: HelmCall[];
  logs: LogCapture;
  /** The captured log, for assertion messages. */
  log(): string;
  /** In order: `helm <command> <release>` as each helm process starts, `converged <release>` as each release converges. */
  timeline: string[];
}

/** `mooring run --once` in this process: one full pass and its exit code. */
export async function runOnce(config: AgentConfig, env: NodeJS.ProcessEnv): Promise<AgentRun> {
  const passes: PassResult[] = [];
  const helm: HelmCall[] = [];
  const timeline: string[] = [];
  const logs = captureLogs((entry) => {
    if (entry.msg === 'converged') timeline.push(`converged ${String(entry.release)}`);
  });
  const code = await runAgent({ ...config, once: true }, env, {
    logger: logs.logger,
    onPass: (p) => passes.push(p),
    onHelmSpawn: (args) => {
      const call = helmCall(args);
      helm.push(call);
      timeline.push(`helm ${call.command} ${call.release}`);
    },
  });
  return { code, passes, helm, logs, timeline, log: () => logs.lines.join('') };
}

export interface RunningAgent {
  passes: PassResult[];
  helm: HelmCall[];
  logs: LogCapture;
  /** The HTTP server's host:port, once it listens (`listen` set in the config). */
  address: Promise<string>;
  /** Resolves with the first pass (counting from `from`, default 0) that matches. */
  waitForPass(
    match: (p: PassResult) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<PassResult>;
  /** Stops the loop (as SIGTERM would) and resolves with the exit code. */
  stop(): Promise<ExitCode>;
}

/** `mooring run` (the loop) in this process. */
export function startLoop(config: AgentConfig, env: NodeJS.ProcessEnv): RunningAgent {
  const passes: PassResult[] = [];
  const helm: HelmCall[] = [];
  const logs = captureLogs();
  const controller = new AbortController();
  let listening: (address: string) => void = () => undefined;
  const address = new Promise<string>((r) => (listening = r));
  const waiters = new Set<() => void>();
  const finished = runAgent({ ...config, once: false }, env, {
    signal: controller.signal,
    logger: logs.logger,
    onListening: (a) => listening(a),
    onPass: (p) => {
      passes.push(p);
      for (const w of waiters) w();
    },
    onHelmSpawn: (args) => helm.push(helmCall(args)),
  });
  return {
    passes,
    helm,
    logs,
    address,
    waitForPass(match, options = {}) {
      const from = options.from ?? 0;
      const timeoutMs = options.timeoutMs ?? 60_000;
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = passes.slice(from).find(match);
          if (!found) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `no matching pass within ${timeoutMs}ms; passes: ${JSON.stringify(passes.slice(from).map(brief))}`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      controller.abort();
      return finished;
    },
  };
}

function brief(p: PassResult): object {
  return { outcome: p.outcome, revision: p.revision?.slice(0, 7), error: p.error };
}

// ---------------------------------------------------------------------------------------------
// Running an agent as its own process group

export interface AgentProcess {
  pid: number;
  /** stdout and stderr so far. */
  output(): string;
  exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>;
  /** `exited`, or an error with the agent's output after `timeoutMs` (the process is then killed). */
  waitForExit(timeoutMs?: number): Promise<{ exitCode: number | undefined; signal: string | undefined }>;
  /** Sends `signal` to the whole process group: the agent and every helm process it started. */
  killGroup(signal: NodeJS.Signals): void;
}

/** `node bin/mooring.js run ARGS` as the leader of a new process group. */
export function spawnAgent(args: string[], env: NodeJS.ProcessEnv): AgentProcess {
  let output = '';
  const child: ResultPromise = execa(process.execPath, [MOORING_BIN, 'run', ...args], {
    env,
    detached: true,
    reject: false,
    all: true,
    buffer: false,
  });
  child.all?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const pid = child.pid!;
  const exited = child.then((r) => ({ exitCode: r.exitCode, signal: r.signal }));
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch (err) {
      // Already gone.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  return {
    pid,
    output: () => output,
    exited,
    killGroup,
    async waitForExit(timeoutMs = 90_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
      const result = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (result !== 'timeout') return result;
      killGroup('SIGKILL');
      throw new Error(`the agent did not exit within ${timeoutMs}ms; its output:\n${output}`);
    },
  };
}

/** Live processes of process group `pgid`, with their command lines (from /proc). */
export async function processGroup(pgid: number): Promise<Array<{ pid: number; command: string }>> {
  const members: Array<{ pid: number; command: string }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid || fields[0] === 'Z') continue;
      const command = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      members.push({ pid: Number(entry), command });
    } catch {
      // The process ended while we looked.
    }
  }
  return members;
}

/**
 * Live helm processes whose command line matches `pattern` (from /proc), e.g. one release's
 * upgrades. Read synchronously: /proc is generated by the kernel, never waits on a disk, and
 * hundreds of asynchronous reads every 100 ms would crowd out the agent's own file I/O in
 * libuv's thread pool.
 */
export function processesMatching(pattern: RegExp): Promise<Array<{ pid: number; command: string }>> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // `helm`, or `mooring-leash` for the instant before it becomes helm.
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (comm !== 'helm' && comm !== 'mooring-leash') continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (pattern.test(command)) found.push({ pid: Number(entry), command });
    } catch {
      // The process ended while we looked.
    }
  }
  return Promise.resolve(found);
}

// ---------------------------------------------------------------------------------------------
// Reading what the agent reported

/** A MooringRelease's status, read back through the API. */
export async function readRelease(
  clients: KubeClients,
  namespace: string,
  name: string,
): Promise<(Partial<ReleaseStatusRecord> & Record<string, unknown>) | undefined> {
  try {
    const obj = (await clients.customObjects.getNamespacedCustomObject({
      group: MOORING_GROUP,
      version: MOORING_VERSION,
      plural: MOORING_KINDS.MooringRelease.plural,
      namespace,
      name,
    })) as { status?: Record<string, unknown> };
    return obj.status ?? {};
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** Events in `namespace`, oldest first, optionally about one object. */
export async function eventsIn(
  clients: KubeClients,
  namespace: string,
  about?: string,
): Promise<CoreV1Event[]> {
  const list = await clients.core.listNamespacedEvent({ namespace });
  return list.items
    .filter((e) => about === undefined || e.involvedObject.name === about)
    .sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)));
}

/** `reason: message` of each event about `about`. */
export async function eventReasons(
  clients: KubeClients,
  namespace: string,
  about: string,
): Promise<string[]> {
  return (await eventsIn(clients, namespace, about)).map((e) => `${e.type}/${e.reason}`);
}

/** The revisions helm stored for a release (its storage Secrets), oldest first. */
export function helmRevisions(
  clients: KubeClients,
  namespace: string,
  release: string,
): Promise<StoredRevision[]> {
  return listRevisions(clients.rest, namespace, release);
}

/** `kubectl --kubeconfig K ARGS`, stdout. */
export async function kubectl(kubeconfig: string, ...args: string[]): Promise<string> {
  return (await execa(KUBECTL, ['--kubeconfig', kubeconfig, ...args])).stdout;
}

/** Data of a ConfigMap, or undefined when it does not exist. */
export async function configData(
  clients: KubeClients,
  namespace: string,
  name: string,
): Promise<Record<string, string> | undefined> {
  try {
    return (await clients.core.readNamespacedConfigMap({ name, namespace })).data ?? {};
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** Polls `check` until it returns a value other than undefined/false. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
