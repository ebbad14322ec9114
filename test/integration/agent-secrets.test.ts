// Decrypted values never leave memory except towards helm: an agent converges releases whose
// values come from real sops-encrypted files (one of which makes helm print a secret in its
// error), and the secrets appear in no log line, MooringRelease status, Event, metric, or
// file the agent wrote, while the cluster really did receive them.
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';
import { eventsIn, kubectl, runOnce, startLoop, startRig, uniqueName, type AgentRig } from '../rig/agent.js';
import { ageKeygen, sopsEncrypt } from '../rig/sops.js';

let rig: AgentRig;

beforeAll(async () => {
  rig = await startRig(inject('kubeconfig'));
});

afterAll(async () => {
  await rig?.stop();
});

/** Every regular file under `dir` changed since `since` (ms), at most 20 MiB each. */
async function filesWrittenSince(dir: string, since: number): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesWrittenSince(path, since)));
    else if (entry.isFile()) {
      const info = await stat(path).catch(() => undefined);
      if (info && info.mtimeMs >= since && info.size < 20 * 1024 * 1024) out.push(path);
    }
  }
  return out;
}

describe('decrypted values', () => {
  const cluster = uniqueName('sec');
  const agentNs = `${cluster}-agent`;
  // Random, so no file on this machine can contain them by accident.
  const dbPassword = `db-${randomBytes(12).toString('hex')}`;
  const apiToken = `tok-${randomBytes(12).toString('hex')}`;
  const renderSecret = `leak-${randomBytes(12).toString('hex')}`;
  const forms = (s: string) => [s, Buffer.from(s).toString('base64')];
  const secrets = [dbPassword, apiToken, renderSecret].flatMap(forms);

  it('reach the cluster, and appear in no log, status, Event, metric or file', async () => {
    const started = Date.now() - 1000;
    const key = await ageKeygen();
    const keyFile = await rig.writeFile(`${cluster}/age.txt`, key.keyFile);
    const encrypt = (doc: string) => sopsEncrypt(doc, { recipients: [key.publicKey] });
    const repo = await rig.createRepo({
      ...rig.clusterRepo(cluster, { web: {}, leaky: {} }),
      'environments/test/secrets/web.sops.yaml': await encrypt(`password: ${dbPassword}\n`),
      'environments/test/secrets.sops.yaml': await encrypt(`config:\n  token: ${apiToken}\n`),
      // A chart that fails while rendering, with a secret in helm's error message.
      'environments/test/secrets/leaky.sops.yaml': await encrypt(`failRender: ${renderSecret}\n`),
    });
    const config = rig.agentFor(cluster, repo, {
      ageKeyFile: keyFile,
      interval: '1h',
      listen: '127.0.0.1:0',
    });
    const agent = startLoop(config, rig.env);
    let metrics: string;
    try {
      const pass = await agent.waitForPass((p) => p.outcome !== 'source-error');
      expect(pass.converge!.releases.map((r) => [r.name, r.state])).toEqual([
        ['leaky', 'failed'],
        ['web', 'ready'],
      ]);
      metrics = await (await fetch(`http://${await agent.address}/metrics`)).text();
    } finally {
      await agent.stop();
    }

    // The secrets did their job: helm got them, the cluster has them.
    const secret = await rig.clients.core.readNamespacedSecret({
      name: 'web-secret',
      namespace: `${cluster}-web`,
    });
    expect(Buffer.from(secret.data!.password!, 'base64').toString()).toBe(dbPassword);
    const config2 = await rig.clients.core.readNamespacedConfigMap({
      name: 'web-config',
      namespace: `${cluster}-web`,
    });
    expect(config2.data).toEqual({ token: apiToken });
    // ... and the error that carried one was kept, redacted.
    const leaky = JSON.parse(
      await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mrel', 'leaky', '-o', 'json'),
    ).status as { lastError: string };
    expect(leaky.lastError).toContain('cannot render: [redacted]');

    const logs = agent.logs.lines.join('');
    expect(logs).toContain('converge failed');
    const statuses = await kubectl(rig.kubeconfig, '-n', agentNs, 'get', 'mrel', '-o', 'json');
    const events = JSON.stringify(await eventsIn(rig.clients, agentNs));
    expect(events).toContain('ConvergeFailed');
    // The control plane's own state (etcd) holds the Secret and ConfigMap, as a cluster does.
    const clusterStore = dirname(rig.kubeconfig);
    const files = [
      ...(await filesWrittenSince(config.workDir, 0)),
      ...(await filesWrittenSince(tmpdir(), started)).filter((f) => !f.startsWith(`${clusterStore}/`)),
    ];
    expect(files.some((f) => f.startsWith(config.workDir))).toBe(true);

    for (const s of secrets) {
      expect(logs).not.toContain(s);
      expect(statuses).not.toContain(s);
      expect(events).not.toContain(s);
      expect(metrics).not.toContain(s);
    }
    const leaks: string[] = [];
    for (const file of files) {
      const content = await readFile(file).catch(() => Buffer.alloc(0));
      for (const s of secrets) if (content.includes(s)) leaks.push(`${file}: ${s.slice(0, 6)}...`);
    }
    expect(leaks).toEqual([]);
  });

  it('a numeric secret printed by a failing template appears in no log, status, Event, plan or validate output', async () => {
    const numeric = uniqueName('num');
    const numericNs = `${numeric}-agent`;
    // A random nine-digit number: helm gets it as a float64 and `%s`/`%v` print 9.87654321e+08.
    const n = 100_000_000 + Math.floor(Math.random() * 800_000_000) + 11;
    const digits = String(n).replace(/0+$/, '');
    const goForm = `${digits[0]}.${digits.slice(1)}`;
    const tales = [String(n), goForm, Buffer.from(String(n)).toString('base64')];

    const key = await ageKeygen();
    const keyFile = await rig.writeFile(`${numeric}/age.txt`, key.keyFile);
    const files = {
      ...rig.clusterRepo(numeric, { counter: {} }),
      'environments/test/secrets/counter.sops.yaml': await sopsEncrypt(`failRender: ${n}\n`, {
        recipients: [key.publicKey],
      }),
    };
    const repo = await rig.createRepo(files);
    const run = await runOnce(rig.agentFor(numeric, repo, { ageKeyFile: keyFile }), rig.env);
    expect(run.code, run.log()).toBe(1);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.state])).toEqual([['counter', 'failed']]);

    const status = await kubectl(rig.kubeconfig, '-n', numericNs, 'get', 'mrel', 'counter', '-o', 'json');
    // helm did print it, as Go does: `%!s(float64=9.87654321e+08)`, now redacted.
    expect(JSON.parse(status).status.lastError).toContain('cannot render: %!s(float64=[redacted])');
    const events = JSON.stringify(await eventsIn(rig.clients, numericNs));
    expect(events).toContain('ConvergeFailed');

    // plan and validate on a checkout of the same repository.
    const checkout = await rig.tempDir('numeric-checkout');
    await promisify(execFile)('git', ['clone', '--quiet', repo.gitdir, checkout]);
    const cli = async (args: string[]) => {
      const out: string[] = [];
      const io: Io = { out: (t) => out.push(t), err: (t) => out.push(t), colour: false };
      const saved = { ...process.env };
      Object.assign(process.env, { SOPS_AGE_KEY_FILE: keyFile, SOPS_AGE_KEY: '' });
      try {
        const code = await main(args, io);
        return { code, text: out.join('\n') };
      } finally {
        process.env = saved;
      }
    };
    const plan = await cli(['plan', '--repo', checkout, '--cluster', numeric]);
    const validate = await cli(['validate', '--repo', checkout]);
    expect(validate.code).toBe(1);
    expect(validate.text).toContain('[redacted]');

    for (const [where, text] of [
      ['log', run.log()],
      ['status', status],
      ['events', events],
      ['plan', plan.text],
      ['validate', validate.text],
    ] as const) {
      for (const tale of tales) expect(text, `${where} shows ${tale}`).not.toContain(tale);
    }
  });
});
