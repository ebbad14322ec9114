// The agent-wide drift ignore rules (`--drift-ignore-file`, MOORING_DRIFT_IGNORE_FILE): a YAML
// list of rules in the same form as a release's `drift.ignore` in releases.yaml. It belongs to
// the agent's configuration (a ConfigMap mounted by its chart), never to Git.
import { readFileSync } from 'node:fs';
import { MooringError } from '../../errors.js';
import { ignoreRules, type IgnoreRule } from '../../model/releases.js';
import { validate } from '../../model/schema.js';
import { parseYaml } from '../../model/yaml.js';

export function loadIgnoreFile(path: string): IgnoreRule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MooringError(
      `cannot read the drift ignore file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      {
        file: path,
        field: '--drift-ignore-file',
      },
    );
  }
  return parseIgnoreRules(text, path);
}

/** Parses the file's text; an empty file holds no rules. */
export function parseIgnoreRules(text: string, file: string): IgnoreRule[] {
  const doc = parseYaml(text, file);
  if (doc === null || doc === undefined) return [];
  return validate(ignoreRules, doc, file);
}
