// src/secrets/redact.ts and the Go number forms it relies on. What helm really prints is
// checked against helm itself in test/integration/redact-vs-helm.test.ts.
import { describe, expect, it } from 'vitest';
import { goFormatE, goFormatFixedE, goFormatG, goFormatJson } from '../../src/model/go-number.js';
import { redactSecrets, secretForms } from '../../src/secrets/redact.js';

describe('Go number forms', () => {
  it.each([
    [987654321, '9.87654321e+08'],
    [123456, '123456'],
    [1234567, '1.234567e+06'],
    [0.0001, '0.0001'],
    [0.00001, '1e-05'],
    [-0.5, '-0.5'],
    [0, '0'],
    [1e21, '1e+21'],
  ])('%v of %d is %s', (x, text) => {
    expect(goFormatG(x)).toBe(text);
  });

  it('writes float32 keys, JSON, %e and fixed %e as Go does', () => {
    expect(goFormatG(123456789, 32)).toBe('1.2345679e+08');
    expect(goFormatG(0.1, 32)).toBe('0.1');
    expect(goFormatJson(987654321)).toBe('987654321');
    expect(goFormatJson(1e21)).toBe('1e+21');
    expect(goFormatJson(1e-7)).toBe('1e-7');
    expect(goFormatE(12345)).toBe('1.2345e+04');
    expect(goFormatFixedE(987654321)).toBe('9.876543e+08');
  });
});

describe('redaction', () => {
  it('knows every form of a number', () => {
    expect(secretForms('987654321')).toEqual(
      expect.arrayContaining([
        '987654321',
        '9.87654321e+08',
        '9.87654321e8',
        '9.87654321E+08',
        '9.876543e+08',
        Buffer.from('9.87654321e+08').toString('base64'),
      ]),
    );
  });

  it('removes a secret however it is quoted or encoded', () => {
    const secret = `p<a>ss&"word'`;
    const text = [
      JSON.stringify(secret),
      JSON.stringify(secret).replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026'),
      `'${secret.replaceAll("'", "''")}'`,
      Buffer.from(`user:${secret}`).toString('base64'),
    ].join('\n');
    const out = redactSecrets(text, [secret]);
    expect(out).not.toContain('ss&');
    expect(out).not.toContain('\\u0026');
    expect(out.split('\n').every((line) => line.includes('[redacted]'))).toBe(true);
  });

  it('replaces short secrets only where they stand alone', () => {
    expect(redactSecrets('port 42 in 1423', ['42'])).toBe('port [redacted] in 1423');
  });
});
