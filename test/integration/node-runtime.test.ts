// The Node.js the suite runs on: `npm test` starts vitest through scripts/with-node.mjs,
// which uses the Node line the image ships (Dockerfile NODE_MAJOR), installed into
// .tools/node by scripts/setup.mjs when the machine's Node is older, and puts it first on
// PATH so every agent or script a test starts runs on it too.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../rig/agent.js';

const withNode = (args: string[]) =>
  execa(process.execPath, [join(REPO_ROOT, 'scripts', 'with-node.mjs'), ...args], { cwd: REPO_ROOT });

describe('the Node.js of the test command', () => {
  it('is the image’s Node line, for the command and for every node it starts', async () => {
    const dockerfile = await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const major = Number(/^ARG NODE_MAJOR=(\d+)$/m.exec(dockerfile)![1]);
    expect(major).toBeGreaterThanOrEqual(22);

    const { stdout } = await withNode([
      'node',
      '-p',
      'JSON.stringify({ self: process.versions.node, path: process.execPath, child: require("node:child_process").execFileSync("node", ["-p", "process.execPath"]).toString().trim() })',
    ]);
    const seen = JSON.parse(stdout) as { self: string; path: string; child: string };
    expect(Number(seen.self.split('.')[0])).toBeGreaterThanOrEqual(major);
    expect(seen.child).toBe(seen.path);
  });

  it('starts vitest with it, and npm test uses it', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.test).toMatch(/&& node scripts\/with-node\.mjs vitest run$/);
    const { stdout } = await withNode(['vitest', '--version']);
    expect(stdout).toMatch(/vitest\/\d+\.\d+\.\d+ linux-x64 node-v(\d+)/);
    const dockerfile = await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const major = /^ARG NODE_MAJOR=(\d+)$/m.exec(dockerfile)![1];
    expect(Number(/node-v(\d+)/.exec(stdout)![1])).toBeGreaterThanOrEqual(Number(major));
  });
});
