// Git over SSH for the Git source, as an isomorphic-git HTTP client: the same Git protocol
// exchanges the HTTPS source makes (a v2 `ls-refs` per poll, a v1 shallow fetch), carried by
// `git-upload-pack` on an SSH exec channel (the ssh2 library) instead of HTTP requests.
//
//   GET  <repo>/info/refs?service=git-upload-pack  ->  run git-upload-pack, return its
//        advertisement (with the `# service` line smart HTTP adds), close the channel
//   POST <repo>/git-upload-pack                    ->  run git-upload-pack, skip its
//        advertisement, send the request body, return everything it answers
//
// Protocol v2 is asked for as git does, with the GIT_PROTOCOL environment variable; a server
// that does not pass it on answers v0, which the callers already handle (they fall back as
// they do for a v1-only HTTP server). One SSH connection serves every request of one source
// operation, so a poll is one connection with one channel.
//
// Host keys are always checked against --git-known-hosts-file: an unknown or different key
// fails before any authentication, naming the host and the file.
import { readFile } from 'node:fs/promises';
import type { GitHttpRequest, GitHttpResponse } from 'isomorphic-git';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import { MooringError } from '../errors.js';
import { GitSourceError } from './errors.js';
import type { NodeHttpClient, TransferStats } from './http-client.js';
import { hostKeyAlgorithms, parseKnownHosts, type KnownHosts } from './known-hosts.js';

/** Where `git-upload-pack` runs: an `ssh://` URL or git's scp-like `user@host:path`. */
export interface SshRemote {
  user: string;
  host: string;
  port: number;
  /** The repository path as the server's shell receives it. */
  path: string;
}

/** The URL isomorphic-git is given for an SSH remote; only its path suffix is ever read. */
export const SSH_PLACEHOLDER_URL = 'http://ssh.invalid/repository';

/** Parses `ssh://[user@]host[:port]/path` and `[user@]host:path`; undefined for other URLs. */
export function parseSshUrl(url: string): SshRemote | undefined {
  let user: string | undefined;
  let host: string;
  let port = 22;
  let path: string;
  if (/^ssh:\/\//i.test(url)) {
    const m = /^ssh:\/\/(?:([^@/]+)@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?(\/.*)$/i.exec(url);
    if (!m) return undefined;
    user = m[1];
    host = m[2]!.replace(/^\[|\]$/g, '');
    if (m[3]) port = Number(m[3]);
    // ssh://host/~user/repo is relative to a home folder, as git reads it.
    path = m[4]!.startsWith('/~') ? m[4]!.slice(1) : m[4]!;
  } else {
    // scp-like: no scheme, and the first colon comes before any slash.
    const m = /^(?:([^@/:]+)@)?([^@/:[\]]+|\[[^\]]+\]):(?!\/\/)(.+)$/.exec(url);
    if (!m || url.includes('://')) return undefined;
    user = m[1];
    host = m[2]!.replace(/^\[|\]$/g, '');
    path = m[3]!;
  }
  if (!host || host.startsWith('-') || !path || !Number.isInteger(port) || port < 1 || port > 65535) {
    return undefined;
  }
  return { user: user ? decodeURIComponent(user) : 'git', host, port, path: decodeURIComponent(path) };
}

export function isSshUrl(url: string): boolean {
  return parseSshUrl(url) !== undefined && !/^https?:\/\//i.test(url);
}

/** How a remote is named in messages: `host` or `[host]:port`, as known_hosts names it. */
export function knownHostsName(remote: Pick<SshRemote, 'host' | 'port'>): string {
  return remote.port === 22 ? remote.host : `[${remote.host}]:${remote.port}`;
}

export interface SshFiles {
  /** `--git-ssh-key-file`: an OpenSSH (or PEM) private key without a passphrase. */
  keyFile: string;
  /** `--git-known-hosts-file`: the server's host key(s), as `ssh-keyscan` prints them. */
  knownHostsFile: string;
}

export interface SshClientOptions extends SshFiles {
  remote: SshRemote;
  /** Connecting, and any silence while waiting for bytes. */
  timeoutMs: number;
  stats: TransferStats;
}

/** Reads the key and known_hosts afresh (rotated files apply on the next operation). */
export async function createSshClient(options: SshClientOptions): Promise<NodeHttpClient> {
  const { remote, stats, timeoutMs } = options;
  const privateKey = await readKeyFile(options.keyFile);
  const knownHosts = await readKnownHosts(options.knownHostsFile);
  const name = knownHostsName(remote);
  const known = knownHosts.keysFor(remote.host, remote.port).filter((k) => !k.revoked);
  const revoked = knownHosts.keysFor(remote.host, remote.port).filter((k) => k.revoked);
  if (known.length === 0) {
    throw new GitSourceError(
      'host-key',
      `host ${name} is not in --git-known-hosts-file, so its key cannot be checked`,
      {
        file: options.knownHostsFile,
        hint: `add the server's host key (ssh-keyscan${remote.port === 22 ? '' : ` -p ${remote.port}`} ${remote.host}, then compare its fingerprint with the one your Git host publishes)`,
      },
    );
  }
  let conn: Promise<ssh2.Client> | undefined;
  let client: ssh2.Client | undefined;
  let hostKeyFailure: GitSourceError | undefined;

  const connect = (): Promise<ssh2.Client> =>
    (conn ??= new Promise<ssh2.Client>((resolve, reject) => {
      const c = new ssh2.Client();
      client = c;
      const config: ConnectConfig = {
        host: remote.host,
        port: remote.port,
        username: remote.user,
        privateKey,
        readyTimeout: timeoutMs,
        // Offer only the algorithms of the keys we know, so the server shows one we can check.
        algorithms: { serverHostKey: [...new Set(known.flatMap((k) => hostKeyAlgorithms(k.type)))] as never },
        hostVerifier: (key: Buffer) => {
          if (revoked.some((k) => k.blob.equals(key))) {
            hostKeyFailure = new GitSourceError('host-key', `host key of ${name} is marked @revoked`, {
              file: options.knownHostsFile,
            });
            return false;
          }
          if (known.some((k) => k.blob.equals(key))) return true;
          hostKeyFailure = new GitSourceError(
            'host-key',
            `host key of ${name} does not match --git-known-hosts-file: the server's key changed, or someone is in the middle`,
            {
              file: options.knownHostsFile,
              hint: 'if the Git host rotated its key, update the file from its published fingerprints',
            },
          );
          return false;
        },
      };
      c.once('ready', () => resolve(c));
      c.once('error', (err: Error & { level?: string }) => {
        conn = undefined;
        reject(explainSshError(err, hostKeyFailure, remote, timeoutMs));
      });
      c.on('close', () => {
        conn = undefined;
      });
      c.connect(config);
    }));

  return {
    stats,
    close() {
      client?.end();
      client = undefined;
      conn = undefined;
    },
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const method = (req.method ?? 'GET').toUpperCase();
      const url = req.url;
      const advertisement = method === 'GET' && url.endsWith('/info/refs?service=git-upload-pack');
      const rpc = method === 'POST' && url.endsWith('/git-upload-pack');
      const base = { url, method, headers: {} };
      if (!advertisement && !rpc) {
        return { ...base, statusCode: 404, statusMessage: 'Not Found', body: empty() };
      }
      stats.requests++;
      const v2 = /version=2/.test(header(req.headers, 'git-protocol'));
      const c = await connect();
      const channel = await exec(c, `git-upload-pack '${remote.path.replace(/'/g, `'\\''`)}'`, v2);
      const out = new ChannelReader(channel, timeoutMs, stats);
      const advert = await out.untilFlush();
      if (advert === undefined) {
        throw upstreamFailure(out.stderr(), remote);
      }
      const speaksV2 = advert.subarray(4, 13).toString('latin1') === 'version 2';
      if (advertisement) {
        channel.end('0000'); // a flush, then end of input: upload-pack exits cleanly
        await out.drain();
        const body =
          v2 && speaksV2
            ? advert
            : Buffer.concat([pktLine('# service=git-upload-pack\n'), Buffer.from('0000'), advert]);
        return {
          ...base,
          statusCode: 200,
          statusMessage: 'OK',
          headers: { 'content-type': 'application/x-git-upload-pack-advertisement' },
          body: once(body),
        };
      }
      if (v2 && !speaksV2) {
        // A v2 request to a server that answered v0: say so the way an HTTP server would.
        channel.end('0000');
        await out.drain();
        return {
          ...base,
          statusCode: 200,
          statusMessage: 'OK',
          headers: { 'content-type': 'application/x-git-upload-pack-advertisement' },
          body: empty(),
        };
      }
      for await (const chunk of req.body ?? []) {
        stats.bytesOut += chunk.length;
        channel.write(chunk);
      }
      channel.end();
      return {
        ...base,
        statusCode: 200,
        statusMessage: 'OK',
        headers: { 'content-type': 'application/x-git-upload-pack-result' },
        body: out.rest(() => upstreamFailure(out.stderr(), remote)),
      };
    },
  };
}

function exec(c: ssh2.Client, command: string, v2: boolean): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    c.exec(command, v2 ? { env: { GIT_PROTOCOL: 'version=2' } } : {}, (err, channel) =>
      err ? reject(err) : resolve(channel),
    );
  });
}

/** Reads a channel's stdout as pkt-lines first, then as a stream; keeps some stderr. */
class ChannelReader {
  private buf: Buffer = Buffer.alloc(0);
  private err = '';
  private ended = false;
  private exitCode: number | undefined;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly channel: ClientChannel,
    private readonly timeoutMs: number,
    private readonly stats: TransferStats,
  ) {
    channel.on('data', (chunk: Buffer) => {
      stats.bytesIn += chunk.length;
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.poke();
    });
    channel.stderr.on('data', (chunk: Buffer) => {
      if (this.err.length < 4096) this.err += chunk.toString('utf8');
    });
    channel.on('exit', (code: number | null) => {
      this.exitCode = code ?? undefined;
    });
    channel.on('close', () => {
      this.ended = true;
      this.poke();
    });
    channel.on('error', (e: Error) => {
      this.failure = e;
      this.poke();
    });
  }

  stderr(): string {
    return this.err.trim();
  }

  /** The advertisement up to and including its flush-pkt; undefined if the stream ended first. */
  async untilFlush(): Promise<Buffer | undefined> {
    let at = 0;
    for (;;) {
      while (at + 4 <= this.buf.length) {
        const len = Number.parseInt(this.buf.subarray(at, at + 4).toString('latin1'), 16);
        if (Number.isNaN(len)) return undefined;
        if (len === 0) {
          const advert = this.buf.subarray(0, at + 4);
          this.buf = this.buf.subarray(at + 4);
          return advert;
        }
        if (len < 4 || at + len > this.buf.length) break;
        at += len;
      }
      if (this.ended) return undefined;
      await this.next();
    }
  }

  async drain(): Promise<void> {
    while (!this.ended) await this.next();
    this.buf = Buffer.alloc(0);
  }

  /** Everything after the advertisement, until the channel closes. */
  async *rest(failed: () => Error): AsyncIterableIterator<Uint8Array> {
    let sent = false;
    for (;;) {
      if (this.buf.length) {
        const chunk = this.buf;
        this.buf = Buffer.alloc(0);
        sent = true;
        yield chunk;
        continue;
      }
      if (this.ended) break;
      await this.next();
    }
    if (!sent || (this.exitCode !== undefined && this.exitCode !== 0)) throw failed();
  }

  private next(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.wake = () => {
        clearTimeout(this.timer);
        this.wake = undefined;
        if (this.failure) reject(this.failure);
        else resolve();
      };
      this.timer = setTimeout(() => {
        this.failure = Object.assign(new Error(`no bytes from the server for ${this.timeoutMs}ms`), {
          code: 'ETIMEDOUT',
        });
        this.channel.close();
        this.wake?.();
      }, this.timeoutMs);
    });
  }

  private poke(): void {
    this.wake?.();
  }
}

/** git-upload-pack said nothing useful: the repository path, or its access, is wrong. */
function upstreamFailure(stderr: string, remote: SshRemote): GitSourceError {
  const said = stderr.replace(/\s+/g, ' ').slice(0, 300);
  if (/not appear to be a git repository|not found|no such|does not exist/i.test(stderr)) {
    return new GitSourceError(
      'repository-not-found',
      `no repository ${remote.path} on ${knownHostsName(remote)}${said ? `: ${said}` : ''}`,
      { hint: 'check the path in --repo, and that the deploy key may read it' },
    );
  }
  return new GitSourceError(
    'protocol',
    `git-upload-pack on ${knownHostsName(remote)} gave no answer${said ? `: ${said}` : ''}`,
  );
}

function explainSshError(
  err: Error & { level?: string; code?: string },
  hostKey: GitSourceError | undefined,
  remote: SshRemote,
  timeoutMs: number,
): Error {
  if (hostKey) return hostKey;
  if (err.level === 'client-authentication') {
    return new GitSourceError(
      'auth',
      `${knownHostsName(remote)} refused the key in --git-ssh-key-file for user ${remote.user}`,
      { hint: 'is the public key a deploy key of this repository, with read access?' },
    );
  }
  if (err.level === 'client-timeout') {
    return Object.assign(new Error(`no SSH handshake within ${timeoutMs}ms`), { code: 'ETIMEDOUT' });
  }
  if (/handshake failed|no matching/i.test(err.message)) {
    return new GitSourceError(
      'host-key',
      `SSH handshake with ${knownHostsName(remote)} failed: ${err.message}`,
      { hint: 'the server offers no host key of a type --git-known-hosts-file lists for it' },
    );
  }
  return err; // socket errors keep their code (ECONNREFUSED, ...) for explainGitFailure
}

async function readKeyFile(file: string): Promise<Buffer> {
  let key: Buffer;
  try {
    key = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new MooringError(`cannot read --git-ssh-key-file (${code})`, { file });
  }
  const parsed = ssh2.utils.parseKey(key);
  if (parsed instanceof Error) {
    throw new MooringError(`--git-ssh-key-file holds no usable private key: ${parsed.message}`, { file });
  }
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!first || !first.isPrivateKey()) {
    throw new MooringError('--git-ssh-key-file holds a public key; it needs the private key', { file });
  }
  return key;
}

async function readKnownHosts(file: string): Promise<KnownHosts> {
  try {
    return parseKnownHosts(await readFile(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new MooringError(`cannot read --git-known-hosts-file (${code})`, { file });
  }
}

function header(headers: Record<string, string> | undefined, name: string): string {
  for (const [k, v] of Object.entries(headers ?? {})) if (k.toLowerCase() === name) return v;
  return '';
}

function pktLine(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload]);
}

async function* once(buf: Buffer): AsyncIterableIterator<Uint8Array> {
  yield buf;
}

async function* empty(): AsyncIterableIterator<Uint8Array> {
  // nothing
}
