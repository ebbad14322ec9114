// Every way talking to a Git server fails, as the message a platform engineer reads.
import { describe, expect, test } from 'vitest';
import { explainGitFailure, type FailureContext } from '../../src/source/errors.js';
import { HttpTimeoutError } from '../../src/source/http-client.js';
import { MooringError } from '../../src/errors.js';

const ctx: FailureContext = {
  url: 'https://git.example.com/org/gitops.git',
  branch: 'main',
  doing: 'polling',
  timeoutMs: 30_000,
  authenticated: true,
  credentials: { username: 'bot', password: 'tok-123456' },
};
const nodeError = (code: string, message = code) => Object.assign(new Error(message), { code });
const httpError = (statusCode: number) =>
  Object.assign(new Error(`HTTP Error: ${statusCode}`), { code: 'HttpError', data: { statusCode } });

describe('explainGitFailure', () => {
  test('401 with credentials: check the credential flags', () => {
    const err = explainGitFailure(httpError(401), ctx);
    expect(err.reason).toBe('auth');
    expect(err.describe()).toBe(
      'authentication failed for https://git.example.com/org/gitops.git (check --git-username-file/--git-password-file)',
    );
  });

  test('401 without credentials: the repository needs them', () => {
    expect(explainGitFailure(httpError(401), { ...ctx, authenticated: false }).hint).toBe(
      'the repository needs credentials: set --git-username-file/--git-password-file',
    );
  });

  test('403 and 404 name the repository and what to check', () => {
    expect(explainGitFailure(httpError(403), ctx).describe()).toBe(
      'access denied to https://git.example.com/org/gitops.git (HTTP 403) (the credentials need read access to the repository; check --git-username-file/--git-password-file)',
    );
    const notFound = explainGitFailure(httpError(404), { ...ctx, authenticated: false });
    expect(notFound.reason).toBe('repository-not-found');
    expect(notFound.hint).toContain('private repositories answer 404 without credentials');
  });

  test('5xx is the server', () => {
    expect(explainGitFailure(httpError(503), ctx).message).toBe(
      'git server answered HTTP 503 while polling https://git.example.com/org/gitops.git',
    );
  });

  test('network failures name the host', () => {
    expect(explainGitFailure(nodeError('ENOTFOUND'), ctx)).toMatchObject({
      reason: 'dns',
      message: 'cannot resolve host git.example.com while polling https://git.example.com/org/gitops.git',
    });
    expect(explainGitFailure(nodeError('ECONNREFUSED'), ctx)).toMatchObject({
      reason: 'connection',
      message: 'connection refused by git.example.com while polling https://git.example.com/org/gitops.git',
    });
    expect(explainGitFailure(new HttpTimeoutError(ctx.url, 30_000), ctx)).toMatchObject({
      reason: 'timeout',
      message:
        'no answer from git.example.com within 30000ms while polling https://git.example.com/org/gitops.git',
    });
  });

  test('certificate failures point at --git-ca-file, a wrong host name at --repo', () => {
    const unknownCa = explainGitFailure(
      nodeError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'),
      ctx,
    );
    expect(unknownCa.reason).toBe('tls');
    expect(unknownCa.hint).toContain('--git-ca-file');
    const wrongHost = explainGitFailure(nodeError('ERR_TLS_CERT_ALTNAME_INVALID'), ctx);
    expect(wrongHost.hint).toBe('the certificate does not name this host; check the host in --repo');
  });

  test('unreadable credential files are configuration errors that keep the file', () => {
    const err = explainGitFailure(
      new MooringError('cannot read --git-password-file (EACCES)', { file: '/secrets/token' }),
      ctx,
    );
    expect(err).toMatchObject({ reason: 'config', context: { file: '/secrets/token' } });
  });

  test('never repeats a secret an underlying error carried', () => {
    const err = explainGitFailure(new Error('remote said: bad token tok-123456'), ctx);
    expect(err.message).toBe(
      'git polling https://git.example.com/org/gitops.git failed: remote said: bad token ***',
    );
  });
});
