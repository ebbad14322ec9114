// Differential test of redaction: real helm prints each secret of a corpus in every way a
// template can (Go's %v/%g/%e/%f/%s/%q/%d, toJson, toYaml, quote, toString, int, b64enc of
// the value and of a longer text around it, and fail's error message), and
// src/secrets/redact.ts must leave no trace of any secret in that output. The secrets reach
// redaction the way the agent collects them from decrypted values (collectSecretStrings).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parseYaml } from '../../src/model/yaml.js';
import { collectSecretStrings } from '../../src/secrets/mask.js';
import { REDACTED, redactSecrets } from '../../src/secrets/redact.js';

const run = promisify(execFile);
const helm = process.env.MOORING_HELM ?? join(import.meta.dirname, '../../.tools/bin/helm');
const dir = mkdtempSync(join(tmpdir(), 'mooring-redact-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Each expression prints `.Values.secret` one way. They all go into one `fail` message, so
// the output is exactly what the agent gets from helm when a template fails.
const FORMS = [
  '.Values.secret',
  '(printf "%v" .Values.secret)',
  '(printf "%g" .Values.secret)',
  '(printf "%e" .Values.secret)',
  '(printf "%E" .Values.secret)',
  '(printf "%f" .Values.secret)',
  '(printf "%s" .Values.secret)',
  '(printf "%q" .Values.secret)',
  '(printf "%d" .Values.secret)',
  '(printf "%#v" .Values.secret)',
  '(toJson .Values.secret)',
  '(toJson (dict "key" .Values.secret))',
  '(toYaml (dict "key" .Values.secret))',
  '(quote .Values.secret)',
  '(squote .Values.secret)',
  '(toString .Values.secret)',
  '(.Values.secret | toString | b64enc)',
  '(printf "user=admin;password=%v;" .Values.secret | b64enc)',
  '(printf "x%v" .Values.secret | b64enc)',
  '(printf "xy%v" .Values.secret | b64enc)',
  '(ternary (int64 .Values.secret) "" (kindIs "float64" .Values.secret))',
];

const SECRETS: Record<string, unknown> = {
  'nine-digit integer': 987654321,
  'seven-digit integer': 7654321,
  'six-digit integer': 765432,
  negative: -42424242,
  fraction: 3.14159265,
  'small fraction': 0.000123456,
  tiny: 1.5e-7,
  'beyond 2^64': Number('12345678901234567890'),
  huge: 9.87e21,
  'digits as a string': '987654321',
  punctuation: `s3cr3t<&>'"\\pass`,
  'multi-line': 'first-line-of-it\nsecond-line-of-it',
  unicode: 'ünïcødé-sëcrèt',
  'with a tab': 'tab\there-secret',
};

/** What would betray `value` if it appeared: its text, lines, and for numbers their leading digits. */
function tellTales(value: unknown): string[] {
  if (typeof value === 'number') {
    const [mantissa = '', exponent = ''] = value.toExponential().split('e');
    const digits = mantissa.replace(/[-.]/g, '');
    if (digits.length < 3)
      return [`${mantissa}e${exponent}`, `${mantissa}e${exponent[0]}0${exponent.slice(1)}`];
    const tales = [`${digits[0]}.${digits.slice(1, 4)}`];
    if (digits.length >= 4) tales.push(digits.slice(0, 6));
    return tales;
  }
  const text = String(value);
  return [text, ...text.split('\n').filter((l) => l.length >= 6)];
}

/** Base64 runs in `text`, decoded, at each of the three alignments. */
function decodedRuns(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/[A-Za-z0-9+/]{8,}={0,2}/g)) {
    for (let skip = 0; skip < 4; skip++) out.push(Buffer.from(m[0].slice(skip), 'base64').toString('latin1'));
  }
  return out;
}

describe('redaction covers every form helm prints a secret in', () => {
  const chart = join(dir, 'printer');
  mkdirSync(join(chart, 'templates'), { recursive: true });
  writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: printer\nversion: 0.1.0\n');
  writeFileSync(
    join(chart, 'templates', 'forms.yaml'),
    `{{ fail (list ${FORMS.join(' ')} | join "\\n") }}\n`,
  );

  it.each(Object.entries(SECRETS))('%s', async (name, secret) => {
    const file = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
    // JSON is YAML: the number reaches helm exactly as written.
    writeFileSync(file, `secret: ${JSON.stringify(secret)}\n`);
    const strings = new Set<string>();
    collectSecretStrings(parseYaml(Buffer.from(`secret: ${JSON.stringify(secret)}\n`), file), strings);

    const output = await run(helm, ['template', 'r', chart, '--values', file]).then(
      () => '',
      (err: { stderr: string }) => err.stderr,
    );
    expect(output.split('\n').length).toBeGreaterThan(FORMS.length);

    {
      // The test is only worth something if helm really printed the secret.
      const tales = tellTales(secret);
      expect(tales.some((t) => output.includes(t) || decodedRuns(output).some((d) => d.includes(t)))).toBe(
        true,
      );
      const redacted = redactSecrets(output, [...strings]);
      expect(redacted).toContain(REDACTED);
      for (const tale of tales) {
        const leaks = redacted.split('\n').filter((line) => line.includes(tale));
        expect(leaks, `${name} leaks as ${tale}`).toEqual([]);
        const encoded = decodedRuns(redacted).filter((d) => d.includes(tale));
        expect(encoded, `${name} leaks in base64 as ${tale}`).toEqual([]);
      }
    }
  });
});
