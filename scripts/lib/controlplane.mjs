// @ts-check
// Starts, stops and inspects the local Kubernetes control plane (test/controlplane, built
// by scripts/setup.mjs into .tools/bin/mooring-controlplane). Shared by the test rig,
// `npm run cluster` and the demo, so it is plain ESM on Node's standard library.
//
// A control plane lives in one state directory:
//   DIR/controlplane.pid    written by us at spawn, so `stop` works even without state.json
//   DIR/state.json          written by the binary once the API server is ready
//   DIR/admin.kubeconfig    system:masters credentials
//   DIR/controlplane.log    the binary's stdout and stderr
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * @typedef {object} ControlPlane
 * @property {string} dir         absolute state directory
 * @property {string} kubeconfig  absolute path of the admin kubeconfig
 * @property {string} server      https://127.0.0.1:PORT
 * @property {number} pid         process id of the control plane
 */

/**
 * @typedef {object} ControlPlaneState  the binary's DIR/state.json
 * @property {number} pid
 * @property {string} server
 * @property {string} etcdUrl
 * @property {string} kubeconfig
 */

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BINARY = 'mooring-controlplane';

/** Absolute path of the repository's .tools/bin (helm, kubectl, sops, the control plane). */
export function toolsBin() {
  return join(repoRoot, '.tools', 'bin');
}

/** @param {string} dir */
const pidFile = (dir) => join(dir, 'controlplane.pid');
/** @param {string} dir */
const stateFile = (dir) => join(dir, 'state.json');
/** @param {string} dir */
const defaultLog = (dir) => join(dir, 'controlplane.log');

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The DIR/state.json of a control plane, or undefined when there is none (not ready yet,
 * or stopped).
 * @param {string} dir
 * @returns {ControlPlaneState | undefined}
 */
export function readState(dir) {
  try {
    return JSON.parse(readFileSync(stateFile(resolve(dir)), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The pid recorded for DIR, if that process still exists and is a control plane. The check
 * of /proc/PID/cmdline guards against a stale pid file whose pid was reused.
 * @param {string} dir
 * @returns {number | undefined}
 */
function livePid(dir) {
  let pid;
  try {
    pid = Number.parseInt(readFileSync(pidFile(resolve(dir)), 'utf8').trim(), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(BINARY)) return undefined;
  } catch {
    // No /proc (not Linux): trust the pid file.
  }
  return pid;
}

/** @param {number} pid */
function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: exists but belongs to someone else.
    return /** @type {NodeJS.ErrnoException} */ (err).code === 'EPERM';
  }
  // A zombie (exited, not yet reaped by its parent) still answers signal 0.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}

/**
 * Whether a control plane process for DIR is alive (ready or not).
 * @param {string} dir
 */
export function isRunning(dir) {
  return livePid(dir) !== undefined;
}

/**
 * Whether the control plane in DIR is running and its API server answers /readyz.
 * @param {string} dir
 */
export async function isReady(dir) {
  const state = readState(dir);
  if (!state || livePid(dir) !== state.pid) return false;
  return probeReady(resolve(dir), state.server);
}

/**
 * GET /readyz with the admin client certificate (anonymous access may be disabled).
 * @param {string} dir
 * @param {string} server
 * @returns {Promise<boolean>}
 */
function probeReady(dir, server) {
  const pki = join(dir, 'pki');
  let tls;
  try {
    tls = {
      ca: readFileSync(join(pki, 'ca.crt')),
      cert: readFileSync(join(pki, 'admin.crt')),
      key: readFileSync(join(pki, 'admin.key')),
    };
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((done) => {
    const req = request(`${server}/readyz`, { ...tls, timeout: 2000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done(false));
    req.end();
  });
}

/**
 * The last lines of a log file, for error messages.
 * @param {string} file
 * @param {number} [lines]
 */
function tail(file, lines = 30) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Starts a control plane in DIR (created if missing) and resolves once its API server is
 * ready. The process is detached: it outlives the caller until stopControlPlane(DIR).
 * Rejects, with the tail of the log, if it exits early or is not ready in time; a process
 * that did not become ready is stopped again.
 * @param {object} opts
 * @param {string} opts.dir
 * @param {string} [opts.logFile]    default DIR/controlplane.log
 * @param {number} [opts.timeoutMs]  default 180000 (a cold start on a busy 2-core machine)
 * @param {number} [opts.exitWithPid] the control plane stops itself when this process is
 *   gone; a test run that crashes then leaves nothing behind
 * @returns {Promise<ControlPlane>}
 */
export async function startControlPlane({ dir, logFile, timeoutMs = 180_000, exitWithPid }) {
  const abs = resolve(dir);
  const binary = join(toolsBin(), BINARY);
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: run \`node scripts/setup.mjs\` to build the control plane`);
  }
  if (isRunning(abs)) {
    throw new Error(`a control plane is already running in ${abs} (pid ${livePid(abs)})`);
  }
  mkdirSync(abs, { recursive: true });
  // Left behind by a control plane that was killed: it would look ready before it is.
  rmSync(stateFile(abs), { force: true });

  const log = resolve(logFile ?? defaultLog(abs));
  const fd = openSync(log, 'a');
  const args = ['serve', '--dir', abs];
  if (exitWithPid !== undefined) args.push('--exit-with-pid', String(exitWithPid));
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd], cwd: abs });
  closeSync(fd);
  /** @type {string | undefined} */
  let exited;
  child.on('exit', (code, signal) => {
    exited = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  });
  /** @type {Error | undefined} */
  let spawnError;
  child.on('error', (err) => {
    spawnError = err;
  });
  child.unref();
  if (child.pid === undefined) {
    await sleep(0);
    throw new Error(`cannot start ${binary}: ${spawnError?.message ?? 'unknown error'}`);
  }
  writeFileSync(pidFile(abs), `${child.pid}\n`);

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited || spawnError) {
      const why = spawnError ? `failed to start: ${spawnError.message}` : exited;
      throw new Error(
        `control plane in ${abs} ${why} before it was ready; last lines of ${log}:\n${tail(log)}`,
      );
    }
    const state = readState(abs);
    if (state && state.pid === child.pid && (await probeReady(abs, state.server))) {
      return { dir: abs, kubeconfig: state.kubeconfig, server: state.server, pid: child.pid };
    }
    if (Date.now() > deadline) {
      await stopControlPlane(abs);
      throw new Error(
        `control plane in ${abs} was not ready within ${timeoutMs / 1000}s; last lines of ${log}:\n${tail(log)}`,
      );
    }
    await sleep(200);
  }
}

/**
 * Stops the control plane in DIR: SIGTERM, then SIGKILL after the grace period. Resolves
 * once the process is gone; a no-op when none is running.
 * @param {string} dir
 * @param {object} [opts]
 * @param {number} [opts.graceMs]  default 20000
 */
export async function stopControlPlane(dir, { graceMs = 20_000 } = {}) {
  const abs = resolve(dir);
  const pid = livePid(abs);
  if (pid !== undefined) {
    signal(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (alive(pid) && Date.now() < deadline) await sleep(100);
    if (alive(pid)) {
      signal(pid, 'SIGKILL');
      while (alive(pid)) await sleep(50);
    }
  }
  rmSync(pidFile(abs), { force: true });
  rmSync(stateFile(abs), { force: true });
}

/**
 * @param {number} pid
 * @param {NodeJS.Signals} sig
 */
function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'ESRCH') throw err;
  }
}

/**
 * Writes a kubeconfig for USER (client certificate CN=user, O=groups) of the running
 * control plane in DIR, for RBAC tests and demos. Resolves to the absolute path written.
 * @param {string} dir
 * @param {object} opts
 * @param {string} opts.user
 * @param {string[]} [opts.groups]
 * @param {string} opts.out
 * @returns {Promise<string>}
 */
export function mintKubeconfig(dir, { user, groups = [], out }) {
  const abs = resolve(dir);
  const dest = resolve(out);
  const args = ['mint', '--dir', abs, '--user', user, '--out', dest];
  for (const g of groups) args.push('--group', g);
  return new Promise((done, fail) => {
    const child = spawn(join(toolsBin(), BINARY), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', (err) => fail(new Error(`cannot run ${BINARY} mint: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) done(dest);
      else
        fail(new Error(`minting a kubeconfig for ${user} in ${abs} failed (exit ${code}): ${stderr.trim()}`));
    });
  });
}
