// A small schema language for the files users write. One schema per file kind both
// validates and produces the error messages: each problem names the field path, what was
// found and what is allowed. Validation collects every problem instead of stopping at the
// first, so `mooring validate` can report them all at once.
import { MooringError } from '../errors.js';

export interface Issue {
  field: string;
  message: string;
}

export interface Schema<T> {
  /** A short description of what is allowed, used in messages (`a string`, `true or false`). */
  readonly expected: string;
  check(value: unknown, field: string, issues: Issue[]): T | undefined;
}

/** Validates `value`; throws one MooringError per file listing every problem found. */
export function validate<T>(schema: Schema<T>, value: unknown, file: string): T {
  const issues: Issue[] = [];
  const result = schema.check(value, '', issues);
  if (issues.length > 0 || result === undefined) throw issuesToError(issues, file);
  return result;
}

/** Like `validate`, but returns the problems as separate errors. */
export function check<T>(
  schema: Schema<T>,
  value: unknown,
  file: string,
): { value?: T; errors: MooringError[] } {
  const issues: Issue[] = [];
  const result = schema.check(value, '', issues);
  const errors = issues.map(
    (i) => new MooringError(i.message, { file, ...(i.field ? { field: i.field } : {}) }),
  );
  return issues.length === 0 && result !== undefined ? { value: result, errors } : { errors };
}

function issuesToError(issues: Issue[], file: string): MooringError {
  const first = issues[0];
  if (issues.length <= 1) {
    return new MooringError(first?.message ?? 'invalid', {
      file,
      ...(first?.field ? { field: first.field } : {}),
    });
  }
  const lines = issues.map((i) => `${i.field || '(top level)'}: ${i.message}`);
  return new MooringError(`${issues.length} problems:\n  ${lines.join('\n  ')}`, { file });
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `the string ${JSON.stringify(truncate(value))}`;
  return `${typeof value === 'number' ? 'the number' : typeof value} ${String(value)}`;
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

export function join(field: string, key: string | number): string {
  if (typeof key === 'number') return `${field}[${key}]`;
  return field ? `${field}.${key}` : key;
}

function typeError(expected: string, value: unknown, field: string, issues: Issue[]): undefined {
  issues.push({ field, message: `expected ${expected}, found ${describe(value)}` });
  return undefined;
}

export function str(
  opts: { pattern?: RegExp; patternHelp?: string; enum?: readonly string[] } = {},
): Schema<string> {
  const expected = opts.enum ? `one of ${opts.enum.join(', ')}` : (opts.patternHelp ?? 'a string');
  return {
    expected,
    check(value, field, issues) {
      if (typeof value !== 'string')
        return typeError(opts.enum ? expected : 'a string', value, field, issues);
      if (opts.enum && !opts.enum.includes(value)) return typeError(expected, value, field, issues);
      if (opts.pattern && !opts.pattern.test(value)) return typeError(expected, value, field, issues);
      return value;
    },
  };
}

export function oneOf<T extends string>(values: readonly T[]): Schema<T> {
  return str({ enum: values }) as Schema<T>;
}

export function bool(): Schema<boolean> {
  return {
    expected: 'true or false',
    check(value, field, issues) {
      return typeof value === 'boolean' ? value : typeError('true or false', value, field, issues);
    },
  };
}

export function list<T>(item: Schema<T>, opts: { unique?: boolean } = {}): Schema<T[]> {
  return {
    expected: `a list of ${item.expected}`,
    check(value, field, issues) {
      if (!Array.isArray(value)) return typeError(`a list of ${item.expected}`, value, field, issues);
      const out: T[] = [];
      const before = issues.length;
      value.forEach((v, i) => {
        const r = item.check(v, join(field, i), issues);
        if (r !== undefined) out.push(r);
      });
      if (opts.unique) {
        const seen = new Set<string>();
        value.forEach((v, i) => {
          const key = JSON.stringify(v);
          if (seen.has(key))
            issues.push({ field: join(field, i), message: `duplicate entry ${describe(v)}` });
          seen.add(key);
        });
      }
      return issues.length === before ? out : undefined;
    },
  };
}

export function isPlainMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A map with free-form keys (checked by `key`) and values checked by `item`. */
export function record<T>(item: Schema<T>, key?: Schema<string>): Schema<Record<string, T>> {
  return {
    expected: `a map of ${item.expected}`,
    check(value, field, issues) {
      if (!isPlainMap(value)) return typeError('a map', value, field, issues);
      const out: Record<string, T> = {};
      const before = issues.length;
      for (const [k, v] of Object.entries(value)) {
        if (key && key.check(k, join(field, k), []) === undefined) {
          issues.push({
            field: join(field, k),
            message: `invalid key ${JSON.stringify(k)}: expected ${key.expected}`,
          });
          continue;
        }
        const r = item.check(v, join(field, k), issues);
        if (r !== undefined) out[k] = r;
      }
      return issues.length === before ? out : undefined;
    },
  };
}

type Fields = Record<string, Schema<unknown>>;
type ObjectOf<F extends Fields, R extends keyof F> = {
  [K in R]: F[K] extends Schema<infer T> ? T : never;
} & {
  [K in Exclude<keyof F, R>]?: F[K] extends Schema<infer T> ? T : never;
};

/** A map with known fields. Unknown fields are errors that list the allowed ones. */
export function object<F extends Fields, R extends keyof F = never>(
  fields: F,
  opts: { required?: readonly R[] } = {},
): Schema<ObjectOf<F, R>> {
  const allowed = Object.keys(fields);
  return {
    expected: 'a map',
    check(value, field, issues) {
      if (value === null || value === undefined) value = {};
      if (!isPlainMap(value)) return typeError('a map', value, field, issues);
      const before = issues.length;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        const schema = fields[k];
        if (!schema) {
          const near = closest(k, allowed);
          issues.push({
            field: join(field, k),
            message: `unknown field ${JSON.stringify(k)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; allowed: ${allowed.join(', ')}`,
          });
          continue;
        }
        if (v === null) {
          // An explicit null means "not set", as in Kubernetes manifests.
          continue;
        }
        const r = schema.check(v, join(field, k), issues);
        if (r !== undefined) out[k] = r;
      }
      for (const r of opts.required ?? []) {
        if (out[r as string] === undefined && !issues.some((i) => i.field === join(field, r as string))) {
          issues.push({ field: join(field, r as string), message: `required field is missing` });
        }
      }
      return issues.length === before ? (out as ObjectOf<F, R>) : undefined;
    },
  };
}

/** A schema with an extra check on an already well-typed value. */
export function refine<T>(base: Schema<T>, test: (v: T) => string | undefined): Schema<T> {
  return {
    expected: base.expected,
    check(value, field, issues) {
      const r = base.check(value, field, issues);
      if (r === undefined) return undefined;
      const problem = test(r);
      if (problem) {
        issues.push({ field, message: problem });
        return undefined;
      }
      return r;
    },
  };
}

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function dnsLabel(): Schema<string> {
  return str({
    pattern: DNS_LABEL,
    patternHelp: 'a DNS-1123 label (lowercase letters, digits and -, at most 63)',
  });
}

const DURATION = /^(\d+h)?(\d+m)?(\d+s)?$/;

/** A Go-style duration such as `90s`, `5m` or `1h30m`; returns seconds. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m || text === '') return undefined;
  const [, h, mi, s] = m;
  return (
    (parseInt(h ?? '0', 10) || 0) * 3600 + (parseInt(mi ?? '0', 10) || 0) * 60 + (parseInt(s ?? '0', 10) || 0)
  );
}

export function duration(): Schema<string> {
  return refine(str({ patternHelp: 'a duration such as 90s, 5m or 1h30m' }), (v) =>
    parseDuration(v) === undefined || parseDuration(v) === 0
      ? `expected a duration such as 90s, 5m or 1h30m, found ${describe(v)}`
      : undefined,
  );
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
