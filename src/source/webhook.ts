// Verifies a push notification (POST /hooks/git) before it may trigger an immediate poll.
// The request only wakes the poller, it never says what to deploy; still, an unauthenticated
// endpoint would let anyone make every agent hammer the Git server, so it needs the shared
// secret. Accepted forms:
//   GitHub, Gitea, Forgejo:  X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>
//   GitLab:                  X-Gitlab-Token: <the secret itself>
//   anything else (curl):    X-Mooring-Signature: sha256=<hex HMAC-SHA256 of the raw body>
// Comparisons are constant-time. Pure: no I/O, the HTTP server hands in headers and raw body.
import { createHmac, timingSafeEqual } from 'node:crypto';

export type WebhookVerdict =
  { ok: true; via: 'github' | 'gitlab' | 'mooring' } | { ok: false; reason: string };

export interface WebhookRequest {
  /** Header names in any case (Node lower-cases them); repeated headers as arrays. */
  headers: Record<string, string | string[] | undefined>;
  /** The body exactly as received: the signature covers bytes, not parsed JSON. */
  body: Buffer | Uint8Array | string;
  secret: string;
}

export function verifyWebhook({ headers, body, secret }: WebhookRequest): WebhookVerdict {
  if (secret === '') return { ok: false, reason: 'no webhook secret is configured' };
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);

  const hub = header(headers, 'x-hub-signature-256');
  if (hub !== undefined) return checkHmac(hub, raw, secret, 'X-Hub-Signature-256', 'github');
  const mooring = header(headers, 'x-mooring-signature');
  if (mooring !== undefined) return checkHmac(mooring, raw, secret, 'X-Mooring-Signature', 'mooring');
  const gitlab = header(headers, 'x-gitlab-token');
  if (gitlab !== undefined) {
    return constantTimeEqual(Buffer.from(gitlab, 'utf8'), Buffer.from(secret, 'utf8'))
      ? { ok: true, via: 'gitlab' }
      : { ok: false, reason: 'X-Gitlab-Token does not match the webhook secret' };
  }
  return {
    ok: false,
    reason: 'no signature: expected X-Hub-Signature-256, X-Gitlab-Token or X-Mooring-Signature',
  };
}

function checkHmac(
  value: string,
  body: Buffer,
  secret: string,
  name: string,
  via: 'github' | 'mooring',
): WebhookVerdict {
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(value.trim());
  if (!match?.[1]) return { ok: false, reason: `${name} is not of the form sha256=<64 hex digits>` };
  const expected = createHmac('sha256', secret).update(body).digest();
  const given = Buffer.from(match[1], 'hex');
  return constantTimeEqual(given, expected)
    ? { ok: true, via }
    : { ok: false, reason: `${name} does not match the body signed with the webhook secret` };
}

/** timingSafeEqual throws on different lengths; comparing digests keeps the time constant. */
function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  const da = createHmac('sha256', 'mooring-compare').update(a).digest();
  const db = createHmac('sha256', 'mooring-compare').update(b).digest();
  return timingSafeEqual(da, db) && a.length === b.length;
}

function header(headers: WebhookRequest['headers'], name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) continue;
    // Two signatures on one request is not something a forge sends; treat it as unsigned.
    if (Array.isArray(value)) return value.length === 1 ? value[0] : '';
    return value;
  }
  return undefined;
}
