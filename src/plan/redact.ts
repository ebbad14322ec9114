// Makes rendered manifests safe to show: Secret objects lose their data, and every
// decrypted string (raw, JSON-escaped or base64) is replaced wherever it appears.
import { stringify } from 'yaml';
import { redactSecrets } from '../converge/helm.js';
import { isPlainMap } from '../model/schema.js';
import { parseManifestDocuments } from './manifest-yaml.js';

export const MASK = '<secret>';

export function redactManifests(manifests: string, secretStrings: readonly string[]): string {
  const docs = manifests.split(/^---\s*$/m);
  const out = docs.map((doc) => {
    if (!/^kind:\s*Secret\s*$/m.test(doc)) return doc;
    const obj = parseManifestDocuments(doc)[0];
    if (!isPlainMap(obj) || obj.kind !== 'Secret') return doc;
    const comments = doc.match(/^#.*$/gm)?.join('\n') ?? '';
    for (const field of ['data', 'stringData']) {
      const data = obj[field];
      if (isPlainMap(data)) for (const k of Object.keys(data)) data[k] = MASK;
    }
    return `\n${comments ? `${comments}\n` : ''}${stringify(obj)}`;
  });
  return redactSecrets(out.join('---'), secretStrings);
}
