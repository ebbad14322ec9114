// The CLI as a user installs it outside a mooring checkout: `npm pack` of this repository,
// `npm install ./mooring-x.y.z.tgz` in an empty folder (tarballs from the local npm cache),
// then the installed `mooring` on a copy of the example repository and
// against the test control plane, with helm found only through MOORING_HELM.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadKubeConfig } from '../../src/kube/client.js';
import { HELM, REPO_ROOT, runOnce, startRig, uniqueName, type AgentRig } from '../rig/agent.js';

interface PackResult {
  filename: string;
  files: { path: string }[];
}

const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

let work: string;
let tarball: string;
let packed: PackResult;
let installed: string;
/** Node's own folder only: no helm, no git, no kubectl on this PATH. */
const PATH = `${dirname(process.execPath)}:/usr/bin:/bin`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mooring-npm-'));
  // dist/ is the build scripts/setup.mjs made; `npm pack` alone runs the same build (prepack).
  const pack = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], {
    cwd: REPO_ROOT,
  });
  packed = (JSON.parse(pack.stdout) as PackResult[])[0]!;
  tarball = join(work, packed.filename);
  installed = join(work, 'somewhere');
  await execa('mkdir', [installed]);
  await writeFile(join(installed, 'package.json'), '{"name": "a-gitops-repo-ci", "private": true}\n');
  await execa(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball],
    {
      cwd: installed,
    },
  );
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function mooring(args: string[], env: Record<string, string> = {}) {
  return execa(join(installed, 'node_modules', '.bin', 'mooring'), args, {
    cwd: installed,
    env: { PATH, HOME: work, ...env },
    extendEnv: false,
    reject: false,
  });
}

describe('npm pack', () => {
  it('packs the command, its build and the agent chart, and nothing from development', () => {
    expect(packed.filename).toBe(`mooring-${pkg.version}.tgz`);
    const paths = packed.files.map((f) => f.path);
    expect(paths).toContain('bin/mooring.js');
    expect(paths).toContain('dist/cli/main.js');
    expect(paths).toContain('charts/mooring/crds/approvals.mooring.io.yaml');
    const outside = paths.filter(
      (p) => !/^(bin\/mooring\.js|dist\/.+\.js|charts\/mooring\/.+|package\.json|README\.md)$/.test(p),
    );
    expect(outside).toEqual([]);
  });

  it('installs only the runtime dependencies', async () => {
    const lock = JSON.parse(await readFile(join(installed, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const top = Object.keys(lock.packages)
      .filter((p) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(p))
      .map((p) => p.slice('node_modules/'.length));
    for (const dep of Object.keys(pkg.dependencies)) expect(top).toContain(dep);
    // @kubernetes/client-node itself depends on @types/node (for its declarations), so only
    // our other development packages can be checked by name here; the image drops @types.
    const devOnly = Object.keys(pkg.devDependencies).filter((d) => !d.startsWith('@types/'));
    expect(devOnly.length).toBeGreaterThan(5);
    for (const dev of devOnly) expect(top).not.toContain(dev);
    expect(Object.keys(pkg.dependencies).filter((d) => d.startsWith('@types/'))).toEqual([]);
  });

  it('ships type declarations only because @kubernetes/client-node lists them as dependencies', async () => {
    // client-node's .d.ts files reference them, so it keeps them in "dependencies" for its
    // TypeScript users; npm installs them for ours, and overrides of ours cannot remove them
    // (they apply to the root project only). Any other package bringing @types fails here.
    const lock = JSON.parse(await readFile(join(installed, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dependencies?: Record<string, string> }>;
    };
    const types = Object.keys(lock.packages)
      .filter((p) => /(^|\/)node_modules\/@types\/[^/]+$/.test(p))
      .map((p) => p.slice(p.lastIndexOf('@types/')));
    expect(types.length).toBeGreaterThan(0);
    const wanting = (name: string) =>
      Object.entries(lock.packages)
        .filter(([, meta]) => meta.dependencies?.[name] !== undefined)
        .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
    const clientNode = lock.packages['node_modules/@kubernetes/client-node']!.dependencies!;
    for (const name of new Set(types)) {
      // Wanted by client-node itself, or by another declaration package it brought.
      expect(
        wanting(name).every((by) => by === '@kubernetes/client-node' || by.startsWith('@types/')),
        `${name} is wanted by ${wanting(name).join(', ')}`,
      ).toBe(true);
      if (!wanting(name).includes('@kubernetes/client-node')) continue;
      expect(clientNode[name], name).toBeDefined();
    }
    expect(
      Object.keys(clientNode)
        .filter((d) => d.startsWith('@types/'))
        .sort(),
    ).toEqual([...new Set(types)].filter((t) => clientNode[t] !== undefined).sort());
  });
});

describe('the installed mooring', () => {
  let repo: string;
  const key = join(REPO_ROOT, 'example-repo', 'demo-age-key.txt');

  beforeAll(async () => {
    repo = join(work, 'gitops');
    await cp(join(REPO_ROOT, 'example-repo'), repo, { recursive: true });
  });

  it('prints its version', async () => {
    const r = await mooring(['--version']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(pkg.version);
  });

  it('validates, plans and explains a repository with helm from MOORING_HELM', async () => {
    const env = { MOORING_HELM: HELM, SOPS_AGE_KEY_FILE: key };
    const validate = await mooring(['validate', '--repo', repo], env);
    expect(validate.exitCode, validate.stderr).toBe(0);
    expect(validate.stdout).toMatch(/4 clusters valid/);

    const plan = await mooring(['plan', '--repo', repo, '--cluster', 'prod-us-west', '-o', 'json'], env);
    expect(plan.exitCode, plan.stderr).toBe(0);
    const parsed = JSON.parse(plan.stdout) as { releases: { name: string; manifests?: string }[] };
    expect(parsed.releases.map((r) => r.name).sort()).toEqual(['status-page', 'web', 'worker']);
    expect(parsed.releases.every((r) => (r.manifests ?? '').includes('kind: Deployment'))).toBe(true);

    const explain = await mooring(
      ['explain', '--repo', repo, '--cluster', 'prod-us-west', '--release', 'web', 'config.LOG_LEVEL'],
      env,
    );
    expect(explain.exitCode, explain.stderr).toBe(0);
    expect(explain.stdout).toContain('environments/prod/values/web.yaml');
  });

  it('says how to provide helm when neither MOORING_HELM nor PATH has one', async () => {
    const r = await mooring(['plan', '--repo', repo, '--cluster', 'prod-us-west'], {
      SOPS_AGE_KEY_FILE: key,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      'helm was not found on PATH (install helm v4, or set MOORING_HELM to its path)',
    );

    const wrong = await mooring(['plan', '--repo', repo, '--cluster', 'prod-us-west'], {
      SOPS_AGE_KEY_FILE: key,
      MOORING_HELM: join(work, 'no-helm-here'),
    });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain(
      `MOORING_HELM points to ${join(work, 'no-helm-here')}, which is not an executable file`,
    );
  });

  describe('against a cluster', () => {
    let rig: AgentRig;
    beforeAll(async () => {
      rig = await startRig(inject('kubeconfig'));
    });
    afterAll(async () => {
      await rig?.stop();
    });

    it('shows status and approves a pending plan, which the agent then applies', async () => {
      const cluster = uniqueName('npm');
      const agentNs = `${cluster}-agent`;
      const gitops = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
      const agent = rig.agentFor(cluster, gitops, { approval: 'manual' });
      const waiting = await runOnce(agent, rig.env);
      expect(waiting.code, waiting.log()).toBe(3);

      const context = loadKubeConfig({ kubeconfig: rig.kubeconfig }).getCurrentContext();
      const env = { KUBECONFIG: rig.kubeconfig };
      const status = await mooring(['status', '--context', context, '-n', agentNs, '-o', 'json'], env);
      expect(status.exitCode, status.stderr).toBe(0);
      expect(status.stdout).toContain(cluster);
      expect(status.stdout).toContain('pending-approval');

      const approve = await mooring(['approve', '--context', context, '-n', agentNs, '--yes'], env);
      expect(approve.exitCode, `${approve.stdout}\n${approve.stderr}`).toBe(0);

      const applied = await runOnce(agent, rig.env);
      expect(applied.code, applied.log()).toBe(0);
      expect(applied.passes[0]!.converge!.releases.map((r) => [r.name, r.state])).toEqual([['web', 'ready']]);
    });
  });
});
