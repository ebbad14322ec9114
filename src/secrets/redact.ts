// Redaction: removing every known secret from text before it reaches a log, an Event, a
// status, a plan or a terminal. helm may print a secret in many forms, so each secret is
// looked for in all of them:
// - as written, JSON-escaped (JSON.stringify and Go's encoding/json, which also escapes
//   <, > and &), Go-quoted (`%q`), YAML single-quoted, line by line when multi-line;
// - base64, aligned however it sits inside a longer encoded value (a Secret's `data`, a
//   b64enc of a whole config file);
// - and, for numbers, every way Go prints a float64 (helm hands values to templates as
//   float64): `%v`/`%g` (9.87654321e+08), `%e`, encoding/json and toYaml (987654321), the
//   exponent with and without sign and padding, `%e` and `%f` at their default precision
//   (9.876543e+08, 3.141593), and the integer digits.
import { goFormatE, goFormatFixedE, goFormatG, goFormatJson } from '../model/go-number.js';

export const REDACTED = '[redacted]';

/** Shorter needles are only replaced where they stand alone, so a message stays readable. */
const MIN_SUBSTRING = 4;
/** A base64 fragment of an unaligned secret must be this long to be worth replacing. */
const MIN_BASE64_FRAGMENT = 6;

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Every form in which helm (or Go, or YAML) may print `secret`. */
export function secretForms(secret: string): string[] {
  if (secret.length === 0) return [];
  const texts = new Set<string>([secret]);
  if (NUMBER.test(secret.trim())) for (const form of numberForms(Number(secret.trim()))) texts.add(form);

  const forms = new Set<string>();
  for (const text of texts) {
    forms.add(text);
    const json = JSON.stringify(text).slice(1, -1);
    forms.add(json);
    forms.add(goJsonEscape(json));
    forms.add(goQuote(text));
    forms.add(text.replaceAll("'", "''"));
    for (const fragment of base64Forms(text)) forms.add(fragment);
    if (text.includes('\n')) {
      for (const line of text.split('\n')) if (line.trim().length >= MIN_SUBSTRING) forms.add(line.trim());
    }
  }
  forms.delete('');
  return [...forms];
}

/** The texts Go and helm print for the number `x`. */
function numberForms(x: number): string[] {
  if (!Number.isFinite(x)) return [];
  const out = new Set<string>([String(x), goFormatG(x), goFormatJson(x), goFormatFixedE(x)]);
  for (const e of [goFormatE(x), goFormatFixedE(x)]) {
    const m = /^(-?[\d.]+)e([-+])(\d+)$/.exec(e);
    if (!m) continue;
    const [, mantissa, sign, digits] = m as unknown as [string, string, string, string];
    const bare = String(Number(digits));
    for (const mark of ['e', 'E']) {
      for (const exp of new Set([digits, bare])) {
        out.add(`${mantissa}${mark}${sign}${exp}`);
        if (sign === '+') out.add(`${mantissa}${mark}${exp}`);
      }
    }
  }
  // %d of an int, %f, toYaml of a large integer: the plain digits.
  if (Number.isInteger(x)) out.add(BigInt(x).toString());
  else if (Math.abs(x) < 1e21) out.add(x.toFixed(6));
  return [...out];
}

/** encoding/json's escaping on top of JSON.stringify's: <, >, & and the line separators. */
function goJsonEscape(json: string): string {
  return json
    .replaceAll('<', '\\u003c')
    .replaceAll('>', '\\u003e')
    .replaceAll('&', '\\u0026')
    .replaceAll('\u2028', '\\u2028')
    .replaceAll('\u2029', '\\u2029');
}

const GO_ESCAPES: Record<string, string> = {
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
  '\\': '\\\\',
  '"': '\\"',
};

/** The inside of Go's strconv.Quote (`%q`, helm's `quote` does not escape; this is for `printf "%q"`). */
function goQuote(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (GO_ESCAPES[ch] !== undefined) out += GO_ESCAPES[ch];
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

/**
 * The base64 text of `text` as it appears wherever it sits in a longer encoded value: for
 * each of the three alignments, the characters that depend on the secret's bytes alone.
 */
function base64Forms(text: string): string[] {
  const bytes = Buffer.from(text, 'utf8');
  const out = [bytes.toString('base64'), bytes.toString('base64url')];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const start = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    const fragment = encoded.slice(start, end);
    if (fragment.length >= MIN_BASE64_FRAGMENT) out.push(fragment);
  }
  return out;
}

/**
 * Replaces every form of every secret in `text` with `[redacted]`. Longer forms go first,
 * so a secret that contains another is removed whole.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  if (secrets.length === 0 || text === '') return text;
  const needles = new Set<string>();
  for (const secret of secrets) for (const form of secretForms(secret)) needles.add(form);
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  const long = ordered.filter((n) => n.length >= MIN_SUBSTRING).map(escapeRegExp);
  const short = ordered.filter((n) => n.length < MIN_SUBSTRING).map(escapeRegExp);
  let out = text;
  if (long.length > 0) out = out.replace(new RegExp(long.join('|'), 'g'), REDACTED);
  if (short.length > 0) {
    out = out.replace(new RegExp(`(?<![A-Za-z0-9])(?:${short.join('|')})(?![A-Za-z0-9])`, 'g'), REDACTED);
  }
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
