// `mooring plan --context`: the offline plan plus what applying it would change in a live
// cluster, against the shared control plane and the real helm: per release the action, the
// values diff against what helm deployed, and the manifest diff against the live objects
// (server-side dry run), with every secret masked.
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../../src/kube/client.js';
import { ensureCrds } from '../../src/observe/crds.js';
import { ageKeygen, sopsEncrypt } from '../rig/sops.js';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.tools', 'bin');
const HELM = join(BIN, 'helm');
const run = Date.now().toString(36).slice(-5);
const CLUSTER = 'prod-eu';
const webNs = `plan-live-web-${run}`;
const apiNs = `plan-live-api-${run}`;
const OLD_PASSWORD = 'old-password-1234';
const NEW_PASSWORD = 'new-password-5678';

let kubeconfig: string;
let clients: KubeClients;
let scratch: string;
let repo: string;
let keyFile: string;

const CHART: Record<string, string> = {
  'Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n',
  'values.yaml': 'greeting: hello\npassword: ""\n',
  'templates/configmap.yaml':
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  dsn: "postgres://app:{{ .Values.password }}@db"\n',
  'templates/secret.yaml':
    'apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-db\nstringData:\n  password: {{ .Values.password | quote }}\n',
};

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

beforeAll(async () => {
  kubeconfig = inject('kubeconfig');
  clients = createKubeClients(loadKubeConfig({ kubeconfig }));
  scratch = await mkdtemp(join(tmpdir(), 'mooring-plan-live-it-'));
  const key = await ageKeygen();
  keyFile = join(scratch, 'age.key');
  await writeFile(keyFile, key.keyFile, { mode: 0o600 });

  // The repository: `web` (installed below with older values) and `api` (not installed).
  repo = join(scratch, 'repo');
  await writeTree(repo, {
    ...Object.fromEntries(Object.entries(CHART).map(([p, t]) => [`charts/web/${p}`, t])),
    'environments/prod/values.yaml': 'greeting: hello from git\n',
    [`clusters/${CLUSTER}/cluster.yaml`]: 'environment: prod\n',
    [`clusters/${CLUSTER}/releases.yaml`]: stringify({
      releases: {
        web: { chart: './charts/web', namespace: webNs },
        api: { chart: './charts/web', namespace: apiNs, createNamespace: true },
      },
    }),
    [`clusters/${CLUSTER}/secrets/web.sops.yaml`]: await sopsEncrypt(`password: ${NEW_PASSWORD}\n`, {
      recipients: [key.publicKey],
    }),
  });

  // What is live: `web` deployed by helm with the old greeting and password.
  const chart = join(scratch, 'chart');
  await writeTree(chart, CHART);
  await execa(HELM, [
    '--kubeconfig',
    kubeconfig,
    'upgrade',
    '--install',
    'web',
    chart,
    '-n',
    webNs,
    '--create-namespace',
    '--set',
    'greeting=hello from last week',
    '--set',
    `password=${OLD_PASSWORD}`,
  ]);
});

afterAll(async () => {
  for (const name of [webNs, apiNs]) await clients?.core.deleteNamespace({ name }).catch(() => undefined);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function plan(...extra: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), colour: false };
  const code = await main(
    [
      'plan',
      '--repo',
      repo,
      '--cluster',
      CLUSTER,
      '--age-key-file',
      keyFile,
      '--kubeconfig',
      kubeconfig,
      // Where an agent would keep its records; none runs here, so mooring has recorded nothing.
      '--namespace',
      `plan-live-agent-${run}`,
      ...extra,
    ],
    io,
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('mooring plan --context', () => {
  it('adds, per release, the action and the diffs against what is live, secrets masked', async () => {
    const context = clients.kubeConfig.getCurrentContext();
    const { code, out, err } = await plan('--context', context);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain(`# against context ${context}: what applying this plan would change`);
    expect(out).toMatch(new RegExp(`api\\s+${apiNs}\\s+install\\s+-\\s+not installed yet`));
    expect(out).toMatch(new RegExp(`web\\s+${webNs}\\s+upgrade\\s+1\\s+first converge by mooring`));

    // Values: what helm was given then, against what it would be given now.
    expect(out).toContain('-greeting: hello from last week\n-password: <secret:');
    expect(out).toContain('+global:\n+  cluster:'); // the identity mooring injects
    expect(out).toMatch(/\+greeting: hello from git\n\+password: <secret:[0-9a-f]{16}>/);
    // Manifests: the live objects against a server-side dry run of the new ones.
    expect(out).toContain(`--- live/ConfigMap/${webNs}/web-config`);
    expect(out).toContain(`--- live/Secret/${webNs}/web-db`);
    expect(out).toContain(`+++ desired/ConfigMap/${apiNs}/api-config`);
    // Neither the new password (from SOPS) nor the old one (live) shows anywhere, in any form.
    for (const secret of [NEW_PASSWORD, OLD_PASSWORD]) {
      expect(out).not.toContain(secret);
      expect(out).not.toContain(Buffer.from(secret).toString('base64'));
    }
    // A secret a chart copies into another object is redacted there, old and new alike.
    expect(out).toContain(
      '-  dsn: postgres://app:[redacted]@db\n-  greeting: hello from last week\n' +
        '+  dsn: postgres://app:[redacted]@db\n+  greeting: hello from git',
    );
  });

  it('gives the live diff to scripts as JSON', async () => {
    const { code, out } = await plan('--context', clients.kubeConfig.getCurrentContext(), '--output', 'json');
    expect(code).toBe(0);
    const parsed = JSON.parse(out) as {
      live: { releases: { name: string; action: string; valuesDiff: string; manifestDiff: string }[] };
    };
    expect(parsed.live.releases.map((r) => [r.name, r.action])).toEqual([
      ['api', 'install'],
      ['web', 'upgrade'],
    ]);
    expect(parsed.live.releases[1]!.manifestDiff).toContain('greeting: hello from git');
    expect(out).not.toContain(NEW_PASSWORD);
  });

  it('shows nothing to change once the cluster runs exactly the plan', async () => {
    // Converge `web` to the desired values by hand, with the same chart and values helm would get.
    const chart = join(scratch, 'chart');
    await execa(HELM, [
      '--kubeconfig',
      kubeconfig,
      'upgrade',
      'web',
      chart,
      '-n',
      webNs,
      '--set',
      'greeting=hello from git',
      '--set',
      `password=${NEW_PASSWORD}`,
      '--set',
      `global.cluster.name=${CLUSTER}`,
      '--set',
      'global.cluster.environment=prod',
    ]);
    const { out } = await plan('--context', clients.kubeConfig.getCurrentContext(), '--output', 'json');
    const web = (
      JSON.parse(out) as { live: { releases: { name: string; valuesDiff: string; manifestDiff: string }[] } }
    ).live.releases.find((r) => r.name === 'web')!;
    expect(web.manifestDiff).toBe('');
  });

  it('fails with exit code 5 and says why when the live state cannot be read', async () => {
    const bobKubeconfig = join(scratch, 'bob.kubeconfig');
    await execa(join(BIN, 'mooring-controlplane'), [
      'mint',
      '--dir',
      dirname(kubeconfig),
      '--user',
      `bob-${run}`,
      '--out',
      bobKubeconfig,
    ]);
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      [
        'plan',
        '--repo',
        repo,
        '--cluster',
        CLUSTER,
        '--age-key-file',
        keyFile,
        '--kubeconfig',
        bobKubeconfig,
        '--context',
        `mooring-local-bob-${run}`,
      ],
      { out: (t) => out.push(t), err: (t) => err.push(t), colour: false },
    );
    expect(code).toBe(5);
    expect(err.join('\n')).toContain(`cannot read what is live through context mooring-local-bob-${run}`);
    expect(err.join('\n')).toContain('forbidden');
  });
});

describe('mooring plan --context renders as the upgrade renders', () => {
  // The keeper fixture (bitnami style: a password kept with `lookup`, a checksum over it, a
  // PodDisruptionBudget only where the cluster serves policy/v1, a 0755 file mode), plus an
  // object made only when the cluster serves mooring's own API, which `helm template` cannot
  // know. And a release whose dry run the cluster refuses (a kind it does not serve).
  const keeperNs = `plan-ctx-keeper-${run}`;
  const refusedNs = `plan-ctx-refused-${run}`;
  let ctxRepo: string;

  beforeAll(async () => {
    await ensureCrds(clients);
    ctxRepo = join(scratch, 'ctx-repo');
    const fixture = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'charts', 'keeper');
    await cp(fixture, join(ctxRepo, 'charts', 'keeper'), { recursive: true });
    await writeTree(ctxRepo, {
      'charts/keeper/templates/plans-reader.yaml': [
        '{{- if .Capabilities.APIVersions.Has "mooring.io/v1alpha1/MooringPlan" }}',
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: {{ .Release.Name }}-plans-reader',
        'data:',
        '  reads: mooringplans.mooring.io',
        '{{- end }}',
        '',
      ].join('\n'),
      'charts/widget/Chart.yaml': 'apiVersion: v2\nname: widget\nversion: 0.1.0\n',
      'charts/widget/templates/widget.yaml':
        'apiVersion: widgets.example.invalid/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\n',
      'environments/prod/values.yaml': '{}\n',
      [`clusters/${CLUSTER}/cluster.yaml`]: 'environment: prod\n',
      [`clusters/${CLUSTER}/releases.yaml`]: stringify({
        releases: {
          keeper: { chart: './charts/keeper', namespace: keeperNs, createNamespace: true },
          refused: { chart: './charts/widget', namespace: refusedNs, createNamespace: true },
        },
      }),
    });
    // What is live: keeper installed by helm, then upgraded once with the same values (the
    // checksum taken at install is over a second random password; the upgrade settles it).
    for (const verb of ['install', 'upgrade']) {
      await execa(HELM, [
        '--kubeconfig',
        kubeconfig,
        verb,
        'keeper',
        join(ctxRepo, 'charts', 'keeper'),
        '-n',
        keeperNs,
        ...(verb === 'install' ? ['--create-namespace'] : []),
      ]);
    }
  });

  afterAll(async () => {
    for (const name of [keeperNs, refusedNs])
      await clients?.core.deleteNamespace({ name }).catch(() => undefined);
  });

  async function planCtx(...extra: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      [
        'plan',
        '--repo',
        ctxRepo,
        '--cluster',
        CLUSTER,
        '--kubeconfig',
        kubeconfig,
        '--namespace',
        `plan-ctx-agent-${run}`,
        ...extra,
      ],
      { out: (t) => out.push(t), err: (t) => err.push(t), colour: false },
    );
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it('shows no change for what runs: the kept password, its checksum, capability-made objects', async () => {
    const context = clients.kubeConfig.getCurrentContext();
    const { code, out, err } = await planCtx('--context', context, '--output', 'json');
    expect(err).toBe('');
    const parsed = JSON.parse(out) as {
      releases: { name: string; manifests?: string }[];
      live: {
        releases: { name: string; manifestDiff: string; dryRunError?: string; notes: string[] }[];
      };
    };
    const keeper = parsed.live.releases.find((r) => r.name === 'keeper')!;
    expect(keeper.dryRunError).toBeUndefined();
    expect(keeper.manifestDiff).toBe('');
    // The plan's own manifests are the cluster's render too: the object only the cluster's
    // API makes is in them.
    expect(parsed.releases.find((r) => r.name === 'keeper')!.manifests).toContain(
      'name: keeper-plans-reader',
    );

    // The refused release: its error, in one line, and no diff invented for it.
    const refused = parsed.live.releases.find((r) => r.name === 'refused')!;
    expect(refused.dryRunError).toMatch(/Widget/);
    expect(refused.dryRunError).not.toContain('\n');
    expect(refused.manifestDiff).toBe('');
    expect(parsed.releases.find((r) => r.name === 'refused')!.manifests).toBeUndefined();
    expect(code).toBe(1);
  });

  it('says in text which release the cluster refused, and where the manifests were rendered', async () => {
    const context = clients.kubeConfig.getCurrentContext();
    const { code, out } = await planCtx('--context', context);
    expect(code).toBe(1);
    expect(out).toContain(`# keeper: manifests (rendered against context ${context}; secrets redacted)`);
    expect(out).toMatch(/^dry run failed: refused: .*Widget.*$/m);
    expect(out).not.toContain('# refused: manifests');

    // Offline, `helm template` cannot know the cluster: no object from its API.
    const offline = await planCtx('--output', 'json');
    const manifests = (
      JSON.parse(offline.out) as { releases: { name: string; manifests?: string }[] }
    ).releases.find((r) => r.name === 'keeper')!.manifests;
    expect(manifests).toContain('kind: Deployment');
    expect(manifests).not.toContain('keeper-plans-reader');
  });
});
