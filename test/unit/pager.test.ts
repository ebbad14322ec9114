// When `mooring approve` pages a plan: $PAGER (default less -R), only on a terminal and only
// when the text does not fit, never with --no-pager; PAGER= or PAGER=cat turns it off.
import { describe, expect, it } from 'vitest';
import type { Io } from '../../src/cli/output.js';
import { DEFAULT_PAGER, pagerCommand, showPaged } from '../../src/cli/pager.js';

function io(terminal?: { rows: number | undefined }): Io & { printed: string[] } {
  const printed: string[] = [];
  return {
    out: (t) => printed.push(t),
    err: () => undefined,
    colour: false,
    printed,
    ...(terminal ? { terminal } : {}),
  };
}
const long = Array.from({ length: 50 }, (_, i) => `line ${i}`).join('\n');

describe('the pager', () => {
  it('is $PAGER, less -R without it, and none for PAGER= or PAGER=cat', () => {
    expect(pagerCommand({})).toBe(DEFAULT_PAGER);
    expect(DEFAULT_PAGER).toBe('less -R');
    expect(pagerCommand({ PAGER: 'most -s' })).toBe('most -s');
    expect(pagerCommand({ PAGER: '' })).toBeUndefined();
    expect(pagerCommand({ PAGER: 'cat' })).toBeUndefined();
  });

  it('pages long text on a terminal with the command and the whole text', async () => {
    const runs: [string, string][] = [];
    const out = io({ rows: 40 });
    await showPaged(long, out, {
      enabled: true,
      env: { PAGER: 'my-pager -x' },
      run: async (command, text) => {
        runs.push([command, text]);
        return true;
      },
    });
    expect(runs).toEqual([['my-pager -x', `${long}\n`]]);
    expect(out.printed).toEqual([]);
  });

  it('prints instead: not a terminal, text that fits, --no-pager, or a pager that cannot run', async () => {
    const cases: { out: ReturnType<typeof io>; text: string; enabled: boolean; runs: boolean }[] = [
      { out: io(), text: long, enabled: true, runs: true },
      { out: io({ rows: 60 }), text: long, enabled: true, runs: true },
      { out: io({ rows: 40 }), text: long, enabled: false, runs: true },
      { out: io({ rows: 40 }), text: long, enabled: true, runs: false },
    ];
    const called: boolean[] = [];
    for (const c of cases) {
      let ran = false;
      await showPaged(c.text, c.out, {
        enabled: c.enabled,
        env: {},
        run: async () => {
          ran = true;
          return c.runs;
        },
      });
      called.push(ran);
      expect(c.out.printed).toEqual([long]);
    }
    // Only the pager that could not run was tried.
    expect(called).toEqual([false, false, false, true]);
  });

  it('takes 24 rows when the terminal does not say', async () => {
    const runs: string[] = [];
    await showPaged(Array.from({ length: 30 }, () => 'x').join('\n'), io({ rows: undefined }), {
      enabled: true,
      env: {},
      run: async (command) => {
        runs.push(command);
        return true;
      },
    });
    expect(runs).toEqual(['less -R']);
  });
});
