// A real Git smart-HTTP server for tests, benchmarks and the demo: `git http-backend` (CGI)
// behind a small Node http/https server on 127.0.0.1, with optional basic auth, a request log
// (so tests can count exactly what the agent asked for) and switchable outages.
// Also the few repository operations tests need (create, commit, move a branch), done with
// the real git CLI so the repositories are exactly what a real forge would serve.
// Node standard library only: it is shared by vitest (via test/rig/git.ts) and plain scripts.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * @typedef {object} GitRequestRecord
 * @property {string} method
 * @property {string} path        URL path without the query, e.g. `/gitops.git/git-upload-pack`
 * @property {string} query       raw query string, e.g. `service=git-upload-pack`
 * @property {string | undefined} gitProtocol  the `Git-Protocol` request header (`version=2`)
 * @property {string | undefined} command  for POSTs: the v2 command (`ls-refs`, `fetch`), or the
 *   first word of a v1 request (`want`)
 * @property {string[]} lines   for POSTs: the request's pkt-line payloads (`want <oid>`, `deepen 1`, ...)
 * @property {string | undefined} user  the basic-auth user name, when one was sent
 * @property {number} status
 * @property {number} bytesIn     request body bytes
 * @property {number} bytesOut    response body bytes
 */

/**
 * @typedef {'503' | 'reset' | 'truncate'} OutageMode
 * `503`: answer 503 Service Unavailable; `reset`: destroy the connection without an answer;
 * `truncate`: start a real answer, then cut the connection after a few bytes of body.
 */

/**
 * @typedef {object} OutageOptions
 * @property {OutageMode} [mode]  default `503`
 * @property {(req: {method: string, path: string, query: string, gitProtocol: string | undefined}) => boolean} [when]
 *   only requests matching this are affected (default: all)
 */

/**
 * @typedef {object} GitServer
 * @property {string} url                  base URL, e.g. `http://127.0.0.1:41234`
 * @property {(name: string) => string} repoUrl   URL of repository `name` under the root
 * @property {() => Promise<void>} stop
 * @property {GitRequestRecord[]} requests every completed request, oldest first
 * @property {(down: boolean, options?: OutageOptions) => void} setDown
 * @property {() => {connections: number, bytesIn: number, bytesOut: number}} traffic
 *   bytes on the wire (HTTP headers and bodies, TLS included) over all connections so far
 */

/**
 * @typedef {object} GitServerOptions
 * @property {string} root                 folder holding the bare repositories
 * @property {{username: string, password: string}} [auth]  require basic auth
 * @property {{cert: string | Buffer, key: string | Buffer}} [tls]  serve HTTPS
 * @property {string} [git]                git binary (default `git` on PATH)
 * @property {boolean} [protocolV2]        honour `Git-Protocol: version=2` (default true); false
 *   behaves like a server that only speaks protocol v0/v1
 * @property {boolean} [tipWantsOnly]      refuse to serve commits that are not a branch or tag tip
 *   (`ERR not our ref`), like servers without uploadpack.allowReachableSHA1InWant. Real git over
 *   HTTP always serves reachable commits, so this is emulated in front of it.
 */

const REALM = 'mooring test git server';

/**
 * Starts the server on a free port of 127.0.0.1.
 * @param {GitServerOptions} options
 * @returns {Promise<GitServer>}
 */
export async function startGitServer({
  root,
  auth,
  tls,
  git = 'git',
  protocolV2 = true,
  tipWantsOnly = false,
}) {
  /** @type {GitRequestRecord[]} */
  const requests = [];
  /** @type {{mode: OutageMode, when: NonNullable<OutageOptions['when']>} | undefined} */
  let outage;

  /** @param {http.IncomingMessage} req @param {http.ServerResponse} res */
  const handle = async (req, res) => {
    const parsed = new URL(req.url ?? '/', 'http://localhost');
    const gitProtocol = header(req, 'git-protocol');
    const user = basicUser(req);
    const body = await readBody(req);
    const lines = req.method === 'POST' ? pktLines(body) : [];
    /** @type {GitRequestRecord} */
    const record = {
      method: req.method ?? 'GET',
      path: parsed.pathname,
      query: parsed.search.replace(/^\?/, ''),
      gitProtocol,
      command: firstCommand(lines),
      lines,
      user: user?.username,
      status: 0,
      bytesIn: body.length,
      bytesOut: 0,
    };
    const done = () => requests.push(record);

    const hit = outage && outage.when({ ...record }) ? outage.mode : undefined;
    if (hit) {
      if (hit === 'reset') {
        record.status = -1;
        done();
        req.socket.destroy();
        return;
      }
      if (hit === '503') {
        record.status = 503;
        done();
        res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' });
        res.end('git server is down for a test\n');
        return;
      }
    }
    if (
      auth &&
      !(user && safeEqual(user.username, auth.username) && safeEqual(user.password, auth.password))
    ) {
      record.status = 401;
      done();
      res.writeHead(401, { 'www-authenticate': `Basic realm="${REALM}"`, 'content-type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    const truncateAfter = hit === 'truncate' ? 64 : Infinity;
    if (tipWantsOnly && record.command === 'want') {
      const tips = await refTips(
        git,
        join(root, decodeURIComponent(parsed.pathname).replace(/\/git-upload-pack$/, '')),
      );
      const foreign = lines
        .map((l) => l.split(' '))
        .find(([w, oid]) => w === 'want' && oid && !tips.has(oid));
      if (foreign) {
        const payload = Buffer.from(`ERR upload-pack: not our ref ${foreign[1]}\n`);
        const out = Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload]);
        record.status = 200;
        record.bytesOut = out.length;
        done();
        res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-result' });
        res.end(out);
        return;
      }
    }
    const protocol = protocolV2 ? gitProtocol : undefined;
    await runBackend({
      git,
      root,
      req,
      res,
      parsed,
      body,
      gitProtocol: protocol,
      user,
      record,
      truncateAfter,
    });
    done();
  };

  const listener = (/** @type {http.IncomingMessage} */ req, /** @type {http.ServerResponse} */ res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`git server error: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  };
  const server = tls
    ? https.createServer({ cert: tls.cert, key: tls.key }, listener)
    : http.createServer(listener);
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set();
  server.on(tls ? 'secureConnection' : 'connection', (socket) => sockets.add(socket));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(undefined));
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('git server: no TCP address');
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${address.port}`;

  return {
    url,
    repoUrl: (name) => `${url}/${name}`,
    requests,
    traffic() {
      let bytesIn = 0;
      let bytesOut = 0;
      for (const socket of sockets) {
        bytesIn += socket.bytesRead;
        bytesOut += socket.bytesWritten;
      }
      return { connections: sockets.size, bytesIn, bytesOut };
    },
    setDown(down, options = {}) {
      outage = down ? { mode: options.mode ?? '503', when: options.when ?? (() => true) } : undefined;
    },
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve(undefined));
      }),
  };
}

/**
 * Runs one CGI request through `git http-backend` and relays its answer.
 * @param {{git: string, root: string, req: http.IncomingMessage, res: http.ServerResponse, parsed: URL,
 *   body: Buffer, gitProtocol: string | undefined, user: {username: string} | undefined,
 *   record: GitRequestRecord, truncateAfter: number}} args
 */
function runBackend({ git, root, req, res, parsed, body, gitProtocol, user, record, truncateAfter }) {
  /** @type {NodeJS.ProcessEnv} */
  const env = {
    PATH: process.env.PATH,
    // The user's own git configuration (signing, hooks, ...) must not change what is served.
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: decodeURIComponent(parsed.pathname),
    REQUEST_METHOD: req.method ?? 'GET',
    QUERY_STRING: parsed.search.replace(/^\?/, ''),
    CONTENT_TYPE: header(req, 'content-type') ?? '',
    CONTENT_LENGTH: String(body.length),
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    ...(user ? { REMOTE_USER: user.username } : {}),
    ...(gitProtocol ? { GIT_PROTOCOL: gitProtocol } : {}),
    ...(header(req, 'content-encoding') ? { HTTP_CONTENT_ENCODING: header(req, 'content-encoding') } : {}),
  };
  return new Promise((resolve) => {
    const child = spawn(git, ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let head = Buffer.alloc(0);
    let headersDone = false;
    let stderr = '';
    let cut = false;
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.on('error', () => {}); // the backend may exit before reading everything
    child.stdin.end(body);
    child.stdout.on('data', (/** @type {Buffer} */ chunk) => {
      if (cut) return;
      if (!headersDone) {
        head = Buffer.concat([head, chunk]);
        const split = headerEnd(head);
        if (split === undefined) return;
        headersDone = true;
        const { status, headers } = parseCgiHeaders(head.subarray(0, split.at).toString('latin1'));
        record.status = status;
        res.writeHead(status, headers);
        chunk = head.subarray(split.at + split.length);
      }
      if (record.bytesOut + chunk.length > truncateAfter) {
        // Simulates a connection lost mid-transfer: part of the pack, then nothing.
        cut = true;
        const keep = Math.max(0, truncateAfter - record.bytesOut);
        record.bytesOut += keep;
        res.write(chunk.subarray(0, keep), () => req.socket.destroy());
        child.kill();
        return;
      }
      record.bytesOut += chunk.length;
      res.write(chunk);
    });
    child.on('close', (code) => {
      if (cut) return resolve(undefined);
      if (!headersDone) {
        record.status = 500;
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`git http-backend failed (exit ${code}): ${stderr}\n`);
      } else {
        res.end();
      }
      resolve(undefined);
    });
  });
}

/**
 * The commits branches and tags point at.
 * @param {string} git @param {string} gitdir @returns {Promise<Set<string>>}
 */
function refTips(git, gitdir) {
  return new Promise((resolve, reject) => {
    execFile(git, [`--git-dir=${gitdir}`, 'for-each-ref', '--format=%(objectname)'], (err, stdout) =>
      err ? reject(err) : resolve(new Set(stdout.split('\n').filter(Boolean))),
    );
  });
}

/** @param {Buffer} buf @returns {{at: number, length: number} | undefined} */
function headerEnd(buf) {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf <= lf)) return { at: crlf, length: 4 };
  if (lf !== -1) return { at: lf, length: 2 };
  return undefined;
}

/** @param {string} text */
function parseCgiHeaders(text) {
  let status = 200;
  /** @type {Record<string, string>} */
  const headers = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
    else headers[name] = value;
  }
  return { status, headers };
}

/** @param {http.IncomingMessage} req @param {string} name */
function header(req, name) {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** @param {http.IncomingMessage} req */
function basicUser(req) {
  const h = header(req, 'authorization');
  if (!h || !/^basic /i.test(h)) return undefined;
  const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

/** @param {string} a @param {string} b */
function safeEqual(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** @param {http.IncomingMessage} req @returns {Promise<Buffer>} */
async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * The payloads of the pkt-lines of a request body (at most 64), without trailing newlines;
 * flush and delimiter packets are left out.
 * @param {Buffer} body
 * @returns {string[]}
 */
function pktLines(body) {
  /** @type {string[]} */
  const lines = [];
  let at = 0;
  while (at + 4 <= body.length && lines.length < 64) {
    const len = Number.parseInt(body.subarray(at, at + 4).toString('latin1'), 16);
    if (Number.isNaN(len)) break;
    if (len < 4) {
      at += 4; // flush/delim packets carry no payload
      continue;
    }
    lines.push(
      body
        .subarray(at + 4, at + len)
        .toString('utf8')
        .replace(/\n$/, ''),
    );
    at += len;
  }
  return lines;
}

/** `command=ls-refs` -> `ls-refs`, `want <oid> ...` -> `want`. @param {string[]} lines */
function firstCommand(lines) {
  const line = lines[0];
  if (line === undefined) return undefined;
  return line.startsWith('command=') ? line.slice('command='.length) : line.split(' ')[0];
}

// ---------------------------------------------------------------------------------------------
// Repository operations (the real git CLI, with the user's configuration shut out)

/**
 * @param {string} git
 * @param {string[]} args
 * @param {{cwd?: string, env?: NodeJS.ProcessEnv, input?: string | Buffer}} [opts]
 */
function runGit(git, args, opts = {}) {
  return execFileSync(git, args, {
    cwd: opts.cwd,
    input: opts.input,
    env: {
      PATH: process.env.PATH,
      HOME: tmpdir(),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_AUTHOR_NAME: 'Mooring Test',
      GIT_AUTHOR_EMAIL: 'test@mooring.invalid',
      GIT_COMMITTER_NAME: 'Mooring Test',
      GIT_COMMITTER_EMAIL: 'test@mooring.invalid',
      ...opts.env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
    .toString('utf8')
    .trim();
}

/**
 * @typedef {object} RepoOptions
 * @property {string} [git]
 */

/**
 * Creates the bare repository `<root>/<name>` with branch `main` holding one commit: the files of
 * `fromFolder`, or nothing. Returns the sha of that commit.
 * @param {string} root
 * @param {string} name
 * @param {string} [fromFolder]
 * @param {RepoOptions} [options]
 * @returns {string}
 */
export function createRepo(root, name, fromFolder, options = {}) {
  const git = options.git ?? 'git';
  const gitdir = join(root, name);
  mkdirSync(gitdir, { recursive: true });
  runGit(git, ['init', '--quiet', '--bare', '--initial-branch=main', gitdir]);
  // Over HTTP (stateless RPC) git serves any reachable commit by sha regardless; these make
  // file:// and git:// clients, e.g. a debugging `git fetch --depth 1 origin <sha>`, agree.
  runGit(git, ['config', 'uploadpack.allowReachableSHA1InWant', 'true'], { cwd: gitdir });
  runGit(git, ['config', 'uploadpack.allowTipSHA1InWant', 'true'], { cwd: gitdir });
  runGit(git, ['config', 'http.uploadpack', 'true'], { cwd: gitdir });

  // A throwaway index, so the folder is committed as is without a clone or worktree bookkeeping.
  const scratch = mkdtempSync(join(tmpdir(), 'mooring-git-'));
  try {
    const env = { GIT_INDEX_FILE: join(scratch, 'index') };
    if (fromFolder) {
      runGit(git, [`--git-dir=${gitdir}`, `--work-tree=${fromFolder}`, 'add', '--all', '--force', '.'], {
        env,
      });
    }
    const tree = runGit(git, [`--git-dir=${gitdir}`, 'write-tree'], { env });
    const sha = runGit(git, [`--git-dir=${gitdir}`, 'commit-tree', tree, '-m', 'initial commit'], { env });
    runGit(git, [`--git-dir=${gitdir}`, 'update-ref', 'refs/heads/main', sha]);
    return sha;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Commits `files` on top of `branch` (default `main`; a new branch starts from `main`) and
 * returns the new commit's sha. A `null` content deletes the file.
 * @param {string} root
 * @param {string} name
 * @param {{files: Record<string, string | Buffer | null>, message: string, branch?: string, git?: string}} change
 * @returns {string}
 */
export function commitFiles(root, name, { files, message, branch = 'main', git = 'git' }) {
  const gitdir = join(root, name);
  const parent =
    resolveRef(git, gitdir, `refs/heads/${branch}`) ?? resolveRef(git, gitdir, 'refs/heads/main');
  const scratch = mkdtempSync(join(tmpdir(), 'mooring-git-'));
  try {
    const env = { GIT_INDEX_FILE: join(scratch, 'index') };
    if (parent) runGit(git, [`--git-dir=${gitdir}`, 'read-tree', parent], { env });
    for (const [path, content] of Object.entries(files)) {
      if (content === null) {
        // update-index refuses to run without a work tree; the empty scratch folder is one.
        runGit(
          git,
          [`--git-dir=${gitdir}`, `--work-tree=${scratch}`, 'update-index', '--force-remove', '--', path],
          {
            env,
          },
        );
        continue;
      }
      const blobFile = join(scratch, 'blob');
      writeFileSync(blobFile, content);
      const blob = runGit(git, [`--git-dir=${gitdir}`, 'hash-object', '-w', '--', blobFile]);
      runGit(git, [`--git-dir=${gitdir}`, 'update-index', '--add', '--cacheinfo', `100644,${blob},${path}`], {
        env,
      });
    }
    const tree = runGit(git, [`--git-dir=${gitdir}`, 'write-tree'], { env });
    const sha = runGit(
      git,
      [`--git-dir=${gitdir}`, 'commit-tree', tree, ...(parent ? ['-p', parent] : []), '-m', message],
      { env },
    );
    runGit(git, [`--git-dir=${gitdir}`, 'update-ref', `refs/heads/${branch}`, sha]);
    return sha;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Points `branch` at `sha` (a force push, a rollback of the branch, or a new branch).
 * @param {string} root
 * @param {string} name
 * @param {string} branch
 * @param {string} sha
 * @param {{git?: string}} [options]
 */
export function moveBranch(root, name, branch, sha, options = {}) {
  runGit(options.git ?? 'git', [`--git-dir=${join(root, name)}`, 'update-ref', `refs/heads/${branch}`, sha]);
}

/**
 * The sha `branch` points at, or undefined when there is no such branch.
 * @param {string} root
 * @param {string} name
 * @param {string} branch
 * @param {{git?: string}} [options]
 * @returns {string | undefined}
 */
export function branchHead(root, name, branch, options = {}) {
  return resolveRef(options.git ?? 'git', join(root, name), `refs/heads/${branch}`);
}

/** @param {string} git @param {string} gitdir @param {string} ref */
function resolveRef(git, gitdir, ref) {
  try {
    return runGit(git, [`--git-dir=${gitdir}`, 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  } catch {
    return undefined;
  }
}
