// Bounded, Helm-compatible YAML loading for files that come from Git.
//
// Helm reads values with go-yaml v2, a YAML 1.1 parser: `yes`, `on`, `y` are booleans and
// `0777` is octal. We parse with the same rules, so that what mooring merges is what helm
// would see. Everything from Git is untrusted: size and alias expansion are bounded so a
// hostile file fails fast instead of eating the agent's memory.
import { parseAllDocuments, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';
import { MooringError } from '../errors.js';

export interface YamlLimits {
  /** Largest accepted file, in bytes. */
  maxBytes: number;
  /** Most alias references (`*anchor`) resolved in one document. */
  maxAliases: number;
}

export const DEFAULT_YAML_LIMITS: YamlLimits = { maxBytes: 1024 * 1024, maxAliases: 100 };

const OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  uniqueKeys: true,
  prettyErrors: true,
  // go-yaml v2 keeps timestamps as strings when decoding into interface{}.
  customTags: (tags) => tags.filter((t) => typeof t === 'object' && t.tag !== 'tag:yaml.org,2002:timestamp'),
};

/**
 * Parses one YAML document. An empty file is `null`. Errors name the file and, where the
 * parser knows it, the line and column.
 */
export function parseYaml(text: string, file: string, limits: YamlLimits = DEFAULT_YAML_LIMITS): unknown {
  const size = Buffer.byteLength(text, 'utf8');
  if (size > limits.maxBytes) {
    throw new MooringError(`file is ${size} bytes, over the limit of ${limits.maxBytes} bytes`, { file });
  }
  let docs;
  try {
    docs = parseAllDocuments(text, OPTIONS);
  } catch (err) {
    throw new MooringError(`invalid YAML: ${(err as Error).message}`, { file });
  }
  if (!Array.isArray(docs)) docs = [docs];
  if (docs.length > 1) {
    throw new MooringError(`holds ${docs.length} YAML documents; exactly one is allowed`, { file });
  }
  const doc = docs[0];
  if (doc === undefined) return null;
  const problem = doc.errors[0];
  if (problem !== undefined) {
    const message = firstLine(problem.message).replace(/:\s*$/, '');
    throw new MooringError(
      `invalid YAML: ${message}${/line \d+/.test(message) ? '' : at(problem.linePos?.[0])}`,
      { file },
    );
  }
  try {
    return doc.toJS({ maxAliasCount: limits.maxAliases });
  } catch (err) {
    const message = (err as Error).message;
    if (/alias/i.test(message)) {
      throw new MooringError(
        `too many YAML alias expansions (limit ${limits.maxAliases}); the file looks like an alias bomb`,
        { file },
      );
    }
    throw new MooringError(`invalid YAML: ${firstLine(message)}`, { file });
  }
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

function at(pos: { line: number; col: number } | undefined): string {
  return pos ? ` (line ${pos.line}, column ${pos.col})` : '';
}
