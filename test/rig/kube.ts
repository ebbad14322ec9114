// Small helpers for integration tests that talk to the local control plane: the shared
// cluster's kubeconfig, client construction, names that never collide between parallel
// test files, non-admin users for RBAC checks, and a second cluster when a test needs one.
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import {
  mintKubeconfig,
  startControlPlane,
  stopControlPlane,
  toolsBin,
  type ControlPlane,
} from '../../scripts/lib/controlplane.mjs';

/** A control plane started by one test, stopped (and its state removed) by `stop()`. */
export interface ExtraControlPlane extends ControlPlane {
  stop(): Promise<void>;
}

/** Absolute path of the shared control plane's admin kubeconfig (system:masters). */
export function kubeconfigPath(): string {
  return inject('kubeconfig');
}

/** A client-node KubeConfig loaded from `path` (default: the shared admin kubeconfig). */
export function makeKubeConfig(path: string = kubeconfigPath()): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/**
 * A DNS-1123 label unique to this call, `<prefix>-<6 hex>`: namespaces and objects of test
 * files running in parallel on the same cluster never meet.
 */
export function uniqueName(prefix: string): string {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)) {
    throw new Error(`uniqueName: "${prefix}" does not make a DNS-1123 label (lowercase, digits, '-')`);
  }
  return name;
}

/**
 * A kubeconfig for `user` in `groups` on the shared control plane (a client certificate,
 * CN=user, O=groups); RBAC decides what it may do. The file lives in the control plane's
 * state directory and goes with it at the end of the run.
 */
export async function mintUser(user: string, groups: string[] = []): Promise<string> {
  const dir = inject('controlPlaneDir');
  const users = join(dir, 'users');
  await mkdir(users, { recursive: true });
  const file = `${user.replace(/[^A-Za-z0-9._-]/g, '_')}-${randomBytes(3).toString('hex')}.kubeconfig`;
  return mintKubeconfig(dir, { user, groups, out: join(users, file) });
}

/**
 * A second, independent control plane (another "cluster"), for tests that need more than
 * one. It starts in a few seconds; call `stop()` in afterAll. If the test worker dies
 * first, the control plane stops itself.
 */
export async function startExtraControlPlane(): Promise<ExtraControlPlane> {
  const dir = resolve(
    toolsBin(),
    '..',
    '..',
    '.work',
    `test-cp-extra-${process.pid}-${randomBytes(3).toString('hex')}`,
  );
  const cp = await startControlPlane({ dir, exitWithPid: process.pid });
  return {
    ...cp,
    async stop() {
      await stopControlPlane(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
