// Typed access to the plain-JS git rig (scripts/lib/gitserver.mjs): a real `git http-backend`
// behind a local HTTP(S) server with a request log, plus repository operations with the git CLI.
// Also makes throwaway TLS material with the openssl CLI for the custom-CA tests.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface GitRequestRecord {
  method: string;
  /** URL path without the query, e.g. `/gitops.git/git-upload-pack`. */
  path: string;
  query: string;
  /** The `Git-Protocol` request header, e.g. `version=2`. */
  gitProtocol: string | undefined;
  /** For POSTs: the v2 command (`ls-refs`, `fetch`) or the first word of a v1 request (`want`). */
  command: string | undefined;
  /** For POSTs: the pkt-line payloads sent (`want <oid>`, `deepen 1`, `ref-prefix ...`). */
  lines: string[];
  /** Basic-auth user name sent, if any. */
  user: string | undefined;
  /** HTTP status answered; -1 when the connection was reset without one. */
  status: number;
  bytesIn: number;
  bytesOut: number;
}

/** `503` answers 503; `reset` drops the connection; `truncate` cuts a real answer short. */
export type OutageMode = '503' | 'reset' | 'truncate';

export interface OutageOptions {
  mode?: OutageMode;
  /** Only matching requests fail (default: all). */
  when?: (req: Pick<GitRequestRecord, 'method' | 'path' | 'query' | 'gitProtocol' | 'command'>) => boolean;
}

export interface GitServer {
  url: string;
  repoUrl(name: string): string;
  stop(): Promise<void>;
  /** Every completed request, oldest first. */
  requests: GitRequestRecord[];
  setDown(down: boolean, options?: OutageOptions): void;
  /** Bytes on the wire (headers and bodies) over all connections so far. */
  traffic(): { connections: number; bytesIn: number; bytesOut: number };
}

export interface GitServerOptions {
  root: string;
  auth?: { username: string; password: string };
  tls?: { cert: string | Buffer; key: string | Buffer };
  git?: string;
  /** Honour `Git-Protocol: version=2` (default true); false acts like a v0/v1-only server. */
  protocolV2?: boolean;
  /** Refuse wants of commits that are no branch or tag tip (`ERR not our ref`). */
  tipWantsOnly?: boolean;
}

export interface RepoOptions {
  git?: string;
}

export interface FileChange {
  files: Record<string, string | Buffer | null>;
  message: string;
  branch?: string;
  git?: string;
}

interface GitServerModule {
  startGitServer(options: GitServerOptions): Promise<GitServer>;
  createRepo(root: string, name: string, fromFolder?: string, options?: RepoOptions): string;
  commitFiles(root: string, name: string, change: FileChange): string;
  moveBranch(root: string, name: string, branch: string, sha: string, options?: { git?: string }): void;
  branchHead(root: string, name: string, branch: string, options?: { git?: string }): string | undefined;
}

const rig = (await import(
  new URL('../../scripts/lib/gitserver.mjs', import.meta.url).href
)) as GitServerModule;

/** Starts a git server on a free port of 127.0.0.1 serving the bare repositories in `root`. */
export const startGitServer: GitServerModule['startGitServer'] = (options) => rig.startGitServer(options);
/** Creates bare repository `<root>/<name>` on branch main with one commit; returns its sha. */
export const createRepo: GitServerModule['createRepo'] = (...args) => rig.createRepo(...args);
/** Commits file changes (null deletes) on a branch; returns the new commit's sha. */
export const commitFiles: GitServerModule['commitFiles'] = (...args) => rig.commitFiles(...args);
/** Points a branch at a commit, like a force push. */
export const moveBranch: GitServerModule['moveBranch'] = (...args) => rig.moveBranch(...args);
/** Where a branch points, or undefined. */
export const branchHead: GitServerModule['branchHead'] = (...args) => rig.branchHead(...args);

export interface TestCertificates {
  /** PEM of the CA that signed the server certificate (what --git-ca-file points at). */
  caPem: string;
  caFile: string;
  cert: string;
  key: string;
}

/** A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI. */
export async function makeCertificates(dir?: string): Promise<TestCertificates> {
  const run = promisify(execFile);
  const d = dir ?? (await mkdtemp(join(tmpdir(), 'mooring-tls-')));
  const f = (name: string) => join(d, name);
  const openssl = (args: string[]) => run('openssl', args, { cwd: d });
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=mooring test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await openssl([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  await writeFile(
    f('server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '2',
    '-extfile',
    f('server.ext'),
  ]);
  return {
    caPem: await readFile(f('ca.pem'), 'utf8'),
    caFile: f('ca.pem'),
    cert: await readFile(f('server.pem'), 'utf8'),
    key: await readFile(f('server.key'), 'utf8'),
  };
}
