// mooring approve (and suspend/resume/reconcile, which open the cluster the same way) before
// they reach any cluster: a context the kubeconfig does not have is reported like an
// unreachable cluster (exit 5), in each command's own JSON shape.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';

const dir = mkdtempSync(join(tmpdir(), 'mooring-approve-'));
afterAll(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

async function mooring(...args: string[]) {
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: east, cluster: {server: "https://127.0.0.1:1"}}]',
      'users: [{name: alice, user: {token: t}}]',
      'contexts: [{name: east, context: {cluster: east, user: alice}}]',
      'current-context: east',
      '',
    ].join('\n'),
  );
  vi.stubEnv('KUBECONFIG', kubeconfig);
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  const code = await main(args, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('mooring approve', () => {
  it('names a context the kubeconfig lacks and the ones it has, exiting 5', async () => {
    const r = await mooring('approve', '--context', 'west', '--yes', '-o', 'json');
    expect(r.code).toBe(5);
    expect(JSON.parse(r.out)).toEqual({
      approved: false,
      error: { message: 'kubeconfig has no context named west', hint: 'known contexts: east' },
    });
    expect(r.err).toMatch(/no context named west \(known contexts: east\)/);
  });

  it('is reported the same way by suspend, resume and reconcile', async () => {
    for (const action of ['suspend', 'resume', 'reconcile']) {
      const r = await mooring(action, '--context', 'west', '-o', 'json');
      expect(r.code).toBe(5);
      expect(JSON.parse(r.out)).toEqual({
        action,
        ok: false,
        error: { message: 'kubeconfig has no context named west', hint: 'known contexts: east' },
      });
      expect(r.err).toMatch(/no context named west \(known contexts: east\)/);
    }
  });

  it('refuses a malformed --revision as a usage error', async () => {
    const r = await mooring('approve', '--context', 'east', '--revision', 'main', '--yes');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--revision must be a commit sha/);
  });
});
