// Numbers written the way Go writes them. helm is a Go program: values reach templates as
// float64, and Go prints those with strconv's shortest forms (`%v` of 987654321 is
// `9.87654321e+08`). mooring needs the same text in two places: map keys that are numbers
// (sigs.k8s.io/yaml turns them into strings with FormatFloat(f, 'g', -1, 32)) and the
// redaction of numeric secrets, which must recognise every form helm may print.

/** The shortest decimal digits that read back as `x` at the given width, and where the point goes. */
interface Digits {
  negative: boolean;
  /** Significant digits, no leading or trailing zeros ("0" for zero). */
  digits: string;
  /** Position of the decimal point relative to the first digit (Go's `dp`). */
  point: number;
}

function shortestDigits(x: number, bits: 32 | 64): Digits {
  const negative = x < 0 || Object.is(x, -0);
  const abs = Math.abs(x);
  if (abs === 0) return { negative, digits: '0', point: 1 };
  let text = abs.toExponential();
  if (bits === 32) {
    const target = Math.fround(abs);
    for (let p = 0; p <= 8; p++) {
      const candidate = target.toExponential(p);
      if (Math.fround(Number(candidate)) === target) {
        text = candidate;
        break;
      }
    }
  }
  const [mantissa = '0', exponent = '0'] = text.split('e');
  const digits = mantissa.replace('.', '').replace(/0+$/, '') || '0';
  return { negative, digits, point: Number(exponent) + 1 };
}

function special(x: number): string | undefined {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  return undefined;
}

function formatE(d: Digits, expChar = 'e'): string {
  const mantissa = d.digits.length > 1 ? `${d.digits[0]}.${d.digits.slice(1)}` : d.digits;
  const exp = d.digits === '0' ? 0 : d.point - 1;
  const sign = exp < 0 ? '-' : '+';
  const magnitude = String(Math.abs(exp)).padStart(2, '0');
  return `${d.negative ? '-' : ''}${mantissa}${expChar}${sign}${magnitude}`;
}

function formatF(d: Digits): string {
  let int: string;
  let frac: string;
  if (d.point <= 0) {
    int = '0';
    frac = '0'.repeat(-d.point) + d.digits;
  } else if (d.point >= d.digits.length) {
    int = d.digits + '0'.repeat(d.point - d.digits.length);
    frac = '';
  } else {
    int = d.digits.slice(0, d.point);
    frac = d.digits.slice(d.point);
  }
  if (d.digits === '0') frac = '';
  return `${d.negative ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
}

/** Go's strconv.FormatFloat(x, 'g', -1, bits), which is also what `%v` and `%g` print. */
export function goFormatG(x: number, bits: 32 | 64 = 64): string {
  const s = special(x);
  if (s !== undefined) return s;
  const d = shortestDigits(x, bits);
  const exp = d.point - 1;
  // With the shortest precision Go switches to the exponent form from 1e6 up and below 1e-4.
  if (d.digits !== '0' && (exp < -4 || exp >= 6)) return formatE(d);
  return formatF(d);
}

/** Go's strconv.FormatFloat(x, 'e', -1, 64): always the exponent form, `9.87654321e+08`. */
export function goFormatE(x: number): string {
  return special(x) ?? formatE(shortestDigits(x, 64));
}

/** How Go's encoding/json writes a float64 (helm's toJson): plain below 1e21, `1e+21` above. */
export function goFormatJson(x: number): string {
  const abs = Math.abs(x);
  if (abs !== 0 && (abs < 1e-6 || abs >= 1e21)) {
    // encoding/json writes e-07 as e-7.
    return formatE(shortestDigits(x, 64)).replace(/e([-+])0(\d)$/, 'e$1$2');
  }
  return formatF(shortestDigits(x, 64));
}

/** Go's `%e` with its default precision of 6 digits after the point: `9.876543e+08`. */
export function goFormatFixedE(x: number, precision = 6): string {
  const s = special(x);
  if (s !== undefined) return s;
  const text = Math.abs(x).toExponential(precision);
  const [mantissa = '0', exponent = '0'] = text.split('e');
  const exp = Number(exponent);
  return `${x < 0 || Object.is(x, -0) ? '-' : ''}${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}
