// Global setup of the `integration` vitest project: one control plane for the whole run,
// shared by every test file (each test works in namespaces of its own, see uniqueName).
// Tests read its kubeconfig with `inject('kubeconfig')` (or kubeconfigPath() from
// test/rig/kube.ts); helm, kubectl and any other child process find the tools and the
// cluster through the environment set here, which the test workers inherit.
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startControlPlane, stopControlPlane, toolsBin } from '../../scripts/lib/controlplane.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of the shared control plane's admin (system:masters) kubeconfig. */
    kubeconfig: string;
    /** State directory of the shared control plane, for minting users (mintUser). */
    controlPlaneDir: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const bin = toolsBin();
  // Per process: two runs at once (two engineers, or watch mode and CI) never share one.
  const dir = resolve(bin, '..', '..', '.work', `test-cp-${process.pid}`);
  await rm(dir, { recursive: true, force: true });
  // exitWithPid: if this run is killed before teardown, the control plane follows it.
  const cp = await startControlPlane({ dir, exitWithPid: process.pid });

  process.env.PATH = `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`;
  process.env.MOORING_HELM = join(bin, 'helm');
  // Anything that forgets --kubeconfig reaches this throwaway cluster, never whatever
  // cluster the developer's own kubeconfig points at.
  process.env.KUBECONFIG = cp.kubeconfig;

  project.provide('kubeconfig', cp.kubeconfig);
  project.provide('controlPlaneDir', cp.dir);

  return async () => {
    await stopControlPlane(dir);
    await rm(dir, { recursive: true, force: true });
  };
}
