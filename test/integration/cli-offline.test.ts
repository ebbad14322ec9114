// plan, explain and validate as a user runs them: on a checkout, with real helm and real
// sops files, no cluster.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { ageKeygen } from '../rig/sops.js';

const ROOT = join(import.meta.dirname, '../..');
const EXAMPLE = join(ROOT, 'example-repo');
const DEMO_KEY = join(EXAMPLE, 'demo-age-key.txt');
const SOPS = join(ROOT, '.tools/bin/sops');

async function run(args: string[], env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  const saved = { ...process.env };
  Object.assign(process.env, { SOPS_AGE_KEY_FILE: DEMO_KEY, SOPS_AGE_KEY: '' }, env);
  try {
    const code = await main(args, io);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    process.env = saved;
  }
}

/** Every plaintext secret value of the example repository, read with the real sops. */
function exampleSecrets(): string[] {
  const files = execFileSync('git', ['ls-files'], { cwd: EXAMPLE, encoding: 'utf8' })
    .split('\n')
    .filter((f) => /[^/]\.sops\.yaml$/.test(f) && !f.endsWith('/.sops.yaml') && f !== '.sops.yaml');
  const values: string[] = [];
  for (const f of files) {
    const plain = execFileSync(SOPS, ['--decrypt', join(EXAMPLE, f)], {
      env: { ...process.env, SOPS_AGE_KEY_FILE: DEMO_KEY },
      encoding: 'utf8',
    });
    for (const m of plain.matchAll(/:\s+"?([^"\n]{6,})"?$/gm)) values.push(m[1]!.trim());
  }
  return values;
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'mooring-cli-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function copyExample(name: string): string {
  const dir = join(work, name);
  cpSync(EXAMPLE, dir, { recursive: true });
  return dir;
}

describe('mooring validate', () => {
  it('accepts the example repository', async () => {
    const r = await run(['validate', '--repo', EXAMPLE]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ok\s+dev-us-east: 2 releases \(web, worker\)/);
    expect(r.stdout).toMatch(/4 clusters valid/);
  });

  it('reports every error of a broken repository at once, each naming file and field', async () => {
    const repo = copyExample('broken');
    writeFileSync(join(repo, 'clusters/dev-us-east/cluster.yaml'), 'environment: dev\nregoin: us-east-1\n');
    writeFileSync(join(repo, 'environments/staging/values/worker.yaml'), 'concurrency: [1\n');
    writeFileSync(join(repo, 'clusters/prod-us-west/cluster.yaml'), 'environment: production\n');
    writeFileSync(join(repo, 'environments/prod/values/wbe.yaml'), 'replicaCount: 3\n');
    const r = await run(['validate', '--repo', repo, '--output', 'json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      errors: { file?: string; field?: string; message: string }[];
    };
    expect(report.ok).toBe(false);
    expect(report.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          file: 'clusters/dev-us-east/cluster.yaml',
          field: 'regoin',
          message: expect.stringMatching(/did you mean "region"/),
        }),
        expect.objectContaining({
          file: 'environments/staging/values/worker.yaml',
          message: expect.stringMatching(/invalid YAML/),
        }),
        expect.objectContaining({
          file: 'clusters/prod-us-west/cluster.yaml',
          field: 'environment',
          message: expect.stringMatching(/production does not exist/),
        }),
        expect.objectContaining({
          file: 'environments/prod/values/wbe.yaml',
          message: expect.stringMatching(/declares a release named wbe/),
        }),
      ]),
    );
    // staging-eu-west's web release is unaffected by its broken worker values file.
    const staging = (
      JSON.parse(r.stdout) as { clusters: { name: string; errors: { release?: string }[] }[] }
    ).clusters.find((c) => c.name === 'staging-eu-west')!;
    expect(staging.errors.map((e) => e.release)).toEqual(['worker']);
  });

  it('warns about a cluster that resolves to no releases (an agent with --prune refuses it)', async () => {
    const repo = copyExample('emptied');
    writeFileSync(
      join(repo, 'clusters/dev-us-east/releases.yaml'),
      'releases:\n  web: {enabled: false}\n  worker: {enabled: false}\n',
    );
    const text = await run(['validate', '--repo', repo, '--no-render']);
    expect(text.code, text.stdout).toBe(0);
    expect(text.stdout).toMatch(
      /dev-us-east: 0 releases\n\s+warning resolves to no releases: an agent with --prune refuses this revision .*--prune-allow-empty/,
    );
    const json = await run(['validate', '--repo', repo, '--no-render', '-o', 'json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: true,
      warnings: [{ cluster: 'dev-us-east', message: expect.stringMatching(/no releases/) }],
    });
  });

  it('refuses a values file that is not UTF-8, naming the file, as helm would', async () => {
    const repo = copyExample('latin1');
    writeFileSync(
      join(repo, 'environments/dev/values/web.yaml'),
      Buffer.concat([Buffer.from('greeting: caf'), Buffer.from([0xe9]), Buffer.from('\n')]),
    );
    const r = await run(['validate', '--repo', repo, '--no-render']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'environments/dev/values/web.yaml: is not valid UTF-8 (byte 0xe9 on line 1, offset 13); helm refuses such a file',
    );
  });

  it('refuses a SOPS file that was tampered with, naming the file', async () => {
    const repo = copyExample('tampered');
    const file = join(repo, 'environments/dev/secrets/web.sops.yaml');
    const text = readFileSync(file, 'utf8');
    // Only the metadata changes: every value still decrypts, but the MAC no longer matches.
    writeFileSync(
      file,
      text.replace(
        /lastmodified: "?([0-9-]+)T/,
        (_m, d: string) => `lastmodified: "${d === '2020-01-01' ? '2021-01-01' : '2020-01-01'}T`,
      ),
    );
    const r = await run(['validate', '--repo', repo, '--no-render']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/environments\/dev\/secrets\/web\.sops\.yaml: .*MAC/);
    expect(r.stdout).toMatch(/dev-us-east/);
  });

  it('refuses an encrypted value moved to another key, naming the file and the field', async () => {
    const repo = copyExample('swapped');
    const file = join(repo, 'environments/prod/secrets/web.sops.yaml');
    const text = readFileSync(file, 'utf8');
    const [a, b] = text.match(/ENC\[[^\]]+\]/g)!;
    // Each ciphertext is valid on its own; its key path is authenticated data, so a swap shows.
    writeFileSync(file, text.replace(a!, '\u0000').replace(b!, a!).replace('\u0000', b!));
    const r = await run(['validate', '--repo', repo, '--no-render', '-o', 'json']);
    expect(r.code).toBe(1);
    const { errors } = JSON.parse(r.stdout) as {
      errors: { file?: string; field?: string; message: string }[];
    };
    expect(errors).toContainEqual(
      expect.objectContaining({
        file: 'environments/prod/secrets/web.sops.yaml',
        field: 'secretEnv.DATABASE_PASSWORD',
        message: expect.stringMatching(/modified, or moved here from another key/),
      }),
    );
    for (const secret of exampleSecrets()) expect(r.stdout + r.stderr).not.toContain(secret);
  });

  it('says which file a wrong age key cannot open', async () => {
    const other = await ageKeygen();
    const keyFile = join(work, 'other-key.txt');
    writeFileSync(keyFile, other.keyFile);
    const r = await run(['validate', '--repo', EXAMPLE, '--no-render'], { SOPS_AGE_KEY_FILE: keyFile });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/environments\/common\/secrets\.sops\.yaml: none of the 1 age keys? matches/);
  });

  it('never echoes an age key pasted where a key file path belongs', async () => {
    const other = await ageKeygen();
    const r = await run(['validate', '--repo', EXAMPLE, '--no-render'], { SOPS_AGE_KEY_FILE: other.keyFile });
    // No key loads at all: local configuration, exit 2.
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/holds an age key, not the path of a key file/);
    expect(r.stdout + r.stderr).not.toContain(other.identity);
  });

  it('names the chart and release when a chart does not render', async () => {
    const repo = copyExample('badchart');
    writeFileSync(
      join(repo, 'charts/worker/templates/broken.yaml'),
      'kind: ConfigMap\ndata: {{ .Values.nope.missing }}\n',
    );
    const r = await run(['validate', '--repo', repo]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/worker.*broken\.yaml/s);
    expect(r.stdout).not.toMatch(/FAIL.*\n.*error.* web: /);
  });
});

describe('mooring plan', () => {
  it('lists releases with merged values and rendered manifests, and never shows a secret', async () => {
    const r = await run(['plan', '--repo', EXAMPLE, '--cluster', 'dev-us-east', '--output', 'json']);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as {
      releases: { name: string; digest: string; values: Record<string, unknown>; manifests: string }[];
    };
    expect(plan.releases.map((x) => x.name)).toEqual(['web', 'worker']);
    const web = plan.releases[0]!;
    expect(web.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(web.values).toMatchObject({
      global: { cluster: { name: 'dev-us-east', environment: 'dev', region: 'us-east-1', cloud: 'aws' } },
    });
    expect((web.values.secretEnv as Record<string, string>).DATABASE_PASSWORD).toBe('<secret>');
    expect(web.manifests).toMatch(/kind: Deployment/);
    const secrets = exampleSecrets();
    expect(secrets.length).toBeGreaterThan(3);
    for (const s of secrets) {
      expect(r.stdout).not.toContain(s);
      expect(r.stdout).not.toContain(Buffer.from(s).toString('base64'));
    }
  });

  it('prints the same document with -o yaml as with -o json, for plan, explain and validate', async () => {
    const commands = [
      ['plan', '--repo', EXAMPLE, '--cluster', 'dev-us-east', '--no-render'],
      ['explain', '--repo', EXAMPLE, '--cluster', 'dev-us-east', '--release', 'web'],
      ['validate', '--repo', EXAMPLE, '--no-render'],
    ];
    for (const args of commands) {
      const json = await run([...args, '-o', 'json']);
      const yaml = await run([...args, '-o', 'yaml']);
      expect(yaml.code, yaml.stderr).toBe(json.code);
      expect(yaml.stdout.trimStart().startsWith('{')).toBe(false);
      expect(parseYaml(yaml.stdout)).toEqual(JSON.parse(json.stdout));
    }
  });

  it('gives the same digest for the same input, and a new one when a value changes', async () => {
    const a = JSON.parse(
      (await run(['plan', '--repo', EXAMPLE, '--cluster', 'dev-us-east', '-o', 'json', '--no-render']))
        .stdout,
    );
    const b = JSON.parse(
      (await run(['plan', '--repo', EXAMPLE, '--cluster', 'dev-us-east', '-o', 'json', '--no-render']))
        .stdout,
    );
    expect(a.releases[0].digest).toBe(b.releases[0].digest);
    const repo = copyExample('changed');
    writeFileSync(
      join(repo, 'environments/dev/values/web.yaml'),
      readFileSync(join(repo, 'environments/dev/values/web.yaml'), 'utf8') +
        '\nreplicaCount: 7\n'
          .replace('replicaCount', 'podAnnotations:\n  changed: "yes"\nx')
          .replace('\nx: 7\n', '\n'),
    );
    const c = JSON.parse(
      (await run(['plan', '--repo', repo, '--cluster', 'dev-us-east', '-o', 'json', '--no-render'])).stdout,
    );
    expect(c.releases[0].digest).not.toBe(a.releases[0].digest);
    expect(c.releases[1].digest).toBe(a.releases[1].digest);
  });

  it('exits 2 on a usage error', async () => {
    expect((await run(['plan', '--repo', EXAMPLE])).code).toBe(2);
    expect((await run(['plan', '--repo', EXAMPLE, '--cluster', 'dev-us-east', '--output', 'xml'])).code).toBe(
      2,
    );
  });
});

describe('mooring explain', () => {
  it('names the file behind every value, and the file that deleted a key', async () => {
    const r = await run([
      'explain',
      '--repo',
      EXAMPLE,
      '--cluster',
      'prod-eu-west',
      '--release',
      'web',
      '-o',
      'json',
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { values: { key: string; file: string; value: unknown }[] };
    const at = (key: string) => out.values.find((v) => v.key === key);
    expect(at('config.LOG_LEVEL')).toMatchObject({
      value: 'warn',
      file: 'environments/prod/values/web.yaml',
    });
    expect(at('config.DATABASE_HOST')).toMatchObject({ file: 'clusters/prod-eu-west/values/web.yaml' });
    expect(at('global.cluster.region')).toMatchObject({
      value: 'europe-west1',
      file: 'clusters/prod-eu-west/cluster.yaml',
    });
    expect(at('secretEnv.DATABASE_PASSWORD')).toMatchObject({
      value: '<secret>',
      file: 'clusters/prod-eu-west/secrets/web.sops.yaml',
    });
    expect(at('image.repository')).toMatchObject({ file: 'charts/web/values.yaml' });
  });

  it('narrows to a key and shows every file that set it', async () => {
    const r = await run([
      'explain',
      '--repo',
      EXAMPLE,
      '--cluster',
      'prod-eu-west',
      '--release',
      'web',
      'config.LOG_LEVEL',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/config\.LOG_LEVEL\s+"warn"\s+environments\/prod\/values\/web\.yaml/);
    expect(r.stdout).toMatch(/environments\/common\/values\/web\.yaml\s+common\s+"info"/);
    expect(r.stdout).not.toMatch(/replicaCount/);
  });

  it('fails clearly for an unknown release or key', async () => {
    const a = await run(['explain', '--repo', EXAMPLE, '--cluster', 'prod-eu-west', '--release', 'worker']);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/release worker is disabled in cluster prod-eu-west/);
    const b = await run([
      'explain',
      '--repo',
      EXAMPLE,
      '--cluster',
      'prod-eu-west',
      '--release',
      'web',
      'no.such.key',
    ]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/no value at no\.such\.key/);
  });
});
