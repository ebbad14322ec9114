// Masking: what people see in place of a decrypted value (`plan`, `explain`, diffs), and
// the list of secret texts every other output is redacted against (src/secrets/redact.ts).
import { isPlainMap } from '../model/schema.js';
import { formatPath, type Values } from '../resolve/merge.js';
import type { AnyObject } from '../kube/objects.js';

/** Shown in place of a value that came from a SOPS file. */
export const SECRET_MASK = '<secret>';

/** A copy of `values` with every leaf from a SOPS file replaced by a mask. */
export function maskSecrets(values: Values, secretPaths: string[][]): Values {
  const secret = new Set(secretPaths.map(formatPath));
  const walk = (v: unknown, path: string[]): unknown => {
    if (secret.has(formatPath(path))) return SECRET_MASK;
    if (isPlainMap(v))
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...path, k])]));
    return v;
  };
  return walk(values, []) as Values;
}

/**
 * Adds the text of every leaf of decrypted `values` to `out`. Numbers go in as JavaScript
 * writes them; redaction derives the forms Go prints from that text.
 */
export function collectSecretStrings(value: unknown, out: Set<string>): void {
  if (isPlainMap(value)) for (const v of Object.values(value)) collectSecretStrings(v, out);
  else if (Array.isArray(value)) for (const v of value) collectSecretStrings(v, out);
  else if (value !== null && value !== undefined && typeof value !== 'boolean') out.add(String(value));
}

/**
 * Strings to keep out of messages about deployed objects: the release's decrypted values,
 * and every value of the recorded Secrets (as written and, for `data`, decoded from base64).
 */
export function secretStringsOf(recorded: readonly AnyObject[], fromValues: readonly string[]): string[] {
  const out = new Set(fromValues);
  for (const object of recorded) {
    if (object.kind !== 'Secret' || object.apiVersion !== 'v1') continue;
    for (const field of ['data', 'stringData'] as const) {
      const data = object[field];
      if (!isPlainMap(data)) continue;
      for (const value of Object.values(data)) {
        if (typeof value !== 'string' || value === '') continue;
        out.add(value);
        if (field === 'data') out.add(Buffer.from(value, 'base64').toString('utf8'));
      }
    }
  }
  return [...out].filter((s) => s.length > 0);
}
