// The CPU-heavy half of the Git source, on a worker thread: fetching a pack (isomorphic-git
// inflates and indexes every object) and checking a tree out (it inflates and writes every
// file) take seconds of pure JavaScript for a commit of thousands of files, and on the main
// thread they would stall lease renewal and the leader check for as long. The main thread
// sends one isomorphic-git call per message and gets its result, or its error as plain
// fields that explainGitFailure reads, plus the bytes transferred. One worker serves one
// Git session and ends with it, so an idle agent holds no second isolate.
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { checkout, fetch as gitFetch, readCommit, readTree, resolveRef } from 'isomorphic-git';
import { createHttpClient, emptyStats, type TransferStats } from './http-client.js';

/** What the main thread starts a worker with. */
export interface GitWorkerData {
  /** Marks a thread started as the Git worker (test runners run tests on worker threads too). */
  gitWorker: true;
  ca?: string;
  timeoutMs: number;
}

type FetchArgs = Omit<Parameters<typeof gitFetch>[0], 'fs' | 'http' | 'cache' | 'onProgress' | 'onAuth'>;
type CheckoutArgs = Omit<Parameters<typeof checkout>[0], 'fs' | 'cache' | 'onProgress'>;

export type GitWorkerRequest =
  | { id: number; op: 'fetch'; args: FetchArgs }
  | { id: number; op: 'checkout'; args: CheckoutArgs }
  | { id: number; op: 'resolveRef'; args: { gitdir: string; ref: string } }
  | { id: number; op: 'hasCommit'; args: { gitdir: string; oid: string } }
  | { id: number; op: 'pathTree'; args: { gitdir: string; oid: string; filepath: string } };

export type GitWorkerReply = { id: number; stats: TransferStats } & (
  { ok: true; value: unknown } | { ok: false; error: SerializedError }
);

/** An error as plain data: name, message and the fields (code, data, caller...) it carried. */
export interface SerializedError {
  name: string;
  message: string;
  fields: Record<string, unknown>;
}

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(err)) {
    try {
      fields[key] = structuredClone(value);
    } catch {
      // Not cloneable (a socket, a function): explainGitFailure does not need it.
    }
  }
  return { name: err.name, message: err.message, fields };
}

export function deserializeError(e: SerializedError): Error {
  const err = Object.assign(new Error(e.message), e.fields);
  err.name = e.name;
  return err;
}

/** The id of the tree at `filepath` in commit `oid`, or null when the commit has no such folder. */
export async function pathTree(
  args: { gitdir: string; oid: string; filepath: string },
  cache: object,
): Promise<string | null> {
  try {
    return (await readTree({ fs, cache, ...args })).oid;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'NotFoundError' || code === 'ObjectTypeError') return null;
    throw err;
  }
}

if (parentPort && (workerData as Partial<GitWorkerData> | null)?.gitWorker === true) {
  const port = parentPort;
  const { ca, timeoutMs } = workerData as GitWorkerData;
  const stats = emptyStats();
  const http = createHttpClient({ ...(ca ? { ca } : {}), timeoutMs, stats });
  // One cache for the session: the pack index read by fetch serves checkout too.
  const cache = {};
  const run = async (req: GitWorkerRequest): Promise<unknown> => {
    switch (req.op) {
      case 'fetch':
        return gitFetch({ fs, http, cache, ...req.args });
      case 'checkout':
        return checkout({ fs, cache, ...req.args });
      case 'resolveRef':
        return resolveRef({ fs, ...req.args });
      case 'hasCommit':
        return readCommit({ fs, cache, ...req.args }).then(
          () => true,
          () => false,
        );
      case 'pathTree':
        return pathTree(req.args, cache);
    }
  };
  port.on('message', (req: GitWorkerRequest) => {
    const before = { ...stats };
    const delta = (): TransferStats => ({
      requests: stats.requests - before.requests,
      bytesIn: stats.bytesIn - before.bytesIn,
      bytesOut: stats.bytesOut - before.bytesOut,
    });
    run(req).then(
      (value) => port.postMessage({ id: req.id, ok: true, value, stats: delta() } satisfies GitWorkerReply),
      (err: unknown) =>
        port.postMessage({
          id: req.id,
          ok: false,
          error: serializeError(err),
          stats: delta(),
        } satisfies GitWorkerReply),
    );
  });
  port.on('close', () => http.close());
}
