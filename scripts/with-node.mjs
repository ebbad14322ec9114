#!/usr/bin/env node
// Runs a command on the Node.js the test suite uses: .tools/node (Node 24, installed by
// scripts/setup.mjs when this machine's Node is older), else this Node. Its bin folder goes
// first on PATH, so every `node` the command starts (agents, scripts) is that one too, and
// a tool from node_modules/.bin (vitest) is started with it.
//
//   node scripts/with-node.mjs vitest run [args...]
//   node scripts/with-node.mjs node --version
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundled = join(root, '.tools', 'node', 'bin', 'node');
const node = existsSync(bundled) ? bundled : process.execPath;
const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error('usage: node scripts/with-node.mjs COMMAND [ARGS...]');
  process.exit(2);
}

const PATH = [dirname(node), join(root, 'node_modules', '.bin'), process.env.PATH ?? ''].join(delimiter);
// `node` is this Node; a package binary is run by it (its shebang would pick PATH's anyway).
const local = join(root, 'node_modules', '.bin', command);
const [file, argv] =
  command === 'node' ? [node, args] : existsSync(local) ? [node, [local, ...args]] : [command, args];
const child = spawn(file, argv, { stdio: 'inherit', env: { ...process.env, PATH } });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('error', (err) => {
  console.error(`with-node: cannot run ${command}: ${err.message}`);
  process.exit(127);
});
child.on('exit', (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
