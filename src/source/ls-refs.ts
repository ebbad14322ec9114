// Asks the server where one branch points, in a single HTTP request. Git protocol v2 is
// stateless over HTTP, so the `ls-refs` command can be POSTed straight to git-upload-pack
// without the capability advertisement (GET info/refs) that isomorphic-git's listServerRefs
// sends first: an unchanged branch then costs one small request per poll instead of two.
// Servers that do not speak v2 answer something else; the caller then falls back to
// listServerRefs, which negotiates.
import type { HttpClient } from 'isomorphic-git';

export class LsRefsHttpError extends Error {
  readonly code = 'HttpError';
  constructor(
    readonly statusCode: number,
    statusMessage: string,
  ) {
    super(`HTTP ${statusCode} ${statusMessage}`);
    this.name = 'LsRefsHttpError';
  }
}

/** What a branch lookup found: its commit, or that the server cannot do v2 ls-refs. */
export type LsRefsResult =
  { kind: 'found'; oid: string } | { kind: 'missing' } | { kind: 'unsupported'; why: string };

/** Answers bigger than this are not an ls-refs of one prefix; do not buffer them. */
const MAX_ANSWER_BYTES = 1 << 20;

export async function lsRefsBranch(args: {
  http: HttpClient;
  url: string;
  branch: string;
  headers: Record<string, string>;
  agent: string;
}): Promise<LsRefsResult> {
  const ref = `refs/heads/${args.branch}`;
  const body = Buffer.concat([
    pktLine('command=ls-refs\n'),
    pktLine(`agent=${args.agent}\n`),
    Buffer.from('0001'), // delim: capabilities end, arguments follow
    pktLine(`ref-prefix ${ref}\n`),
    Buffer.from('0000'),
  ]);
  const res = await args.http.request({
    url: `${args.url}/git-upload-pack`,
    method: 'POST',
    headers: {
      ...args.headers,
      'content-type': 'application/x-git-upload-pack-request',
      accept: 'application/x-git-upload-pack-result',
      'git-protocol': 'version=2',
    },
    body: once(body),
  });
  // Answers any git server gives whatever protocol it speaks: not a reason to fall back.
  if ([401, 403, 404].includes(res.statusCode) || res.statusCode >= 500) {
    await drain(res.body);
    throw new LsRefsHttpError(res.statusCode, res.statusMessage);
  }
  if (res.statusCode !== 200) {
    await drain(res.body);
    return { kind: 'unsupported', why: `HTTP ${res.statusCode}` };
  }
  const type = res.headers?.['content-type'] ?? '';
  if (!type.startsWith('application/x-git-upload-pack-result')) {
    await drain(res.body);
    return { kind: 'unsupported', why: `content-type ${type || 'missing'}` };
  }
  const answer = await readLimited(res.body, MAX_ANSWER_BYTES);
  if (answer === undefined) return { kind: 'unsupported', why: 'answer too large' };
  const lines = parsePktLines(answer);
  if (lines === undefined) return { kind: 'unsupported', why: 'not a v2 ls-refs answer' };
  for (const line of lines) {
    // `<oid> <refname>[ symref-target:...][ peeled:...]`; the prefix also matches longer names.
    const [oid, name] = line.split(' ');
    if (!oid || !/^[0-9a-f]{40}$/.test(oid))
      return { kind: 'unsupported', why: `unexpected line ${JSON.stringify(line.slice(0, 80))}` };
    if (name === ref) return { kind: 'found', oid };
  }
  return { kind: 'missing' };
}

function pktLine(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload]);
}

/** Payloads up to the first flush packet, or undefined if this is not a clean pkt-line stream. */
function parsePktLines(buf: Buffer): string[] | undefined {
  const lines: string[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const head = buf.subarray(at, at + 4).toString('latin1');
    if (!/^[0-9a-f]{4}$/.test(head)) return undefined;
    const len = Number.parseInt(head, 16);
    if (len === 0) return lines;
    if (len < 4 || at + len > buf.length) return undefined;
    const text = buf
      .subarray(at + 4, at + len)
      .toString('utf8')
      .replace(/\n$/, '');
    if (text.startsWith('ERR ')) return undefined;
    lines.push(text);
    at += len;
  }
  return undefined; // no flush: truncated
}

async function* once(buf: Buffer): AsyncIterableIterator<Uint8Array> {
  yield buf;
}

async function readLimited(
  body: AsyncIterable<Uint8Array> | undefined,
  limit: number,
): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  if (!body) return Buffer.alloc(0);
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

async function drain(body: AsyncIterable<Uint8Array> | undefined): Promise<void> {
  if (!body) return;
  for await (const _ of body) {
    // discard, so the keep-alive connection can be reused
  }
}
