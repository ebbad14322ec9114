// The Git source over SSH against a real OpenSSH sshd (started here, on 127.0.0.1, with its
// own host key) running git-upload-pack: checkouts, what a poll costs, exact revisions for
// approvals, host key checking (always on) and the errors a platform engineer sees. Ends with
// `mooring run --once` converging from an SSH repository on the real control plane.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, onTestFinished, test } from 'vitest';
import { GitSourceError } from '../../src/source/errors.js';
import { GitSource, type GitSourceOptions } from '../../src/source/git-source.js';
import { runOnce, startRig, uniqueName } from '../rig/agent.js';
import { commitFiles, createRepo, moveBranch } from '../rig/git.js';
import { makeKeyPair, startSshd, type Sshd } from '../rig/sshd.js';

let sshd: Sshd;
let sshdV0: Sshd;
let base: string;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'mooring-git-ssh-'));
  [sshd, sshdV0] = await Promise.all([startSshd(), startSshd({ protocolV2: false })]);
});

afterAll(async () => {
  await Promise.all([sshd?.stop(), sshdV0?.stop()]);
  await rm(base, { recursive: true, force: true });
});

/** A bare repository with one cluster file and `branches` more branches, and a source for it. */
async function gitops(server: Sshd = sshd, branches = 0) {
  const dir = await mkdtemp(join(base, 'repo-'));
  const root = join(dir, 'repos');
  const content = join(dir, 'content');
  await mkdir(join(content, 'clusters', 'eu-1'), { recursive: true });
  await writeFile(join(content, 'clusters', 'eu-1', 'cluster.yaml'), 'environment: prod\n');
  const first = createRepo(root, 'gitops.git', content);
  for (let i = 0; i < branches; i++) moveBranch(root, 'gitops.git', `release-${i}`, first);
  const knownHosts = join(dir, 'known_hosts');
  await writeFile(knownHosts, `# the test server\n${server.knownHostsLine}\n`);
  const gitdir = join(root, 'gitops.git');
  const commit = (files: Record<string, string | null>) =>
    commitFiles(root, 'gitops.git', { files, message: `change ${Object.keys(files).join(', ')}` });
  const source = (options: Partial<GitSourceOptions> = {}) =>
    new GitSource({
      url: server.urlFor(gitdir),
      branch: 'main',
      workDir: join(dir, 'work'),
      sshKeyFile: server.clientKey.privateKeyFile,
      knownHostsFile: knownHosts,
      ...options,
    });
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return { dir, gitdir, first, commit, source, knownHosts };
}

async function failure(promise: Promise<unknown>): Promise<GitSourceError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GitSourceError);
  return err as GitSourceError;
}

const accepted = (server: Sshd) => server.log().match(/Accepted publickey/g)?.length ?? 0;

describe('Git over SSH', () => {
  test('checks out the branch of an ssh:// URL with a deploy key, checking the host key', async () => {
    const repo = await gitops();
    const before = accepted(sshd);
    const { snapshot, changed } = await repo.source().sync();

    expect(changed).toBe(true);
    expect(snapshot.revision).toBe(repo.first);
    expect(await readFile(join(snapshot.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe(
      'environment: prod\n',
    );
    // One connection for the whole sync (poll, advertisement, fetch).
    expect(accepted(sshd) - before).toBe(1);
  });

  test('an unchanged poll is one connection and one small v2 ls-refs, whatever the number of refs', async () => {
    const repo = await gitops(sshd, 40);
    const source = repo.source();
    await source.sync();
    const before = { ...source.transfer };
    const connections = accepted(sshd);

    expect(await source.poll()).toEqual({ revision: repo.first, changed: false });
    expect((await source.sync()).changed).toBe(false);

    expect(source.transfer.requests - before.requests).toBe(2);
    expect(accepted(sshd) - connections).toBe(2);
    const perPoll = (source.transfer.bytesIn - before.bytesIn) / 2;

    // The same repository through a server that drops GIT_PROTOCOL: v0 advertises all 41 refs.
    const v0 = await gitops(sshdV0, 40);
    const old = v0.source();
    await old.sync();
    const beforeV0 = old.transfer.bytesIn;
    expect(await old.poll()).toEqual({ revision: v0.first, changed: false });
    const perPollV0 = old.transfer.bytesIn - beforeV0;

    expect(perPoll).toBeLessThan(1024);
    expect(perPollV0).toBeGreaterThan(perPoll * 3);
  });

  test('a new commit is fetched and swapped in; an older exact revision is still served', async () => {
    const repo = await gitops();
    const source = repo.source();
    await source.sync();
    const second = repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: staging\n' });

    const next = await source.sync();
    expect(next).toMatchObject({ changed: true, snapshot: { revision: second } });
    expect(await readFile(join(next.snapshot.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe(
      'environment: staging\n',
    );

    // Stateful upload-pack refuses a want that is no tip; the source deepens the branch instead.
    const old = await source.checkoutRevision(repo.first);
    expect(await readFile(join(old.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe('environment: prod\n');
    old.release();
  });

  test('a host missing from the known_hosts file is refused before connecting, naming host and file', async () => {
    const repo = await gitops();
    await writeFile(
      repo.knownHosts,
      'github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n',
    );
    const before = sshd.log().length;

    const err = await failure(repo.source().sync());

    expect(err.reason).toBe('host-key');
    expect(err.message).toContain(`host [127.0.0.1]:${sshd.port} is not in --git-known-hosts-file`);
    expect(err.context.file).toBe(repo.knownHosts);
    expect(err.hint).toContain(`ssh-keyscan -p ${sshd.port} 127.0.0.1`);
    expect(sshd.log().slice(before)).not.toMatch(/Accepted|Failed|Connection from/);
  });

  test('a host key other than the known one fails before the key is offered', async () => {
    const repo = await gitops();
    const other = await makeKeyPair(repo.dir, 'impostor');
    const [type, blob] = other.publicKey.split(' ');
    await writeFile(repo.knownHosts, `[127.0.0.1]:${sshd.port} ${type} ${blob}\n`);
    const before = sshd.log().length;

    const err = await failure(repo.source().sync());

    expect(err.reason).toBe('host-key');
    expect(err.message).toContain(
      `host key of [127.0.0.1]:${sshd.port} does not match --git-known-hosts-file`,
    );
    expect(sshd.log().slice(before)).not.toMatch(/Accepted publickey|Failed publickey/);
  });

  test('a key the server does not accept is an auth failure; a wrong path says the repository is missing', async () => {
    const repo = await gitops();
    const stranger = await makeKeyPair(repo.dir, 'stranger');

    const auth = await failure(repo.source({ sshKeyFile: stranger.privateKeyFile }).sync());
    expect(auth.reason).toBe('auth');
    expect(auth.message).toContain(`refused the key in --git-ssh-key-file for user ${sshd.user}`);
    expect(auth.message).not.toContain(await readFile(stranger.privateKeyFile, 'utf8'));

    const missing = await failure(repo.source({ url: sshd.urlFor(join(repo.dir, 'nope.git')) }).sync());
    expect(missing.reason).toBe('repository-not-found');
    expect(missing.message).toContain(join(repo.dir, 'nope.git'));
  });

  test('a public key or an unreadable file as --git-ssh-key-file is a configuration error naming it', async () => {
    const repo = await gitops();
    const pub = `${sshd.clientKey.privateKeyFile}.pub`;
    const wrong = await failure(repo.source({ sshKeyFile: pub }).sync());
    expect(wrong.reason).toBe('config');
    expect(wrong.message).toContain('--git-ssh-key-file');
    expect(wrong.context.file).toBe(pub);

    const gone = await failure(repo.source({ sshKeyFile: join(repo.dir, 'missing') }).sync());
    expect(gone.message).toContain('cannot read --git-ssh-key-file (ENOENT)');
  });
});

describe('mooring run over SSH', () => {
  test('--once converges a cluster from an SSH repository; the key never reaches the log', async () => {
    const rig = await startRig(inject('kubeconfig'));
    onTestFinished(() => rig.stop());
    const cluster = uniqueName('ssh');
    const repo = await rig.createRepo(rig.clusterRepo(cluster, { web: {} }));
    const knownHosts = await rig.writeFile('ssh/known_hosts', `${sshd.knownHostsLine}\n`);
    const before = rig.git.requests.length;

    const run = await runOnce(
      rig.agentFor(
        cluster,
        { ...repo, url: sshd.urlFor(repo.gitdir) },
        {
          gitSshKeyFile: sshd.clientKey.privateKeyFile,
          gitKnownHostsFile: knownHosts,
        },
      ),
      rig.env,
    );

    expect(run.code, run.log()).toBe(0);
    expect(run.passes[0]!.converge!.releases.map((r) => [r.name, r.state])).toEqual([['web', 'ready']]);
    expect(rig.git.requests.length).toBe(before); // nothing went through the HTTP server
    const key = await readFile(sshd.clientKey.privateKeyFile, 'utf8');
    const body = key.split('\n').filter((l) => l && !l.startsWith('-----'))[1]!;
    expect(run.log()).not.toContain(body);
  });
});
