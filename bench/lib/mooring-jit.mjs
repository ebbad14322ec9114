// `mooring` as bin/mooring.js runs it, minus the V8 flags it sets for `mooring run`: the agent
// with V8's optimizing compilers on, for bench/agent-memory.mjs to compare against.
const { main } = await import('../../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
