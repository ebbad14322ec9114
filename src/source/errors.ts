// Turns whatever went wrong while talking to the Git server (an HTTP status, a socket error, a
// TLS verification failure, a git protocol error) into one GitSourceError a platform engineer
// can act on: what failed, against which (redacted) URL, and which flag to look at.
import { MooringError } from '../errors.js';
import { scrubSecrets, type GitCredentials } from './credentials.js';

export type GitFailureReason =
  | 'auth' // 401/403: missing, wrong or under-privileged credentials
  | 'repository-not-found'
  | 'branch-not-found'
  | 'revision-not-found'
  | 'dns'
  | 'connection' // refused, reset, cut mid-transfer
  | 'timeout'
  | 'tls'
  | 'host-key' // SSH: the server's key is unknown, different or revoked (--git-known-hosts-file)
  | 'server' // 5xx
  | 'protocol' // the server said something we could not use
  | 'config' // our own flags or files (unreadable credential or CA file)
  | 'local'; // the work folder (disk full, permissions)

export class GitSourceError extends MooringError {
  readonly reason: GitFailureReason;
  constructor(
    reason: GitFailureReason,
    message: string,
    options: { hint?: string; revision?: string; file?: string } = {},
  ) {
    super(
      message,
      {
        ...(options.revision ? { revision: options.revision } : {}),
        ...(options.file ? { file: options.file } : {}),
      },
      options.hint ? { hint: options.hint } : {},
    );
    this.name = 'GitSourceError';
    this.reason = reason;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), reason: this.reason };
  }
}

export interface FailureContext {
  /** Redacted repository URL. */
  url: string;
  branch: string;
  /** What we were doing, for the message: `polling`, `fetching`, `checking out`. */
  doing: string;
  timeoutMs: number;
  /** Whether credentials were sent; changes the advice on 401/404. */
  authenticated: boolean;
  /** Scrubbed out of every message, whatever the underlying error said. */
  credentials: GitCredentials | undefined;
}

const CREDENTIAL_FLAGS = '--git-username-file/--git-password-file';
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Classifies any failure of a Git operation. GitSourceErrors pass through unchanged. */
export function explainGitFailure(err: unknown, ctx: FailureContext): GitSourceError {
  if (err instanceof GitSourceError) return err;
  if (err instanceof MooringError) {
    return new GitSourceError('config', scrubSecrets(err.message, ctx.credentials), {
      ...(err.hint ? { hint: err.hint } : {}),
      ...(err.context.file ? { file: err.context.file } : {}),
    });
  }
  const e = (err ?? {}) as { code?: unknown; message?: unknown; data?: { statusCode?: unknown } };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const detail = scrubSecrets(typeof e.message === 'string' ? e.message : String(err), ctx.credentials);
  const host = hostOf(ctx.url);
  const status = httpStatus(err);

  if (status !== undefined) return explainStatus(status, ctx);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new GitSourceError('dns', `cannot resolve host ${host} while ${ctx.doing} ${ctx.url}`, {
      hint: 'check the host name in --repo and the cluster DNS',
    });
  }
  if (code === 'ECONNREFUSED') {
    return new GitSourceError('connection', `connection refused by ${host} while ${ctx.doing} ${ctx.url}`, {
      hint: 'is the git server up, and are the host and port in --repo right?',
    });
  }
  if (code === 'ETIMEDOUT') {
    return new GitSourceError(
      'timeout',
      `no answer from ${host} within ${ctx.timeoutMs}ms while ${ctx.doing} ${ctx.url}`,
    );
  }
  if (
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ECONNABORTED' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENETUNREACH'
  ) {
    return new GitSourceError(
      'connection',
      `connection to ${host} failed while ${ctx.doing} ${ctx.url}: ${detail} (${code})`,
    );
  }
  if (code !== undefined && TLS_CODES.has(code)) {
    const altname = code === 'ERR_TLS_CERT_ALTNAME_INVALID';
    return new GitSourceError(
      'tls',
      `TLS certificate of ${host} could not be verified: ${detail} (${code})`,
      {
        hint: altname
          ? 'the certificate does not name this host; check the host in --repo'
          : 'if the server uses a private certificate authority, pass its CA certificate with --git-ca-file',
      },
    );
  }
  if (code === 'EPROTO' || code?.startsWith('ERR_SSL_')) {
    return new GitSourceError('tls', `TLS handshake with ${host} failed: ${detail}`, {
      hint: 'does the server really speak HTTPS on this port? check --repo',
    });
  }
  if (code === 'EACCES' || code === 'ENOSPC' || code === 'EROFS' || code === 'EMFILE' || code === 'EDQUOT') {
    return new GitSourceError('local', `cannot write the checkout while ${ctx.doing} ${ctx.url}: ${detail}`, {
      hint: 'the agent needs a writable work folder with free space',
    });
  }
  return new GitSourceError('protocol', `git ${ctx.doing} ${ctx.url} failed: ${detail}`);
}

function explainStatus(status: number, ctx: FailureContext): GitSourceError {
  if (status === 401) {
    return new GitSourceError('auth', `authentication failed for ${ctx.url}`, {
      hint: ctx.authenticated
        ? `check ${CREDENTIAL_FLAGS}`
        : `the repository needs credentials: set ${CREDENTIAL_FLAGS}`,
    });
  }
  if (status === 403) {
    return new GitSourceError('auth', `access denied to ${ctx.url} (HTTP 403)`, {
      hint: `the credentials need read access to the repository; check ${CREDENTIAL_FLAGS}`,
    });
  }
  if (status === 404) {
    return new GitSourceError('repository-not-found', `repository not found at ${ctx.url} (HTTP 404)`, {
      hint: ctx.authenticated
        ? 'check --repo, and that the credentials can see the repository'
        : `check --repo; private repositories answer 404 without credentials (${CREDENTIAL_FLAGS})`,
    });
  }
  if (status >= 500) {
    return new GitSourceError('server', `git server answered HTTP ${status} while ${ctx.doing} ${ctx.url}`);
  }
  return new GitSourceError('protocol', `git server answered HTTP ${status} while ${ctx.doing} ${ctx.url}`);
}

/** The HTTP status of an isomorphic-git HttpError or our own LsRefsError, if any. */
export function httpStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; data?: { statusCode?: unknown }; statusCode?: unknown } | null;
  if (!e || typeof e !== 'object') return undefined;
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (e.code === 'HttpError' && typeof e.data?.statusCode === 'number') return e.data.statusCode;
  return undefined;
}

/** Failures that would fail again on any other request to the same server right now. */
export function isTransportFailure(err: GitSourceError): boolean {
  return !['protocol', 'revision-not-found', 'branch-not-found', 'local'].includes(err.reason);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
