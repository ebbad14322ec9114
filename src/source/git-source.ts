// The agent's view of its Git repository: one branch of one repository over HTTP(S) or SSH,
// turned into immutable snapshot folders. A poll asks only where the branch points (one request);
// a new commit is fetched shallow into a fresh folder, checked out, verified, and only then
// becomes current, so a half-fetched revision is never visible. Approvals need exactly the
// approved commit, which checkoutRevision fetches even after the branch has moved on.
//
// Snapshots keep no .git: consumers read plain files, the revision is the folder's name, and
// the git objects would double the disk use of every snapshot for nothing.
//
// With `path` (--path), only that folder is checked out and a snapshot's dir is that folder.
// A new commit whose tree under `path` is the very tree of the current snapshot changes
// nothing the agent reads: the source stays on the current snapshot (no new revision for the
// agent to plan or converge) and remembers the head, so the next poll is one request again.
//
// Operations on one GitSource run one at a time (a webhook-triggered poll waits for a running
// fetch). One GitSource per work folder.
import * as fs from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { init, listServerRefs, setConfig, type HttpClient } from 'isomorphic-git';
import { MooringError } from '../errors.js';
import {
  basicAuthHeader,
  readCredentials,
  redactUrl,
  splitUrlCredentials,
  type GitCredentials,
} from './credentials.js';
import { explainGitFailure, GitSourceError, isTransportFailure } from './errors.js';
import { gitWorkerFile, inThreadGitOps, workerGitOps, type GitOps } from './git-ops.js';
import { createHttpClient, emptyStats, type TransferStats } from './http-client.js';
import { lsRefsBranch } from './ls-refs.js';
import { createSshClient, parseSshUrl, SSH_PLACEHOLDER_URL, type SshRemote } from './ssh-transport.js';
import { SnapshotStore, type Incoming, type Snapshot, type SnapshotHold } from './snapshots.js';

export type { Snapshot, SnapshotHold } from './snapshots.js';

/** The subset of a pino logger the source writes to. */
export interface SourceLogger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

export interface GitSourceOptions {
  /** Repository URL (`--repo`); credentials written into it are used but never printed. */
  url: string;
  /** Branch to track (`--branch`). */
  branch: string;
  /** Folder the agent may write to; snapshots go to `<workDir>/snapshots/`. */
  workDir: string;
  /**
   * `--path`: the repository folder holding the layout, clean and relative (see layoutPath).
   * Only it is checked out, and snapshots' dirs point into it.
   */
  path?: string;
  /** `--git-username-file`; re-read on every operation. */
  usernameFile?: string;
  /** `--git-password-file` (password or token); re-read on every operation. */
  passwordFile?: string;
  /** `--git-ca-file`: PEM CA certificate(s) trusted in addition to the public roots. */
  caFile?: string;
  /** `--git-ssh-key-file`: the private key for an SSH URL; re-read on every operation. */
  sshKeyFile?: string;
  /** `--git-known-hosts-file`: host keys an SSH server must show; re-read on every operation. */
  knownHostsFile?: string;
  /** Per-request timeout: connecting, and any silence while waiting for bytes. Default 30s. */
  timeoutMs?: number;
  /** How far back checkoutRevision looks for a commit the server will not serve by sha. */
  maxDepth?: number;
  /**
   * Replaces the built-in HTTP client (tests, benchmarks); caFile and timeoutMs then do not
   * apply and `transfer` stays at zero.
   */
  http?: HttpClient;
  now?: () => Date;
  log?: SourceLogger;
}

export interface PollResult {
  /** Where the branch points now. */
  revision: string;
  /** Whether that differs from the current snapshot. */
  changed: boolean;
}

export interface SyncResult {
  /** The current snapshot after the sync. */
  snapshot: Snapshot;
  /** Whether this sync made a different snapshot current. */
  changed: boolean;
  /** Whether this sync fetched a commit (also one that changed nothing under `path`). */
  fetched: boolean;
}

export interface SourceStatus {
  url: string;
  branch: string;
  revision?: string;
  lastAttemptAt?: Date;
  lastSuccessAt?: Date;
  /** The last failure, until the next success. */
  lastError?: GitSourceError;
  consecutiveFailures: number;
  transfer: TransferStats;
}

interface Session {
  http: HttpClient;
  /** fetch and checkout: on a worker thread unless the client was injected or speaks SSH. */
  git: GitOps;
  headers: Record<string, string>;
  credentials: GitCredentials | undefined;
  doing: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_DEPTH = 1000;
const SHA = /^[0-9a-f]{40}$/;
const USER_AGENT = 'git/isomorphic-git (mooring)';
const quiet: SourceLogger = { debug() {}, info() {}, warn() {} };

export class GitSource {
  /** Everything sent and received by the built-in HTTP client since construction. */
  readonly transfer: TransferStats = emptyStats();

  private readonly url: string;
  private readonly ssh: SshRemote | undefined;
  private readonly displayUrl: string;
  private readonly urlCredentials: GitCredentials | undefined;
  private readonly branch: string;
  private readonly store: SnapshotStore;
  private readonly timeoutMs: number;
  private readonly maxDepth: number;
  private readonly now: () => Date;
  private readonly log: SourceLogger;
  private opened: Promise<void> | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private cur: Snapshot | undefined;
  private lsRefs: 'stateless' | 'negotiate' = 'stateless';
  private readonly path: string | undefined;
  /** Tree id of `path` in each fetched revision; null where the commit has no such folder. */
  private readonly pathTrees = new Map<string, string | null>();
  /** A head that changed nothing under `path`: polls that find it again change nothing. */
  private sameTreeHead: string | undefined;
  private readonly state: Omit<SourceStatus, 'url' | 'branch' | 'revision' | 'transfer'> = {
    consecutiveFailures: 0,
  };

  constructor(private readonly options: GitSourceOptions) {
    this.ssh = /^https?:\/\//i.test(options.url) ? undefined : parseSshUrl(options.url);
    if (this.ssh) {
      // isomorphic-git speaks only HTTP; the SSH client answers its requests for this URL.
      this.url = SSH_PLACEHOLDER_URL;
      this.displayUrl = options.url;
      this.urlCredentials = undefined;
      if (!options.sshKeyFile || !options.knownHostsFile) {
        throw new MooringError(
          'an SSH --repo needs --git-ssh-key-file and --git-known-hosts-file (host keys are always checked)',
          { field: options.sshKeyFile ? '--git-known-hosts-file' : '--git-ssh-key-file' },
        );
      }
    } else {
      const { url, credentials } = splitUrlCredentials(options.url);
      this.url = url;
      this.displayUrl = redactUrl(url);
      this.urlCredentials = credentials;
    }
    if (
      !options.branch ||
      options.branch.startsWith('refs/') ||
      /[\s~^:?*[\\]|\.\.|@\{/.test(options.branch)
    ) {
      throw new MooringError(`--branch is not a branch name: ${JSON.stringify(options.branch)}`, {
        field: 'branch',
      });
    }
    this.branch = options.branch;
    this.path = options.path;
    // Snapshots of one path never stand in for another's (a restart with another --path).
    const folder = this.path
      ? `snapshots-${createHash('sha256').update(this.path).digest('hex').slice(0, 12)}`
      : 'snapshots';
    this.store = new SnapshotStore(join(options.workDir, folder));
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.now = options.now ?? (() => new Date());
    this.log = options.log ?? quiet;
  }

  /** The snapshot the agent works from, once a sync has succeeded. */
  current(): Snapshot | undefined {
    return this.cur ? this.view(this.cur) : undefined;
  }

  /** Keeps the current snapshot on disk until released, even if a sync replaces it meanwhile. */
  acquire(): SnapshotHold | undefined {
    return this.cur ? this.viewHold(this.store.hold(this.cur)) : undefined;
  }

  status(): SourceStatus {
    return {
      url: this.displayUrl,
      branch: this.branch,
      ...(this.cur ? { revision: this.cur.revision } : {}),
      ...this.state,
      transfer: { ...this.transfer },
    };
  }

  /** Where the branch points, in one request; fetches nothing. */
  poll(): Promise<PollResult> {
    return this.exclusive(() =>
      this.session('polling', async (s) => {
        const revision = await this.branchHead(s);
        return {
          revision,
          changed: revision !== this.cur?.revision && revision !== this.sameTreeHead,
        };
      }),
    );
  }

  /** Polls, and if the branch moved, fetches and swaps in the new snapshot. */
  sync(): Promise<SyncResult> {
    return this.exclusive(() =>
      this.session('polling', async (s) => {
        const head = await this.branchHead(s);
        if (this.cur && (this.cur.revision === head || this.sameTreeHead === head)) {
          return { snapshot: this.view(this.cur), changed: false, fetched: false };
        }
        s.doing = 'fetching';
        const found = await this.store.find(head);
        const snapshot = found ?? (await this.fetchBranch(s, head));
        if (this.cur && this.samePathTree(snapshot.revision, this.cur.revision)) {
          this.sameTreeHead = snapshot.revision;
          this.log.info(
            { url: this.displayUrl, branch: this.branch, revision: snapshot.revision, path: this.path },
            `new revision changes nothing under ${this.path}; staying on ${this.cur.revision}`,
          );
          await this.prune();
          return { snapshot: this.view(this.cur), changed: false, fetched: !found };
        }
        this.sameTreeHead = undefined;
        const previous = this.cur?.revision;
        this.cur = snapshot;
        this.log.info(
          { url: this.displayUrl, branch: this.branch, revision: snapshot.revision, previous },
          'new revision checked out',
        );
        await this.prune();
        return { snapshot: this.view(snapshot), changed: true, fetched: !found };
      }),
    );
  }

  /**
   * A held snapshot of exactly `revision` (a full sha), whether or not the branch still points
   * there. Release it when done; the current snapshot is unaffected.
   */
  checkoutRevision(revision: string): Promise<SnapshotHold> {
    return this.exclusive(() =>
      this.session('fetching', async (s) => {
        if (!SHA.test(revision)) {
          throw new GitSourceError(
            'revision-not-found',
            `not a full commit sha: ${JSON.stringify(revision)}`,
            {
              hint: 'revisions are named by their full 40-character sha',
            },
          );
        }
        if (this.cur?.revision === revision) return this.viewHold(this.store.hold(this.cur));
        const snapshot = (await this.store.find(revision)) ?? (await this.fetchRevision(s, revision));
        const held = this.store.hold(snapshot);
        await this.prune();
        return this.viewHold(held);
      }),
    );
  }

  // ---------------------------------------------------------------------------------------

  /** What consumers see of a stored snapshot: its `path` folder. */
  private view(snapshot: Snapshot): Snapshot {
    return this.path ? { revision: snapshot.revision, dir: join(snapshot.dir, this.path) } : snapshot;
  }

  private viewHold(hold: SnapshotHold): SnapshotHold {
    return this.path ? { ...hold, dir: join(hold.dir, this.path) } : hold;
  }

  /** Both revisions were fetched by this process and hold the same tree under `path`. */
  private samePathTree(a: string, b: string): boolean {
    if (!this.path) return false;
    const ta = this.pathTrees.get(a);
    return typeof ta === 'string' && ta === this.pathTrees.get(b);
  }

  /** One operation at a time; a failure does not block the next one. */
  private exclusive<T>(op: () => Promise<T>): Promise<T> {
    const run = this.chain.then(op, op);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Reads credentials and CA afresh (rotated secrets apply on the next operation), runs `op`
   * with a client of its own, and turns any failure into a GitSourceError.
   */
  private async session<T>(doing: string, op: (s: Session) => Promise<T>): Promise<T> {
    this.state.lastAttemptAt = this.now();
    let credentials: GitCredentials | undefined;
    const ctx = (): Parameters<typeof explainGitFailure>[1] => ({
      url: this.displayUrl,
      branch: this.branch,
      doing: s?.doing ?? doing,
      timeoutMs: this.timeoutMs,
      authenticated: credentials !== undefined,
      credentials,
    });
    let s: Session | undefined;
    let close = () => {};
    let git: GitOps | undefined;
    try {
      this.opened ??= this.store.open().catch((err: unknown) => {
        this.opened = undefined; // try again on the next operation
        throw err;
      });
      await this.opened;
      credentials = this.ssh ? undefined : ((await readCredentials(this.options)) ?? this.urlCredentials);
      let http = this.options.http;
      if (!http && this.ssh) {
        const client = await createSshClient({
          remote: this.ssh,
          keyFile: this.options.sshKeyFile!,
          knownHostsFile: this.options.knownHostsFile!,
          timeoutMs: this.timeoutMs,
          stats: this.transfer,
        });
        close = () => client.close();
        http = client;
      } else if (!http) {
        const ca = this.options.caFile ? await readCaFile(this.options.caFile) : undefined;
        const client = createHttpClient({
          ...(ca ? { ca } : {}),
          timeoutMs: this.timeoutMs,
          stats: this.transfer,
        });
        close = () => client.close();
        http = client;
        const workerFile = gitWorkerFile();
        if (workerFile) {
          git = workerGitOps(
            workerFile,
            { gitWorker: true, ...(ca ? { ca } : {}), timeoutMs: this.timeoutMs },
            this.transfer,
          );
        }
      }
      // An injected client and the SSH client (one connection of this thread) stay here.
      git ??= inThreadGitOps(http);
      s = {
        http,
        git,
        headers: {
          'user-agent': USER_AGENT,
          ...(credentials ? { Authorization: basicAuthHeader(credentials) } : {}),
        },
        credentials,
        doing,
      };
      const result = await op(s);
      this.state.consecutiveFailures = 0;
      this.state.lastSuccessAt = this.now();
      delete this.state.lastError;
      return result;
    } catch (err) {
      const failure = explainGitFailure(err, ctx());
      this.state.consecutiveFailures++;
      this.state.lastError = failure;
      throw failure;
    } finally {
      close();
      git?.close();
    }
  }

  private async branchHead(s: Session): Promise<string> {
    const ref = `refs/heads/${this.branch}`;
    if (this.lsRefs === 'stateless') {
      const found = await lsRefsBranch({
        http: s.http,
        url: this.url,
        branch: this.branch,
        headers: { ...s.headers },
        agent: USER_AGENT.replace(/ /g, '-'),
      });
      if (found.kind === 'found') return found.oid;
      if (found.kind === 'missing') throw this.branchNotFound();
      // Remembered for the life of the agent: the server will not change protocols under us.
      this.lsRefs = 'negotiate';
      this.log.info(
        { url: this.displayUrl, why: found.why },
        'server does not answer stateless ls-refs; negotiating the protocol on every poll',
      );
    }
    const refs = await listServerRefs({
      http: s.http,
      url: this.url,
      prefix: ref,
      protocolVersion: 2,
      headers: { ...s.headers },
    });
    const hit = refs.find((r) => r.ref === ref);
    if (!hit) throw this.branchNotFound();
    return hit.oid;
  }

  private branchNotFound(): GitSourceError {
    return new GitSourceError('branch-not-found', `branch ${this.branch} not found in ${this.displayUrl}`, {
      hint: 'check --branch',
    });
  }

  /** A shallow, single-branch fetch of the branch tip into a fresh folder. */
  private async fetchBranch(s: Session, expected: string): Promise<Snapshot> {
    const incoming = await this.store.begin();
    try {
      await this.initGitdir(incoming.gitdir);
      const fetched = await s.git.fetch({
        gitdir: incoming.gitdir,
        url: this.url,
        ref: this.branch,
        singleBranch: true,
        depth: 1,
        tags: false,
        headers: { ...s.headers },
      });
      const revision = fetched.fetchHead;
      if (!revision) throw this.branchNotFound();
      if (revision !== expected) {
        // The branch moved between the poll and the fetch; the newer tip is just as valid.
        this.log.info(
          { url: this.displayUrl, polled: expected, fetched: revision },
          'branch moved during fetch',
        );
      }
      s.doing = 'checking out';
      await this.checkoutVerified(s, incoming, revision);
      return await this.store.publish(incoming, revision);
    } catch (err) {
      await this.store.discard(incoming);
      throw err;
    }
  }

  /**
   * Exactly `revision`: first by asking for that commit (servers allowing reachable shas in
   * wants, like GitHub and GitLab), else by deepening the branch history until it appears.
   */
  private async fetchRevision(s: Session, revision: string): Promise<Snapshot> {
    let incoming = await this.store.begin();
    try {
      try {
        await this.initGitdir(incoming.gitdir);
        await s.git.fetch({
          gitdir: incoming.gitdir,
          url: this.url,
          ref: revision,
          singleBranch: true,
          depth: 1,
          tags: false,
          headers: { ...s.headers },
        });
        if (await s.git.hasCommit({ gitdir: incoming.gitdir, oid: revision })) {
          s.doing = 'checking out';
          await this.checkoutVerified(s, incoming, revision);
          return await this.store.publish(incoming, revision);
        }
      } catch (err) {
        const failure = explainGitFailure(err, {
          url: this.displayUrl,
          branch: this.branch,
          doing: s.doing,
          timeoutMs: this.timeoutMs,
          authenticated: s.credentials !== undefined,
          credentials: s.credentials,
        });
        if (isTransportFailure(failure)) throw failure;
        this.log.debug(
          { url: this.displayUrl, revision, err: failure.message },
          'server would not serve the commit by sha; deepening the branch instead',
        );
      }
      await this.store.discard(incoming);
      incoming = await this.store.begin();
      await this.initGitdir(incoming.gitdir);
      for (const depth of deepening(this.maxDepth)) {
        await s.git.fetch({
          gitdir: incoming.gitdir,
          url: this.url,
          ref: this.branch,
          singleBranch: true,
          depth,
          tags: false,
          headers: { ...s.headers },
        });
        if (await s.git.hasCommit({ gitdir: incoming.gitdir, oid: revision })) {
          s.doing = 'checking out';
          await this.checkoutVerified(s, incoming, revision);
          return await this.store.publish(incoming, revision);
        }
      }
      throw new GitSourceError(
        'revision-not-found',
        `revision ${revision} is not among the last ${this.maxDepth} commits of branch ${this.branch} in ${this.displayUrl}`,
        { revision, hint: 'the commit may have been force-pushed away, or belong to another branch' },
      );
    } catch (err) {
      await this.store.discard(incoming);
      throw err;
    }
  }

  /** An empty repository whose only remote tracks our one branch. */
  private async initGitdir(gitdir: string): Promise<void> {
    await init({ fs, dir: gitdir, bare: true, defaultBranch: this.branch });
    await setConfig({ fs, gitdir, path: 'remote.origin.url', value: this.url });
    await setConfig({
      fs,
      gitdir,
      path: 'remote.origin.fetch',
      value: `+refs/heads/${this.branch}:refs/remotes/origin/${this.branch}`,
    });
  }

  /**
   * Writes the tree of `revision` (only `path` when set) and checks that HEAD is exactly that
   * commit. A commit without the `path` folder gives an empty snapshot: the agent then says
   * the folder is missing in that revision.
   */
  private async checkoutVerified(s: Session, incoming: Incoming, revision: string): Promise<void> {
    let filepaths: string[] | undefined;
    if (this.path) {
      const tree = await s.git.pathTree({ gitdir: incoming.gitdir, oid: revision, filepath: this.path });
      this.pathTrees.set(revision, tree);
      filepaths = tree === null ? [] : [this.path];
    }
    await s.git.checkout({
      dir: incoming.tree,
      gitdir: incoming.gitdir,
      ref: revision,
      force: true,
      track: false,
      ...(filepaths ? (filepaths.length ? { filepaths } : { noCheckout: true }) : {}),
    });
    const head = await s.git.resolveRef({ gitdir: incoming.gitdir, ref: 'HEAD' });
    if (head !== revision) {
      throw new GitSourceError(
        'protocol',
        `checkout of ${revision} from ${this.displayUrl} ended at ${head}`,
        {
          revision,
        },
      );
    }
  }

  /** Old snapshots go; the current one and any a caller holds stay. Never fails a sync. */
  private async prune(): Promise<void> {
    try {
      const removed = await this.store.prune(new Set(this.cur ? [this.cur.revision] : []));
      for (const revision of removed) this.pathTrees.delete(revision);
      if (removed.length > 0) this.log.debug({ removed }, 'removed old snapshots');
    } catch (err) {
      this.log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'could not remove old snapshots',
      );
    }
  }
}

/** 10, 100, 1000, ... up to and including max. */
function deepening(max: number): number[] {
  const steps: number[] = [];
  for (let d = 10; d < max; d *= 10) steps.push(d);
  steps.push(max);
  return steps;
}

async function readCaFile(path: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new MooringError(`cannot read --git-ca-file (${code})`, { file: path });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new MooringError('--git-ca-file holds no PEM certificate', { file: path });
  }
  return pem;
}
