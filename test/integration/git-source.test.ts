// The Git source against a real git server (git http-backend): what a poll costs, how new
// revisions arrive, and what the agent says when the server, the network or the credentials
// are wrong.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { Backoff } from '../../src/source/backoff.js';
import { GitSourceError } from '../../src/source/errors.js';
import { GitSource, type GitSourceOptions, type SyncResult } from '../../src/source/git-source.js';
import { SourcePoller } from '../../src/source/poller.js';
import {
  commitFiles,
  createRepo,
  makeCertificates,
  startGitServer,
  type GitServer,
  type GitServerOptions,
} from '../rig/git.js';

const USER = 'deploy-bot';
const PASSWORD = 'hunter2-s3cret-token';

/** A bare repository `gitops.git` holding one cluster file, served by a fresh git server. */
async function gitops(serverOptions: Omit<GitServerOptions, 'root'> = {}) {
  const base = await mkdtemp(join(tmpdir(), 'mooring-git-source-'));
  const root = join(base, 'repos');
  const content = join(base, 'content');
  await mkdir(root);
  await mkdir(join(content, 'clusters', 'eu-1'), { recursive: true });
  await writeFile(join(content, 'clusters', 'eu-1', 'cluster.yaml'), 'environment: prod\n');
  const first = createRepo(root, 'gitops.git', content);
  const server = await startGitServer({ root, ...serverOptions });
  onTestFinished(async () => {
    await server.stop();
    await rm(base, { recursive: true, force: true });
  });
  const secrets = join(base, 'secrets');
  await mkdir(secrets);
  const commit = (files: Record<string, string | null>, branch = 'main') =>
    commitFiles(root, 'gitops.git', { files, message: `change ${Object.keys(files).join(', ')}`, branch });
  const source = (options: Partial<GitSourceOptions> = {}) =>
    new GitSource({
      url: server.repoUrl('gitops.git'),
      branch: 'main',
      workDir: join(base, 'work'),
      ...options,
    });
  return { base, root, server, first, commit, source, secrets, workDir: join(base, 'work') };
}

async function credentialFiles(dir: string, username: string | undefined, password: string) {
  const passwordFile = join(dir, 'password');
  await writeFile(passwordFile, `${password}\n`);
  if (username === undefined) return { passwordFile };
  const usernameFile = join(dir, 'username');
  await writeFile(usernameFile, `${username}\n`);
  return { usernameFile, passwordFile };
}

function since(server: GitServer, mark: number) {
  return server.requests.slice(mark).map((r) => ({ method: r.method, command: r.command, status: r.status }));
}

async function failure(promise: Promise<unknown>): Promise<GitSourceError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GitSourceError);
  return err as GitSourceError;
}

describe('checking out the tracked branch', () => {
  test('checks out the branch with credentials read from files, without git metadata', async () => {
    const repo = await gitops({ auth: { username: USER, password: PASSWORD } });
    const source = repo.source(await credentialFiles(repo.secrets, USER, PASSWORD));

    const { snapshot, changed } = await source.sync();

    expect(changed).toBe(true);
    expect(snapshot.revision).toBe(repo.first);
    expect(source.current()).toEqual(snapshot);
    expect(await readFile(join(snapshot.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe(
      'environment: prod\n',
    );
    expect(await readdir(snapshot.dir)).toEqual(['clusters']);
    expect(repo.server.requests.every((r) => r.user === USER && r.status === 200)).toBe(true);
  });

  test('sends a token without a user name file as user x-access-token', async () => {
    const repo = await gitops({ auth: { username: 'x-access-token', password: PASSWORD } });
    const source = repo.source(await credentialFiles(repo.secrets, undefined, PASSWORD));

    expect((await source.sync()).snapshot.revision).toBe(repo.first);
  });

  test('an unchanged branch costs one ls-refs request and no fetch', async () => {
    const repo = await gitops();
    const source = repo.source();
    await source.sync();
    const mark = repo.server.requests.length;
    const before = { ...source.transfer };

    const poll = await source.poll();
    const sync = await source.sync();

    expect(poll).toEqual({ revision: repo.first, changed: false });
    expect(sync.changed).toBe(false);
    expect(since(repo.server, mark)).toEqual([
      { method: 'POST', command: 'ls-refs', status: 200 },
      { method: 'POST', command: 'ls-refs', status: 200 },
    ]);
    const lsRefs = repo.server.requests.at(-1);
    expect(lsRefs?.gitProtocol).toBe('version=2');
    expect(lsRefs?.lines).toContain('ref-prefix refs/heads/main');
    expect(source.transfer.requests - before.requests).toBe(2);
  });

  test('a new commit is fetched shallow and single-branch, then swapped in; the old snapshot goes', async () => {
    const repo = await gitops();
    const source = repo.source();
    const old = (await source.sync()).snapshot;
    repo.commit({ 'unrelated.txt': 'on another branch' }, 'feature');
    const second = repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: staging\n' });
    const mark = repo.server.requests.length;

    const { snapshot, changed } = await source.sync();

    expect(changed).toBe(true);
    expect(snapshot.revision).toBe(second);
    expect(await readFile(join(snapshot.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe(
      'environment: staging\n',
    );
    const upload = repo.server.requests.slice(mark).filter((r) => r.command === 'want');
    expect(upload).toHaveLength(1);
    expect(upload[0]?.lines.filter((l) => l.startsWith('want '))).toEqual([
      expect.stringContaining(`want ${second}`),
    ]);
    expect(upload[0]?.lines).toContain('deepen 1');
    expect(await readdir(join(repo.workDir, 'snapshots'))).toEqual([second]);
    await expect(readdir(old.dir)).rejects.toThrow(/ENOENT/);
  });

  test('a fetch cut off mid-way leaves the previous snapshot current and complete', async () => {
    const repo = await gitops();
    const source = repo.source();
    const old = (await source.sync()).snapshot;
    const second = repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: staging\n' });
    repo.server.setDown(true, { mode: 'truncate', when: (r) => r.command === 'want' });

    const err = await failure(source.sync());

    expect(err.reason).toBe('connection');
    expect(source.current()).toEqual(old);
    expect(await readFile(join(old.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe('environment: prod\n');
    expect(await readdir(join(repo.workDir, 'snapshots'))).toEqual([old.revision]);

    repo.server.setDown(false);
    expect((await source.sync()).snapshot.revision).toBe(second);
  });

  test('concurrent syncs and polls (interval and webhook) run one at a time and fetch once', async () => {
    const repo = await gitops();
    const source = repo.source();

    const [a, b, poll] = await Promise.all([source.sync(), source.sync(), source.poll()]);

    expect(a).toEqual({ snapshot: source.current(), changed: true, fetched: true });
    expect(b).toEqual({ snapshot: source.current(), changed: false, fetched: false });
    expect(poll).toEqual({ revision: repo.first, changed: false });
    expect(repo.server.requests.filter((r) => r.command === 'want')).toHaveLength(1);
  });

  test('a snapshot acquired by a caller survives a swap until released', async () => {
    const repo = await gitops();
    const source = repo.source();
    await source.sync();
    const inUse = source.acquire();
    repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: staging\n' });

    await source.sync();

    expect(await readFile(join(inUse!.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe(
      'environment: prod\n',
    );
    inUse!.release();
    repo.commit({ 'more.txt': 'x' });
    await source.sync();
    await expect(readdir(inUse!.dir)).rejects.toThrow(/ENOENT/);
  });

  test('a restarted agent reuses a complete snapshot left on disk instead of fetching it again', async () => {
    const repo = await gitops();
    await repo.source().sync();
    await mkdir(join(repo.workDir, 'snapshots', '.incoming-crashed', 'tree'), { recursive: true });
    const mark = repo.server.requests.length;

    const { snapshot } = await repo.source().sync();

    expect(snapshot.revision).toBe(repo.first);
    expect(since(repo.server, mark)).toEqual([{ method: 'POST', command: 'ls-refs', status: 200 }]);
    expect(await readdir(join(repo.workDir, 'snapshots'))).toEqual([repo.first]);
  });

  test('a server that only speaks protocol v0/v1 is polled by negotiating', async () => {
    const repo = await gitops({ protocolV2: false });
    const source = repo.source();

    expect((await source.sync()).snapshot.revision).toBe(repo.first);
    const mark = repo.server.requests.length;
    expect(await source.poll()).toEqual({ revision: repo.first, changed: false });
    expect(since(repo.server, mark)).toEqual([{ method: 'GET', command: undefined, status: 200 }]);
  });
});

describe('exact revisions for approvals', () => {
  test('checkoutRevision returns an older commit after the branch moved on, held until released', async () => {
    const repo = await gitops();
    const source = repo.source();
    await source.sync();
    const approved = repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: approved\n' });
    const latest = repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: latest\n' });
    await source.sync();

    const held = await source.checkoutRevision(approved);

    expect(held.revision).toBe(approved);
    expect(await readFile(join(held.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe(
      'environment: approved\n',
    );
    expect(source.current()?.revision).toBe(latest);

    const newest = repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: newest\n' });
    await source.sync();
    expect((await readdir(join(repo.workDir, 'snapshots'))).sort()).toEqual([approved, newest].sort());

    held.release();
    repo.commit({ 'more.txt': 'x' });
    await source.sync();
    expect(await readdir(join(repo.workDir, 'snapshots'))).not.toContain(approved);
  });

  test('deepens the branch history when the server will not serve a commit by sha', async () => {
    const repo = await gitops({ tipWantsOnly: true });
    const approved = repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: approved\n' });
    for (let i = 0; i < 12; i++) repo.commit({ [`history/${i}.txt`]: String(i) });
    const source = repo.source();
    const mark = repo.server.requests.length;

    const held = await source.checkoutRevision(approved);

    expect(await readFile(join(held.dir, 'clusters/eu-1/cluster.yaml'), 'utf8')).toBe(
      'environment: approved\n',
    );
    const deepens = repo.server.requests
      .slice(mark)
      .flatMap((r) => r.lines.filter((l) => l.startsWith('deepen ')));
    expect(deepens).toEqual(['deepen 1', 'deepen 10', 'deepen 100']);
  });

  test('gives up with a clear error when the commit is not within the bound', async () => {
    const repo = await gitops({ tipWantsOnly: true });
    const gone = repo.commit({ 'clusters/eu-1/cluster.yaml': 'environment: old\n' });
    for (let i = 0; i < 6; i++) repo.commit({ [`history/${i}.txt`]: String(i) });
    const source = repo.source({ maxDepth: 5 });

    const err = await failure(source.checkoutRevision(gone));

    expect(err.reason).toBe('revision-not-found');
    expect(err.message).toBe(
      `revision ${gone} is not among the last 5 commits of branch main in ${repo.server.repoUrl('gitops.git')}`,
    );
    expect(await readdir(join(repo.workDir, 'snapshots'))).toEqual([]);
  });
});

describe('failures', () => {
  test('wrong credentials: the error names the flags to check and never the secret', async () => {
    const repo = await gitops({ auth: { username: USER, password: 'the-right-one' } });
    const source = repo.source(await credentialFiles(repo.secrets, USER, PASSWORD));

    const err = await failure(source.sync());

    expect(err.reason).toBe('auth');
    expect(err.describe()).toBe(
      `authentication failed for ${repo.server.repoUrl('gitops.git')} (check --git-username-file/--git-password-file)`,
    );
    const printed = [
      err.describe(),
      JSON.stringify(err),
      err.stack ?? '',
      JSON.stringify(source.status()),
    ].join('\n');
    expect(printed).not.toContain(PASSWORD);
    expect(printed).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
    expect(source.current()).toBeUndefined();
  });

  test('credentials written into the repository URL are used but never printed or logged', async () => {
    const repo = await gitops({ auth: { username: USER, password: PASSWORD } });
    const logged: unknown[] = [];
    const log = {
      debug: (...a: unknown[]) => logged.push(a),
      info: (...a: unknown[]) => logged.push(a),
      warn: (...a: unknown[]) => logged.push(a),
    };
    const withSecret = (password: string) =>
      repo.server.repoUrl('gitops.git').replace('http://', `http://${USER}:${password}@`);

    await repo.source({ url: withSecret(PASSWORD), log }).sync();
    repo.commit({ 'more.txt': 'x' });
    await repo.source({ url: withSecret(PASSWORD), log }).sync();
    const err = await failure(repo.source({ url: withSecret(`${PASSWORD}-old`), log }).sync());

    expect(err.describe()).toContain(`authentication failed for ${repo.server.repoUrl('gitops.git')}`);
    expect(logged.length).toBeGreaterThan(0);
    expect([err.describe(), err.stack, JSON.stringify(err), JSON.stringify(logged)].join('\n')).not.toContain(
      PASSWORD,
    );
  });

  test('a rotated password file is picked up on the next poll', async () => {
    const repo = await gitops({ auth: { username: USER, password: PASSWORD } });
    const files = await credentialFiles(repo.secrets, USER, 'expired-token');
    const source = repo.source(files);
    expect((await failure(source.sync())).reason).toBe('auth');

    await writeFile(files.passwordFile, PASSWORD);

    expect((await source.sync()).snapshot.revision).toBe(repo.first);
    expect(source.status()).toMatchObject({ consecutiveFailures: 0, revision: repo.first });
  });

  test('a branch that does not exist is reported as such', async () => {
    const repo = await gitops();

    const err = await failure(repo.source({ branch: 'release' }).sync());

    expect(err.reason).toBe('branch-not-found');
    expect(err.describe()).toBe(
      `branch release not found in ${repo.server.repoUrl('gitops.git')} (check --branch)`,
    );
  });

  test('a server that refuses connections is named', async () => {
    const repo = await gitops();
    await repo.server.stop();

    const err = await failure(repo.source().sync());

    expect(err.reason).toBe('connection');
    expect(err.message).toContain(`connection refused by ${new URL(repo.server.url).host}`);
  });

  test('while the server is down the poller backs off with jitter, then syncs when it is back', async () => {
    const repo = await gitops();
    repo.server.setDown(true);
    const stop = new AbortController();
    const delays: number[] = [];
    const errors: string[] = [];
    const synced: SyncResult[] = [];
    const poller = new SourcePoller({
      source: repo.source(),
      intervalMs: 60_000,
      backoff: new Backoff({ baseMs: 1_000, capMs: 4_000, random: () => 0.5 }),
      sleep: async (ms) => {
        delays.push(ms);
        if (delays.length === 4) repo.server.setDown(false);
        if (synced.length > 0) stop.abort();
      },
      onSync: (r) => void synced.push(r),
      onError: (e) => void errors.push(e instanceof GitSourceError ? e.reason : e.message),
    });

    await poller.run(stop.signal);

    expect(delays).toEqual([500, 1_000, 2_000, 2_000, 60_000]);
    expect(errors).toEqual(['server', 'server', 'server', 'server']);
    expect(synced.map((s) => s.snapshot.revision)).toEqual([repo.first]);
  });
});

describe('HTTPS with a private certificate authority', () => {
  test('works with --git-ca-file, and without it fails with a TLS error that points at the flag', async () => {
    const tls = await makeCertificates();
    const repo = await gitops({
      tls: { cert: tls.cert, key: tls.key },
      auth: { username: USER, password: PASSWORD },
    });
    const credentials = await credentialFiles(repo.secrets, USER, PASSWORD);
    expect(repo.server.url).toMatch(/^https:/);

    const trusted = await repo.source({ ...credentials, caFile: tls.caFile }).sync();
    expect(trusted.snapshot.revision).toBe(repo.first);

    const err = await failure(repo.source({ ...credentials, workDir: join(repo.base, 'other') }).sync());
    expect(err.reason).toBe('tls');
    expect(err.describe()).toMatch(
      /^TLS certificate of 127\.0\.0\.1:\d+ could not be verified: .*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/,
    );
    expect(err.hint).toBe(
      'if the server uses a private certificate authority, pass its CA certificate with --git-ca-file',
    );
  });
});

describe('a repository that does not exist', () => {
  test('is reported as not found with a hint about credentials, and polling stays one request', async () => {
    const repo = await gitops();
    const source = repo.source({ url: repo.server.repoUrl('missing.git') });
    const mark = repo.server.requests.length;

    const err = await failure(source.sync());
    await failure(source.sync());

    expect(err.reason).toBe('repository-not-found');
    expect(err.describe()).toBe(
      `repository not found at ${repo.server.repoUrl('missing.git')} (HTTP 404) (check --repo; private repositories answer 404 without credentials (--git-username-file/--git-password-file))`,
    );
    expect(since(repo.server, mark)).toEqual([
      { method: 'POST', command: 'ls-refs', status: 404 },
      { method: 'POST', command: 'ls-refs', status: 404 },
    ]);
  });
});
