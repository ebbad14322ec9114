// The command line as a shell user meets it: the real `bin/mooring.js` (the build in dist/)
// in child processes, with the real helm. Unknown options are refused with a did-you-mean,
// every command's help has examples, a closed pipe ends the command quietly, `version`
// reports the helm it runs, and validate --cluster / plan --release narrow the work (helm
// is called for the releases asked for, and for no other).
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MOORING = join(ROOT, 'bin', 'mooring.js');
const HELM = join(ROOT, '.tools', 'bin', 'helm');
const EXAMPLE = join(ROOT, 'example-repo');
const DEMO_KEY = join(EXAMPLE, 'demo-age-key.txt');

const work = mkdtempSync(join(tmpdir(), 'mooring-cli-conv-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const baseEnv = { SOPS_AGE_KEY_FILE: DEMO_KEY, SOPS_AGE_KEY: '', MOORING_HELM: HELM, NO_COLOR: '1' };

function mooring(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [MOORING, ...args], {
    reject: false,
    env: { ...baseEnv, MOORING_CACHE_DIR: join(work, 'cache'), ...env },
  });
}

/** A helm that records each subcommand it runs (one line each) and then runs the real one. */
function countingHelm(name: string): { path: string; calls: () => string[] } {
  const log = join(work, `${name}.log`);
  const path = join(work, `${name}-helm`);
  writeFileSync(log, '');
  writeFileSync(path, `#!/bin/sh\necho "$1" >> '${log}'\nexec '${HELM}' "$@"\n`);
  chmodSync(path, 0o755);
  return { path, calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

describe('options', () => {
  it('refuses an unknown option with a did-you-mean, before any missing required one (exit 2)', async () => {
    const r = await mooring(['plan', '--repo', EXAMPLE, '--clutser', 'prod-eu-west']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("error: unknown option '--clutser'");
    expect(r.stderr).toContain('(Did you mean --cluster?)');
    expect(r.stderr).not.toContain('required option');
    expect(r.stderr).toContain('mooring plan --help');
    expect(r.stdout).toBe('');

    const v = await mooring(['validate', '--repo', EXAMPLE, '--no-rendr']);
    expect(v.exitCode).toBe(2);
    expect(v.stderr).toContain('(Did you mean --no-render?)');
  });

  it('still names a missing required option (exit 2)', async () => {
    const r = await mooring(['explain', '--repo', EXAMPLE, '--cluster', 'prod-eu-west']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("error: required option '--release <name>' not specified");
  });

  it('refuses an unknown command with a did-you-mean (exit 2)', async () => {
    const r = await mooring(['valdiate', '--repo', EXAMPLE]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('(Did you mean validate?)');
  });
});

describe('--help', () => {
  it('shows examples for mooring and for every one of its commands', async () => {
    const top = await mooring(['--help']);
    expect(top.exitCode).toBe(0);
    const section = top.stdout.slice(top.stdout.indexOf('Commands:'));
    const commands = [...section.slice(0, section.indexOf('\n\n')).matchAll(/^ {2}([a-z]+)\b/gm)].map(
      (m) => m[1]!,
    );
    expect(commands).toEqual(
      expect.arrayContaining([
        'run',
        'plan',
        'explain',
        'validate',
        'status',
        'approve',
        'version',
        'completion',
      ]),
    );
    expect(top.stdout).toMatch(/^Examples:\n {2}mooring /m);
    // (`help` is commander's own: `mooring help plan` prints plan's help.)
    // Each command's help in-process (the same code the binary runs; a process each is slow).
    for (const command of commands.filter((c) => c !== 'help')) {
      const out: string[] = [];
      const io: Io = { out: (t) => out.push(t), err: (t) => out.push(t), colour: false };
      expect(await main([command, '--help'], io), command).toBe(0);
      expect(out.join('\n'), command).toMatch(
        new RegExp(`^Examples:\\n(?: {2}.*\\n)*? {2}(?:\\S+=\\S+ )?mooring ${command}\\b`, 'm'),
      );
    }
  });
});

describe('a closed pipe', () => {
  it('ends the command quietly, exit 0, without an EPIPE stack trace', async () => {
    const args = `'${MOORING}' plan --repo '${EXAMPLE}' --cluster prod-us-west`;
    // `true` has exited before mooring writes its first line: every write meets a closed pipe.
    const closed = await execa(
      'bash',
      ['-c', `'${process.execPath}' ${args} | true; echo "exit=\${PIPESTATUS[0]}" >&2`],
      {
        env: { ...process.env, ...baseEnv },
        reject: false,
      },
    );
    expect(closed.stderr.trim()).toBe('exit=0');
    // As people type it: the first line arrives, and nothing else is said.
    const head = await execa(
      'bash',
      ['-c', `'${process.execPath}' ${args} | head -1; echo "exit=\${PIPESTATUS[0]}" >&2`],
      {
        env: { ...process.env, ...baseEnv },
        reject: false,
      },
    );
    expect(head.stdout).toMatch(/^cluster prod-us-west \(environment prod/);
    expect(head.stdout.split('\n')).toHaveLength(1);
    expect(head.stderr.trim()).toBe('exit=0');
  });
});

describe('mooring version', () => {
  const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
    .version;
  const helmVersion = execFileSync(HELM, ['version', '--template', '{{.Version}}'], {
    encoding: 'utf8',
  }).trim();

  it('prints mooring, its commit, the helm it runs with that helm version, and Node.js', async () => {
    const r = await mooring(['version']);
    expect(r.exitCode).toBe(0);
    const lines = Object.fromEntries(r.stdout.split('\n').map((l) => l.split(/\s{2,}/) as [string, string]));
    expect(lines).toEqual({
      mooring: version,
      commit,
      helm: `${helmVersion} (${HELM})`,
      node: process.version,
    });
  });

  it('prints the same as JSON, and says when there is no helm', async () => {
    const json = await mooring(['version', '-o', 'json']);
    expect(JSON.parse(json.stdout)).toEqual({
      version,
      commit,
      node: process.version,
      helm: { path: HELM, version: helmVersion },
    });
    const missing = await mooring(['version', '-o', 'json'], { MOORING_HELM: join(work, 'no-helm') });
    expect(missing.exitCode).toBe(0);
    expect(JSON.parse(missing.stdout)).toMatchObject({
      version,
      helm: { error: expect.stringContaining(`MOORING_HELM points to ${join(work, 'no-helm')}`) },
    });
  });
});

describe('mooring validate --cluster', () => {
  it('checks only that cluster and the layers it reads, and renders only its releases', async () => {
    const repo = join(work, 'narrow');
    cpSync(EXAMPLE, repo, { recursive: true });
    // Broken, but read by no layer of prod-eu-west (environment prod).
    writeFileSync(join(repo, 'clusters/dev-us-east/cluster.yaml'), 'environment: dev\nregoin: us-east-1\n');
    writeFileSync(join(repo, 'environments/staging/values/wbe.yaml'), 'replicaCount: 3\n');

    const helm = countingHelm('validate');
    const one = await mooring(['validate', '--repo', repo, '--cluster', 'prod-eu-west', '-o', 'json'], {
      MOORING_HELM: helm.path,
    });
    expect(one.exitCode, one.stderr).toBe(0);
    const report = JSON.parse(one.stdout) as {
      ok: boolean;
      clusters: { name: string; releases: string[] }[];
    };
    expect(report.clusters).toEqual([expect.objectContaining({ name: 'prod-eu-west', releases: ['web'] })]);
    expect(helm.calls().filter((c) => c === 'template')).toHaveLength(1);

    // Without --cluster the same repository is invalid; with the broken cluster named, too.
    expect((await mooring(['validate', '--repo', repo, '--no-render'])).exitCode).toBe(1);
    const dev = await mooring(['validate', '--repo', repo, '--no-render', '--cluster', 'dev-us-east']);
    expect(dev.exitCode).toBe(1);
    expect(dev.stdout).toMatch(/clusters\/dev-us-east\/cluster.yaml: .*regoin/);
    expect(dev.stdout).not.toContain('wbe');
    // An orphan values file in a layer the cluster reads is its error.
    const staging = await mooring([
      'validate',
      '--repo',
      repo,
      '--no-render',
      '--cluster',
      'staging-eu-west',
    ]);
    expect(staging.exitCode).toBe(1);
    expect(staging.stdout).toContain(
      'environments/staging/values/wbe.yaml: no releases.yaml in the repository declares a release named wbe',
    );
    // Several clusters: repeat the flag.
    const two = await mooring([
      'validate',
      '--repo',
      repo,
      '--no-render',
      '--cluster',
      'prod-eu-west',
      '--cluster',
      'prod-us-west',
    ]);
    expect(two.exitCode, two.stdout).toBe(0);
    expect(two.stdout).toContain('2 clusters valid');
  });

  it('names an unknown cluster and the ones there are', async () => {
    const r = await mooring(['validate', '--repo', EXAMPLE, '--cluster', 'prod-eu-wst']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      'error: clusters/prod-eu-wst: no cluster named prod-eu-wst in this repository (known clusters: dev-us-east, prod-eu-west, prod-us-west, staging-eu-west)',
    );
  });
});

describe('mooring plan --release', () => {
  it('plans and renders only that release', async () => {
    const helm = countingHelm('plan');
    const r = await mooring(
      ['plan', '--repo', EXAMPLE, '--cluster', 'prod-us-west', '--release', 'web', '-o', 'json'],
      {
        MOORING_HELM: helm.path,
      },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { releases: { name: string; manifests?: string }[] };
    expect(plan.releases.map((x) => x.name)).toEqual(['web']);
    expect(plan.releases[0]!.manifests).toContain('kind: Deployment');
    expect(helm.calls().filter((c) => c === 'template')).toHaveLength(1);

    const all = await mooring([
      'plan',
      '--repo',
      EXAMPLE,
      '--cluster',
      'prod-us-west',
      '--no-render',
      '-o',
      'json',
    ]);
    expect((JSON.parse(all.stdout) as { releases: { name: string }[] }).releases.map((x) => x.name)).toEqual([
      'status-page',
      'web',
      'worker',
    ]);
    // The narrowed plan of web is the same as web's in the whole plan (same digest).
    const digestOf = (out: string) =>
      (JSON.parse(out) as { releases: { name: string; digest: string }[] }).releases.find(
        (x) => x.name === 'web',
      )!.digest;
    expect(digestOf(r.stdout)).toBe(digestOf(all.stdout));
  });

  it('names an unknown or disabled release and the releases the cluster runs', async () => {
    const unknown = await mooring([
      'plan',
      '--repo',
      EXAMPLE,
      '--cluster',
      'prod-eu-west',
      '--release',
      'wbe',
    ]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain(
      'error: release wbe is not declared in cluster prod-eu-west (releases of prod-eu-west: web)',
    );
    const disabled = await mooring([
      'plan',
      '--repo',
      EXAMPLE,
      '--cluster',
      'prod-eu-west',
      '--release',
      'worker',
    ]);
    expect(disabled.exitCode).toBe(1);
    expect(disabled.stderr).toContain('release worker is disabled in cluster prod-eu-west');
  });
});
