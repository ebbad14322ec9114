import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  return { code: await main(args, io), stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('mooring (the command)', () => {
  it('prints its version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('lists every command of the contract in its help', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const command of ['run', 'plan', 'explain', 'validate', 'approve', 'status']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
  });

  it('says when the repository folder does not exist', async () => {
    const r = await run(['validate', '--repo', '/no/such/checkout']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\/no\/such\/checkout: no such folder/);
  });

  it('exits 2 for an unknown command or a missing required flag', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
    const r = await run(['explain', '--repo', '.', '--cluster', 'c1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--release/);
  });
});
