#!/usr/bin/env node
// The mooring command. The compiled code lives in dist/ (npm run build, or any
// npm script that runs scripts/setup.mjs).
import { setFlagsFromString } from 'node:v8';

// Memory over speed, set before anything else is loaded: the agent spends its life waiting
// on Git, helm and the API server, not computing. `--optimize-for-size` makes V8 keep its
// heap and code small; `--no-opt` and `--no-sparkplug` keep functions in bytecode instead of
// also holding optimized or baseline machine code for them. With 200 releases converged the
// idle agent is 81-82 MiB resident with them and 123-132 MiB without (bench/agent-memory.mjs,
// interleaved rounds), even now that it no longer loads @kubernetes/client-node. None of
// them is allowed in NODE_OPTIONS, and a re-exec would leave a second Node.js process
// resident, hence here. Not `--lite-mode` or `--jitless`: they remove WebAssembly, which
// Node's fetch needs. Only for the agent: the other commands are short-lived and may crunch
// a large repository (validate, plan), where the JIT pays.
if (process.argv[2] === 'run') {
  setFlagsFromString('--optimize-for-size');
  setFlagsFromString('--no-opt');
  setFlagsFromString('--no-sparkplug');
}

// A reader that stops reading (`mooring plan ... | head -1`) closes the pipe. Stop quietly
// with exit 0, as asked, rather than die on EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0);
  });
}

const { main } = await import('../dist/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 70;
  },
);
