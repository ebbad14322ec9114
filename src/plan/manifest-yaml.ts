// How mooring reads a rendered manifest: as helm and the API server read it (go-yaml v2
// rules through sigs.k8s.io/yaml, src/model/yaml.ts). Under YAML 1.2 `defaultMode: 0755`
// would be the number 755, an invalid file mode, where the API server gets 493; `on`, `yes`
// and `y` would stay strings. Every manifest the plan code parses goes through here.
import { parseYamlDocuments, type YamlLimits } from '../model/yaml.js';

// A rendered manifest is helm's output, not a file people write: big charts
// (kube-prometheus-stack) render several megabytes.
const MANIFEST_LIMITS: YamlLimits = {
  maxBytes: 32 * 1024 * 1024,
  maxExpandedSize: 128 * 1024 * 1024,
  maxNodes: 4_000_000,
};

/** The documents of a multi-document manifest, as plain values (empty documents are null). */
export function parseManifestDocuments(manifest: string, what = 'rendered manifest'): unknown[] {
  return parseYamlDocuments(manifest, what, { limits: MANIFEST_LIMITS });
}
