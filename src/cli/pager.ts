// Long output for people goes through a pager, as git's does: `$PAGER` (default `less -R`,
// which keeps the colours), only when stdout is a terminal (never when piped or redirected),
// and never with `--no-pager`. `PAGER=` or `PAGER=cat` turns it off, as in git.
import { spawn } from 'node:child_process';
import type { Io } from './output.js';

export const DEFAULT_PAGER = 'less -R';

/** The pager command line to run, or undefined for none. */
export function pagerCommand(env: NodeJS.ProcessEnv): string | undefined {
  const configured = env.PAGER?.trim();
  if (configured === undefined) return DEFAULT_PAGER;
  return configured === '' || configured === 'cat' ? undefined : configured;
}

/**
 * Runs `command` through the shell (it may carry arguments, as `$PAGER` does) with `text` on
 * its stdin and the terminal as its stdout. Resolves false when it could not be run at all
 * (not found: exit 127, or the shell could not start), so that the caller prints instead.
 */
export function runPager(command: string, text: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(command, { shell: true, stdio: ['pipe', 'inherit', 'inherit'], env });
    child.on('error', () => resolve(false));
    // A reader that quits before the end (q in less) closes the pipe: that is no error.
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => resolve(code !== 127 && code !== 126));
    child.stdin.end(text);
  });
}

export interface PagerChoice {
  /** false with --no-pager. */
  enabled: boolean;
  env: NodeJS.ProcessEnv;
  /** Runs the pager (tests substitute it); default runPager. */
  run?: typeof runPager;
}

/**
 * Shows `text` for people: through the pager when stdout is a terminal and the text is
 * longer than the terminal is high, otherwise written to `io.out` as it is.
 */
export async function showPaged(text: string, io: Io, choice: PagerChoice): Promise<void> {
  const command = choice.enabled && io.terminal ? pagerCommand(choice.env) : undefined;
  const rows = io.terminal?.rows || 24;
  if (command && text.split('\n').length > rows - 1) {
    if (await (choice.run ?? runPager)(command, text.endsWith('\n') ? text : `${text}\n`, choice.env)) return;
  }
  io.out(text);
}
