// The snapshot folders under `<workDir>/snapshots/`. A snapshot is the plain file tree of one
// commit, in a folder named after the commit, and is never modified once it has that name:
//   .incoming-<random>/   a fetch in progress (git objects + checkout); never read by anyone
//   <sha>/                a complete, verified checkout; appears by one atomic rename
//   .trash-<random>/      a snapshot being deleted; renamed first so a crash mid-delete never
//                         leaves a half-deleted folder under a commit's name
// Deletion keeps the folders still in use: the current snapshot and any a caller holds.
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface Snapshot {
  /** The commit sha the files were checked out from. */
  readonly revision: string;
  /** Absolute path of the checked-out tree (no .git inside). */
  readonly dir: string;
}

/** A snapshot kept on disk until release() is called (idempotent). */
export interface SnapshotHold extends Snapshot {
  release(): void;
}

export interface Incoming {
  /** Where the fetch writes git objects; deleted with the incoming folder. */
  gitdir: string;
  /** Where the checkout writes the tree; becomes the snapshot. */
  tree: string;
  root: string;
}

export class SnapshotStore {
  private readonly holds = new Map<string, number>();

  constructor(readonly root: string) {}

  /** Creates the folder and removes what a crashed process left behind. */
  async open(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    for (const name of await readdir(this.root)) {
      if (name.startsWith('.incoming-') || name.startsWith('.trash-')) {
        await rm(join(this.root, name), { recursive: true, force: true });
      }
    }
  }

  dirFor(revision: string): string {
    return join(this.root, revision);
  }

  /** A complete snapshot of `revision` already on disk (e.g. from before a restart). */
  async find(revision: string): Promise<Snapshot | undefined> {
    try {
      const s = await stat(this.dirFor(revision));
      return s.isDirectory() ? { revision, dir: this.dirFor(revision) } : undefined;
    } catch {
      return undefined;
    }
  }

  async begin(): Promise<Incoming> {
    const root = join(this.root, `.incoming-${randomUUID()}`);
    await mkdir(join(root, 'tree'), { recursive: true });
    return { root, gitdir: join(root, 'git'), tree: join(root, 'tree') };
  }

  /** Moves a verified checkout into place under its revision's name and drops the rest. */
  async publish(incoming: Incoming, revision: string): Promise<Snapshot> {
    const dir = this.dirFor(revision);
    if (!(await this.find(revision))) {
      await rename(incoming.tree, dir);
    }
    await this.discard(incoming);
    return { revision, dir };
  }

  async discard(incoming: Incoming): Promise<void> {
    await rm(incoming.root, { recursive: true, force: true });
  }

  hold(snapshot: Snapshot): SnapshotHold {
    this.holds.set(snapshot.revision, (this.holds.get(snapshot.revision) ?? 0) + 1);
    let released = false;
    return {
      revision: snapshot.revision,
      dir: snapshot.dir,
      release: () => {
        if (released) return;
        released = true;
        const left = (this.holds.get(snapshot.revision) ?? 1) - 1;
        if (left > 0) this.holds.set(snapshot.revision, left);
        else this.holds.delete(snapshot.revision);
      },
    };
  }

  isHeld(revision: string): boolean {
    return this.holds.has(revision);
  }

  /** Deletes every snapshot except `keep` and the held ones; returns the revisions deleted. */
  async prune(keep: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(this.root)) {
      if (name.startsWith('.') || keep.has(name) || this.holds.has(name)) continue;
      const trash = join(this.root, `.trash-${randomUUID()}`);
      await rename(join(this.root, name), trash);
      await rm(trash, { recursive: true, force: true });
      removed.push(name);
    }
    return removed;
  }
}
