// How sops sees the scalars of a YAML file. sops is written in Go: it types every plain
// scalar with yaml.v3's rules and hashes each value as Go prints it (strconv, time.Time's
// MarshalText). Its MAC is only reproducible if mooring types and prints values the same
// way, so this module mirrors those rules, and only those rules: it is not a YAML parser.

/** A leaf value as sops holds it in memory, before it is encrypted or after it is decrypted. */
export type SopsScalar =
  | { readonly kind: 'null' }
  | { readonly kind: 'str'; readonly value: string }
  | { readonly kind: 'int'; readonly value: bigint }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'bool'; readonly value: boolean }
  /** A timestamp, kept as the text Go's time.MarshalText prints for it (RFC 3339, nanoseconds). */
  | { readonly kind: 'time'; readonly value: string }
  /** Go reads it as a uint64 (above the int64 range), a type sops cannot walk. */
  | { readonly kind: 'unsupported'; readonly reason: string };

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

// yaml.v3 looks these up before anything else, whatever the first character hints at.
const EXACT: ReadonlyMap<string, SopsScalar> = new Map<string, SopsScalar>([
  ...['true', 'True', 'TRUE'].map((s): [string, SopsScalar] => [s, { kind: 'bool', value: true }]),
  ...['false', 'False', 'FALSE'].map((s): [string, SopsScalar] => [s, { kind: 'bool', value: false }]),
  ...['', '~', 'null', 'Null', 'NULL'].map((s): [string, SopsScalar] => [s, { kind: 'null' }]),
  ...['.nan', '.NaN', '.NAN'].map((s): [string, SopsScalar] => [s, { kind: 'float', value: NaN }]),
  ...['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF'].map((s): [string, SopsScalar] => [
    s,
    { kind: 'float', value: Infinity },
  ]),
  ...['-.inf', '-.Inf', '-.INF'].map((s): [string, SopsScalar] => [s, { kind: 'float', value: -Infinity }]),
]);

const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;

/**
 * Types an untagged plain (unquoted, non-block) scalar as yaml.v3 (v3.0.4, the version
 * sops 3.13 builds with) does when decoding into an interface{}: booleans and nulls by
 * exact spelling, then timestamps, Go integer literals (0x, 0o, 0b, leading-0 octal,
 * underscores), then decimal floats; anything else is a string.
 */
export function resolvePlainScalar(text: string): SopsScalar {
  const exact = EXACT.get(text);
  if (exact) return exact;
  const first = text[0] ?? '';
  if (first === '.') {
    const literal = goFloatLiteral(text);
    return literal === undefined ? { kind: 'str', value: text } : floatOrString(literal, text);
  }
  if (!/^[-+0-9]$/.test(first)) return { kind: 'str', value: text };

  const time = parseYamlTimestamp(text);
  if (time !== undefined) return time;

  const plain = text.replaceAll('_', '');
  const int = goParseInt(plain, 0);
  if (int !== undefined) {
    if (int >= INT64_MIN && int <= INT64_MAX) return { kind: 'int', value: int };
    // strconv.ParseUint takes no sign at all.
    if (!/^[+-]/.test(plain) && int <= UINT64_MAX) return UINT64;
  }
  if (YAML_STYLE_FLOAT.test(plain)) {
    const value = Number(plain);
    if (Number.isFinite(value)) return { kind: 'float', value };
  }
  // yaml.v3 then retries 0b and 0o literals with the prefix cut off, which lets a sign
  // follow the prefix (0b-101 is -5).
  for (const [prefix, base] of [
    ['0b', 2],
    ['0o', 8],
  ] as const) {
    let digits: string | undefined;
    if (plain.startsWith(prefix)) digits = plain.slice(2);
    else if (plain.startsWith(`-${prefix}`)) digits = `-${plain.slice(3)}`;
    if (digits === undefined) continue;
    const v = goParseInt(digits, base);
    if (v !== undefined && v >= INT64_MIN && v <= INT64_MAX) return { kind: 'int', value: v };
    if (v !== undefined && !digits.startsWith('-') && !digits.startsWith('+') && v <= UINT64_MAX)
      return UINT64;
  }
  return { kind: 'str', value: text };
}

const UINT64: SopsScalar = { kind: 'unsupported', reason: 'an integer above the 64-bit signed range' };

function floatOrString(literal: string, original: string): SopsScalar {
  const value = Number(literal);
  // Go's ParseFloat fails on overflow, and yaml.v3 then keeps the text as a string.
  if (!Number.isFinite(value)) return { kind: 'str', value: original };
  return { kind: 'float', value };
}

/**
 * strconv.ParseInt(s, base, 64)'s syntax (base 0: Go literal prefixes, leading-0 octal),
 * without its range check: the caller decides what an out-of-range value becomes.
 */
function goParseInt(s: string, base: 0 | 2 | 8): bigint | undefined {
  const m = /^([+-]?)(.+)$/.exec(s);
  if (!m) return undefined;
  const sign = m[1] === '-' ? -1n : 1n;
  const body = m[2] ?? '';
  let literal: string | undefined;
  if (base === 2) literal = /^[01]+$/.test(body) ? `0b${body}` : undefined;
  else if (base === 8) literal = /^[0-7]+$/.test(body) ? `0o${body}` : undefined;
  else if (/^0[xX][0-9a-fA-F]+$|^0[oO][0-7]+$|^0[bB][01]+$/.test(body)) literal = body.toLowerCase();
  else if (/^0[0-7]+$/.test(body)) literal = `0o${body.slice(1)}`;
  else if (/^(0|[1-9][0-9]*)$/.test(body)) literal = body;
  return literal === undefined ? undefined : sign * BigInt(literal);
}

/**
 * A decimal float literal as Go's strconv.ParseFloat accepts it, underscores removed;
 * undefined when ParseFloat would reject it. Go allows an underscore only between digits.
 */
function goFloatLiteral(s: string): string | undefined {
  const m = /^([+-]?)([0-9_]*)(?:\.([0-9_]*))?(?:[eE]([+-]?)([0-9][0-9_]*))?$/.exec(s);
  if (!m) return undefined;
  const [, sign = '', whole = '', fraction, expSign = '', exp] = m;
  if (!/[0-9]/.test(whole + (fraction ?? ''))) return undefined;
  const between = (part: string): boolean => !/^_|_$|__/.test(part);
  const mantissa = fraction === undefined ? whole : `${whole}.${fraction}`;
  // An underscore may not touch the dot, the sign or the exponent marker.
  if (!between(whole) || (fraction !== undefined && !between(fraction))) return undefined;
  if (exp !== undefined && !between(exp)) return undefined;
  const expPart = exp === undefined ? '' : `e${expSign}${exp}`;
  return `${sign}${mantissa}${expPart}`.replaceAll('_', '');
}

/** Go's strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/** Go's strconv.Atoi (base 10, optional sign), limited to the int64 range. */
export function parseGoDecimalInt(s: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const value = BigInt(s);
  return value >= INT64_MIN && value <= INT64_MAX ? value : undefined;
}

/** Go's strconv.ParseFloat for the spellings sops writes: decimals, NaN and ±Inf. */
export function parseGoFloat(s: string): number | undefined {
  if (/^[+-]?(inf|infinity)$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(s)) return NaN;
  if (!/^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(s)) return undefined;
  const value = Number(s);
  return Number.isFinite(value) ? value : undefined;
}

/** strconv.FormatFloat(x, 'f', -1, 64): the shortest digits that read back as x, never an exponent. */
export function formatGoFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const sign = x < 0 ? '-' : '';
  // toExponential() without an argument yields the shortest round-trip digits.
  const [mantissa = '', exp = '0'] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const e = Number(exp);
  if (e >= digits.length - 1) return sign + digits + '0'.repeat(e - digits.length + 1);
  if (e >= 0) return `${sign}${digits.slice(0, e + 1)}.${digits.slice(e + 1)}`;
  return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
}

/** The bytes sops feeds its MAC for a value (Go's sops.ToBytes), as a UTF-8 string; null feeds nothing. */
export function sopsMacBytes(s: SopsScalar): string {
  switch (s.kind) {
    case 'null':
      return '';
    case 'str':
    case 'time':
      return s.value;
    case 'int':
      return s.value.toString();
    case 'float':
      return formatGoFloat(s.value);
    case 'bool':
      return s.value ? 'True' : 'False';
    case 'unsupported':
      throw new Error(`cannot hash ${s.reason}`);
  }
}

/** The value mooring hands on (to Helm): numbers for ints and floats, timestamps as their text. */
export function plainValue(s: SopsScalar): string | number | boolean | null {
  switch (s.kind) {
    case 'null':
      return null;
    case 'int':
      // Helm reads values through JSON, so integers beyond 2^53 lose precision there too.
      return Number(s.value);
    case 'unsupported':
      throw new Error(`cannot use ${s.reason}`);
    default:
      return s.value;
  }
}

// ---- time ----------------------------------------------------------------------------

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Fraction of a second, as up to nine digits (Go keeps nanoseconds). */
  fraction: string;
  /** Zone offset east of UTC, in minutes. */
  offset: number;
}

/**
 * The timestamp spellings yaml.v3 accepts for plain scalars (Go's time.Parse with 1-2 digit
 * fields and a `T`, `t` or space separator, or a bare date), as the text Go's MarshalText
 * prints for them; undefined when the text is not one of them.
 */
export function parseYamlTimestamp(text: string): SopsScalar | undefined {
  const m =
    /^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})| ([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})([.,][0-9]+)?)?$/.exec(
      text,
    );
  if (!m) return undefined;
  const zoned = m[4] !== undefined;
  const clock = wallClock(
    [m[1], m[2], m[3], zoned ? m[4] : m[9], zoned ? m[5] : m[10], zoned ? m[6] : m[11]],
    zoned ? m[7] : m[12],
    zoned ? m[8] : undefined,
  );
  if (clock === undefined) return undefined;
  // MarshalText refuses offsets of a day or more (Parse accepts up to +24:60), so sops cannot hash them.
  if (Math.abs(clock.offset) >= 24 * 60) {
    return { kind: 'unsupported', reason: 'a timestamp whose zone offset is 24 hours or more' };
  }
  return { kind: 'time', value: formatRfc3339(clock, true) };
}

/**
 * Go's time.Parse(time.RFC3339, s) followed by Format(time.RFC3339) (nano = false) or
 * MarshalText (nano = true): how sops normalises `lastmodified` and `type:time` values.
 */
export function normaliseRfc3339(text: string, nano: boolean): string | undefined {
  const m =
    /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$/.exec(
      text,
    );
  if (!m) return undefined;
  const clock = wallClock([m[1], m[2], m[3], m[4], m[5], m[6]], m[7], m[8]);
  if (clock === undefined || (nano && Math.abs(clock.offset) >= 24 * 60)) return undefined;
  return formatRfc3339(clock, nano);
}

function wallClock(
  fields: (string | undefined)[],
  fraction: string | undefined,
  zone: string | undefined,
): WallClock | undefined {
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = fields.map((f) =>
    f === undefined ? 0 : Number(f),
  );
  if (month < 1 || month > 12) return undefined;
  if (day < 1 || day > daysIn(month, year)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offset = 0;
  if (zone !== undefined && zone !== 'Z') {
    const hours = Number(zone.slice(1, 3));
    const minutes = Number(zone.slice(4, 6));
    if (hours > 24 || minutes > 60) return undefined;
    offset = (zone.startsWith('-') ? -1 : 1) * (hours * 60 + minutes);
  }
  // Go reads at most nine digits of a fraction and ignores the rest.
  return { year, month, day, hour, minute, second, fraction: (fraction ?? '').slice(1, 10), offset };
}

function daysIn(month: number, year: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function formatRfc3339(c: WallClock, nano: boolean): string {
  const p2 = (v: number): string => String(v).padStart(2, '0');
  const fraction = nano ? c.fraction.replace(/0+$/, '') : '';
  const date = `${String(c.year).padStart(4, '0')}-${p2(c.month)}-${p2(c.day)}`;
  const time = `${p2(c.hour)}:${p2(c.minute)}:${p2(c.second)}${fraction ? `.${fraction}` : ''}`;
  const abs = Math.abs(c.offset);
  // Go prints a zero offset as Z, whatever sign it was written with.
  const zone =
    c.offset === 0 ? 'Z' : `${c.offset < 0 ? '-' : '+'}${p2(Math.floor(abs / 60))}:${p2(abs % 60)}`;
  return `${date}T${time}${zone}`;
}
