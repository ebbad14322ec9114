import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  createHelm,
  findLeash,
  HelmError,
  resolveHelm,
  type HelmExec,
  type HelmExecOptions,
  type HelmExecResult,
} from '../../src/converge/helm.js';
import { MooringError } from '../../src/errors.js';
import { redactSecrets } from '../../src/secrets/redact.js';

interface Call {
  file: string;
  args: readonly string[];
  options: HelmExecOptions;
}

/** A fake helm: records every call and answers with the next canned result. */
function fakeExec(...results: Partial<HelmExecResult>[]): { exec: HelmExec; calls: Call[] } {
  const calls: Call[] = [];
  const exec: HelmExec = async (file, args, options) => {
    calls.push({ file, args, options });
    const r = results[calls.length - 1] ?? {};
    return { exitCode: 0, stdout: '', stderr: '', timedOut: false, isCanceled: false, ...r };
  };
  return { exec, calls };
}

const releaseJson = (overrides: Record<string, unknown> = {}): string =>
  JSON.stringify({
    name: 'web',
    namespace: 'web',
    version: 3,
    info: { status: 'deployed', last_deployed: '2025-01-01T00:00:00Z', description: 'Upgrade complete' },
    chart: { metadata: { name: 'web', version: '1.2.0', appVersion: '2.0' } },
    config: { password: 'hunter2-secret' },
    manifest: '---\nkind: ConfigMap',
    ...overrides,
  });

const upgradeInput = {
  release: 'web',
  namespace: 'web',
  chart: '/repo/charts/web',
  values: { image: { tag: '1.0' }, db: { password: 'hunter2-secret' } },
  timeoutSeconds: 300,
  wait: true,
  rollbackOnFailure: true,
  createNamespace: true,
};

describe('helm upgradeInstall', () => {
  it('runs `helm upgrade --install` with values on stdin and never in the arguments', async () => {
    const { exec, calls } = fakeExec({ stdout: releaseJson() });
    const helm = createHelm({ binary: '/opt/helm', exec });

    await helm.upgradeInstall(upgradeInput);

    expect(calls).toHaveLength(1);
    const [call] = calls;
    expect(call?.file).toBe('/opt/helm');
    expect(call?.args.slice(0, 4)).toEqual(['upgrade', 'web', '/repo/charts/web', '--install']);
    expect(call?.args).toEqual(
      expect.arrayContaining([
        '--namespace',
        'web',
        '--values',
        '-',
        '--reset-values',
        '--skip-crds',
        '--timeout',
        '300s',
        '--wait=watcher',
        '--rollback-on-failure',
        '--create-namespace',
        '--server-side=auto',
        '--output',
        'json',
      ]),
    );
    expect(call?.args.join(' ')).not.toContain('hunter2-secret');
    expect(parseYaml(call?.options.input ?? '')).toEqual(upgradeInput.values);
  });

  it('returns the new revision and status without values or manifest', async () => {
    const { exec } = fakeExec({ stdout: releaseJson() });
    const helm = createHelm({ binary: 'helm', exec });

    const release = await helm.upgradeInstall(upgradeInput);

    expect(release).toEqual({
      name: 'web',
      namespace: 'web',
      revision: 3,
      status: 'deployed',
      chart: 'web',
      chartVersion: '1.2.0',
      appVersion: '2.0',
      updated: '2025-01-01T00:00:00Z',
      description: 'Upgrade complete',
    });
  });

  it('waits only for hooks when wait is off and leaves out flags that were not asked for', async () => {
    const { exec, calls } = fakeExec({ stdout: releaseJson() });
    const helm = createHelm({ binary: 'helm', exec });

    await helm.upgradeInstall({
      ...upgradeInput,
      wait: false,
      rollbackOnFailure: false,
      createNamespace: false,
    });

    const args = calls[0]?.args ?? [];
    expect(args).toContain('--wait=hookOnly');
    expect(args).not.toContain('--rollback-on-failure');
    expect(args).not.toContain('--create-namespace');
    expect(args).not.toContain('--labels');
  });

  it('waits whenever it rolls back on failure, as helm 4 does anyway', async () => {
    const { exec, calls } = fakeExec({ stdout: releaseJson() });
    const helm = createHelm({ binary: 'helm', exec });

    await helm.upgradeInstall({ ...upgradeInput, wait: false, rollbackOnFailure: true });

    expect(calls[0]?.args).toContain('--wait=watcher');
  });

  it('passes chart repository, version, server-side mode, labels and cluster flags', async () => {
    const { exec, calls } = fakeExec({ stdout: releaseJson() });
    const helm = createHelm({ binary: 'helm', exec, kubeconfig: '/tmp/kc', kubeContext: 'prod' });

    await helm.upgradeInstall({
      ...upgradeInput,
      chart: 'redis',
      repo: 'https://charts.example.com',
      version: '18.6.1',
      serverSide: true,
      forceConflicts: true,
      labels: { 'mooring.io/managed': 'true', 'mooring.io/cluster': 'eu-1' },
      historyMax: 5,
    });

    const args = calls[0]?.args ?? [];
    expect(args.slice(0, 3)).toEqual(['upgrade', 'web', 'redis']);
    const flag = (name: string): string | undefined => args[args.indexOf(name) + 1];
    expect(flag('--repo')).toBe('https://charts.example.com');
    expect(flag('--version')).toBe('18.6.1');
    expect(flag('--kubeconfig')).toBe('/tmp/kc');
    expect(flag('--kube-context')).toBe('prod');
    expect(flag('--labels')).toBe('mooring.io/managed=true,mooring.io/cluster=eu-1');
    expect(flag('--history-max')).toBe('5');
    expect(args).toContain('--server-side=true');
    expect(args).toContain('--force-conflicts');
  });

  it('rejects a release label helm would misread, before starting helm', async () => {
    const { exec, calls } = fakeExec();
    const helm = createHelm({ binary: 'helm', exec });

    await expect(helm.upgradeInstall({ ...upgradeInput, labels: { team: 'a,b=c' } })).rejects.toThrow(
      /invalid value for Helm release label team/,
    );
    await expect(helm.upgradeInstall({ ...upgradeInput, labels: { status: 'x' } })).rejects.toThrow(
      /invalid Helm release label key "status"/,
    );
    expect(calls).toHaveLength(0);
  });

  it('gives the helm process its timeout plus a grace period', async () => {
    const { exec, calls } = fakeExec({ stdout: releaseJson() });
    const helm = createHelm({ binary: 'helm', exec, graceSeconds: 30 });

    await helm.upgradeInstall({ ...upgradeInput, timeoutSeconds: 120 });

    expect(calls[0]?.options.timeoutMs).toBe(150_000);
  });

  it('reports every helm process it starts', async () => {
    const { exec } = fakeExec({ stdout: releaseJson() }, { stdout: releaseJson() });
    const spawned: (readonly string[])[] = [];
    const helm = createHelm({ binary: 'helm', exec, onSpawn: (args) => spawned.push(args) });

    await helm.upgradeInstall(upgradeInput);
    await helm.status('web', 'web');

    expect(spawned.map((a) => a.slice(0, 2))).toEqual([
      ['upgrade', 'web'],
      ['get', 'metadata'],
    ]);
  });
});

describe('helm discovery cache', () => {
  it('points every helm process at the cache folder it was given', async () => {
    const { exec, calls } = fakeExec({ stdout: releaseJson() }, { stdout: '' });
    const helm = createHelm({
      binary: '/opt/helm',
      exec,
      env: { PATH: '/bin' },
      kubeCacheDir: '/work/kube-cache',
    });

    await helm.upgradeInstall(upgradeInput);
    await helm.template(upgradeInput);

    expect(calls.map((c) => c.options.env)).toEqual([
      { PATH: '/bin', KUBECACHEDIR: '/work/kube-cache' },
      { PATH: '/bin', KUBECACHEDIR: '/work/kube-cache' },
    ]);
  });

  it('leaves a KUBECACHEDIR set in the environment as it is', async () => {
    const { exec, calls } = fakeExec({ stdout: releaseJson() });
    const helm = createHelm({
      binary: '/opt/helm',
      exec,
      env: { KUBECACHEDIR: '/var/cache/kube' },
      kubeCacheDir: '/work/kube-cache',
    });

    await helm.upgradeInstall(upgradeInput);

    expect(calls[0]!.options.env.KUBECACHEDIR).toBe('/var/cache/kube');
  });
});

describe('helm errors', () => {
  it('carry the command, exit code and stderr, and name the release and chart', async () => {
    const { exec } = fakeExec({
      exitCode: 1,
      stderr: 'WARNING: something minor\nError: UPGRADE FAILED: template: web/templates/cm.yaml:7: boom\n',
    });
    const helm = createHelm({ binary: 'helm', exec });

    const err = await helm.upgradeInstall(upgradeInput).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(HelmError);
    expect(err).toBeInstanceOf(MooringError);
    const h = err as HelmError;
    expect(h.message).toBe(
      'helm upgrade --install of release web in namespace web (chart /repo/charts/web) failed with exit code 1: UPGRADE FAILED: template: web/templates/cm.yaml:7: boom',
    );
    expect(h.context.release).toBe('web');
    expect(h.chart).toBe('/repo/charts/web');
    expect(h.exitCode).toBe(1);
    expect(h.failure).toBe('failed');
    expect(h.command).toMatch(/^helm upgrade web \/repo\/charts\/web --install /);
    expect(h.stderr).toContain('WARNING: something minor');
  });

  it('redact secret values helm echoes back', async () => {
    const secret = 'hunter2-secret';
    const { exec } = fakeExec({
      exitCode: 1,
      stderr: `Error: Secret "db" is invalid: data[password]: Invalid value: "${secret}" (${Buffer.from(secret).toString('base64')})`,
    });
    const helm = createHelm({ binary: 'helm', exec });

    const err = (await helm
      .upgradeInstall({ ...upgradeInput, redact: [secret] })
      .catch((e: unknown) => e)) as HelmError;

    const everything = JSON.stringify(err.toJSON()) + err.message;
    expect(everything).not.toContain(secret);
    expect(everything).not.toContain(Buffer.from(secret).toString('base64'));
    expect(err.stderr).toContain('Invalid value: "[redacted]" ([redacted])');
  });

  it('say when helm could not be started at all', async () => {
    const helm = createHelm({ binary: '/nonexistent/bin/helm' });

    const err = (await helm.status('web', 'web').catch((e: unknown) => e)) as HelmError;

    expect(err).toBeInstanceOf(HelmError);
    expect(err.message).toBe(
      'helm status of release web in namespace web could not be started: spawn /nonexistent/bin/helm ENOENT',
    );
    expect(err.hint).toMatch(/MOORING_HELM/);
  });

  it('say when helm ran out of time', async () => {
    const { exec } = fakeExec({ exitCode: undefined, timedOut: true });
    const helm = createHelm({ binary: 'helm', exec, graceSeconds: 0 });

    const err = (await helm
      .upgradeInstall({ ...upgradeInput, timeoutSeconds: 60 })
      .catch((e: unknown) => e)) as HelmError;

    expect(err.failure).toBe('timeout');
    expect(err.message).toMatch(/did not finish within 60s/);
  });

  it('say when helm was stopped by shutdown, and pass the abort signal to the process', async () => {
    const { exec, calls } = fakeExec({ exitCode: undefined, isCanceled: true });
    const shutdown = new AbortController();
    const helm = createHelm({ binary: 'helm', exec, signal: shutdown.signal });

    const err = (await helm.upgradeInstall(upgradeInput).catch((e: unknown) => e)) as HelmError;

    expect(err.failure).toBe('canceled');
    const signal = calls[0]?.options.signal;
    expect(signal?.aborted).toBe(false);
    shutdown.abort();
    expect(signal?.aborted).toBe(true);
  });
});

describe('helm template', () => {
  it('renders client-side: values on stdin, no cluster flags', async () => {
    const { exec, calls } = fakeExec({ stdout: '---\nkind: ConfigMap\n' });
    const helm = createHelm({ binary: 'helm', exec, kubeconfig: '/tmp/kc' });

    const out = await helm.template({
      release: 'web',
      namespace: 'web',
      chart: '/repo/charts/web',
      values: { a: 1 },
      kubeVersion: '1.31.0',
      apiVersions: ['monitoring.coreos.com/v1', 'policy/v1'],
    });

    expect(out).toBe('---\nkind: ConfigMap\n');
    expect(calls[0]?.args).toEqual([
      'template',
      'web',
      '/repo/charts/web',
      '--namespace',
      'web',
      '--values',
      '-',
      '--kube-version',
      '1.31.0',
      '--api-versions',
      'monitoring.coreos.com/v1',
      '--api-versions',
      'policy/v1',
    ]);
    expect(calls[0]?.options.input).toBe('a: 1\n');
  });
});

describe('helm status, history, list, uninstall, rollback', () => {
  it('status of a missing release is undefined', async () => {
    const { exec } = fakeExec({ exitCode: 1, stderr: 'Error: release: not found' });
    const helm = createHelm({ binary: 'helm', exec });

    expect(await helm.status('ghost', 'default')).toBeUndefined();
  });

  it('status reads only the release record, and reports pending states left by a crash', async () => {
    const { exec, calls } = fakeExec({
      stdout: JSON.stringify({
        name: 'web',
        chart: 'web',
        version: '1.2.0',
        appVersion: '2.0',
        labels: {
          'mooring.io/managed': 'true',
          name: 'web',
          owner: 'helm',
          status: 'pending-upgrade',
          version: '4',
        },
        namespace: 'web',
        revision: 4,
        status: 'pending-upgrade',
        deployedAt: '2025-01-01T00:00:00Z',
        applyMethod: 'ssa',
      }),
    });
    const helm = createHelm({ binary: 'helm', exec });

    expect(await helm.status('web', 'web')).toEqual({
      name: 'web',
      namespace: 'web',
      revision: 4,
      status: 'pending-upgrade',
      chart: 'web',
      chartVersion: '1.2.0',
      appVersion: '2.0',
      updated: '2025-01-01T00:00:00Z',
      labels: { 'mooring.io/managed': 'true' },
      applyMethod: 'ssa',
    });
    expect(calls[0]?.args).toEqual(['get', 'metadata', 'web', '--namespace', 'web', '--output', 'json']);
  });

  it('history lists revisions, and is empty for a missing release', async () => {
    const { exec } = fakeExec(
      {
        stdout: JSON.stringify([
          {
            revision: 1,
            status: 'superseded',
            chart: 'web-1.0.0',
            app_version: '1',
            description: 'Install complete',
          },
          {
            revision: 2,
            status: 'deployed',
            chart: 'web-1.1.0',
            app_version: '',
            description: 'Upgrade complete',
          },
        ]),
      },
      { exitCode: 1, stderr: 'Error: release: not found' },
    );
    const helm = createHelm({ binary: 'helm', exec });

    expect(await helm.history('web', 'web')).toEqual([
      {
        revision: 1,
        status: 'superseded',
        chart: 'web-1.0.0',
        appVersion: '1',
        description: 'Install complete',
      },
      { revision: 2, status: 'deployed', chart: 'web-1.1.0', description: 'Upgrade complete' },
    ]);
    expect(await helm.history('ghost', 'web')).toEqual([]);
  });

  it('list asks for releases in every state and splits chart name and version', async () => {
    const { exec, calls } = fakeExec({
      stdout: JSON.stringify([
        {
          name: 'cache',
          namespace: 'cache',
          revision: '4',
          updated: '2026-11-21 19:21:28.621907717 +0000 UTC',
          status: 'pending-upgrade',
          chart: 'redis-ha-18.6.1',
          app_version: '7.2',
        },
      ]),
    });
    const helm = createHelm({ binary: 'helm', exec });

    const releases = await helm.list({ allNamespaces: true, selector: 'mooring.io/managed=true' });

    expect(releases).toEqual([
      {
        name: 'cache',
        namespace: 'cache',
        revision: 4,
        status: 'pending-upgrade',
        chart: 'redis-ha',
        chartVersion: '18.6.1',
        appVersion: '7.2',
        updated: '2026-11-21T19:21:28.621907717+00:00',
      },
    ]);
    expect(calls[0]?.args).toEqual(
      expect.arrayContaining(['--all-namespaces', '--pending', '--failed', '--deployed', '--uninstalling']),
    );
    expect(calls[0]?.args.slice(-2)).toEqual(['--selector', 'mooring.io/managed=true']);
  });

  it('uninstall says whether there was a release to remove', async () => {
    const { exec, calls } = fakeExec(
      {},
      { exitCode: 1, stderr: 'Error: failed to delete release: ghost: release: not found' },
    );
    const helm = createHelm({ binary: 'helm', exec });

    expect(await helm.uninstall('web', 'web', { wait: true, timeoutSeconds: 60 })).toBe(true);
    expect(await helm.uninstall('ghost', 'web', { wait: true, timeoutSeconds: 60 })).toBe(false);
    expect(calls[0]?.args).toEqual([
      'uninstall',
      'web',
      '--namespace',
      'web',
      '--timeout',
      '60s',
      '--wait=watcher',
    ]);
  });

  it('rollback targets the given revision', async () => {
    const { exec, calls } = fakeExec({});
    const helm = createHelm({ binary: 'helm', exec });

    await helm.rollback('web', 'web', { revision: 2, wait: false, timeoutSeconds: 30 });

    expect(calls[0]?.args).toEqual([
      'rollback',
      'web',
      '2',
      '--namespace',
      'web',
      '--timeout',
      '30s',
      '--wait=hookOnly',
    ]);
  });

  it('a failure that is not "not found" is still an error', async () => {
    const { exec } = fakeExec({ exitCode: 1, stderr: 'Error: Kubernetes cluster unreachable' });
    const helm = createHelm({ binary: 'helm', exec });

    await expect(helm.status('web', 'web')).rejects.toThrow(/cluster unreachable/);
  });
});

describe('resolveHelm', () => {
  const executables =
    (...paths: string[]) =>
    (p: string) =>
      paths.includes(p);

  it('prefers MOORING_HELM', () => {
    const env = { MOORING_HELM: '/opt/helm4/helm', PATH: '/usr/bin' };
    expect(resolveHelm(env, { isExecutable: executables('/opt/helm4/helm', '/usr/bin/helm') })).toBe(
      '/opt/helm4/helm',
    );
  });

  it('refuses a MOORING_HELM that is not executable rather than falling back', () => {
    const env = { MOORING_HELM: '/nope/helm', PATH: '/usr/bin' };
    expect(() => resolveHelm(env, { isExecutable: executables('/usr/bin/helm') })).toThrow(
      /MOORING_HELM points to \/nope\/helm/,
    );
  });

  it('searches PATH in order', () => {
    const env = { PATH: '/a:/b:/c' };
    expect(resolveHelm(env, { isExecutable: executables('/b/helm', '/c/helm') })).toBe('/b/helm');
  });

  it('says how to fix a missing helm', () => {
    const err = (() => {
      try {
        resolveHelm({ PATH: '/a' }, { isExecutable: () => false });
      } catch (e) {
        return e as MooringError;
      }
      return undefined;
    })();
    expect(err?.message).toBe('helm was not found on PATH');
    expect(err?.hint).toMatch(/MOORING_HELM/);
  });
});

describe('the leash (helm dies with the agent)', () => {
  it('starts every helm process as `mooring-leash <our pid> <helm> ARGS`; errors still show the helm command', async () => {
    const { exec, calls } = fakeExec(
      { stdout: releaseJson() },
      { exitCode: 1, stderr: 'Error: UPGRADE FAILED: boom' },
    );
    const spawned: (readonly string[])[] = [];
    const helm = createHelm({
      binary: '/opt/helm',
      leash: '/opt/mooring-leash',
      exec,
      onSpawn: (a) => spawned.push(a),
    });
    await helm.upgradeInstall(upgradeInput);
    const err = await helm.upgradeInstall(upgradeInput).catch((e: unknown) => e as HelmError);

    expect(calls[0]?.file).toBe('/opt/mooring-leash');
    expect(calls[0]?.args.slice(0, 4)).toEqual([String(process.pid), '/opt/helm', 'upgrade', 'web']);
    expect(spawned[0]?.slice(0, 2)).toEqual(['upgrade', 'web']);
    expect((err as HelmError).command).toMatch(/^helm upgrade web /);
  });

  it('is found next to helm, on Linux only', () => {
    const at =
      (...paths: string[]) =>
      (p: string) =>
        paths.includes(p);
    expect(
      findLeash('/opt/tools/helm', { platform: 'linux', isExecutable: at('/opt/tools/mooring-leash') }),
    ).toBe('/opt/tools/mooring-leash');
    expect(
      findLeash('/opt/tools/helm', { platform: 'linux', isExecutable: at('/usr/bin/mooring-leash') }),
    ).toBe(undefined);
    expect(findLeash('/opt/tools/helm', { platform: 'darwin', isExecutable: () => true })).toBe(undefined);
  });
});

describe('redactSecrets', () => {
  it('removes raw, JSON-escaped and base64 forms and each line of multi-line secrets', () => {
    const cert = '-----BEGIN KEY-----\nMIIBVwIBADANBgkq\n-----END KEY-----';
    const text = `a "quote\\"d" b ${Buffer.from('p4ss').toString('base64')} c MIIBVwIBADANBgkq d p4ss`;
    expect(redactSecrets(text, ['quote"d', 'p4ss', cert])).toBe(
      'a "[redacted]" b [redacted] c [redacted] d [redacted]',
    );
  });

  it('removes short secrets only where they stand alone', () => {
    expect(redactSecrets('value "ab" in table', ['ab'])).toBe('value "[redacted]" in table');
  });
});
