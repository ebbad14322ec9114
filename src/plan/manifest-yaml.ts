// How mooring reads a rendered manifest: as Kubernetes and helm read it, YAML 1.1 (go-yaml v2
// through sigs.k8s.io/yaml). Under YAML 1.2 `defaultMode: 0755` would be the number 755, an
// invalid file mode, where the API server gets 493; `on`, `yes` and `y` would stay strings.
// Every manifest mooring parses goes through this one function, so that switching to a
// helm-compatible reader (src/model/yaml.ts) is a one-line change here.
import { parseAllDocuments, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';

const MANIFEST_YAML: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  // go-yaml v2 keeps timestamps as strings when decoding into interface{}.
  customTags: (tags) => tags.filter((t) => typeof t === 'object' && t.tag !== 'tag:yaml.org,2002:timestamp'),
};

/** The documents of a multi-document manifest, as plain values (empty documents are null). */
export function parseManifestDocuments(manifest: string): unknown[] {
  return parseAllDocuments(manifest, MANIFEST_YAML).map(
    (doc) => doc.toJS({ maxAliasCount: 1000 }) as unknown,
  );
}
