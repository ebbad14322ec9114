// The isomorphic-git calls a fetch makes (fetch, checkout, resolveRef, reading a commit),
// either on a worker thread (git-worker.ts: the agent's default, so that a commit of
// thousands of files never stalls the event loop) or in this thread (an injected HTTP
// client, which cannot cross threads: tests and benchmarks).
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { checkout, fetch as gitFetch, readCommit, resolveRef, type HttpClient } from 'isomorphic-git';
import type { TransferStats } from './http-client.js';
import {
  deserializeError,
  pathTree,
  type GitWorkerData,
  type GitWorkerReply,
  type GitWorkerRequest,
} from './git-worker.js';

type Args<Op extends GitWorkerRequest['op']> = Extract<GitWorkerRequest, { op: Op }>['args'];

export interface GitOps {
  fetch(args: Args<'fetch'>): Promise<Awaited<ReturnType<typeof gitFetch>>>;
  checkout(args: Args<'checkout'>): Promise<void>;
  resolveRef(args: Args<'resolveRef'>): Promise<string>;
  hasCommit(args: Args<'hasCommit'>): Promise<boolean>;
  /** The id of the tree at a folder of a commit, or null when the commit has no such folder. */
  pathTree(args: Args<'pathTree'>): Promise<string | null>;
  /** Ends the worker, if any. */
  close(): void;
}

/** In this thread, with the caller's HTTP client; one cache for the session. */
export function inThreadGitOps(http: HttpClient): GitOps {
  const cache = {};
  return {
    fetch: (args) => gitFetch({ fs, http, cache, ...args }),
    checkout: (args) => checkout({ fs, cache, ...args }),
    resolveRef: (args) => resolveRef({ fs, ...args }),
    hasCommit: (args) =>
      readCommit({ fs, cache, ...args }).then(
        () => true,
        () => false,
      ),
    pathTree: (args) => pathTree(args, cache),
    close: () => undefined,
  };
}

/**
 * The compiled worker. Running from the TypeScript sources (vitest), Node cannot start a
 * .ts worker: the build's copy in dist/ is used, and without a build the calls stay in
 * this thread.
 */
export function gitWorkerFile(): string | undefined {
  const here = import.meta.url;
  const url = here.endsWith('.ts')
    ? new URL('../../dist/source/git-worker.js', here)
    : new URL('./git-worker.js', here);
  const path = fileURLToPath(url);
  return existsSync(path) ? path : undefined;
}

/**
 * On a worker thread started on first use. `stats` receives the bytes the worker moved.
 * A worker that dies fails the call in flight (and later ones) with its error.
 */
export function workerGitOps(file: string, data: GitWorkerData, stats: TransferStats): GitOps {
  let worker: Worker | undefined;
  let nextId = 0;
  let dead: Error | undefined;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  const start = (): Worker => {
    const w = new Worker(file, { workerData: data });
    w.on('message', (reply: GitWorkerReply) => {
      stats.requests += reply.stats.requests;
      stats.bytesIn += reply.stats.bytesIn;
      stats.bytesOut += reply.stats.bytesOut;
      const pending = waiting.get(reply.id);
      if (!pending) return;
      waiting.delete(reply.id);
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(deserializeError(reply.error));
    });
    const fail = (err: Error) => {
      dead = err;
      for (const p of waiting.values()) p.reject(err);
      waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the Git worker thread exited (code ${code})`)));
    return w;
  };

  const call = <T>(op: GitWorkerRequest['op'], args: unknown): Promise<T> => {
    if (dead) return Promise.reject(dead);
    worker ??= start();
    const id = ++nextId;
    return new Promise<T>((resolve, reject) => {
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker!.postMessage({ id, op, args } as GitWorkerRequest);
    });
  };

  return {
    fetch: (args) => call('fetch', args),
    checkout: (args) => call('checkout', args),
    resolveRef: (args) => call('resolveRef', args),
    hasCommit: (args) => call('hasCommit', args),
    pathTree: (args) => call('pathTree', args),
    close: () => {
      dead ??= new Error('the Git session is over');
      void worker?.terminate();
    },
  };
}
