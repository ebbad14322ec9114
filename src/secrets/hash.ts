// Keyed hashes of secrets. A digest shown in status or a plan must not let anyone recover a
// secret (a short password brute-forced against the rest of the values in Git), so every
// secret leaf is replaced by an HMAC keyed with material only the agent has, derived from
// its age identities. A change still shows; the value does not.
import { createHash, createHmac } from 'node:crypto';
import { isPlainMap } from '../model/schema.js';
import { canonicalJson } from '../plan/digest.js';
import { formatPath, type Values } from '../resolve/merge.js';

/** A key for digesting secrets, derived from the agent's age identities. */
export function secretDigestKey(identities: readonly string[]): Buffer {
  return createHash('sha256').update('mooring digest key\0').update(identities.join('\n')).digest();
}

/** Replaces secret leaves with a keyed hash (`<secret:hmac>`): changes show, values do not. */
export function hashSecrets(values: Values, secretPaths: string[][], key: Buffer): Values {
  const secret = new Set(secretPaths.map(formatPath));
  const walk = (v: unknown, path: string[]): unknown => {
    if (path.length > 0 && secret.has(formatPath(path))) {
      return `<secret:${createHmac('sha256', key).update(canonicalJson(v)).digest('hex').slice(0, 16)}>`;
    }
    if (isPlainMap(v))
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...path, k])]));
    return v;
  };
  return walk(values, []) as Values;
}
