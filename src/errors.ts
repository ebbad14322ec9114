// Errors as values with context. Every error a user can cause names what to fix:
// the file and field it is about, and the release, cluster and revision it affects.

export interface ErrorContext {
  /** Path of the file, relative to the repository root where there is one. */
  file?: string;
  /** Field path inside the file, e.g. `releases.web.chart`. */
  field?: string;
  cluster?: string;
  release?: string;
  revision?: string;
}

export class MooringError extends Error {
  readonly context: ErrorContext;
  /** What the user can do about it, when we know. */
  readonly hint?: string;

  constructor(message: string, context: ErrorContext = {}, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MooringError';
    this.context = context;
    if (options.hint !== undefined) this.hint = options.hint;
  }

  /** One line for people: `file: field: message (hint)`. */
  describe(): string {
    const where = [this.context.file, this.context.field].filter(Boolean).join(': ');
    const hint = this.hint ? ` (${this.hint})` : '';
    return `${where ? `${where}: ` : ''}${this.message}${hint}`;
  }

  toJSON(): Record<string, unknown> {
    return { message: this.message, ...this.context, ...(this.hint ? { hint: this.hint } : {}) };
  }
}

/** Several independent errors found in one pass (validate reports them all). */
export class MooringErrors extends Error {
  readonly errors: MooringError[];
  constructor(errors: MooringError[]) {
    super(errors.map((e) => e.describe()).join('\n'));
    this.name = 'MooringErrors';
    this.errors = errors;
  }
}

export function describeError(err: unknown): string {
  if (err instanceof MooringError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}
