// Webhook verification: a push notification may trigger a poll only when it proves it knows
// the shared secret, in the form GitHub, GitLab or a plain client sends.
import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { verifyWebhook } from '../../src/source/webhook.js';

const secret = 'webhook-shared-secret';
const body = Buffer.from('{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}');
const sign = (data: Buffer | string, key = secret) =>
  `sha256=${createHmac('sha256', key).update(data).digest('hex')}`;

describe('GitHub style (X-Hub-Signature-256)', () => {
  test('accepts the HMAC-SHA256 of the raw body', () => {
    expect(verifyWebhook({ headers: { 'x-hub-signature-256': sign(body) }, body, secret })).toEqual({
      ok: true,
      via: 'github',
    });
  });

  test('accepts header names in any case and upper-case hex', () => {
    const headers = { 'X-Hub-Signature-256': sign(body).toUpperCase().replace('SHA256=', 'sha256=') };
    expect(verifyWebhook({ headers, body, secret }).ok).toBe(true);
  });

  test('rejects a signature made with another secret', () => {
    const verdict = verifyWebhook({ headers: { 'x-hub-signature-256': sign(body, 'guess') }, body, secret });
    expect(verdict).toEqual({
      ok: false,
      reason: 'X-Hub-Signature-256 does not match the body signed with the webhook secret',
    });
  });

  test('rejects a body changed after signing, even by re-serialising the same JSON', () => {
    const reformatted = Buffer.from(JSON.stringify(JSON.parse(body.toString()), null, 2));
    expect(
      verifyWebhook({ headers: { 'x-hub-signature-256': sign(body) }, body: reformatted, secret }).ok,
    ).toBe(false);
  });

  test('rejects a malformed signature without comparing anything', () => {
    for (const value of ['', 'sha1=abc', sign(body).slice(0, -2), `${sign(body)}00`]) {
      const verdict = verifyWebhook({ headers: { 'x-hub-signature-256': value }, body, secret });
      expect(verdict).toEqual({
        ok: false,
        reason: 'X-Hub-Signature-256 is not of the form sha256=<64 hex digits>',
      });
    }
  });
});

describe('GitLab style (X-Gitlab-Token)', () => {
  test('accepts the secret itself', () => {
    expect(verifyWebhook({ headers: { 'x-gitlab-token': secret }, body, secret })).toEqual({
      ok: true,
      via: 'gitlab',
    });
  });

  test('rejects another token, including a prefix of the secret', () => {
    for (const token of ['wrong', secret.slice(0, -1), `${secret} `]) {
      expect(verifyWebhook({ headers: { 'x-gitlab-token': token }, body, secret })).toEqual({
        ok: false,
        reason: 'X-Gitlab-Token does not match the webhook secret',
      });
    }
  });
});

describe('generic clients (X-Mooring-Signature)', () => {
  test('accepts the HMAC-SHA256 of the raw body, given as a string', () => {
    const text = 'ping';
    expect(verifyWebhook({ headers: { 'x-mooring-signature': sign(text) }, body: text, secret })).toEqual({
      ok: true,
      via: 'mooring',
    });
  });
});

describe('requests without proof', () => {
  test('are rejected when no signature header is present', () => {
    expect(verifyWebhook({ headers: { 'content-type': 'application/json' }, body, secret })).toEqual({
      ok: false,
      reason: 'no signature: expected X-Hub-Signature-256, X-Gitlab-Token or X-Mooring-Signature',
    });
  });

  test('are rejected when the header is repeated', () => {
    const headers = { 'x-hub-signature-256': [sign(body), sign(body)] };
    expect(verifyWebhook({ headers, body, secret }).ok).toBe(false);
  });

  test('are all rejected when no secret is configured, even an empty GitLab token', () => {
    expect(verifyWebhook({ headers: { 'x-gitlab-token': '' }, body, secret: '' })).toEqual({
      ok: false,
      reason: 'no webhook secret is configured',
    });
  });
});
