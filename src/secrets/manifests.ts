// Rendered manifests made safe to show: Secret objects lose their data, and every
// decrypted value is redacted wherever else it appears, in every form helm prints it.
import { stringify } from 'yaml';
import { isPlainMap } from '../model/schema.js';
import { parseManifestDocuments } from '../plan/manifest-yaml.js';
import { SECRET_MASK } from './mask.js';
import { redactSecrets } from './redact.js';

export function redactManifests(manifests: string, secretStrings: readonly string[]): string {
  const docs = manifests.split(/^---\s*$/m);
  const out = docs.map((doc) => {
    if (!/^kind:\s*Secret\s*$/m.test(doc)) return doc;
    let obj: unknown;
    try {
      obj = parseManifestDocuments(doc)[0];
    } catch {
      // Not readable as YAML: nothing of it is shown but its comments.
      return `\n${doc.match(/^#.*$/gm)?.join('\n') ?? ''}\n# (a Secret mooring cannot read; not shown)\n`;
    }
    if (!isPlainMap(obj) || obj.kind !== 'Secret') return doc;
    const comments = doc.match(/^#.*$/gm)?.join('\n') ?? '';
    for (const field of ['data', 'stringData']) {
      const data = obj[field];
      if (isPlainMap(data)) for (const k of Object.keys(data)) data[k] = SECRET_MASK;
    }
    return `\n${comments ? `${comments}\n` : ''}${stringify(obj)}`;
  });
  return redactSecrets(out.join('---'), secretStrings);
}
