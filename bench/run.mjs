#!/usr/bin/env node
// Runs every benchmark in bench/ (each *.mjs file directly in this folder except this one;
// helpers live in bench/lib/) one after the other, so they do not compete for the cores,
// and prints their figures. Benchmarks that need a cluster share one control plane, started
// here unless MOORING_BENCH_KUBECONFIG names one. Arguments filter by file name:
// `node bench/run.mjs agent` runs only bench/agent-*.mjs. `npm run bench` builds first.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane, stopControlPlane } from '../scripts/lib/controlplane.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const benches = readdirSync(here, { withFileTypes: true })
  .filter((e) => e.isFile() && e.name.endsWith('.mjs') && e.name !== 'run.mjs')
  .map((e) => e.name)
  .filter((name) => filters.length === 0 || filters.some((f) => name.includes(f)))
  .sort();
if (benches.length === 0) {
  console.error(`no benchmark in ${here} matches ${filters.join(' ')}`);
  process.exit(2);
}

const env = { ...process.env };
let planeDir;
if (!env.MOORING_BENCH_KUBECONFIG) {
  planeDir = mkdtempSync(join(tmpdir(), 'mooring-bench-cp-'));
  console.log('starting a control plane for the benchmarks ...');
  const plane = await startControlPlane({ dir: planeDir, exitWithPid: process.pid });
  env.MOORING_BENCH_KUBECONFIG = plane.kubeconfig;
}

/** @param {string} file @returns {Promise<number>} exit code */
const runOne = (file) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, file)], { env, stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });

const results = [];
try {
  for (const file of benches) {
    console.log(`\n=== ${file} ${'='.repeat(Math.max(0, 70 - file.length))}`);
    const started = Date.now();
    const code = await runOne(file);
    results.push({ bench: file, exit: code, seconds: Math.round((Date.now() - started) / 100) / 10 });
  }
} finally {
  if (planeDir) {
    await stopControlPlane(planeDir);
    rmSync(planeDir, { recursive: true, force: true });
  }
}
console.log('\n=== summary');
console.table(results);
process.exitCode = results.some((r) => r.exit !== 0) ? 1 : 0;
