// Every path mooring opens in a checkout stays inside it: no `..`, no absolute paths, and
// no symlink that resolves outside the repository (a snapshot comes from Git, and Git can
// carry symlinks).
import { lstatSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { MooringError, type ErrorContext } from '../errors.js';
import { decodeUtf8, DEFAULT_YAML_LIMITS } from './yaml.js';

/** Resolves a repository-relative path, refusing anything that would leave the repository. */
export function resolveInRepo(root: string, rel: string, ctx: ErrorContext = {}): string {
  if (isAbsolute(rel) || /^[a-zA-Z]:[\\/]/.test(rel)) {
    throw new MooringError(
      `absolute path ${JSON.stringify(rel)} is not allowed; paths are relative to the repository root`,
      ctx,
    );
  }
  if (rel.split(/[\\/]/).includes('..')) {
    throw new MooringError(`path ${JSON.stringify(rel)} leaves the repository (contains ..)`, ctx);
  }
  const abs = join(root, rel);
  assertInside(root, abs, ctx, rel);
  return abs;
}

/** Throws if `abs` (after following symlinks) is outside `root`. A missing path is fine. */
export function assertInside(root: string, abs: string, ctx: ErrorContext, shown: string): void {
  let real: string;
  try {
    real = realpathSync(abs);
  } catch {
    // A dangling symlink is as bad as one pointing outside: refuse it.
    try {
      if (lstatSync(abs).isSymbolicLink()) {
        throw new MooringError(`${shown} is a symlink to a missing target`, ctx);
      }
    } catch (err) {
      if (err instanceof MooringError) throw err;
    }
    return;
  }
  const realRoot = realpathSync(root);
  const r = relative(realRoot, real);
  if (r === '..' || r.startsWith(`..${sep}`) || isAbsolute(r)) {
    throw new MooringError(`${shown} is a symlink that points outside the repository`, ctx);
  }
}

/** Reads a repository file as UTF-8 text, bounded in size, refusing escapes and bytes that are not UTF-8. */
export function readRepoFile(root: string, rel: string, maxBytes = DEFAULT_YAML_LIMITS.maxBytes): string {
  const abs = resolveInRepo(root, rel, { file: rel });
  const st = statSync(abs);
  if (!st.isFile()) throw new MooringError('is not a regular file', { file: rel });
  if (st.size > maxBytes) {
    throw new MooringError(`file is ${st.size} bytes, over the limit of ${maxBytes} bytes`, { file: rel });
  }
  return decodeUtf8(readFileSync(abs), rel);
}
