// Backoff after consecutive Git failures: exponential ceilings, capped, with full jitter.
import { describe, expect, test } from 'vitest';
import { Backoff } from '../../src/source/backoff.js';

describe('Backoff', () => {
  test('doubles the ceiling per consecutive failure up to the cap', () => {
    const backoff = new Backoff({ baseMs: 1_000, capMs: 30_000, random: () => 0.999999 });
    const delays = Array.from({ length: 8 }, () => backoff.fail());
    expect(delays).toEqual([999, 1_999, 3_999, 7_999, 15_999, 29_999, 29_999, 29_999]);
    expect(backoff.failures).toBe(8);
  });

  test('draws each delay uniformly under the ceiling (full jitter)', () => {
    const draws = [0, 0.25, 0.5];
    const backoff = new Backoff({ baseMs: 1_000, capMs: 30_000, random: () => draws.shift() ?? 0 });
    expect([backoff.fail(), backoff.fail(), backoff.fail()]).toEqual([0, 500, 2_000]);
  });

  test('starts from the base again after a success', () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 10_000, random: () => 0.5 });
    backoff.fail();
    backoff.fail();
    backoff.fail();
    backoff.succeed();
    expect(backoff.failures).toBe(0);
    expect(backoff.fail()).toBe(50);
  });

  test('stays finite after very many failures', () => {
    const backoff = new Backoff({ baseMs: 1_000, capMs: 300_000, random: () => 0.5 });
    for (let i = 0; i < 5_000; i++) backoff.fail();
    expect(backoff.fail()).toBe(150_000);
  });

  test('rejects a cap below the base', () => {
    expect(() => new Backoff({ baseMs: 1_000, capMs: 10, random: Math.random })).toThrow(/baseMs <= capMs/);
  });
});
