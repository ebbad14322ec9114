// Chart archives on disk, keyed by the sha256 of their content: `<dir>/sha256/<hex>.tgz`.
// An archive is written under a temporary name, checked against the digest it should have,
// then renamed into place, so a file under its final name is always complete and verified.
// The folder is bounded: the least recently used archives go first, never one in use.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_CACHE_BYTES = 512 * 1024 * 1024;

export class ArtifactCache {
  private readonly dir: string;

  constructor(
    root: string,
    private readonly maxBytes: number = DEFAULT_CACHE_BYTES,
  ) {
    this.dir = join(root, 'sha256');
    mkdirSync(this.dir, { recursive: true });
  }

  path(digestHex: string): string {
    return join(this.dir, `${digestHex}.tgz`);
  }

  /** The archive's path when it is cached (and marks it used), else undefined. */
  get(digestHex: string): string | undefined {
    const p = this.path(digestHex);
    if (!existsSync(p)) return undefined;
    const now = new Date();
    utimesSync(p, now, now);
    return p;
  }

  /** Stores `data` if its sha256 is `digestHex`; returns the path, or the digest it really has. */
  put(digestHex: string, data: Buffer): { path: string } | { mismatch: string } {
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== digestHex) return { mismatch: actual };
    const tmp = join(this.dir, `.incoming-${randomBytes(6).toString('hex')}`);
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, this.path(digestHex));
    return { path: this.path(digestHex) };
  }

  /** Removes the least recently used archives until the folder fits, keeping those in `inUse`. */
  prune(inUse: ReadonlySet<string>): void {
    const files = readdirSync(this.dir)
      .filter((f) => f.endsWith('.tgz'))
      .map((f) => {
        const st = statSync(join(this.dir, f));
        return { f, size: st.size, used: st.mtimeMs };
      })
      .sort((a, b) => a.used - b.used);
    let total = files.reduce((n, x) => n + x.size, 0);
    for (const x of files) {
      if (total <= this.maxBytes) break;
      if (inUse.has(x.f.slice(0, -4))) continue;
      rmSync(join(this.dir, x.f), { force: true });
      total -= x.size;
    }
  }
}
