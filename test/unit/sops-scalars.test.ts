// sops (Go) types every readable scalar with yaml.v3's rules and hashes it as Go prints it.
// These tables are the contract mooring's MAC check depends on; the integration tests
// confirm them against the real sops binary. (The resolver was also compared with
// go.yaml.in/yaml/v3 v3.0.4 itself on 200,000 generated scalars, without a difference.)
import { describe, expect, test } from 'vitest';
import {
  formatGoFloat,
  normaliseRfc3339,
  parseGoBool,
  parseGoDecimalInt,
  parseGoFloat,
  parseYamlTimestamp,
  plainValue,
  resolvePlainScalar,
  sopsMacBytes,
} from '../../src/resolve/sops-scalars.js';

describe('typing a plain scalar as yaml.v3 does', () => {
  test.each([
    ['true', true],
    ['True', true],
    ['TRUE', true],
    ['false', false],
    ['FALSE', false],
  ])('%s is the boolean %s', (text, value) => {
    expect(resolvePlainScalar(text)).toEqual({ kind: 'bool', value });
  });

  test.each(['yes', 'no', 'on', 'off', 'y', 'n', 'tRUE'])(
    '%s is a string (YAML 1.1 booleans are gone)',
    (text) => {
      expect(resolvePlainScalar(text)).toEqual({ kind: 'str', value: text });
    },
  );

  test.each(['', '~', 'null', 'Null', 'NULL'])('"%s" is null', (text) => {
    expect(resolvePlainScalar(text)).toEqual({ kind: 'null' });
  });

  test.each([
    ['42', 42n],
    ['-7', -7n],
    ['+5', 5n],
    ['-0', 0n],
    ['0x1F', 31n],
    ['0o17', 15n],
    ['010', 8n],
    ['0b101', 5n],
    ['1_000', 1000n],
    ['0b-101', -5n],
    ['-0o17', -15n],
    ['9223372036854775807', 9223372036854775807n],
    ['-9223372036854775808', -9223372036854775808n],
  ])('%s is the integer %s', (text, value) => {
    expect(resolvePlainScalar(text)).toEqual({ kind: 'int', value });
  });

  test.each([
    ['0.1', 0.1],
    ['3.0', 3],
    ['1e21', 1e21],
    ['1.', 1],
    ['+.5', 0.5],
    ['.5e3', 500],
    ['08', 8],
    ['99999999999999999999999', 1e23],
    ['-9223372036854775809', Number('-9223372036854775809')],
    ['.0_80_56', 0.08056],
    ['.5e0_4', 5000],
    ['+9223372036854775808', 9223372036854775808],
    ['.inf', Infinity],
    ['-.Inf', -Infinity],
  ])('%s is the float %s', (text, value) => {
    expect(resolvePlainScalar(text)).toEqual({ kind: 'float', value });
  });

  test('.nan is a float NaN', () => {
    const s = resolvePlainScalar('.NaN');
    expect(s.kind).toBe('float');
    expect(Number.isNaN(s.kind === 'float' ? s.value : 0)).toBe(true);
  });

  test.each([
    '1e400',
    '._5',
    '.5_',
    '1:20',
    '0x',
    '0o8',
    '1.2.3',
    '.',
    '-',
    'abc',
    '.infinity',
    '2024-13-02',
    '2024-02-30',
  ])('%s is a string', (text) => {
    expect(resolvePlainScalar(text)).toEqual({ kind: 'str', value: text });
  });

  test('an integer above the int64 range but within uint64 is a type sops cannot walk', () => {
    expect(resolvePlainScalar('18446744073709551615').kind).toBe('unsupported');
    expect(() => sopsMacBytes(resolvePlainScalar('9223372036854775808'))).toThrow(/64-bit signed range/);
  });

  test('a timestamp with a zone offset of a day or more cannot be printed by Go, so sops cannot hash it', () => {
    expect(resolvePlainScalar('2020-09-04T22:46:58+24:00').kind).toBe('unsupported');
  });

  test.each([
    ['2024-01-02', '2024-01-02T00:00:00Z'],
    ['2024-1-2', '2024-01-02T00:00:00Z'],
    ['2024-01-02T03:04:05Z', '2024-01-02T03:04:05Z'],
    ['2024-01-02t03:04:05+00:00', '2024-01-02T03:04:05Z'],
    ['2001-12-14t21:59:43.10-05:00', '2001-12-14T21:59:43.1-05:00'],
    ['2024-01-02 03:04:05.123', '2024-01-02T03:04:05.123Z'],
    ['2024-01-02T3:4:5.1234567891Z', '2024-01-02T03:04:05.123456789Z'],
    ['2024-02-29', '2024-02-29T00:00:00Z'],
  ])('%s is a timestamp, printed as %s', (text, printed) => {
    expect(resolvePlainScalar(text)).toEqual({ kind: 'time', value: printed });
  });

  test.each([
    '2023-02-29',
    '2024-01-02T24:00:00Z',
    '2024-01-02T03:04:05',
    '2024-01-02T03:04:05z',
    '24-01-02',
  ])('%s is not a timestamp', (text) => {
    expect(parseYamlTimestamp(text)).toBeUndefined();
  });
});

// Expected texts are what Go's strconv.FormatFloat(x, 'f', -1, 64) prints (checked with go run).
describe('printing values as Go does, for the MAC', () => {
  test.each([
    [0.1, '0.1'],
    [3, '3'],
    [1e21, '1000000000000000000000'],
    [1e23, '100000000000000000000000'],
    [2 / 3, '0.6666666666666666'],
    [Number('123456789012345678'), '123456789012345680'],
    [1.7976931348623157e308, `17976931348623157${'0'.repeat(292)}`],
    [1e-7, '0.0000001'],
    [123.456, '123.456'],
    [-2.5, '-2.5'],
    [0, '0'],
    [-0, '-0'],
    [NaN, 'NaN'],
    [Infinity, '+Inf'],
    [-Infinity, '-Inf'],
  ])('float %s prints as %s', (value, printed) => {
    expect(formatGoFloat(value)).toBe(printed);
  });

  test('the smallest float prints in full, without an exponent', () => {
    expect(formatGoFloat(5e-324)).toBe(`0.${'0'.repeat(323)}5`);
  });

  test('booleans print in title case, ints in decimal, nulls as nothing, text as it is', () => {
    expect(sopsMacBytes({ kind: 'bool', value: true })).toBe('True');
    expect(sopsMacBytes({ kind: 'bool', value: false })).toBe('False');
    expect(sopsMacBytes({ kind: 'int', value: -9223372036854775808n })).toBe('-9223372036854775808');
    expect(sopsMacBytes({ kind: 'null' })).toBe('');
    expect(sopsMacBytes({ kind: 'str', value: 'päss' })).toBe('päss');
    expect(sopsMacBytes({ kind: 'time', value: '2024-01-02T00:00:00Z' })).toBe('2024-01-02T00:00:00Z');
  });

  test('values handed on are plain JavaScript values', () => {
    expect(plainValue({ kind: 'int', value: 8n })).toBe(8);
    expect(plainValue({ kind: 'null' })).toBeNull();
    expect(plainValue({ kind: 'time', value: '2024-01-02T00:00:00Z' })).toBe('2024-01-02T00:00:00Z');
  });
});

describe('reading decrypted values as Go does', () => {
  test('strconv.ParseBool', () => {
    expect(['1', 't', 'T', 'TRUE', 'true', 'True'].map(parseGoBool)).toEqual(Array(6).fill(true));
    expect(['0', 'f', 'F', 'FALSE', 'false', 'False'].map(parseGoBool)).toEqual(Array(6).fill(false));
    expect(parseGoBool('yes')).toBeUndefined();
  });

  test('strconv.Atoi', () => {
    expect(parseGoDecimalInt('-42')).toBe(-42n);
    expect(parseGoDecimalInt('+7')).toBe(7n);
    expect(parseGoDecimalInt('0x1F')).toBeUndefined();
    expect(parseGoDecimalInt('9223372036854775808')).toBeUndefined();
  });

  test('strconv.ParseFloat, for what sops writes', () => {
    expect(parseGoFloat('1000000000000000000000')).toBe(1e21);
    expect(parseGoFloat('+Inf')).toBe(Infinity);
    expect(parseGoFloat('-Inf')).toBe(-Infinity);
    expect(Number.isNaN(parseGoFloat('NaN'))).toBe(true);
    expect(parseGoFloat('0.1x')).toBeUndefined();
    expect(parseGoFloat('1e400')).toBeUndefined();
  });

  test('RFC 3339 times normalise as time.Format (lastmodified) and MarshalText (type:time)', () => {
    expect(normaliseRfc3339('2024-05-06T07:08:09Z', false)).toBe('2024-05-06T07:08:09Z');
    expect(normaliseRfc3339('2024-05-06T07:08:09.500Z', false)).toBe('2024-05-06T07:08:09Z');
    expect(normaliseRfc3339('2024-05-06T07:08:09.500Z', true)).toBe('2024-05-06T07:08:09.5Z');
    expect(normaliseRfc3339('2024-05-06T07:08:09+00:00', false)).toBe('2024-05-06T07:08:09Z');
    expect(normaliseRfc3339('2024-05-06T07:08:09+02:00', false)).toBe('2024-05-06T07:08:09+02:00');
    expect(normaliseRfc3339('2024-05-06 07:08:09Z', false)).toBeUndefined();
    expect(normaliseRfc3339('yesterday', false)).toBeUndefined();
  });
});
