// Output for people (tables, colour on a terminal) and for machines (`--output json|yaml`).
import { stringify } from 'yaml';

export type OutputFormat = 'text' | 'json' | 'yaml';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Colour only on a terminal, and never when NO_COLOR is set. */
  colour: boolean;
  /** Present when stdout is a terminal (long output may then be paged): its height. */
  terminal?: { rows: number | undefined };
}

export function processIo(): Io {
  return {
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
    err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
    colour: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR,
    ...(process.stdout.isTTY ? { terminal: { rows: process.stdout.rows } } : {}),
  };
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, dim: 2, bold: 1 } as const;
export type Colour = keyof typeof CODES;

export function paint(io: Io, colour: Colour, text: string): string {
  return io.colour ? `\u001b[${CODES[colour]}m${text}\u001b[0m` : text;
}

/** A plain aligned table; cells may hold colour codes (they are not counted in widths). */
export function table(headers: string[], rows: string[][]): string {
  // eslint-disable-next-line no-control-regex -- stripping ANSI colour codes is the point
  const visible = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, '').length;
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - visible(c))))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** The machine format asked for with `-o`, or undefined for text. */
export function machineFormat(output: OutputFormat | undefined): 'json' | 'yaml' | undefined {
  return output === 'json' || output === 'yaml' ? output : undefined;
}

/** `value` as JSON or YAML (the same document: YAML is written from its JSON form). */
export function machine(value: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return json(value);
  return stringify(JSON.parse(JSON.stringify(value)) as unknown, { lineWidth: 0 }).trimEnd();
}
