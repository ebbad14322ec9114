#!/usr/bin/env node
// The mooring command. The compiled code lives in dist/ (npm run build, or any
// npm script that runs scripts/setup.mjs).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 70;
  },
);
