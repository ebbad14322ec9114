// How long to wait after consecutive failures: exponential with full jitter, capped
// (delay = random() * min(cap, base * 2^(failures-1))). Full jitter spreads a fleet of agents
// that lost the same Git server at the same moment, so they do not all come back in step.
// Randomness is injected so tests can pin the delays.

export interface BackoffOptions {
  /** Upper bound of the first delay. */
  baseMs: number;
  /** No delay is ever longer than this. */
  capMs: number;
  /** Uniform in [0, 1); Math.random in production. */
  random: () => number;
}

export class Backoff {
  private count = 0;

  constructor(private readonly options: BackoffOptions) {
    if (!(options.baseMs > 0) || !(options.capMs >= options.baseMs)) {
      throw new RangeError(`backoff needs 0 < baseMs <= capMs, got ${options.baseMs} and ${options.capMs}`);
    }
  }

  /** Consecutive failures recorded since the last success. */
  get failures(): number {
    return this.count;
  }

  /** The ceiling the next failure's delay is drawn under. */
  ceiling(failures = this.count + 1): number {
    // Past 2^40 the product is beyond any sensible cap; avoid building Infinity.
    const exponent = Math.min(Math.max(failures - 1, 0), 40);
    return Math.min(this.options.capMs, this.options.baseMs * 2 ** exponent);
  }

  /** Records a failure and returns how long to wait before the next attempt. */
  fail(): number {
    this.count++;
    const r = Math.min(Math.max(this.options.random(), 0), 1);
    return Math.floor(r * this.ceiling(this.count));
  }

  /** A success: the next failure starts from the base again. */
  succeed(): void {
    this.count = 0;
  }
}
