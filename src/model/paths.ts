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

/**
 * The `--path` flag (`MOORING_PATH`): the folder of the repository that holds the layout,
 * as a clean repository-relative POSIX path, or undefined for the repository root. Refuses
 * what could leave the repository; whether the folder exists is a matter of each revision.
 */
export function layoutPath(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const ctx = { field: '--path' };
  if (isAbsolute(raw) || /^[a-zA-Z]:[\\/]/.test(raw) || raw.includes('\\')) {
    throw new MooringError(
      `--path must be a folder relative to the repository root, found ${JSON.stringify(raw)}`,
      ctx,
    );
  }
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new MooringError(`--path ${JSON.stringify(raw)} leaves the repository (contains ..)`, ctx);
  }
  return parts.length ? parts.join('/') : undefined;
}

/**
 * The layout folder of a local checkout: `repo` itself, or its `--path` sub-folder, which
 * must exist and must not be a symlink out of the checkout.
 */
export function layoutRoot(repo: string, path: string | undefined): string {
  const rel = layoutPath(path);
  if (rel === undefined) return repo;
  const abs = join(repo, rel);
  assertInside(repo, abs, { field: '--path' }, `--path ${rel}`);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) {
    throw new MooringError(
      `--path ${rel} is not a folder of ${repo}`,
      { field: '--path' },
      {
        hint: '--path names the folder of the repository that holds clusters/ and environments/',
      },
    );
  }
  return abs;
}
